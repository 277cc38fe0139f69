//! `cairn login`: trades a password for a token and keeps it, with the cluster's nodes,
//! in the profile.

use cairn_client::{Client, ExposeSecret as _};
use clap::Args;

use super::input::read_password;
use super::DEFAULT_SERVER;
use crate::profile;

#[derive(Args)]
pub struct LoginArgs {
    #[arg(long, short, default_value = "admin")]
    username: String,
    /// Read the password from standard input instead of prompting.
    #[arg(long)]
    password_stdin: bool,
}

pub async fn run(
    server: Option<String>,
    tls: &super::TlsFiles,
    args: LoginArgs,
) -> anyhow::Result<()> {
    let LoginArgs {
        username,
        password_stdin,
    } = args;
    let mut profile = profile::load()?;
    let server = server
        .or(profile.server.take())
        .unwrap_or_else(|| DEFAULT_SERVER.to_owned());
    let client = tls.apply(Client::builder(&server)).build()?;
    let password = read_password(password_stdin, &format!("Password for {username}: "))?;
    let login = client.login(&username, &password).await?;
    // Remember every live node, so later commands fail over between them.
    let servers = client
        .clone()
        .with_token(login.token.expose_secret())
        .discover()
        .await
        .map(|list| {
            list.iter()
                .map(|s| s.trim_end_matches('/').to_owned())
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_else(|_| server.clone());
    profile.server = Some(servers);
    profile.token = Some(login.token.expose_secret().to_owned());
    profile.username = Some(login.username);
    let path = profile::save(&profile)?;
    println!(
        "logged in to {server} as {username} ({}); token valid for {} s, kept in {}",
        login.role,
        login.expires_in,
        path.display()
    );
    Ok(())
}
