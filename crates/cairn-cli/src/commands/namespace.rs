//! `cairn ns`: creating, listing, changing and deleting namespaces.

use std::io::Write;

use cairn_client::Client;
use clap::Subcommand;

use super::output::table;

#[derive(Subcommand)]
pub enum NsCommand {
    Create {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    List,
    /// A namespace's quotas against what it holds, and its history retention.
    Show {
        name: String,
    },
    /// Change a namespace's display name, description, the apps whose unsigned Apollo
    /// reads it serves, or (admin) its quotas and history retention. A limit takes a
    /// number, `unlimited`, or `default` (the server's setting).
    Update {
        name: String,
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// Comma-separated Apollo app ids or `*` patterns (`*`: every app) whose
        /// unsigned reads the namespace serves; `''`: none, every read must be signed.
        #[arg(long)]
        apollo_anonymous: Option<String>,
        /// Most configs it may hold.
        #[arg(long, value_parser = limit)]
        max_configs: Option<Limit>,
        /// Most bytes of content one config may have.
        #[arg(long, value_parser = limit)]
        max_config_bytes: Option<Limit>,
        /// Most bytes of content its configs may hold together.
        #[arg(long, value_parser = limit)]
        max_total_bytes: Option<Limit>,
        /// History revisions kept per config (the newest always stays).
        #[arg(long, value_parser = limit)]
        history_revisions: Option<Limit>,
        /// Days of history kept per config (the newest revision always stays).
        #[arg(long, value_parser = limit)]
        history_days: Option<Limit>,
        /// Require review before release: a person's change becomes a change request
        /// another person with the approve level releases (`cairn review`); machine
        /// surfaces are refused unless their token may publish without review. Turning
        /// it off takes a global admin.
        #[arg(long)]
        require_review: Option<bool>,
    },
    Delete {
        name: String,
    },
}

/// A limit as given: `None` is the server's default, `Some(0)` unlimited.
#[derive(Clone, Copy)]
pub struct Limit(Option<u64>);

fn limit(text: &str) -> Result<Limit, String> {
    match text {
        "default" => Ok(Limit(None)),
        "unlimited" => Ok(Limit(Some(0))),
        number => number
            .parse()
            .map(|n| Limit(Some(n)))
            .map_err(|_| format!("{text:?} is not a number, `unlimited` or `default`")),
    }
}

/// `n` of a limit, or `unlimited`.
fn bound(n: u64) -> String {
    if n == 0 {
        "unlimited".to_owned()
    } else {
        n.to_string()
    }
}

pub async fn run(client: &Client, command: NsCommand) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match command {
        NsCommand::Create { name, description } => {
            client.create_namespace(&name, &description).await?;
            writeln!(out, "created namespace {name}")?;
        }
        NsCommand::List => {
            let rows: Vec<[String; 3]> = client
                .namespaces()
                .await?
                .into_iter()
                .map(|n| [n.name, n.config_count.to_string(), n.description])
                .collect();
            table(&mut out, ["NAMESPACE", "CONFIGS", "DESCRIPTION"], &rows)?;
        }
        NsCommand::Show { name } => {
            let ns = client.namespace(&name).await?;
            writeln!(out, "namespace    {}", ns.name)?;
            if !ns.description.is_empty() {
                writeln!(out, "description  {}", ns.description)?;
            }
            if ns.require_review {
                writeln!(out, "review       required before release")?;
            }
            if let Some(q) = &ns.quota {
                writeln!(
                    out,
                    "configs      {} of {}",
                    q.configs,
                    bound(q.max_configs)
                )?;
                writeln!(
                    out,
                    "bytes        {} of {}",
                    q.bytes,
                    bound(q.max_total_bytes)
                )?;
                writeln!(
                    out,
                    "per config   at most {} bytes",
                    bound(q.max_config_bytes)
                )?;
            }
            if let Some(h) = &ns.history {
                let kept = match (h.max_revisions, h.max_days) {
                    (0, 0) => "every revision".to_owned(),
                    (n, 0) => format!("the last {n} revisions"),
                    (0, d) => format!("{d} days"),
                    (n, d) => format!("the last {n} revisions, at most {d} days"),
                };
                writeln!(out, "history      {kept} of each config")?;
            }
        }
        NsCommand::Update {
            name,
            display_name,
            description,
            apollo_anonymous,
            max_configs,
            max_config_bytes,
            max_total_bytes,
            history_revisions,
            history_days,
            require_review,
        } => {
            let update = cairn_client::NamespaceUpdate {
                display_name,
                description,
                apollo_anonymous_apps: apollo_anonymous.map(|apps| {
                    apps.split(',')
                        .map(str::trim)
                        .filter(|a| !a.is_empty())
                        .map(str::to_owned)
                        .collect()
                }),
                max_configs: max_configs.map(|l| l.0),
                max_config_bytes: max_config_bytes.map(|l| l.0),
                max_total_bytes: max_total_bytes.map(|l| l.0),
                history_max_revisions: history_revisions.map(|l| l.0),
                history_max_days: history_days.map(|l| l.0),
                require_review,
            };
            let ns = client.update_namespace(&name, &update).await?;
            let apps = if ns.apollo_anonymous_apps.is_empty() {
                "none (signed reads only)".to_owned()
            } else {
                ns.apollo_anonymous_apps.join(",")
            };
            let review = if ns.require_review {
                "required"
            } else {
                "not required"
            };
            writeln!(
                out,
                "updated namespace {name}; unsigned Apollo reads: {apps}; review before release: {review}"
            )?;
        }
        NsCommand::Delete { name } => {
            client.delete_namespace(&name).await?;
            writeln!(out, "deleted namespace {name}")?;
        }
    }
    Ok(())
}
