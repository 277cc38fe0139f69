//! The client's local copies: snapshots of every config received, served when no server
//! answers, and the failover directory an operator fills to pin a value by hand.

use std::path::{Path, PathBuf};

use crate::{Config, Key};

pub(crate) struct Local {
    /// The directory the application configured.
    pub snapshot_root: Option<PathBuf>,
    /// Where this client's snapshots go: the root, or for a client that shows gray
    /// releases another identity than the one it was built with, a directory of that
    /// identity's own, so a canary's gray content never becomes another's fallback.
    pub snapshots: Option<PathBuf>,
    pub failover: Option<PathBuf>,
}

/// Where `key` lives under `dir`, with `suffix` added to the file name; `None` for a key
/// that is not a valid config key (it could name a path outside `dir`).
fn path(dir: &Path, key: &Key, suffix: &str) -> Option<PathBuf> {
    let parts = [&key.namespace, &key.group, &key.data_id];
    if cairn_core::ConfigKey::parse(&key.namespace, &key.group, &key.data_id).is_err()
        || parts.iter().any(|p| *p == "." || *p == "..")
    {
        return None;
    }
    Some(
        dir.join(&key.namespace)
            .join(&key.group)
            .join(format!("{}{suffix}", key.data_id)),
    )
}

impl Local {
    pub fn new(snapshots: Option<PathBuf>, failover: Option<PathBuf>) -> Local {
        Local {
            snapshot_root: snapshots.clone(),
            snapshots,
            failover,
        }
    }

    /// The same directories for a client with another gray identity (`labels` and
    /// `ip` as sent); `@` starts no namespace, so these never collide with keys.
    pub fn for_identity(&self, labels: Option<&str>, ip: Option<&str>) -> Local {
        let identity = format!("{}\n{}", labels.unwrap_or(""), ip.unwrap_or(""));
        let id = &cairn_core::md5::md5_hex(&identity)[..16];
        Local {
            snapshot_root: self.snapshot_root.clone(),
            snapshots: self
                .snapshot_root
                .as_ref()
                .map(|root| root.join(format!("@{id}"))),
            failover: self.failover.clone(),
        }
    }

    /// The operator's pinned content for `key`, if any.
    pub fn failover(&self, key: &Key) -> Option<Config> {
        let content = std::fs::read_to_string(path(self.failover.as_ref()?, key, "")?).ok()?;
        tracing::info!(key = %key, "serving the failover file");
        Some(Config {
            namespace: key.namespace.clone(),
            group: key.group.clone(),
            data_id: key.data_id.clone(),
            md5: cairn_core::md5::md5_hex(&content),
            size: content.len(),
            content: Some(content),
            format: cairn_core::Format::from_file_name(&key.data_id)
                .unwrap_or_default()
                .to_string(),
            revision: -1,
            description: "failover file".to_owned(),
            tags: Vec::new(),
            created_by: String::new(),
            created_at: String::new(),
            updated_by: String::new(),
            updated_at: String::new(),
            gray: false,
            sensitive: false,
        })
    }

    /// Keeps `config` as `key`'s snapshot: written to a temporary file of its own, synced
    /// and renamed, so neither a crash nor a concurrent write leaves a torn snapshot.
    pub fn keep(&self, key: &Key, config: &Config) {
        let Some(target) = self
            .snapshots
            .as_ref()
            .and_then(|dir| path(dir, key, ".json"))
        else {
            return;
        };
        static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let result = (|| -> std::io::Result<()> {
            let parent = target.parent().expect("a snapshot path has a parent");
            std::fs::create_dir_all(parent)?;
            let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let tmp =
                target.with_file_name(format!(".{}.{}.{n}.tmp", key.data_id, std::process::id()));
            let mut file = std::fs::File::create(&tmp)?;
            std::io::Write::write_all(&mut file, &serde_json::to_vec(config)?)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &target)
        })();
        if let Err(e) = result {
            tracing::warn!(key = %key, error = %e, "could not write the snapshot");
        }
    }

    /// Drops `key`'s snapshot (the config was deleted).
    pub fn forget(&self, key: &Key) {
        if let Some(target) = self
            .snapshots
            .as_ref()
            .and_then(|dir| path(dir, key, ".json"))
        {
            let _ = std::fs::remove_file(target);
        }
    }

    /// `key`'s snapshot, if one was kept (and it is that key's).
    pub fn snapshot(&self, key: &Key) -> Option<Config> {
        let text = std::fs::read(path(self.snapshots.as_ref()?, key, ".json")?).ok()?;
        let config: Config = serde_json::from_slice(&text).ok()?;
        (config.namespace == key.namespace
            && config.group == key.group
            && config.data_id == key.data_id)
            .then_some(config)
    }
}
