//! The `cairn` binary: `cairn server` runs a node; every other subcommand is a client of
//! a running node's native API.

mod profile;
mod server;

/// mimalloc: the server's many small per-request allocations are measurably cheaper
/// with it than with the system allocator (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use cairn_client::{Client, Key, ListQuery, Publish, WatchKey};
use clap::{Parser, Subcommand};

const DEFAULT_SERVER: &str = "http://127.0.0.1:8848";

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
    /// Log in and keep the server and token in the profile for later commands.
    Login {
        #[arg(long, short, default_value = "admin")]
        username: String,
        /// Read the password from standard input instead of prompting.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Print a config's content (or its metadata with --meta).
    Get {
        /// namespace/group/data_id
        key: String,
        /// Print metadata as JSON instead of the content.
        #[arg(long)]
        meta: bool,
        /// Print this historical revision's content instead of the current one.
        #[arg(long)]
        revision: Option<i64>,
    },
    /// Create or replace a config from a file (or `-` for standard input).
    Publish {
        /// namespace/group/data_id
        key: String,
        #[arg(long, short = 'f')]
        file: PathBuf,
        /// text, properties, yaml, json, toml, xml or html [default: from the extension]
        #[arg(long)]
        format: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// A tag; repeat for several.
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// Publish only if the current md5 is this (`""`: only if it does not exist).
        #[arg(long)]
        cas: Option<String>,
        /// Store content that does not parse as its format.
        #[arg(long)]
        force: bool,
        /// Recorded in history.
        #[arg(long, short)]
        message: Option<String>,
    },
    /// Delete a config (its history stays).
    Delete {
        key: String,
        #[arg(long)]
        cas: Option<String>,
    },
    /// List and search configs.
    List {
        #[arg(long, short)]
        namespace: Option<String>,
        /// Group; `*` is a wildcard.
        #[arg(long, short)]
        group: Option<String>,
        /// Data id; `*` is a wildcard.
        #[arg(long, short)]
        data_id: Option<String>,
        #[arg(long)]
        tag: Option<String>,
        /// Only configs whose content contains this text.
        #[arg(long)]
        contains: Option<String>,
        #[arg(long, default_value_t = 1)]
        page: u32,
        #[arg(long, default_value_t = 50)]
        page_size: u32,
    },
    /// Show a config's history, newest first.
    History {
        key: String,
        #[arg(long, default_value_t = 1)]
        page: u32,
        #[arg(long, default_value_t = 20)]
        page_size: u32,
    },
    /// Publish an earlier revision's content again, as a new revision.
    Rollback {
        key: String,
        #[arg(long)]
        to: i64,
    },
    /// Unified diff between two revisions (or a revision and the current content).
    Diff {
        key: String,
        #[arg(long)]
        from: i64,
        #[arg(long)]
        to: Option<i64>,
    },
    /// Print each new version of the configs as it is published.
    Watch {
        /// namespace/group/data_id, one or more.
        #[arg(required = true)]
        keys: Vec<String>,
        /// Exit after this many changes.
        #[arg(long)]
        count: Option<u64>,
    },
    /// Gray (canary) releases: publish a change to some clients first, then promote or
    /// abandon it.
    #[command(subcommand)]
    Gray(GrayCommand),
    /// Access keys of Apollo apps (admin): with an enabled key, an app's Apollo clients
    /// must sign their requests.
    #[command(subcommand, name = "access-key")]
    AccessKey(AccessKeyCommand),
    /// Manage namespaces.
    #[command(subcommand)]
    Ns(NsCommand),
    /// Manage users (admin).
    #[command(subcommand)]
    User(UserCommand),
}

#[derive(Subcommand)]
enum GrayCommand {
    /// Serve a file's content to the clients matching --ip or --label; everyone else
    /// keeps the current content.
    Publish {
        /// namespace/group/data_id (the config must exist)
        key: String,
        #[arg(long, short = 'f')]
        file: PathBuf,
        /// A client IP to include; repeat for several.
        #[arg(long = "ip")]
        ips: Vec<String>,
        /// A client label (`key=value`) to include; repeat for several.
        #[arg(long = "label")]
        labels: Vec<String>,
        /// Default: the config's format.
        #[arg(long)]
        format: Option<String>,
        #[arg(long)]
        force: bool,
        #[arg(long, short)]
        message: Option<String>,
    },
    /// Show the gray release: rules and content.
    Show { key: String },
    /// Make the gray content the main content for everyone.
    Promote { key: String },
    /// Drop the gray release; its clients go back to the main content.
    Abandon { key: String },
}

