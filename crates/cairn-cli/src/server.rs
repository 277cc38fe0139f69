//! `cairn server`: layers the settings (defaults, TOML file, environment, flags), builds
//! the node and runs it until SIGINT or SIGTERM.

use cairn_server::ExposeSecret;
use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use cairn_server::settings::SETTINGS;
use cairn_server::{AdminBootstrap, Application, Settings};
use clap::parser::ValueSource;
use clap::{Arg, ArgMatches, Args, Command, FromArgMatches};

/// Flags of `cairn server`: `--config`, and one per setting of the server's settings
/// table, each also read from its `CAIRN_*` variable. Flags win over the environment,
/// which wins over the file, which wins over the defaults.
#[derive(Debug)]
pub struct ServerArgs {
    config: Option<PathBuf>,
    /// The settings given by flag or environment: key, text, and where it came from.
    given: Vec<(&'static str, String, &'static str)>,
}

impl Args for ServerArgs {
    fn augment_args(cmd: Command) -> Command {
        let config = Arg::new("config")
            .long("config")
            .env("CAIRN_CONFIG")
            .value_name("FILE")
            .value_parser(clap::value_parser!(PathBuf))
            .help("TOML settings file");
        SETTINGS
            .iter()
            .filter(|s| s.flag)
            .fold(cmd.arg(config), |cmd, s| {
                cmd.arg(
                    Arg::new(s.key)
                        .long(s.flag_name())
                        .env(s.env)
                        // Some hold credentials (a database URL).
                        .hide_env_values(true)
                        .value_name("VALUE")
                        .help(format!("{} [default: {}]", s.doc.trim(), (s.default)())),
                )
            })
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for ServerArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let given = SETTINGS
            .iter()
            .filter(|s| s.flag)
            .filter_map(|s| {
                let text = matches.get_one::<String>(s.key)?.clone();
                let from = match matches.value_source(s.key) {
                    Some(ValueSource::EnvVariable) => s.env,
                    _ => "the command line",
                };
                Some((s.key, text, from))
            })
            .collect();
        Ok(Self {
            config: matches.get_one::<PathBuf>("config").cloned(),
            given,
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
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
    // Settings without a flag (the admin password, so that it never shows in the
    // process list) are read from the environment only.
    for setting in SETTINGS.iter().filter(|s| !s.flag) {
        if let Ok(text) = std::env::var(setting.env) {
            s.set(setting.key, &text)
                .map_err(|why| anyhow::anyhow!("{why} (from {})", setting.env))?;
        }
    }
    for (key, text, from) in &args.given {
        s.set(key, text)
            .map_err(|why| anyhow::anyhow!("{why} (from {from})"))?;
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
            cairn_server::redact_database_url(url.expose_secret())
        ),
        None => format!("data in {}", settings.data_dir.display()),
    };
    let app = Application::build(settings).await?;
    let url = app.url();
    // Written with errors ignored: a closed stdout must not take the node down.
    let grpc = match app.grpc_addr() {
        Some(addr) => format!("; Nacos gRPC on {addr}"),
        None => String::new(),
    };
    let mut notice =
        format!("Cairn is listening on {url} ({storage}; console at {url}/console/{grpc})\n");
    match &app.admin {
        AdminBootstrap::Generated(file) => notice.push_str(&format!(
            "\n  First start: created user `admin`; its password is in\n\n      {}\n\n  \
             (readable by this user only). Log in with `cairn login --server {url}`,\n  \
             change it with `cairn user passwd admin`, then delete the file.\n\n",
            file.display()
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
