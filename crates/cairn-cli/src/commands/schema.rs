//! `cairn schema`: JSON Schemas attached to a config, or to every config whose group
//! and data id match `*` wildcards, checked on every write of their content.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context as _};
use cairn_client::{Client, SchemaSet};
use clap::Subcommand;

use super::input::read_content;
use super::output::table;

#[derive(Subcommand)]
pub enum SchemaCommand {
    /// Attach a JSON Schema (draft 2020-12) from a file, or change one. Refused when
    /// configs as they are now break it, with each listed, unless --force.
    Set {
        /// namespace/group/data_id; group and data id may be `*` wildcards (quote them)
        target: String,
        /// The schema, a JSON file (`-` for standard input).
        #[arg(long, short = 'f')]
        file: PathBuf,
        /// Attach it even though configs as they are now break it.
        #[arg(long)]
        force: bool,
        /// Refuse if the schema is no longer at this version (0: none attached yet).
        #[arg(long)]
        expect_version: Option<u64>,
        #[arg(long, short)]
        message: Option<String>,
    },
    /// Print an attached schema.
    Show { target: String },
    /// Detach a schema.
    Rm {
        target: String,
        #[arg(long, short)]
        message: Option<String>,
    },
    /// List the schemas of a namespace, or of every namespace you see.
    List { namespace: Option<String> },
    /// Every version of a schema, newest first.
    History { target: String },
}

/// `namespace/group/data_id`, each part non-empty.
fn target(text: &str) -> anyhow::Result<(&str, &str, &str)> {
    let mut parts = text.splitn(3, '/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(ns), Some(group), Some(data_id))
            if !ns.is_empty() && !group.is_empty() && !data_id.is_empty() =>
        {
            Ok((ns, group, data_id))
        }
        _ => bail!(
            "{text:?} is not namespace/group/data_id (group and data id may be `*` wildcards)"
        ),
    }
}

pub async fn run(client: &Client, command: SchemaCommand) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match command {
        SchemaCommand::Set {
            target: t,
            file,
            force,
            expect_version,
            message,
        } => {
            let (ns, group, data_id) = target(&t)?;
            let text = read_content(&file)?;
            let schema: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", file.display()))?;
            let set = SchemaSet {
                schema,
                force,
                expect_version,
                comment: message,
            };
            let done = client.set_schema(ns, group, data_id, &set).await?;
            writeln!(out, "schema of {t} set: version {}", done.version)?;
        }
        SchemaCommand::Show { target: t } => {
            let (ns, group, data_id) = target(&t)?;
            let Some(schema) = client.schema(ns, group, data_id).await? else {
                bail!("no schema is attached to {t}");
            };
            writeln!(
                out,
                "# schema of {t}, version {}, by {} at {}",
                schema.version, schema.updated_by, schema.updated_at
            )?;
            writeln!(out, "{}", serde_json::to_string_pretty(&schema.schema)?)?;
        }
        SchemaCommand::Rm { target: t, message } => {
            let (ns, group, data_id) = target(&t)?;
            client
                .remove_schema(ns, group, data_id, message.as_deref())
                .await?;
            writeln!(out, "schema of {t} removed")?;
        }
        SchemaCommand::List { namespace } => {
            let all = client.schemas(namespace.as_deref()).await?;
            let rows: Vec<[String; 4]> = all
                .iter()
                .map(|s| {
                    [
                        format!("{}/{}/{}", s.namespace, s.group, s.data_id),
                        s.version.to_string(),
                        s.updated_by.clone(),
                        s.updated_at.clone(),
                    ]
                })
                .collect();
            table(&mut out, ["TARGET", "VERSION", "BY", "AT"], &rows)?;
        }
        SchemaCommand::History { target: t } => {
            let (ns, group, data_id) = target(&t)?;
            let versions = client.schema_history(ns, group, data_id).await?;
            let rows: Vec<[String; 5]> = versions
                .iter()
                .map(|v| {
                    [
                        v.version.to_string(),
                        v.op.clone(),
                        v.by.clone(),
                        v.at.clone(),
                        v.comment.clone(),
                    ]
                })
                .collect();
            table(&mut out, ["VERSION", "OP", "BY", "AT", "COMMENT"], &rows)?;
        }
    }
    Ok(())
}