#[derive(Subcommand)]
enum AccessKeyCommand {
    /// Make a key (at most 5 per app) and print its secret.
    Create {
        app_id: String,
    },
    /// List an app's keys with their secrets.
    List {
        app_id: String,
    },
    Enable {
        app_id: String,
        id: String,
    },
    Disable {
        app_id: String,
        id: String,
    },
    Delete {
        app_id: String,
        id: String,
    },
}

#[derive(Subcommand)]
enum NsCommand {
    Create {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    List,
    Delete {
        name: String,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user; prompts for the password.
    Add {
        username: String,
        #[arg(long, default_value = "user", value_parser = ["user", "admin"])]
        role: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a user's password; prompts for it (and, for your own account, for the
    /// current one first). With --password-stdin: the current password on the first line
    /// when it is your own account, then the new one.
    Passwd {
        username: String,
        #[arg(long)]
        password_stdin: bool,
    },
    List,
    Delete {
        username: String,
    },
}

fn read_password(from_stdin: bool, prompt: &str) -> anyhow::Result<String> {
    if from_stdin || !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_owned());
    }
    Ok(rpassword::prompt_password(prompt)?)
}

/// A file's text, or standard input's for `-`.
fn read_content(file: &std::path::Path) -> anyhow::Result<String> {
    if file.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("cannot read standard input as UTF-8")?;
        return Ok(s);
    }
    std::fs::read_to_string(file)
        .with_context(|| format!("cannot read {} as UTF-8 text", file.display()))
}

fn key(path: &str) -> anyhow::Result<Key> {
    Ok(Key::parse(path)?)
}

