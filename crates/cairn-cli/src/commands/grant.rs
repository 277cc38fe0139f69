//! `cairn grant`, `cairn revoke`, `cairn grants`, `cairn role` and `cairn token`: who
//! may read, write or administer which namespaces, the named roles that carry grants for
//! their members, and service tokens for applications and CI.

use std::io::Write;

use cairn_client::{Client, ExposeSecret as _, GrantSubject, TokenScope};
use clap::{Args, Subcommand};

use super::output::table;

/// A user or a role: exactly one.
#[derive(Args)]
#[group(required = true, multiple = false)]
pub struct SubjectArgs {
    /// The user the grant is for.
    #[arg(long)]
    user: Option<String>,
    /// The role the grant is for (every member has it).
    #[arg(long)]
    role: Option<String>,
}

impl SubjectArgs {
    fn subject(self) -> GrantSubject {
        match (self.user, self.role) {
            (Some(user), _) => GrantSubject::User(user),
            (None, Some(role)) => GrantSubject::Role(role),
            (None, None) => unreachable!("clap requires one of --user and --role"),
        }
    }
}

#[derive(Args)]
pub struct GrantArgs {
    #[command(flatten)]
    subject: SubjectArgs,
    /// `NAMESPACE[/GROUP[/DATA_ID]]`; each part a name or a pattern with `*`
    /// (e.g. `dev`, `dev/payments`, `dev/*/*.yaml`).
    scope: String,
    /// What the grant allows; `none` takes a narrower scope away from a broader grant.
    #[arg(value_parser = ["none", "read", "read-secret", "write", "approve", "admin"])]
    level: String,
}

#[derive(Args)]
pub struct RevokeArgs {
    #[command(flatten)]
    subject: SubjectArgs,
    /// The exact scope the grant was given over.
    scope: String,
}

#[derive(Args)]
pub struct GrantsArgs {
    /// Only this user's grants.
    #[arg(long, conflicts_with = "role")]
    user: Option<String>,
    /// Only this role's grants.
    #[arg(long)]
    role: Option<String>,
    /// Only grants over this namespace (or namespace pattern, as written).
    #[arg(long)]
    namespace: Option<String>,
}

#[derive(Subcommand)]
pub enum RoleCommand {
    /// The roles with their members.
    List,
    /// Make users members of a role; the role exists from its first member or grant.
    Add {
        role: String,
        #[arg(required = true)]
        users: Vec<String>,
    },
    /// Take a user out of a role.
    Remove { role: String, user: String },
    /// Remove a role: its memberships and its grants.
    Delete { role: String },
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Make a token and print it (it is shown this once).
    Create {
        name: String,
        /// `NAMESPACE=LEVEL` (read, write, admin); the namespace may be a `*` pattern.
        /// Repeat for several.
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// Publish into namespaces that require review without a change request (a
        /// pipeline whose changes are reviewed before they reach it).
        #[arg(long)]
        publish_without_review: bool,
    },
    /// The tokens, with their scopes and last use.
    List,
    /// Revoke a token: it stops working and its watches end.
    Revoke { name: String },
}

