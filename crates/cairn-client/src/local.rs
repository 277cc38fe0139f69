//! The client's local copies: snapshots of every config received, served when no server
//! answers, and the failover directory an operator fills to pin a value by hand.

use std::path::{Path, PathBuf};

use crate::{Config, Key};

pub(crate) struct Local {
    pub snapshots: Option<PathBuf>,
    pub failover: Option<PathBuf>,
}

fn path(dir: &Path, key: &Key) -> PathBuf {
    dir.join(&key.namespace).join(&key.group).join(&key.data_id)
}

impl Local {
    /// The operator's pinned content for `key`, if any.
    pub fn failover(&self, key: &Key) -> Option<Config> {
        let content = std::fs::read_to_string(path(self.failover.as_ref()?, key)).ok()?;
        tracing::info!(key = %key, "serving the failover file");
        Some(Config {
            namespace: key.namespace.clone(),
            group: key.group.clone(),
            data_id: key.data_id.clone(),
            md5: cairn_core::md5::md5_hex(&content),
            size: content.len(),
            content: Some(content),
            format: String::new(),
            revision: -1,
            description: "failover file".to_owned(),
            tags: Vec::new(),
            created_by: String::new(),
            created_at: String::new(),
            updated_by: String::new(),
            updated_at: String::new(),
            gray: false,
        })
    }

    /// Keeps `config` as `key`'s snapshot: written to a temporary file and renamed, so a
    /// crash never leaves a torn snapshot.
    pub fn keep(&self, key: &Key, config: &Config) {
        let Some(dir) = &self.snapshots else {
            return;
        };
        let target = path(dir, key).with_extension("json");
        let result = (|| -> std::io::Result<()> {
            let parent = target.parent().expect("a snapshot path has a parent");
            std::fs::create_dir_all(parent)?;
            let tmp = target.with_extension("json.tmp");
            std::fs::write(&tmp, serde_json::to_vec(config)?)?;
            std::fs::rename(&tmp, &target)
        })();
        if let Err(e) = result {
            tracing::warn!(key = %key, error = %e, "could not write the snapshot");
        }
    }

    /// Drops `key`'s snapshot (the config was deleted).
    pub fn forget(&self, key: &Key) {
        if let Some(dir) = &self.snapshots {
            let _ = std::fs::remove_file(path(dir, key).with_extension("json"));
        }
    }

    /// `key`'s snapshot, if one was kept.
    pub fn snapshot(&self, key: &Key) -> Option<Config> {
        let text =
            std::fs::read(path(self.snapshots.as_ref()?, key).with_extension("json")).ok()?;
        serde_json::from_slice(&text).ok()
    }
}