fn connect(cli_server: Option<String>, cli_token: Option<String>) -> anyhow::Result<Client> {
    let profile = profile::load()?;
    // The saved token goes only to the servers it was issued by.
    let saved_token = match (&cli_server, &profile.server) {
        (Some(wanted), Some(saved)) => {
            let known: Vec<&str> = saved.split(',').map(|s| s.trim_end_matches('/')).collect();
            let all_known = wanted
                .split(',')
                .all(|w| known.contains(&w.trim().trim_end_matches('/')));
            if all_known {
                profile.token
            } else {
                None
            }
        }
        _ => profile.token,
    };
    let server = cli_server
        .or(profile.server)
        .unwrap_or_else(|| DEFAULT_SERVER.to_owned());
    let mut builder = Client::builder(server);
    if let Some(token) = cli_token.or(saved_token) {
        builder = builder.token(token);
    }
    Ok(builder.build()?)
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
    let command = match cli.command {
        Command::Server(args) => return server::run(args).await,
        command => command,
    };
    if let Command::Login {
        username,
        password_stdin,
    } = &command
    {
        return login(cli.server, username, *password_stdin).await;
    }
    let mut client = connect(cli.server, cli.token)?;
    if !cli.as_labels.is_empty() {
        client = client.with_labels(cli.as_labels);
    }
    if let Some(ip) = cli.as_ip {
        client = client.with_client_ip(ip);
    }
    let client = &client;
    let mut out = std::io::stdout().lock();
    match command {
        Command::Server(_) | Command::Login { .. } => unreachable!("handled above"),
        Command::Get {
            key: k,
            meta,
            revision,
        } => {
            let k = key(&k)?;
            if let Some(revision) = revision {
                let entry = client.history_entry(&k, revision).await?;
                out.write_all(entry.content.unwrap_or_default().as_bytes())?;
                return Ok(());
            }
            let Some(config) = client.get(&k).await? else {
                bail!("config {k} does not exist");
            };
            if meta {
                let value = serde_json::json!({
                    "namespace": config.namespace, "group": config.group,
                    "data_id": config.data_id, "format": config.format, "md5": config.md5,
                    "revision": config.revision, "size": config.size,
                    "description": config.description, "tags": config.tags,
                    "created_by": config.created_by, "created_at": config.created_at,
                    "updated_by": config.updated_by, "updated_at": config.updated_at,
                });
                writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
            } else {
                out.write_all(config.content.unwrap_or_default().as_bytes())?;
            }
        }
        Command::Publish {
            key: k,
            file,
            format,
            description,
            tags,
            cas,
            force,
            message,
        } => {
            let k = key(&k)?;
            let content = read_content(&file)?;
            // The file's extension names the format when the data id's does not.
            let format = format.or_else(|| {
                let has_ext = |name: &str| {
                    name.rsplit_once('.').is_some_and(|(_, ext)| {
                        [
                            "txt",
                            "text",
                            "properties",
                            "yaml",
                            "yml",
                            "json",
                            "toml",
                            "xml",
                            "html",
                            "htm",
                        ]
                        .contains(&ext.to_ascii_lowercase().as_str())
                    })
                };
                if has_ext(&k.data_id) {
                    None
                } else {
                    file.extension()
                        .and_then(|e| e.to_str())
                        .filter(|e| has_ext(&format!("x.{e}")))
                        .map(str::to_owned)
                }
            });
            let publish = Publish {
                content,
                format,
                description,
                tags: (!tags.is_empty()).then_some(tags),
                cas_md5: cas,
                force,
                comment: message,
            };
            let config = client.publish(&k, &publish).await?;
            writeln!(
                out,
                "published {k} revision {} ({}, md5 {})",
                config.revision, config.format, config.md5
            )?;
        }
        Command::Delete { key: k, cas } => {
            let k = key(&k)?;
            client.delete(&k, cas.as_deref()).await?;
            writeln!(out, "deleted {k}")?;
        }
        Command::List {
            namespace,
            group,
            data_id,
            tag,
            contains,
            page,
            page_size,
        } => {
            let page = client
                .list(&ListQuery {
                    namespace,
                    group,
                    data_id,
                    tag,
                    q: contains,
                    page: Some(page),
                    page_size: Some(page_size),
                })
                .await?;
            let rows: Vec<[String; 6]> = page
                .items
                .iter()
                .map(|c| {
                    [
                        c.namespace.clone(),
                        c.group.clone(),
                        c.data_id.clone(),
                        c.format.clone(),
                        c.revision.to_string(),
                        c.updated_at.clone(),
                    ]
                })
                .collect();
            table(
                &mut out,
                [
                    "NAMESPACE",
                    "GROUP",
                    "DATA_ID",
                    "FORMAT",
                    "REVISION",
                    "UPDATED",
                ],
                &rows,
            )?;
            let pages = page.total.div_ceil(u64::from(page.page_size)).max(1);
            writeln!(
                out,
                "page {} of {pages}, {} configs in all",
                page.page, page.total
            )?;
        }
        Command::History {
            key: k,
            page,
            page_size,
        } => {
            let k = key(&k)?;
            let page = client.history(&k, page, page_size).await?;
            let rows: Vec<[String; 6]> = page
                .items
                .iter()
                .map(|h| {
                    [
                        h.revision.to_string(),
                        h.op.clone(),
                        h.operator.clone(),
                        h.created_at.clone(),
                        h.md5.clone(),
                        h.comment.clone(),
                    ]
                })
                .collect();
            table(
                &mut out,
                ["REVISION", "OP", "BY", "AT", "MD5", "COMMENT"],
                &rows,
            )?;
            writeln!(out, "{} entries in all", page.total)?;
        }
        Command::Rollback { key: k, to } => {
            let k = key(&k)?;
            let config = client.rollback(&k, to).await?;
            writeln!(
                out,
                "rolled {k} back to revision {to}: new revision {}",
                config.revision
            )?;
        }
        Command::Diff { key: k, from, to } => {
            let k = key(&k)?;
            out.write_all(client.diff(&k, from, to).await?.as_bytes())?;
        }
        Command::Watch { keys, count } => {
            drop(out);
            watch(client, &keys, count).await?;
        }
        Command::Gray(GrayCommand::Publish {
            key: k,
            file,
            ips,
            labels,
            format,
            force,
            message,
        }) => {
            let k = key(&k)?;
            let content = read_content(&file)?;
            let gray = client
                .gray_publish(
                    &k,
                    &cairn_client::GrayPublish {
                        content,
                        format,
                        ips,
                        labels,
                        force,
                        comment: message,
                    },
                )
                .await?;
            writeln!(
                out,
                "gray release of {k} at revision {} for ips [{}] labels [{}]",
                gray.revision,
                gray.ips.join(","),
                gray.labels.join(",")
            )?;
        }
        Command::Gray(GrayCommand::Show { key: k }) => {
            let k = key(&k)?;
            let Some(gray) = client.gray(&k).await? else {
                bail!("config {k} has no gray release");
            };
            writeln!(
                out,
                "# gray release of {k}, revision {}, md5 {}",
                gray.revision, gray.md5
            )?;
            writeln!(out, "# ips: {}", gray.ips.join(", "))?;
            writeln!(out, "# labels: {}", gray.labels.join(", "))?;
            writeln!(out, "# by {} at {}", gray.created_by, gray.created_at)?;
            out.write_all(gray.content.unwrap_or_default().as_bytes())?;
        }
        Command::Gray(GrayCommand::Promote { key: k }) => {
            let k = key(&k)?;
            let config = client.gray_promote(&k).await?;
            writeln!(
                out,
                "promoted the gray release of {k}: revision {} for everyone",
                config.revision
            )?;
        }
        Command::Gray(GrayCommand::Abandon { key: k }) => {
            let k = key(&k)?;
            client.gray_abandon(&k).await?;
            writeln!(
                out,
                "abandoned the gray release of {k}; its clients are back on the main content"
            )?;
        }
        Command::AccessKey(AccessKeyCommand::Create { app_id }) => {
            let key = client.create_access_key(&app_id).await?;
            writeln!(
                out,
                "access key {} of {app_id}: secret {}",
                key.id, key.secret
            )?;
        }
        Command::AccessKey(AccessKeyCommand::List { app_id }) => {
            let rows: Vec<[String; 4]> = client
                .access_keys(&app_id)
                .await?
                .into_iter()
                .map(|k| {
                    [
                        k.id,
                        if k.enabled { "enabled" } else { "disabled" }.to_owned(),
                        k.created_at,
                        k.secret,
                    ]
                })
                .collect();
            table(&mut out, ["ID", "STATE", "CREATED", "SECRET"], &rows)?;
        }
        Command::AccessKey(AccessKeyCommand::Enable { app_id, id }) => {
            client.set_access_key_enabled(&app_id, &id, true).await?;
            writeln!(out, "enabled access key {id} of {app_id}")?;
        }
        Command::AccessKey(AccessKeyCommand::Disable { app_id, id }) => {
            client.set_access_key_enabled(&app_id, &id, false).await?;
            writeln!(out, "disabled access key {id} of {app_id}")?;
        }
        Command::AccessKey(AccessKeyCommand::Delete { app_id, id }) => {
            client.delete_access_key(&app_id, &id).await?;
            writeln!(out, "deleted access key {id} of {app_id}")?;
        }
        Command::Ns(NsCommand::Create { name, description }) => {
            client.create_namespace(&name, &description).await?;
            writeln!(out, "created namespace {name}")?;
        }
        Command::Ns(NsCommand::List) => {
            let rows: Vec<[String; 3]> = client
                .namespaces()
                .await?
                .into_iter()
                .map(|n| [n.name, n.config_count.to_string(), n.description])
                .collect();
            table(&mut out, ["NAMESPACE", "CONFIGS", "DESCRIPTION"], &rows)?;
        }
        Command::Ns(NsCommand::Delete { name }) => {
            client.delete_namespace(&name).await?;
            writeln!(out, "deleted namespace {name}")?;
        }
        Command::User(UserCommand::Add {
            username,
            role,
            password_stdin,
        }) => {
            let password = read_password(password_stdin, &format!("Password for {username}: "))?;
            client.create_user(&username, &password, &role).await?;
            writeln!(out, "created user {username} ({role})")?;
        }
        Command::User(UserCommand::Passwd {
            username,
            password_stdin,
        }) => {
            let own = profile::load()?.username.as_deref() == Some(username.as_str());
            let current = if own {
                Some(read_password(password_stdin, "Current password: ")?)
            } else {
                None
            };
            let password =
                read_password(password_stdin, &format!("New password for {username}: "))?;
            client
                .set_password(&username, &password, current.as_deref())
                .await?;
            writeln!(
                out,
                "changed the password of {username}; their old tokens no longer work"
            )?;
        }
        Command::User(UserCommand::List) => {
            let rows: Vec<[String; 3]> = client
                .users()
                .await?
                .into_iter()
                .map(|u| [u.username, u.role, u.created_at])
                .collect();
            table(&mut out, ["USER", "ROLE", "CREATED"], &rows)?;
        }
        Command::User(UserCommand::Delete { username }) => {
            client.delete_user(&username).await?;
            writeln!(out, "deleted user {username}")?;
        }
    }
    Ok(())
}

