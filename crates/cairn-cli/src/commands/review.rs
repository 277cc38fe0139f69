//! `cairn review`: the change requests of namespaces that require review — list them,
//! read one with its diff and timeline, approve, reject, or rebase one's own.

use std::io::Write;
use std::path::PathBuf;

use cairn_client::{ChangeRequest, Client};
use clap::Subcommand;

use super::output::table;

#[derive(Subcommand)]
pub enum ReviewCommand {
    /// Change requests you may read, newest first.
    List {
        /// Only this namespace's.
        #[arg(long, short)]
        namespace: Option<String>,
        /// open, approved, rejected or stale; `all` for every state.
        #[arg(long, default_value = "open")]
        status: String,
        #[arg(long, default_value_t = 1)]
        page: u32,
        #[arg(long, default_value_t = 50)]
        page_size: u32,
    },
    /// One change request: what it changes (a diff) and its timeline.
    Show { id: i64 },
    /// Approve someone else's request and release it (needs the approve level).
    Approve {
        id: i64,
        #[arg(long, short, default_value = "")]
        message: String,
    },
    /// Reject a request, saying why; or withdraw your own.
    Reject {
        id: i64,
        #[arg(long, short, default_value = "")]
        message: String,
    },
    /// Move your own request onto the config's current content (after it went stale),
    /// with new content from a file or the same.
    Rebase {
        id: i64,
        #[arg(long, short = 'f')]
        file: Option<PathBuf>,
        #[arg(long, short, default_value = "")]
        message: String,
    },
}

fn summary(r: &ChangeRequest) -> String {
    format!(
        "change request {} ({} of {}/{}/{}) is {}",
        r.id, r.op, r.namespace, r.group, r.data_id, r.status
    )
}

pub async fn run(client: &Client, command: ReviewCommand) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match command {
        ReviewCommand::List {
            namespace,
            status,
            page,
            page_size,
        } => {
            let status = (status != "all").then_some(status);
            let found = client
                .reviews(namespace.as_deref(), status.as_deref(), page, page_size)
                .await?;
            let rows: Vec<[String; 6]> = found
                .items
                .iter()
                .map(|r| {
                    [
                        r.id.to_string(),
                        r.status.clone(),
                        r.op.clone(),
                        format!("{}/{}/{}", r.namespace, r.group, r.data_id),
                        r.author.clone(),
                        r.comment.clone(),
                    ]
                })
                .collect();
            table(
                &mut out,
                ["ID", "STATUS", "OP", "CONFIG", "AUTHOR", "COMMENT"],
                &rows,
            )?;
            if found.total > found.items.len() as u64 {
                writeln!(out, "({} in all; see --page)", found.total)?;
            }
        }
        ReviewCommand::Show { id } => {
            let detail = client.review(id).await?;
            let r = &detail.request;
            writeln!(out, "{}", summary(r))?;
            writeln!(out, "author       {} {}", r.author, r.created_at)?;
            if !r.comment.is_empty() {
                writeln!(out, "comment      {}", r.comment)?;
            }
            if !r.reviewer.is_empty() {
                writeln!(out, "reviewer     {}", r.reviewer)?;
            }
            if let Some(revision) = r.released_revision {
                writeln!(out, "released     revision {revision}")?;
            }
            let current = detail.current_md5.as_deref().unwrap_or("");
            if r.status == "open" && current != r.base_md5 {
                writeln!(
                    out,
                    "note         the config changed since (md5 {current}); approving will find it stale"
                )?;
            }
            writeln!(out)?;
            for e in &detail.events {
                let said = if e.comment.is_empty() {
                    String::new()
                } else {
                    format!(": {}", e.comment)
                };
                writeln!(out, "{} {} by {}{said}", e.at, e.event, e.actor)?;
            }
            match &detail.diff {
                Some(diff) => {
                    writeln!(out)?;
                    out.write_all(diff.as_bytes())?;
                }
                None if r.op == "delete" => writeln!(out, "\ndeletes the config")?,
                None => writeln!(out, "\n(the content is sensitive: read-secret shows it)")?,
            }
        }
        ReviewCommand::Approve { id, message } => {
            let done = client.approve(id, &message).await?;
            let released = done
                .released_revision
                .map(|r| format!(": released as revision {r}"))
                .unwrap_or_default();
            writeln!(out, "{}{released}", summary(&done))?;
        }
        ReviewCommand::Reject { id, message } => {
            let done = client.reject(id, &message).await?;
            writeln!(out, "{}", summary(&done))?;
        }
        ReviewCommand::Rebase { id, file, message } => {
            let content = file.map(|f| super::input::read_content(&f)).transpose()?;
            let done = client.rebase(id, content.as_deref(), &message).await?;
            writeln!(
                out,
                "{} again, against md5 {}",
                summary(&done),
                done.base_md5
            )?;
        }
    }
    Ok(())
}
