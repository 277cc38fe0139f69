//! The manager's sources: reading each one into flat keys, and feeding later changes of
//! the ones that change (remote configs through the client's watch, files through
//! `notify`) into the manager.

use std::path::{Path, PathBuf};
use std::sync::Weak;
use std::time::Duration;

use cairn_core::Format;
use futures::StreamExt;
use tokio::sync::mpsc;

use super::tree::{self, Flat};
use super::{Inner, Mode, Spec};
use crate::{Client, Config, Error, Key, Result};

/// How long a file must be quiet after an event before it is read: an editor's save is
/// often several writes, and the content in between is not what was meant.
const SETTLE: Duration = Duration::from_millis(50);

/// A task that ends when the manager does.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Reads source `spec` (layer `index`) and, for sources that change, starts feeding
/// their changes to `inner`.
pub(super) async fn start(spec: Spec, index: usize, inner: Weak<Inner>) -> Result<Flat> {
    match spec {
        Spec::Args(args) => Ok(from_args(&args)),
        Spec::Env(vars, prefix) => Ok(from_env(vars, &prefix)),
        Spec::Remote { client, key, mode } => remote(client, key, mode, index, inner).await,
        Spec::File { path, mode } => file(path, mode, index, inner),
    }
}

/// `--key=value` arguments; anything else is not ours.
fn from_args(args: &[String]) -> Flat {
    args.iter()
        .filter_map(|arg| arg.strip_prefix("--")?.split_once('='))
        .filter(|(key, _)| !key.is_empty())
        .map(|(key, value)| (key.to_owned(), value.into()))
        .collect()
}

/// Variables named `prefix` + key, the key lower-cased with `__` for `.`.
fn from_env(vars: Vec<(String, String)>, prefix: &str) -> Flat {
    vars.into_iter()
        .filter_map(|(name, value)| {
            let key = name.strip_prefix(prefix)?.to_lowercase().replace("__", ".");
            (!key.is_empty()).then(|| (key, value.into()))
        })
        .collect()
}

/// The keys of `content` read as `format`, by `mode`.
fn values(format: Format, content: &str, mode: &Mode) -> Result<Flat, String> {
    let document = crate::format::parse(format, content)?;
    match mode {
        Mode::Flatten => tree::flatten(document),
        Mode::Whole(name) => Ok(Flat::from([(name.clone(), document)])),
    }
}

fn config_values(key: &Key, config: Option<&Config>, mode: &Mode) -> Result<Flat> {
    let Some(config) = config else {
        return Ok(Flat::new());
    };
    let fail = |message: String| Error::Source {
        origin: key.to_string(),
        message,
    };
    let format: Format = config
        .format
        .parse()
        .map_err(|e: cairn_core::format::UnknownFormat| fail(e.to_string()))?;
    values(format, config.content.as_deref().unwrap_or(""), mode).map_err(fail)
}

async fn remote(
    client: Client,
    key: Key,
    mode: Mode,
    index: usize,
    inner: Weak<Inner>,
) -> Result<Flat> {
    // Watch first, read second: a publish in between is then reported, not lost.
    let mut changes = client.watch_stream(vec![key.clone()]).await?;
    let initial = config_values(&key, client.get(&key).await?.as_ref(), &mode)?;
    let target = inner.clone();
    let task = tokio::spawn(async move {
        while let Some(change) = changes.next().await {
            // The operator's failover file stays in force over the server's changes.
            let config = client.local.failover(&key).or(change.config);
            match config_values(&key, config.as_ref(), &mode) {
                Ok(values) => match target.upgrade() {
                    Some(inner) => inner.set_layer(index, values),
                    None => return,
                },
                Err(e) => tracing::warn!(error = %e, "ignoring a config that cannot be read"),
            }
        }
    });
    keep(&inner, Box::new(AbortOnDrop(task)));
    Ok(initial)
}

fn keep(inner: &Weak<Inner>, task: Box<dyn Send>) {
    if let Some(inner) = inner.upgrade() {
        inner.keep(task);
    }
}

/// The format of a file, from its extension; text when kept whole.
fn file_format(path: &Path, mode: &Mode) -> Result<Format> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    match (Format::from_file_name(name), mode) {
        (Some(format), _) => Ok(format),
        (None, Mode::Whole(_)) => Ok(Format::Text),
        (None, Mode::Flatten) => Err(Error::Source {
            origin: path.display().to_string(),
            message: "cannot tell its format; name it .yaml, .json, .toml or .properties"
                .to_owned(),
        }),
    }
}

/// A file's keys; a missing file has none.
fn read_file(path: &Path, format: Format, mode: &Mode) -> Result<Flat> {
    let fail = |message: String| Error::Source {
        origin: path.display().to_string(),
        message,
    };
    let content = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    values(format, &content, mode).map_err(fail)
}

fn file(path: PathBuf, mode: Mode, index: usize, inner: Weak<Inner>) -> Result<Flat> {
    let format = file_format(&path, &mode)?;
    let source = path.display().to_string();
    let fail = |message: String| Error::Source {
        origin: source.clone(),
        message,
    };
    // The directory is watched, not the file: editors and deploy tools often replace a
    // file by renaming another over it, which ends a watch on the file itself. Any event
    // there re-reads the file (unchanged content changes nothing): a Kubernetes
    // ConfigMap is updated by swapping a `..data` symlink, and never names the file.
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |_: notify::Result<notify::Event>| {
        let _ = tx.send(());
    })
    .map_err(|e| fail(e.to_string()))?;
    notify::Watcher::watch(&mut watcher, &dir, notify::RecursiveMode::NonRecursive)
        .map_err(|e| fail(e.to_string()))?;
    let initial = read_file(&path, format, &mode)?;

    let target = inner.clone();
    let task = tokio::spawn(async move {
        while rx.recv().await.is_some() {
            // Wait for the writes of one save to settle.
            loop {
                tokio::time::sleep(SETTLE).await;
                let mut more = false;
                while rx.try_recv().is_ok() {
                    more = true;
                }
                if !more {
                    break;
                }
            }
            let values = match read_file(&path, format, &mode) {
                Ok(values) => values,
                // Removed: its keys go.
                Err(_) if !path.exists() => Flat::new(),
                Err(e) => {
                    tracing::warn!(error = %e, "keeping the file's last good content");
                    continue;
                }
            };
            match target.upgrade() {
                Some(inner) => inner.set_layer(index, values),
                None => return,
            }
        }
    });
    keep(&inner, Box::new((watcher, AbortOnDrop(task))));
    Ok(initial)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn arguments_and_variables_become_dotted_keys() {
        let args: Vec<String> = ["prog", "--registry.interval=5", "--verbose", "--=x", "-x=1"]
            .map(String::from)
            .into();
        assert_eq!(
            from_args(&args),
            Flat::from([("registry.interval".to_owned(), json!("5"))])
        );
        let vars = vec![
            ("APP_REGISTRY__INTERVAL".to_owned(), "7".to_owned()),
            ("APP_LOG_LEVEL".to_owned(), "debug".to_owned()),
            ("APP_".to_owned(), "ignored".to_owned()),
            ("PATH".to_owned(), "/bin".to_owned()),
        ];
        assert_eq!(
            from_env(vars, "APP_"),
            Flat::from([
                ("log_level".to_owned(), json!("debug")),
                ("registry.interval".to_owned(), json!("7")),
            ])
        );
    }
}
