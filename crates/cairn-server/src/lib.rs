//! The Cairn node: the config service, the in-memory cache, the watch hub, auth and the
//! HTTP surfaces, assembled by [`Application`].

pub mod access;
pub mod access_keys;
pub mod api;
mod app;
pub mod audit;
pub mod auth;
pub mod cache;
pub mod commit;
pub mod hub;
pub mod limits;
pub mod listeners;
mod metrics;
pub mod schemas;
mod serve;
pub mod service;
pub mod settings;
pub mod sync;
mod throttle;
pub mod tls;
pub mod transfer;
pub mod webhooks;

pub use app::{write_new_key, AdminBootstrap, Application};
pub use cairn_store::redact_url as redact_database_url;
pub use serve::ConnectionStats;
pub use settings::{ExposeSecret, LogFormat, Secret, Settings};

/// Milliseconds since the Unix epoch, the time unit stored everywhere.
pub fn now_millis() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Installs the global tracing subscriber. `RUST_LOG` wins over the configured level;
/// sqlx's per-statement logs are quieted unless asked for.
pub fn init_tracing(settings: &Settings) {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| {
            EnvFilter::try_new(format!("sqlx=warn,{}", settings.log_level))
                .unwrap_or_else(|_| EnvFilter::new("sqlx=warn,info"))
        });
    use std::io::IsTerminal;
    // Logs go to stderr so that stdout stays for what the operator must read (the
    // first-start password) and for piping.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match settings.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
