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
    /// Change a namespace's display name, description, or the apps whose unsigned
    /// Apollo reads it serves.
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
    },
    Delete {
        name: String,
    },
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
        NsCommand::Update {
            name,
            display_name,
            description,
            apollo_anonymous,
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
            };
            let ns = client.update_namespace(&name, &update).await?;
            let apps = if ns.apollo_anonymous_apps.is_empty() {
                "none (signed reads only)".to_owned()
            } else {
                ns.apollo_anonymous_apps.join(",")
            };
            writeln!(
                out,
                "updated namespace {name}; unsigned Apollo reads: {apps}"
            )?;
        }
        NsCommand::Delete { name } => {
            client.delete_namespace(&name).await?;
            writeln!(out, "deleted namespace {name}")?;
        }
    }
    Ok(())
}
