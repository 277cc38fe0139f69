//! `cairn server`: layers the settings (defaults, TOML file, environment, flags), builds
//! the node and runs it until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use std::io::Write;

use anyhow::Context;
use cairn_server::{AdminBootstrap, Application, LogFormat, Secret, Settings};
use clap::{Args, ValueEnum};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormatArg {
    Text,
    Json,
}

/// Flags of `cairn server`. Each also reads a `CAIRN_*` variable; flags win over the
/// environment, which wins over the file, which wins over the defaults.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// TOML settings file.
    #[arg(long, env = "CAIRN_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8848].
    #[arg(long, env = "CAIRN_LISTEN")]
    listen: Option<SocketAddr>,
    /// Directory for the database and signing key [default: ./cairn-data].
    #[arg(long, env = "CAIRN_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Shared database: postgres://… or mysql://… [default: SQLite in the data directory].
    #[arg(long, env = "CAIRN_DATABASE_URL", hide_env_values = true)]
    database: Option<String>,
    /// URL clients reach this node at, as listed to them [default: http://LISTEN].
    #[arg(long, env = "CAIRN_ADVERTISE_URL")]
    advertise_url: Option<String>,
    /// Change-log poll interval in ms [default: 100].
    #[arg(long, env = "CAIRN_SYNC_POLL_MS")]
    sync_poll_ms: Option<u64>,
    /// Heartbeat interval in ms [default: 2000].
    #[arg(long, env = "CAIRN_HEARTBEAT_MS")]
    heartbeat_ms: Option<u64>,
    /// A node silent this long is dead, in ms [default: 10000].
    #[arg(long, env = "CAIRN_NODE_TTL_MS")]
    node_ttl_ms: Option<u64>,
    /// Change-log retention in seconds [default: 604800].
    #[arg(long, env = "CAIRN_CHANGE_LOG_RETENTION_SECS")]
    change_log_retention_secs: Option<u64>,
    /// Largest config content accepted, in bytes [default: 10485760].
    #[arg(long, env = "CAIRN_MAX_CONTENT_BYTES")]
    max_content_bytes: Option<usize>,
    /// Hold time of a watch that names none, in ms [default: 30000].
    #[arg(long, env = "CAIRN_WATCH_DEFAULT_TIMEOUT_MS")]
    watch_default_timeout_ms: Option<u64>,
    /// Longest hold of a watch, in ms [default: 120000].
    #[arg(long, env = "CAIRN_WATCH_MAX_TIMEOUT_MS")]
    watch_max_timeout_ms: Option<u64>,
    /// Most keys in one watch request [default: 10000].
    #[arg(long, env = "CAIRN_WATCH_MAX_KEYS")]
    watch_max_keys: Option<usize>,
    /// Access token lifetime in seconds [default: 18000].
    #[arg(long, env = "CAIRN_TOKEN_TTL_SECS")]
    token_ttl_secs: Option<u64>,
    /// Take a client's IP for gray rules from the first X-Forwarded-For hop.
    #[arg(long, env = "CAIRN_TRUST_FORWARDED_FOR")]
    trust_forwarded_for: Option<bool>,
    /// Namespace Apollo clients read at the root (`/apollo/{env}` selects others)
    /// [default: public].
    #[arg(long, env = "CAIRN_APOLLO_NAMESPACE")]
    apollo_namespace: Option<String>,
    /// Hold of Apollo's /notifications/v2, in ms [default: 60000].
    #[arg(long, env = "CAIRN_APOLLO_POLL_TIMEOUT_MS")]
    apollo_poll_timeout_ms: Option<u64>,
    /// Refuse Apollo requests of apps without an access key [default: false].
    #[arg(long, env = "CAIRN_APOLLO_REQUIRE_ACCESS_KEY")]
    apollo_require_access_key: Option<bool>,
    /// Log line format [default: text].
    #[arg(long, env = "CAIRN_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormatArg>,
    /// Log filter, e.g. `info` or `cairn_server=debug` [default: info].
    #[arg(long, env = "CAIRN_LOG_LEVEL")]
    log_level: Option<String>,
}

fn settings(args: ServerArgs) -> anyhow::Result<Settings> {
    let mut s = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read settings file {}", path.display()))?;
            Settings::from_toml(&text)
                .with_context(|| format!("invalid settings file {}", path.display()))?
        }
        None => Settings::default(),
    };
    // The admin password is read from the environment only, never from a flag, so it
    // does not show in the process list.
    if let Ok(password) = std::env::var("CAIRN_ADMIN_PASSWORD") {
        s.admin_password = Some(Secret::new(password));
    }
    if let Some(v) = args.listen {
        s.listen = v;
    }
    if let Some(v) = args.data_dir {
        s.data_dir = v;
    }
    if let Some(v) = args.database {
        s.database = Some(Secret::new(v));
    }
    if let Some(v) = args.advertise_url {
        s.advertise_url = Some(v);
    }
    if let Some(v) = args.sync_poll_ms {
        s.sync_poll_ms = v;
    }
    if let Some(v) = args.heartbeat_ms {
        s.heartbeat_ms = v;
    }
    if let Some(v) = args.node_ttl_ms {
        s.node_ttl_ms = v;
    }
    if let Some(v) = args.change_log_retention_secs {
        s.change_log_retention_secs = v;
    }
    if let Some(v) = args.max_content_bytes {
        s.max_content_bytes = v;
    }
    if let Some(v) = args.watch_default_timeout_ms {
        s.watch_default_timeout_ms = v;
    }
    if let Some(v) = args.watch_max_timeout_ms {
        s.watch_max_timeout_ms = v;
    }
    if let Some(v) = args.watch_max_keys {
        s.watch_max_keys = v;
    }
    if let Some(v) = args.token_ttl_secs {
        s.token_ttl_secs = v;
    }
    if let Some(v) = args.trust_forwarded_for {
        s.trust_forwarded_for = v;
    }
    if let Some(v) = args.apollo_namespace {
        s.apollo_namespace = v;
    }
    if let Some(v) = args.apollo_poll_timeout_ms {
        s.apollo_poll_timeout_ms = v;
    }
    if let Some(v) = args.apollo_require_access_key {
        s.apollo_require_access_key = v;
    }
    if let Some(v) = args.log_format {
        s.log_format = match v {
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
        };
    }
    if let Some(v) = args.log_level {
        s.log_level = v;
    }
    Ok(s)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    let settings = settings(args)?;
    cairn_server::init_tracing(&settings);
    let storage = match &settings.database {
        Some(url) => format!(
            "database {}",
            cairn_server::redact_database_url(url.expose())
        ),
        None => format!("data in {}", settings.data_dir.display()),
    };
    let app = Application::build(settings).await?;
    let url = format!("http://{}", app.local_addr());
    // Written with errors ignored: a closed stdout must not take the node down.
    let mut notice = format!("Cairn is listening on {url} ({storage})\n");
    match &app.admin {
        AdminBootstrap::Generated(password) => notice.push_str(&format!(
            "\n  First start: created user `admin` with password\n\n      {}\n\n  \
             It is shown only this once. Log in with `cairn login --server {url}`\n  \
             and change it with `cairn user passwd admin`.\n\n",
            password.expose()
        )),
        AdminBootstrap::FromSettings => notice.push_str(
            "First start: created user `admin` with the configured password \
             (CAIRN_ADMIN_PASSWORD or admin_password).\n",
        ),
        AdminBootstrap::Existing => {}
    }
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(notice.as_bytes())
        .and_then(|()| stdout.flush());
    drop(stdout);
    let token = app.shutdown_token();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown requested");
        token.cancel();
    });
    app.run().await
}