async fn login(server: Option<String>, username: &str, password_stdin: bool) -> anyhow::Result<()> {
    let mut profile = profile::load()?;
    let server = server
        .or(profile.server.take())
        .unwrap_or_else(|| DEFAULT_SERVER.to_owned());
    let client = Client::builder(&server).build()?;
    let password = read_password(password_stdin, &format!("Password for {username}: "))?;
    let login = client.login(username, &password).await?;
    // Remember every live node, so later commands fail over between them.
    let servers = client
        .clone()
        .with_token(login.token.clone())
        .discover()
        .await
        .map(|list| {
            list.iter()
                .map(|s| s.trim_end_matches('/').to_owned())
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_else(|_| server.clone());
    profile.server = Some(servers);
    profile.token = Some(login.token);
    profile.username = Some(login.username);
    let path = profile::save(&profile)?;
    println!(
        "logged in to {server} as {username} ({}); token valid for {} s, kept in {}",
        login.role,
        login.expires_in,
        path.display()
    );
    Ok(())
}

/// Long-polls the keys and prints each new version; retries with backoff when the
/// server is unreachable.
async fn watch(client: &Client, paths: &[String], count: Option<u64>) -> anyhow::Result<()> {
    let keys = paths
        .iter()
        .map(|p| key(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut backoff = Duration::from_millis(500);
    let mut held = Vec::with_capacity(keys.len());
    for k in &keys {
        let md5 = loop {
            match client.get(k).await {
                Ok(config) => break config.map(|c| c.md5).unwrap_or_default(),
                Err(cairn_client::Error::Http(e)) => {
                    eprintln!("server unreachable ({e}); retrying in {backoff:?}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
                Err(e) => return Err(e.into()),
            }
        };
        held.push(WatchKey::new(k, md5));
    }
    eprintln!("watching {} key(s); Ctrl-C to stop", keys.len());
    let mut seen = 0u64;
    backoff = Duration::from_millis(500);
    loop {
        match watch_once(client, &mut held).await {
            Ok(printed) => {
                backoff = Duration::from_millis(500);
                seen += printed;
                if count.is_some_and(|c| seen >= c) {
                    return Ok(());
                }
            }
            Err(cairn_client::Error::Http(e)) => {
                eprintln!("server unreachable ({e}); retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// One long poll; prints each changed config and returns how many it printed. A key's
/// md5 is updated only once its new version is printed, so an error in between makes
/// the next poll report it again.
async fn watch_once(client: &Client, held: &mut [WatchKey]) -> cairn_client::Result<u64> {
    let changed = client.watch(held, Duration::from_secs(30)).await?;
    let mut printed = 0;
    for change in changed {
        let k = change.key();
        // What is printed, and held for the next poll, is the version read now: the
        // content may have moved on since the answer, and the header must match it.
        let (text, md5) = match client.get(&k).await? {
            Some(config) => {
                let content = config.content.unwrap_or_default();
                let newline = if content.ends_with('\n') { "" } else { "\n" };
                (
                    format!(
                        "--- {k} revision {} md5 {}\n{content}{newline}",
                        config.revision, config.md5
                    ),
                    config.md5,
                )
            }
            None => (format!("--- {k} deleted\n"), String::new()),
        };
        let slot = held
            .iter_mut()
            .find(|w| w.namespace == k.namespace && w.group == k.group && w.data_id == k.data_id);
        if slot.as_ref().is_some_and(|w| w.md5 == md5) {
            continue; // back to what was printed last: nothing new to show
        }
        let mut out = std::io::stdout().lock();
        // A closed stdout (e.g. `| head`) ends the watch quietly.
        if out
            .write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .is_err()
        {
            std::process::exit(0);
        }
        if let Some(slot) = slot {
            slot.md5 = md5;
        }
        printed += 1;
    }
    Ok(printed)
}

fn table<const N: usize>(
    out: &mut impl Write,
    header: [&str; N],
    rows: &[[String; N]],
) -> std::io::Result<()> {
    let mut widths = header.map(str::len);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |out: &mut dyn Write, cells: Vec<&str>| -> std::io::Result<()> {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == N {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        writeln!(out, "{}", text.trim_end())
    };
    line(out, header.to_vec())?;
    for row in rows {
        line(out, row.iter().map(String::as_str).collect())?;
    }
    Ok(())
}
