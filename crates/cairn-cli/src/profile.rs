//! The profile file `cairn login` writes: the server address and access token the other
//! commands use when no flag or environment variable gives them.

use std::path::PathBuf;

use anyhow::Context;
use serde::{Deserialize, Serialize};

#[derive(Default, Serialize, Deserialize)]
pub struct Profile {
    pub server: Option<String>,
    pub token: Option<String>,
    pub username: Option<String>,
}

/// `$CAIRN_CONFIG_DIR`, else `$XDG_CONFIG_HOME/cairn`, else `~/.config/cairn`.
pub fn dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("CAIRN_CONFIG_DIR") {
        return Some(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME") {
        return Some(PathBuf::from(dir).join("cairn"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config").join("cairn"))
}

fn path() -> Option<PathBuf> {
    dir().map(|d| d.join("profile.toml"))
}

impl std::fmt::Debug for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profile")
            .field("server", &self.server)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

pub fn load() -> anyhow::Result<Profile> {
    let Some(path) = path() else {
        return Ok(Profile::default());
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            toml::from_str(&text).with_context(|| format!("cannot parse {}", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Profile::default()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Writes the profile readable by its owner only: it holds a token.
pub fn save(profile: &Profile) -> anyhow::Result<PathBuf> {
    let path = path().context("no HOME or CAIRN_CONFIG_DIR to keep the profile in")?;
    let dir = path.parent().expect("a file path has a parent");
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let text = toml::to_string(profile)?;
    let tmp = path.with_extension("toml.tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::io::Write::write_all(&mut file, text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}
