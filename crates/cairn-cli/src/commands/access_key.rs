//! `cairn access-key`: the access keys an Apollo app's clients sign their requests with.

use std::io::Write;

use cairn_client::{Client, ExposeSecret as _};
use clap::Subcommand;

use super::output::table;

#[derive(Subcommand)]
pub enum AccessKeyCommand {
    /// Make a key (at most 5 per app) and print its secret.
    Create {
        app_id: String,
        /// Sign only in this namespace (Apollo env); repeat for several. Default: all.
        #[arg(long = "namespace")]
        namespaces: Vec<String>,
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

pub async fn run(client: &Client, command: AccessKeyCommand) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match command {
        AccessKeyCommand::Create { app_id, namespaces } => {
            let key = client.create_access_key_in(&app_id, &namespaces).await?;
            writeln!(
                out,
                "access key {} of {app_id}: secret {}",
                key.id,
                key.secret.expose_secret()
            )?;
        }
        AccessKeyCommand::List { app_id } => {
            let rows: Vec<[String; 4]> = client
                .access_keys(&app_id)
                .await?
                .into_iter()
                .map(|k| {
                    [
                        k.id,
                        if k.enabled { "enabled" } else { "disabled" }.to_owned(),
                        k.created_at,
                        k.secret.expose_secret().to_owned(),
                    ]
                })
                .collect();
            table(&mut out, ["ID", "STATE", "CREATED", "SECRET"], &rows)?;
        }
        AccessKeyCommand::Enable { app_id, id } => {
            client.set_access_key_enabled(&app_id, &id, true).await?;
            writeln!(out, "enabled access key {id} of {app_id}")?;
        }
        AccessKeyCommand::Disable { app_id, id } => {
            client.set_access_key_enabled(&app_id, &id, false).await?;
            writeln!(out, "disabled access key {id} of {app_id}")?;
        }
        AccessKeyCommand::Delete { app_id, id } => {
            client.delete_access_key(&app_id, &id).await?;
            writeln!(out, "deleted access key {id} of {app_id}")?;
        }
    }
    Ok(())
}
