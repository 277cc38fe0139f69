//! `cairn watch`: long-polls configs and prints each new version as it is published.

use std::io::Write;
use std::time::Duration;

use cairn_client::{Client, WatchKey};
use clap::Args;

use super::key;

#[derive(Args)]
pub struct WatchArgs {
    /// namespace/group/data_id, one or more.
    #[arg(required = true)]
    keys: Vec<String>,
    /// Exit after this many changes.
    #[arg(long)]
    count: Option<u64>,
}

/// Long-polls the keys and prints each new version; retries with backoff when the
/// server is unreachable.
pub async fn run(client: &Client, args: WatchArgs) -> anyhow::Result<()> {
    let keys = args
        .keys
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
                if args.count.is_some_and(|c| seen >= c) {
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
