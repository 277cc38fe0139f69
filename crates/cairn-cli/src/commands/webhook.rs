//! `cairn webhook`: subscribe a URL to a namespace's changes, list and remove
//! subscriptions, read a subscription's delivery log and send a delivery again.

use std::io::Write;

use anyhow::bail;
use cairn_client::{Client, WebhookAdd};
use clap::Subcommand;

use super::output::table;

#[derive(Subcommand)]
pub enum WebhookCommand {
    /// Send the namespace's changes from now on to URL, signed with the secret
    /// (`X-Cairn-Signature`; see the README for checking it).
    Add {
        namespace: String,
        url: String,
        /// 16 to 256 characters (`openssl rand -hex 32` makes one); never shown again.
        #[arg(long, env = "CAIRN_WEBHOOK_SECRET", hide_env_values = true)]
        secret: String,
        /// Only these kinds, comma-separated: publish, rollback, delete, gray_publish,
        /// gray_promote, gray_abandon, change_request_opened, change_request_approved,
        /// change_request_rejected [default: every kind].
        #[arg(long, value_delimiter = ',')]
        events: Vec<String>,
        /// Only configs matching GROUP/DATA_ID, each part exact or a `*` wildcard
        /// (quote it), e.g. 'web/*.yaml'.
        #[arg(long)]
        pattern: Option<String>,
    },
    /// List the webhooks of a namespace, or of every namespace you administer.
    List { namespace: Option<String> },
    /// Remove a webhook and its delivery log.
    Rm { id: i64 },
    /// A webhook's deliveries, newest first: status, response, attempts, latency.
    Deliveries {
        id: i64,
        #[arg(long, default_value_t = 1)]
        page: u32,
        #[arg(long, default_value_t = 50)]
        page_size: u32,
    },
    /// Send a delivery again (the same event id).
    Redeliver { id: i64, delivery: i64 },
}

pub async fn run(client: &Client, command: WebhookCommand) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match command {
        WebhookCommand::Add {
            namespace,
            url,
            secret,
            events,
            pattern,
        } => {
            let (group, data_id) = match pattern.as_deref() {
                None => (None, None),
                Some(p) => match p.split_once('/') {
                    Some((g, d)) if !g.is_empty() && !d.is_empty() => {
                        (Some(g.to_owned()), Some(d.to_owned()))
                    }
                    _ => bail!("--pattern {p:?} is not GROUP/DATA_ID (each may be a `*` wildcard)"),
                },
            };
            let add = WebhookAdd {
                namespace,
                url,
                secret,
                events,
                group,
                data_id,
            };
            let hook = client.add_webhook(&add).await?;
            writeln!(
                out,
                "webhook {} added: {} changes go to {}",
                hook.id, hook.namespace, hook.url
            )?;
        }
        WebhookCommand::List { namespace } => {
            let hooks = client.webhooks(namespace.as_deref()).await?;
            let rows: Vec<[String; 5]> = hooks
                .iter()
                .map(|h| {
                    let any = |p: &str| {
                        if p.is_empty() {
                            "*".to_owned()
                        } else {
                            p.to_owned()
                        }
                    };
                    [
                        h.id.to_string(),
                        h.namespace.clone(),
                        h.url.clone(),
                        if h.events.is_empty() {
                            "all".to_owned()
                        } else {
                            h.events.join(",")
                        },
                        format!("{}/{}", any(&h.group), any(&h.data_id)),
                    ]
                })
                .collect();
            table(
                &mut out,
                ["ID", "NAMESPACE", "URL", "EVENTS", "PATTERN"],
                &rows,
            )?;
        }
        WebhookCommand::Rm { id } => {
            client.remove_webhook(id).await?;
            writeln!(out, "webhook {id} removed")?;
        }
        WebhookCommand::Deliveries {
            id,
            page,
            page_size,
        } => {
            let log = client.deliveries(id, page, page_size).await?;
            let rows: Vec<[String; 8]> = log
                .items
                .iter()
                .map(|d| {
                    [
                        d.id.to_string(),
                        d.event_id.clone(),
                        d.event.clone(),
                        format!("{}/{}/{}", d.namespace, d.group, d.data_id),
                        d.status.clone(),
                        d.response_code.map_or("-".to_owned(), |c| c.to_string()),
                        d.attempts.to_string(),
                        d.latency_ms.map_or("-".to_owned(), |l| format!("{l} ms")),
                    ]
                })
                .collect();
            table(
                &mut out,
                [
                    "ID", "EVENT ID", "EVENT", "CONFIG", "STATUS", "CODE", "ATTEMPTS", "LATENCY",
                ],
                &rows,
            )?;
            for d in log.items.iter().filter(|d| !d.error.is_empty()) {
                writeln!(out, "{}: {}", d.id, d.error)?;
            }
            writeln!(out, "{} deliveries in all", log.total)?;
        }
        WebhookCommand::Redeliver { id, delivery } => {
            client.redeliver(id, delivery).await?;
            writeln!(
                out,
                "delivery {delivery} of webhook {id} will be sent again"
            )?;
        }
    }
    Ok(())
}
