//! The `cairn` binary: `cairn server` runs a node; every other subcommand is a client of
//! a running node's native API.

mod commands;
mod profile;
mod server;

/// mimalloc: the server's many small per-request allocations are measurably cheaper
/// with it than with the system allocator (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};

use commands::{
    access_key, audit, config, grant, gray, login, migrate, namespace, review, schema, transfer,
    user, watch, webhook,
};

#[derive(Parser)]
#[command(
    name = "cairn",
    version,
    about = "Cairn configuration center: server and CLI"
)]
struct Cli {
    /// Server URL, or several comma-separated for failover [default: the nodes `cairn login` found, else http://127.0.0.1:8848].
    #[arg(long, global = true, env = "CAIRN_SERVER")]
    server: Option<String>,
    /// Access token [default: from `cairn login`].
    #[arg(long, global = true, env = "CAIRN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// PEM file of CA certificates to trust for `https://` servers, besides the system's.
    #[arg(long, global = true, env = "CAIRN_CA_FILE")]
    ca_file: Option<std::path::PathBuf>,
    /// PEM client certificate, for servers that ask for one (with --client-key).
    #[arg(
        long,
        global = true,
        env = "CAIRN_CLIENT_CERT",
        requires = "client_key"
    )]
    client_cert: Option<std::path::PathBuf>,
    /// PEM private key of --client-cert.
    #[arg(
        long,
        global = true,
        env = "CAIRN_CLIENT_KEY",
        requires = "client_cert"
    )]
    client_key: Option<std::path::PathBuf>,
    /// Read and watch as a client declaring this label (`key=value`), as gray releases
    /// see it; repeat for several.
    #[arg(
        long = "as-label",
        global = true,
        env = "CAIRN_LABELS",
        value_delimiter = ','
    )]
    as_labels: Vec<String>,
    /// Read and watch as a client with this IP, as gray releases see it.
    #[arg(long, global = true, env = "CAIRN_CLIENT_IP")]
    as_ip: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a server node.
    Server(server::ServerArgs),
    /// Write a new encryption key (mode 0600) for the setting `encryption_key_file`.
    Keygen {
        /// Where to write it; an existing file is never overwritten.
        #[arg(default_value = "cairn.key")]
        path: std::path::PathBuf,
    },
    /// Finish an encryption key rotation (admin): every sealed value is stored under the
    /// nodes' new key. First give every node the new key as encryption_key_file and the
    /// old one as encryption_old_key_file, and restart them one by one.
    #[command(name = "rotate-key")]
    RotateKey,
    /// Log in and keep the server and token in the profile for later commands.
    Login(login::LoginArgs),
    // Flattened, so the config commands stay top-level: `cairn get`, not `cairn config get`.
    #[command(flatten)]
    Config(config::ConfigCommand),
    /// Print each new version of the configs as it is published.
    Watch(watch::WatchArgs),
    /// Gray (canary) releases: publish a change to some clients first, then promote or
    /// abandon it.
    #[command(subcommand)]
    Gray(gray::GrayCommand),
    /// Access keys of Apollo apps (admin): with an enabled key, an app's Apollo clients
    /// must sign their requests.
    #[command(subcommand, name = "access-key")]
    AccessKey(access_key::AccessKeyCommand),
    /// Manage namespaces.
    #[command(subcommand)]
    Ns(namespace::NsCommand),
    /// JSON Schemas that configs' contents must satisfy (set and rm: admins of the
    /// namespace).
    #[command(subcommand)]
    Schema(schema::SchemaCommand),
    /// Webhooks: a namespace's changes sent, signed, to a URL (admins of the
    /// namespace).
    #[command(subcommand)]
    Webhook(webhook::WebhookCommand),
    /// Change requests where a namespace requires review: list, show (with the diff),
    /// approve, reject, rebase.
    #[command(subcommand)]
    Review(review::ReviewCommand),
    /// Manage users (admin).
    #[command(subcommand)]
    User(user::UserCommand),
    /// Give a user or role a level (none, read, read-secret, write, approve, admin) over a namespace, or part
    /// of one. Admins anywhere; a namespace's admins within it.
    Grant(grant::GrantArgs),
    /// Take a grant away.
    Revoke(grant::RevokeArgs),
    /// List grants: all as admin, else those you can see.
    Grants(grant::GrantsArgs),
    /// Named roles: sets of grants given to their members (admin).
    #[command(subcommand)]
    Role(grant::RoleCommand),
    /// Service tokens for applications and CI (admin): scoped to namespaces, shown once.
    #[command(subcommand)]
    Token(grant::TokenCommand),
    /// The audit log (admin): who did what, from where, and how it went.
    Audit(audit::AuditArgs),
    /// Write a namespace's configs to a file: Nacos's export zip, or Cairn's own format.
    Export(transfer::ExportArgs),
    /// Import a file exported by Cairn or Nacos into a namespace, all or nothing.
    Import(transfer::ImportArgs),
    /// Copy configs from one namespace into another (optionally into another group).
    Clone(transfer::CloneArgs),
    /// Copy every config of a running Nacos, or an Apollo app's namespaces, into Cairn.
    /// Safe to repeat: what is already here as the source has it is left alone.
    Migrate(migrate::MigrateArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let tls = commands::TlsFiles {
        ca_file: cli.ca_file,
        client_certificate: cli.client_cert.zip(cli.client_key),
    };
    let command = match cli.command {
        Command::Server(args) => return server::run(args).await,
        Command::Keygen { path } => {
            cairn_server::write_new_key(&path)?;
            println!(
                "wrote a new encryption key to {}; give it to every node as encryption_key_file \
                 and keep a copy apart from the database: without it, nothing stored with it can be read",
                path.display()
            );
            return Ok(());
        }
        Command::Login(args) => return login::run(cli.server, &tls, args).await,
        command => command,
    };
    let mut client = commands::connect(cli.server, cli.token, &tls)?;
    if !cli.as_labels.is_empty() {
        client = client.with_labels(cli.as_labels);
    }
    if let Some(ip) = cli.as_ip {
        client = client.with_client_ip(ip);
    }
    let client = &client;
    match command {
        Command::Server(_) | Command::Login(_) | Command::Keygen { .. } => {
            unreachable!("handled above")
        }
        Command::Config(command) => config::run(client, command).await,
        Command::Watch(args) => watch::run(client, args).await,
        Command::Gray(command) => gray::run(client, command).await,
        Command::AccessKey(command) => access_key::run(client, command).await,
        Command::Ns(command) => namespace::run(client, command).await,
        Command::Schema(command) => schema::run(client, command).await,
        Command::Webhook(command) => webhook::run(client, command).await,
        Command::Review(command) => review::run(client, command).await,
        Command::User(command) => user::run(client, command).await,
        Command::Grant(args) => grant::grant(client, args).await,
        Command::Revoke(args) => grant::revoke(client, args).await,
        Command::Grants(args) => grant::grants(client, args).await,
        Command::Role(command) => grant::role(client, command).await,
        Command::Audit(args) => audit::run(client, args).await,
        Command::Token(command) => grant::token(client, command).await,
        Command::Export(args) => transfer::export(client, args).await,
        Command::Import(args) => transfer::import(client, args).await,
        Command::Clone(args) => transfer::clone(client, args).await,
        Command::Migrate(args) => migrate::run(client, args).await,
        Command::RotateKey => {
            let done = client.rotate_encryption_key().await?;
            println!(
                "{} re-wrapped under the new key, {} stored in the clear now sealed, {} already current",
                done.rewrapped, done.sealed, done.current
            );
            if done.raced > 0 {
                anyhow::bail!(
                    "{} values kept changing during the rotation; run cairn rotate-key again",
                    done.raced
                );
            }
            println!(
                "done: remove encryption_old_key_file from every node's settings (the old key opens nothing now)"
            );
            Ok(())
        }
    }
}
