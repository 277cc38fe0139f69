//! `cairn user`: managing the accounts that can log in, and their passwords.

use std::io::Write;

use cairn_client::Client;
use clap::Subcommand;

use super::input::read_password;
use super::output::table;
use crate::profile;

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user; prompts for the password.
    Add {
        username: String,
        #[arg(long, default_value = "user", value_parser = ["user", "admin"])]
        role: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a user's password; prompts for it (and, for your own account, for the
    /// current one first). With --password-stdin: the current password on the first line
    /// when it is your own account, then the new one.
    Passwd {
        username: String,
        #[arg(long)]
        password_stdin: bool,
    },
    List,
    /// Give a user another role (the last admin stays an admin).
    Role {
        username: String,
        #[arg(value_parser = ["user", "admin"])]
        role: String,
    },
    Delete {
        username: String,
    },
}

pub async fn run(client: &Client, command: UserCommand) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match command {
        UserCommand::Add {
            username,
            role,
            password_stdin,
        } => {
            let password = read_password(password_stdin, &format!("Password for {username}: "))?;
            client.create_user(&username, &password, &role).await?;
            writeln!(out, "created user {username} ({role})")?;
        }
        UserCommand::Passwd {
            username,
            password_stdin,
        } => passwd(client, &mut out, &username, password_stdin).await?,
        UserCommand::Role { username, role } => {
            client.set_role(&username, &role).await?;
            writeln!(out, "{username} is now {role}")?;
        }
        UserCommand::List => {
            let rows: Vec<[String; 3]> = client
                .users()
                .await?
                .into_iter()
                .map(|u| [u.username, u.role, u.created_at])
                .collect();
            table(&mut out, ["USER", "ROLE", "CREATED"], &rows)?;
        }
        UserCommand::Delete { username } => {
            client.delete_user(&username).await?;
            writeln!(out, "deleted user {username}")?;
        }
    }
    Ok(())
}

async fn passwd(
    client: &Client,
    out: &mut impl Write,
    username: &str,
    password_stdin: bool,
) -> anyhow::Result<()> {
    let own = profile::load()?.username.as_deref() == Some(username);
    let current = if own {
        Some(read_password(password_stdin, "Current password: ")?)
    } else {
        None
    };
    let password = read_password(password_stdin, &format!("New password for {username}: "))?;
    client
        .set_password(username, &password, current.as_deref())
        .await?;
    writeln!(
        out,
        "changed the password of {username}; their old tokens no longer work"
    )?;
    Ok(())
}
