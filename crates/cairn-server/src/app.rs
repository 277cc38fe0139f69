//! Building and running a node. `main` and the integration tests both go through
//! `Application::build`, so tests exercise exactly what users run.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use cairn_store::{SqliteStore, Store};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::{self, AppState, SharedState};
use crate::auth::{self, Auth};
use crate::cache::Cache;
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::service::Service;
use crate::settings::{Secret, Settings};

/// Creates the data directory readable by its owner only: it holds password hashes and
/// the token signing key. An existing directory is left as the operator set it.
fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// What the first start did about the `admin` user.
#[derive(Debug)]
pub enum AdminBootstrap {
    /// Users already existed.
    Existing,
    /// Created with the password from the settings.
    FromSettings,
    /// Created with this random password, to be shown once.
    Generated(Secret),
}

/// A node, built and bound, ready to run.
pub struct Application {
    listener: TcpListener,
    state: SharedState,
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
        let db_path = settings.data_dir.join("cairn.db");
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(&db_path)
                .await
                .with_context(|| format!("cannot open database {}", db_path.display()))?,
        );
        let configs = store.load_configs().await.context("cannot load configs")?;
        let cache = Arc::new(Cache::load(configs));
        let signing_key = auth::load_or_create_signing_key(&settings.data_dir)
            .context("cannot read or create the token signing key")?;
        let auth = Auth::new(store.clone(), &signing_key, settings.token_ttl_secs)
            .await
            .context("cannot load users")?;
        let admin = match auth
            .bootstrap_admin(settings.admin_password.as_ref())
            .await
            .context("cannot create the admin user")?
        {
            None => AdminBootstrap::Existing,
            Some(_) if settings.admin_password.is_some() => AdminBootstrap::FromSettings,
            Some(password) => AdminBootstrap::Generated(password),
        };
        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        let service = Service::new(
            store.clone(),
            cache.clone(),
            Arc::new(Hub::default()),
            settings.max_content_bytes,
        );
        tracing::info!(
            configs = cache.len(),
            backend = store.backend(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "node built"
        );
        let state = Arc::new(AppState {
            service,
            auth,
            settings,
            shutdown: CancellationToken::new(),
            metrics: Metrics::default(),
        });
        Ok(Self {
            listener,
            state,
            admin,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Cancelling this token shuts the node down: it stops accepting, answers held
    /// watches, drains in-flight requests and returns from `run`.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.state.shutdown.clone()
    }

    /// Serves until the shutdown token is cancelled.
    pub async fn run(self) -> anyhow::Result<()> {
        let shutdown = self.state.shutdown.clone();
        let router = api::router(self.state.clone());
        tracing::info!(address = %self.local_addr(), "listening");
        axum::serve(
            self.listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .context("server failed")?;
        tracing::info!("stopped");
        Ok(())
    }
}
