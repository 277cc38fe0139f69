//! The client subcommands, one module per family, and what they share: finding the
//! server and token to use, and parsing config keys.

pub mod access_key;
pub mod audit;
pub mod config;
pub mod grant;
pub mod gray;
mod input;
pub mod login;
pub mod migrate;
pub mod namespace;
mod output;
pub mod review;
pub mod schema;
pub mod transfer;
pub mod user;
pub mod watch;
pub mod webhook;

use std::path::PathBuf;

use cairn_client::{Client, ClientBuilder, Key};

use crate::profile;

const DEFAULT_SERVER: &str = "http://127.0.0.1:8848";

fn key(path: &str) -> anyhow::Result<Key> {
    Ok(Key::parse(path)?)
}

/// The TLS files the global flags name.
#[derive(Default)]
pub struct TlsFiles {
    pub ca_file: Option<PathBuf>,
    /// Certificate and key.
    pub client_certificate: Option<(PathBuf, PathBuf)>,
}

impl TlsFiles {
    pub fn apply(&self, mut builder: ClientBuilder) -> ClientBuilder {
        if let Some(path) = &self.ca_file {
            builder = builder.ca_file(path);
        }
        if let Some((cert, key)) = &self.client_certificate {
            builder = builder.client_certificate(cert, key);
        }
        builder
    }
}

pub fn connect(
    cli_server: Option<String>,
    cli_token: Option<String>,
    tls: &TlsFiles,
) -> anyhow::Result<Client> {
    let profile = profile::load()?;
    // The saved token goes only to the servers it was issued by.
    let saved_token = match (&cli_server, &profile.server) {
        (Some(wanted), Some(saved)) => {
            let known: Vec<&str> = saved.split(',').map(|s| s.trim_end_matches('/')).collect();
            let all_known = wanted
                .split(',')
                .all(|w| known.contains(&w.trim().trim_end_matches('/')));
            if all_known {
                profile.token
            } else {
                None
            }
        }
        _ => profile.token,
    };
    let server = cli_server
        .or(profile.server)
        .unwrap_or_else(|| DEFAULT_SERVER.to_owned());
    let mut builder = tls.apply(Client::builder(server));
    if let Some(token) = cli_token.or(saved_token) {
        builder = builder.token(token);
    }
    Ok(builder.build()?)
}