pub async fn token(client: &Client, command: TokenCommand) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match command {
        TokenCommand::Create {
            name,
            scopes,
            publish_without_review,
        } => {
            let scopes = scopes
                .iter()
                .map(|s| match s.split_once('=') {
                    Some((namespace, level)) => Ok(TokenScope {
                        namespace: namespace.to_owned(),
                        level: level.to_owned(),
                    }),
                    None => anyhow::bail!("scope {s:?} is not NAMESPACE=LEVEL"),
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let made = client
                .create_token(&name, &scopes, publish_without_review)
                .await?;
            writeln!(
                out,
                "service token {}: {}\n(shown this once; send it as `Authorization: Bearer …` or Nacos's accessToken)",
                made.name,
                made.token.expose_secret()
            )?;
        }
        TokenCommand::List => {
            let rows: Vec<[String; 5]> = client
                .tokens()
                .await?
                .into_iter()
                .map(|t| {
                    let scopes: Vec<String> = t
                        .scopes
                        .iter()
                        .map(|s| format!("{}={}", s.namespace, s.level))
                        .collect();
                    [
                        t.name,
                        scopes.join(","),
                        if t.publish_without_review {
                            "yes"
                        } else {
                            "no"
                        }
                        .to_owned(),
                        format!("{} {}", t.created_by, t.created_at),
                        t.last_used_at.unwrap_or_else(|| "never".to_owned()),
                    ]
                })
                .collect();
            table(
                &mut out,
                ["TOKEN", "SCOPES", "SKIPS REVIEW", "CREATED", "LAST USED"],
                &rows,
            )?;
        }
        TokenCommand::Revoke { name } => {
            client.revoke_token(&name).await?;
            writeln!(out, "revoked service token {name}")?;
        }
    }
    Ok(())
}

/// `NAMESPACE[/GROUP[/DATA_ID]]` → its three parts, `*` where left out.
fn scope(text: &str) -> anyhow::Result<(&str, &str, &str)> {
    let mut parts = text.split('/');
    let namespace = parts.next().unwrap_or_default();
    let group = parts.next().unwrap_or("*");
    let data_id = parts.next().unwrap_or("*");
    if namespace.is_empty() || parts.next().is_some() {
        anyhow::bail!("scope {text:?} is not NAMESPACE[/GROUP[/DATA_ID]]");
    }
    Ok((namespace, group, data_id))
}

fn describe(subject: &GrantSubject) -> String {
    match subject {
        GrantSubject::User(u) => format!("user {u}"),
        GrantSubject::Role(r) => format!("role {r}"),
    }
}

pub async fn grant(client: &Client, args: GrantArgs) -> anyhow::Result<()> {
    let (namespace, group, data_id) = scope(&args.scope)?;
    let subject = args.subject.subject();
    client
        .grant(&subject, namespace, group, data_id, &args.level)
        .await?;
    writeln!(
        std::io::stdout(),
        "{} now has {} on {namespace}/{group}/{data_id}",
        describe(&subject),
        args.level
    )?;
    Ok(())
}

pub async fn revoke(client: &Client, args: RevokeArgs) -> anyhow::Result<()> {
    let (namespace, group, data_id) = scope(&args.scope)?;
    let subject = args.subject.subject();
    client.revoke(&subject, namespace, group, data_id).await?;
    writeln!(
        std::io::stdout(),
        "took the grant on {namespace}/{group}/{data_id} from {}",
        describe(&subject)
    )?;
    Ok(())
}

pub async fn grants(client: &Client, args: GrantsArgs) -> anyhow::Result<()> {
    let subject = match (args.user, args.role) {
        (Some(user), _) => Some(GrantSubject::User(user)),
        (None, Some(role)) => Some(GrantSubject::Role(role)),
        (None, None) => None,
    };
    let rows: Vec<[String; 5]> = client
        .grants(subject.as_ref(), args.namespace.as_deref())
        .await?
        .into_iter()
        .map(|g| {
            [
                format!("{} {}", g.subject_kind, g.subject),
                format!("{}/{}/{}", g.namespace, g.group, g.data_id),
                g.level,
                g.created_by,
                g.created_at,
            ]
        })
        .collect();
    table(
        &mut std::io::stdout().lock(),
        ["SUBJECT", "SCOPE", "LEVEL", "BY", "SINCE"],
        &rows,
    )?;
    Ok(())
}

pub async fn role(client: &Client, command: RoleCommand) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match command {
        RoleCommand::List => {
            let rows: Vec<[String; 3]> = client
                .roles()
                .await?
                .into_iter()
                .map(|r| [r.role, r.members.join(","), r.grants.to_string()])
                .collect();
            table(&mut out, ["ROLE", "MEMBERS", "GRANTS"], &rows)?;
        }
        RoleCommand::Add { role, users } => {
            for user in &users {
                client.add_role_member(&role, user).await?;
                writeln!(out, "{user} is a member of {role}")?;
            }
        }
        RoleCommand::Remove { role, user } => {
            client.remove_role_member(&role, &user).await?;
            writeln!(out, "{user} is no longer a member of {role}")?;
        }
        RoleCommand::Delete { role } => {
            client.delete_role(&role).await?;
            writeln!(out, "deleted role {role}")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_default_to_everything_below_what_is_named() {
        assert_eq!(scope("dev").unwrap(), ("dev", "*", "*"));
        assert_eq!(scope("dev/pay").unwrap(), ("dev", "pay", "*"));
        assert_eq!(scope("dev/*/*.yaml").unwrap(), ("dev", "*", "*.yaml"));
        assert!(scope("").is_err());
        assert!(scope("a/b/c/d").is_err());
    }
}
