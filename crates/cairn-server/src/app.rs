//! Building and running a node. `main` and the integration tests both go through
//! `Application::build`, so tests exercise exactly what users run.

use secrecy::ExposeSecret;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::access_keys::AccessKeys;
use crate::api::{self, AppState, SharedState};
use crate::auth::{self, Auth};
use crate::cache::Cache;
use crate::commit::Commits;
use crate::metrics::Metrics;
use crate::service::Service;
use crate::settings::Settings;
use crate::sync::{Sync, SyncSettings};

/// Creates the data directory readable by its owner only: it holds password hashes and
/// the token signing key. An existing directory is left as the operator set it.
fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Writes `text` to `path` readable and writable by its owner only, whatever the umask.
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    // A file left by an earlier start keeps its old mode on open; set it again.
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    writeln!(file, "{text}")?;
    file.sync_all()
}

/// The encryption key in `path`, refused with a reason a person can act on.
fn load_key(path: &std::path::Path) -> anyhow::Result<cairn_store::Sealer> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the encryption key file {shown}"))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(file = %shown, "the encryption key file can be read by other users; chmod 600 it");
            }
        }
    }
    cairn_store::Sealer::from_key_text(&text)
        .map_err(|why| anyhow::anyhow!("the encryption key file {shown}: {why}"))
}

/// Writes a new encryption key to `path` (mode 0600), never over an existing file.
pub fn write_new_key(path: &std::path::Path) -> anyhow::Result<()> {
    use std::io::Write as _;
    let key = cairn_store::Sealer::generate().map_err(|e| anyhow::anyhow!(e))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).with_context(|| {
        format!(
            "cannot create {} (an existing key is never overwritten)",
            path.display()
        )
    })?;
    writeln!(file, "{key}")?;
    file.sync_all()?;
    Ok(())
}

/// A listening socket with room for `backlog` connections not yet accepted. The
/// standard library's 128 overflows when thousands of clients reconnect at once (a node
/// restart, a load balancer's failover), and each one dropped waits for a SYN retry.
fn bind(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // A restarted node binds its port again while the old connections linger.
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    #[cfg(target_os = "linux")]
    if let Some(max) = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|text| text.trim().parse::<u32>().ok())
        .filter(|max| *max < backlog)
    {
        tracing::warn!(
            listen_backlog = backlog,
            somaxconn = max,
            "the kernel caps the listen backlog at net.core.somaxconn; raise it (sysctl) for \
             a reconnect storm to be queued whole"
        );
    }
    socket.listen(backlog)
}

/// What the first start did about the `admin` user.
#[derive(Debug)]
pub enum AdminBootstrap {
    /// Users already existed.
    Existing,
    /// Created with the password from the settings.
    FromSettings,
    /// Created with a random password, written to this file (readable by its owner
    /// only) rather than to the log, where it would outlive its use.
    Generated(std::path::PathBuf),
}

/// A node, built and bound, ready to run.
pub struct Application {
    listener: TcpListener,
    /// Nacos's gRPC protocol, unless turned off.
    grpc: Option<(TcpListener, Arc<api::grpc::Surface>)>,
    state: SharedState,
    webhooks: Arc<crate::webhooks::Webhooks>,
    /// The applied change-log sequence, which wakes webhook delivery.
    applied: tokio::sync::watch::Receiver<i64>,
    pub admin: AdminBootstrap,
}

