//! `cairn gray`: gray (canary) releases, published to some clients first and then
//! promoted or abandoned.

use std::io::Write;
use std::path::PathBuf;

use anyhow::bail;
use cairn_client::{Client, GrayPublish};
use clap::Subcommand;

use super::input::read_content;
use super::key;

#[derive(Subcommand)]
pub enum GrayCommand {
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

pub async fn run(client: &Client, command: GrayCommand) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match command {
        GrayCommand::Publish {
            key: k,
            file,
            ips,
            labels,
            format,
            force,
            message,
        } => {
            let k = key(&k)?;
            let content = read_content(&file)?;
            let publish = GrayPublish {
                content,
                format,
                ips,
                labels,
                force,
                comment: message,
            };
            let gray = client.gray_publish(&k, &publish).await?;
            writeln!(
                out,
                "gray release of {k} at revision {} for ips [{}] labels [{}]",
                gray.revision,
                gray.ips.join(","),
                gray.labels.join(",")
            )?;
        }
        GrayCommand::Show { key: k } => show(client, &mut out, &k).await?,
        GrayCommand::Promote { key: k } => {
            let k = key(&k)?;
            let config = client.gray_promote(&k).await?;
            writeln!(
                out,
                "promoted the gray release of {k}: revision {} for everyone",
                config.revision
            )?;
        }
        GrayCommand::Abandon { key: k } => {
            let k = key(&k)?;
            client.gray_abandon(&k).await?;
            writeln!(
                out,
                "abandoned the gray release of {k}; its clients are back on the main content"
            )?;
        }
    }
    Ok(())
}

async fn show(client: &Client, out: &mut impl Write, k: &str) -> anyhow::Result<()> {
    let k = key(k)?;
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
    Ok(())
}
