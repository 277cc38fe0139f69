//! The config commands: get, publish, delete, list, history, rollback and diff.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::bail;
use cairn_client::{ChangeOptions, Client, ListQuery, Publish};
use clap::{Args, Subcommand};

use super::input::read_content;
use super::key;
use super::output::table;

#[derive(Subcommand)]
pub enum ConfigCommand {
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
    Publish(PublishArgs),
    /// Delete a config (its history stays). Where the namespace requires review, this
    /// opens a change request.
    Delete {
        key: String,
        #[arg(long)]
        cas: Option<String>,
        #[command(flatten)]
        why: Why,
    },
    /// List and search configs.
    List(ListArgs),
    /// Show a config's history, newest first.
    History {
        key: String,
        #[arg(long, default_value_t = 1)]
        page: u32,
        #[arg(long, default_value_t = 20)]
        page_size: u32,
    },
    /// Who watches a config on the node: client address, protocol, the md5 it holds and
    /// whether that is current.
    Listeners {
        key: String,
        /// Ask every live node of the cluster, not only the one this command talks to.
        #[arg(long)]
        cluster: bool,
    },
    /// Publish an earlier revision's content again, as a new revision. Where the
    /// namespace requires review, this opens a change request.
    Rollback {
        key: String,
        #[arg(long)]
        to: i64,
        #[command(flatten)]
        why: Why,
    },
    /// Unified diff between two revisions (or a revision and the current content).
    Diff {
        key: String,
        #[arg(long)]
        from: i64,
        #[arg(long)]
        to: Option<i64>,
    },
}

/// Why a change is made, and whether it is an emergency.
#[derive(Args)]
pub struct Why {
    /// Recorded in history (or as the change request's comment).
    #[arg(long, short)]
    message: Option<String>,
    /// Release at once where the namespace requires review (admins of the namespace
    /// only): flagged in history, the audit log and webhooks; `--message` is the reason.
    #[arg(long, requires = "message")]
    emergency: bool,
}

impl Why {
    fn options(self, cas_md5: Option<String>) -> ChangeOptions {
        ChangeOptions {
            cas_md5,
            comment: self.message,
            emergency: self.emergency,
        }
    }
}

/// Tells of a change kept for review instead of made; other errors pass through.
fn pending(out: &mut impl Write, result: cairn_client::Result<()>) -> anyhow::Result<()> {
    match result {
        Err(cairn_client::Error::PendingReview(request)) => {
            writeln!(
                out,
                "namespace {} requires review: opened change request {} ({} of {}/{}/{}); another person with the approve level releases it with `cairn review approve {}`",
                request.namespace,
                request.id,
                request.op,
                request.namespace,
                request.group,
                request.data_id,
                request.id
            )?;
            Ok(())
        }
        other => Ok(other?),
    }
}

#[derive(Args)]
pub struct PublishArgs {
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
    /// Recorded in history (or as the change request's comment).
    #[arg(long, short)]
    message: Option<String>,
    /// Release at once where the namespace requires review (admins of the namespace
    /// only): flagged in history, the audit log and webhooks; `--message` is the reason.
    #[arg(long, requires = "message")]
    emergency: bool,
    /// Mark the config sensitive (`true`): only users with read-secret see its content;
    /// `false` unmarks it [default: as it is].
    #[arg(long)]
    sensitive: Option<bool>,
}

#[derive(Args)]
pub struct ListArgs {
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
}

