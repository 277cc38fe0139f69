//! `cairn ns`: creating, listing and deleting namespaces.

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
        NsCommand::Delete { name } => {
            client.delete_namespace(&name).await?;
            writeln!(out, "deleted namespace {name}")?;
        }
    }
    Ok(())
}