impl Application {
    /// Opens the database, fills the cache, prepares auth and binds the listener.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let started = Instant::now();
        settings
            .check()
            .map_err(|why| anyhow::anyhow!("invalid setting: {why}"))?;
        create_private_dir(&settings.data_dir).with_context(|| {
            format!(
                "cannot create data directory {}",
                settings.data_dir.display()
            )
        })?;
        let database = settings.database.as_ref().map(|d| d.expose_secret());
        let described = database.map_or_else(
            || settings.data_dir.join("cairn.db").display().to_string(),
            cairn_store::redact_url,
        );
        let sealer = match (
            &settings.encryption_key_file,
            &settings.encryption_old_key_file,
        ) {
            (Some(path), None) => Some(Arc::new(load_key(path)?)),
            (Some(path), Some(old)) => {
                Some(Arc::new(load_key(path)?.with_previous(load_key(old)?)))
            }
            (None, _) => None,
        };
        let sealed = sealer.is_some();
        let store = cairn_store::open_sealed(database, &settings.data_dir, sealer.clone())
            .await
            .with_context(|| format!("cannot open database {described}"))?;
        if sealed {
            tracing::info!("config contents are stored encrypted");
        }
        // The sequence is read before the configs: a change landing in between is then
        // both in the snapshot and replayed from the log, which is harmless.
        let loaded_at = store
            .settled_seq()
            .await
            .context("cannot read the change log")?;
        let configs = store.load_configs().await.context("cannot load configs")?;
        let grays = store
            .load_grays()
            .await
            .context("cannot load gray releases")?;
        let apollo_index = Arc::new(api::apollo::Index::load(configs.iter().map(|c| &c.key)));
        let commits = Arc::new(Commits::new(
            Cache::load(configs, grays),
            loaded_at,
            vec![apollo_index.clone()],
        ));
        let signing_key = if !store.backend().is_shared() {
            auth::load_or_create_signing_key(&settings.data_dir, sealer.as_deref())
                .context("cannot read or create the token signing key")?
        } else {
            // Nodes sharing a database must accept each other's tokens.
            auth::shared_signing_key(store.as_ref())
                .await
                .context("cannot read or create the shared token signing key")?
        };
        let auth = Arc::new(
            Auth::new(
                store.clone(),
                &signing_key,
                settings.token_ttl_secs.get().as_secs(),
            )
            .await
            .context("cannot load users and grants")?,
        );
        let admin = match auth
            .bootstrap_admin(settings.admin_password.as_ref())
            .await
            .context("cannot create the admin user")?
        {
            None => AdminBootstrap::Existing,
            Some(_) if settings.admin_password.is_some() => AdminBootstrap::FromSettings,
            Some(password) => {
                let file = settings.data_dir.join("admin-password");
                write_private(&file, password.expose_secret())
                    .with_context(|| format!("cannot write {}", file.display()))?;
                AdminBootstrap::Generated(file)
            }
        };
        let tls = crate::tls::Tls::load(&settings)?;
        // The setting's range keeps it well within a u32.
        let backlog = u32::try_from(settings.listen_backlog).unwrap_or(u32::MAX);
        let listener = bind(settings.listen, backlog)
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        if settings.advertise_url.is_none() && listener.local_addr()?.ip().is_unspecified() {
            tracing::warn!(
                "listening on an unspecified address without advertise_url: other nodes and \
                 clients would be told an address they cannot reach; set advertise_url"
            );
        }
        let grpc_listener = match settings
            .grpc_address(listener.local_addr()?)
            .map_err(|why| anyhow::anyhow!("invalid setting: grpc_listen: {why}"))?
        {
            Some(addr) => Some(
                bind(addr, backlog)
                    .with_context(|| format!("cannot listen for gRPC on {addr} (grpc_listen)"))?,
            ),
            None => None,
        };
        let limits = Arc::new(crate::limits::Limits::new(
            crate::limits::Defaults {
                max_configs: settings.quota_max_configs,
                max_total_bytes: settings.quota_max_total_bytes,
                history_max_revisions: settings.history_max_revisions,
                history_max_days: settings.history_max_days,
            },
            settings.max_content_bytes,
        ));
        limits.refresh(
            &store
                .list_namespaces()
                .await
                .context("cannot read the namespaces")?,
        );
        let schemas = Arc::new(crate::schemas::Schemas::default());
        schemas.refresh(store.schemas().await.context("cannot read the schemas")?);
        let sync = Arc::new(Sync::new(
            store.clone(),
            commits.clone(),
            SyncSettings {
                limits: Some(limits.clone()),
                schemas: Some(schemas.clone()),
                history_prune_interval: settings.history_prune_interval_secs.get(),
                address: settings.advertised_url(listener.local_addr()?),
                poll: settings.sync_poll_ms.get(),
                heartbeat: settings.heartbeat_ms.get(),
                node_ttl: settings.node_ttl_ms.get(),
                retention: settings.change_log_retention_secs.get(),
                audit_retention: std::time::Duration::from_secs(
                    settings.audit_retention_days.saturating_mul(86_400),
                ),
            },
        ));
        let applied = commits.watch_applied();
        let service = Service::new(
            store.clone(),
            commits,
            settings.max_content_bytes,
            auth.clone(),
            limits,
            schemas,
            settings.webhook_allow_private_targets,
        );
        tracing::info!(
            configs = service.configs_cached(),
            backend = store.backend().as_str(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "node built"
        );
        let access_keys = Arc::new(
            AccessKeys::load(store.clone(), settings.apollo_require_access_key)
                .await
                .context("cannot load access keys")?,
        );
        let apollo = api::apollo::Surface {
            // Checked with the other settings above.
            root: cairn_core::Namespace::parse(&settings.apollo_namespace)
                .map_err(|e| anyhow::anyhow!("invalid setting: apollo_namespace: {e}"))?,
            index: apollo_index,
            polls: Arc::default(),
            rendered: Default::default(),
        };
        let webhooks = Arc::new(
            crate::webhooks::Webhooks::new(
                store.clone(),
                settings.webhook_allow_private_targets,
                settings.webhook_retry_secs.get(),
            )
            .context("cannot make the webhook client")?,
        );
        let state = Arc::new(AppState {
            service,
            apollo,
            auth,
            access_keys,
            sync,
            settings,
            shutdown: CancellationToken::new(),
            metrics: Metrics::default(),
            connections: Arc::default(),
            grpc_connections: Arc::default(),
            tls,
            sealer,
        });
        let grpc = grpc_listener.map(|l| (l, api::grpc::Surface::new(state.clone())));
        Ok(Self {
            listener,
            grpc,
            state,
            webhooks,
            applied,
            admin,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The URL clients reach this node at through its bound address: `https://` when it
    /// serves TLS.
    pub fn url(&self) -> String {
        let scheme = if self.state.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.local_addr())
    }

    /// Where Nacos's gRPC protocol is served, unless it is off.
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.grpc.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    /// What the connection layer counted so far.
    pub fn connection_stats(&self) -> Arc<crate::serve::ConnectionStats> {
        self.state.connections.clone()
    }

    /// Cancelling this token shuts the node down: it stops accepting, answers held
    /// watches, drains in-flight requests and returns from `run`.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.state.shutdown.clone()
    }

    /// Serves until the shutdown token is cancelled.
    pub async fn run(self) -> anyhow::Result<()> {
        let shutdown = self.state.shutdown.clone();
        let sync = self.state.sync.clone();
        let tail = tokio::spawn(sync.clone().run_tail(shutdown.clone()));
        let deliver = self.webhooks.clone();
        tokio::spawn(deliver.run(sync.clone(), self.applied.clone(), shutdown.clone()));
        let heartbeat = tokio::spawn(sync.run_heartbeat(
            self.state.auth.clone(),
            self.state.access_keys.clone(),
            shutdown.clone(),
        ));
        // Held watches are answered as shutdown begins.
        let (state, closing) = (self.state.clone(), shutdown.clone());
        tokio::spawn(async move {
            closing.cancelled().await;
            state.service.close_watches();
        });
        let tls = self.state.tls.clone();
        if let Some(tls) = &tls {
            tokio::spawn(tls.clone().watch_files(shutdown.clone()));
        }
        let router = api::router(self.state.clone());
        let (address, grpc_addr) = (self.local_addr(), self.grpc_addr());
        let grpc = self.grpc.map(|(listener, surface)| {
            let tls = tls.as_ref().map(|tls| tls.grpc.clone());
            tokio::spawn(surface.serve(listener, tls, shutdown.clone()))
        });
        tracing::info!(%address, grpc = ?grpc_addr, tls = tls.is_some(), "listening");
        let stats = self.state.connections.clone();
        let per_address = self.state.settings.max_connections_per_address;
        let tls = tls.map(|tls| tls.http.clone());
        crate::serve::serve(
            self.listener,
            self.state.clone(),
            router,
            shutdown,
            stats,
            per_address,
            tls,
        )
        .await;
        if let Some(grpc) = grpc {
            let _ = grpc.await;
        }
        let _ = tail.await;
        let _ = heartbeat.await;
        self.state.service.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}