pub async fn run(client: &Client, command: ConfigCommand) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match command {
        ConfigCommand::Get {
            key: k,
            meta,
            revision,
        } => get(client, &mut out, &k, meta, revision).await?,
        ConfigCommand::Publish(args) => publish(client, &mut out, args).await?,
        ConfigCommand::Delete { key: k, cas, why } => {
            let k = key(&k)?;
            let done = client.delete_with(&k, &why.options(cas)).await;
            if done.is_ok() {
                writeln!(out, "deleted {k}")?;
            }
            pending(&mut out, done)?;
        }
        ConfigCommand::List(args) => list(client, &mut out, args).await?,
        ConfigCommand::History {
            key: k,
            page,
            page_size,
        } => history(client, &mut out, &k, page, page_size).await?,
        ConfigCommand::Listeners { key: k, cluster } => {
            listeners(client, &mut out, &k, cluster).await?
        }
        ConfigCommand::Rollback { key: k, to, why } => {
            let k = key(&k)?;
            let done = client.rollback_with(&k, to, &why.options(None)).await;
            if let Ok(config) = &done {
                writeln!(
                    out,
                    "rolled {k} back to revision {to}: new revision {}",
                    config.revision
                )?;
            }
            pending(&mut out, done.map(drop))?;
        }
        ConfigCommand::Diff { key: k, from, to } => {
            let k = key(&k)?;
            out.write_all(client.diff(&k, from, to).await?.as_bytes())?;
        }
    }
    Ok(())
}

async fn get(
    client: &Client,
    out: &mut impl Write,
    k: &str,
    meta: bool,
    revision: Option<i64>,
) -> anyhow::Result<()> {
    let k = key(k)?;
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
    Ok(())
}

async fn publish(client: &Client, out: &mut impl Write, args: PublishArgs) -> anyhow::Result<()> {
    let k = key(&args.key)?;
    let content = read_content(&args.file)?;
    let format = args
        .format
        .or_else(|| format_from_extension(&k.data_id, &args.file));
    let publish = Publish {
        content,
        format,
        description: args.description,
        tags: (!args.tags.is_empty()).then_some(args.tags),
        cas_md5: args.cas,
        force: args.force,
        comment: args.message,
        sensitive: args.sensitive,
        emergency: args.emergency,
    };
    let done = client.publish(&k, &publish).await;
    if let Ok(config) = &done {
        writeln!(
            out,
            "published {k} revision {} ({}, md5 {})",
            config.revision, config.format, config.md5
        )?;
    }
    pending(out, done.map(drop))
}

/// The file's extension names the format when the data id's does not.
fn format_from_extension(data_id: &str, file: &Path) -> Option<String> {
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
    if has_ext(data_id) {
        None
    } else {
        file.extension()
            .and_then(|e| e.to_str())
            .filter(|e| has_ext(&format!("x.{e}")))
            .map(str::to_owned)
    }
}

async fn list(client: &Client, out: &mut impl Write, args: ListArgs) -> anyhow::Result<()> {
    let page = client
        .list(&ListQuery {
            namespace: args.namespace,
            group: args.group,
            data_id: args.data_id,
            tag: args.tag,
            q: args.contains,
            page: Some(args.page),
            page_size: Some(args.page_size),
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
        out,
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
    Ok(())
}

async fn listeners(
    client: &Client,
    out: &mut impl Write,
    k: &str,
    cluster: bool,
) -> anyhow::Result<()> {
    let found = client.listeners(&key(k)?, cluster).await?;
    let rows: Vec<[String; 6]> = found
        .listeners
        .iter()
        .map(|l| {
            [
                l.client_ip.clone().unwrap_or_else(|| "-".into()),
                l.protocol.clone(),
                l.md5.clone().unwrap_or_else(|| "-".into()),
                if l.current { "yes" } else { "no" }.into(),
                l.node.clone(),
                l.since.clone(),
            ]
        })
        .collect();
    table(
        out,
        ["CLIENT", "PROTOCOL", "MD5", "CURRENT", "NODE", "SINCE"],
        &rows,
    )?;
    writeln!(out, "{} listening", found.listeners.len())?;
    for node in &found.unanswered {
        writeln!(out, "node {} did not answer: {}", node.node, node.error)?;
    }
    Ok(())
}

async fn history(
    client: &Client,
    out: &mut impl Write,
    k: &str,
    page: u32,
    page_size: u32,
) -> anyhow::Result<()> {
    let k = key(k)?;
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
    table(out, ["REVISION", "OP", "BY", "AT", "MD5", "COMMENT"], &rows)?;
    writeln!(out, "{} entries in all", page.total)?;
    Ok(())
}
