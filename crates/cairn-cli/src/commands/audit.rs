//! `cairn audit`: reading the audit log (admin), as a table or as JSON lines for a SIEM.

use std::io::Write;

use cairn_client::{AuditFilter, Client};
use clap::Args;

use super::output::table;

#[derive(Args)]
pub struct AuditArgs {
    /// From this time, RFC 3339 (2026-12-04T09:00:00Z).
    #[arg(long)]
    from: Option<String>,
    /// Before this time, RFC 3339.
    #[arg(long)]
    to: Option<String>,
    /// One user's acts.
    #[arg(long)]
    user: Option<String>,
    /// One namespace's.
    #[arg(long)]
    namespace: Option<String>,
    /// An action (config.publish) or a family (config, gray, user, grant, role, login,
    /// namespace, access_key).
    #[arg(long)]
    action: Option<String>,
    /// ok, denied or failed.
    #[arg(long, value_parser = ["ok", "denied", "failed"])]
    result: Option<String>,
    /// How many entries, newest first.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=500))]
    limit: u32,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
}

pub async fn run(client: &Client, args: AuditArgs) -> anyhow::Result<()> {
    let filter = AuditFilter {
        from: args.from,
        to: args.to,
        user: args.user,
        namespace: args.namespace,
        action: args.action,
        result: args.result,
    };
    let page = client.audit(&filter, 1, args.limit).await?;
    let mut out = std::io::stdout().lock();
    if args.json {
        for entry in &page.items {
            writeln!(out, "{}", serde_json::to_string(entry)?)?;
        }
        return Ok(());
    }
    let rows: Vec<[String; 7]> = page
        .items
        .into_iter()
        .map(|e| {
            [
                e.at,
                e.user,
                e.source,
                e.surface,
                e.action,
                e.target,
                if e.detail.is_empty() {
                    e.result
                } else {
                    format!("{}: {}", e.result, e.detail)
                },
            ]
        })
        .collect();
    table(
        &mut out,
        [
            "AT", "USER", "SOURCE", "SURFACE", "ACTION", "TARGET", "RESULT",
        ],
        &rows,
    )?;
    Ok(())
}
