//! `cairn export` and `cairn import`: a namespace's configs as a Nacos export zip or
//! in Cairn's own format, out and in; `cairn clone` between namespaces.

use std::path::PathBuf;

use cairn_client::Client;
use clap::Args;

#[derive(Args)]
pub struct ExportArgs {
    /// The namespace to export.
    namespace: String,
    /// Write the file here [default: NAMESPACE.zip, or NAMESPACE.cairn.jsonl].
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// nacos: Nacos's zip (Nacos reads it); cairn: Cairn's JSON lines, which keep gray
    /// releases and each config's md5 too (for backups and moving between Cairns).
    #[arg(long, default_value = "nacos", value_parser = ["nacos", "cairn"])]
    format: String,
    /// Only this group (`*` matches any run of characters).
    #[arg(long)]
    group: Option<String>,
    /// Only matching data ids (`*` matches any run of characters).
    #[arg(long)]
    data_id: Option<String>,
    /// With each config's earlier versions (Cairn's format only): importing the file
    /// where the config does not exist yet brings its history along.
    #[arg(long)]
    history: bool,
}

#[derive(Args)]
pub struct ImportArgs {
    /// The namespace to import into (it must exist).
    namespace: String,
    /// A zip exported by Cairn or by Nacos (either layout), or a Cairn export.
    file: PathBuf,
    /// What to do about configs that exist with other content: abort (import
    /// nothing), skip, overwrite. Configs stored exactly as the zip has them are left
    /// alone whatever the policy.
    #[arg(long, default_value = "abort")]
    policy: String,
    /// Leave out entries that cannot be imported and list them, instead of importing
    /// nothing.
    #[arg(long)]
    skip_invalid: bool,
}

#[derive(Args)]
pub struct CloneArgs {
    /// The namespace to copy from.
    from: String,
    /// The namespace to copy into (it must exist).
    to: String,
    /// Only this group (`*` matches any run of characters).
    #[arg(long)]
    group: Option<String>,
    /// Only matching data ids (`*` matches any run of characters).
    #[arg(long)]
    data_id: Option<String>,
    /// Put the copies in this group instead of their own.
    #[arg(long)]
    to_group: Option<String>,
    /// What to do about configs that exist: abort (copy nothing), skip, overwrite.
    #[arg(long, default_value = "abort")]
    policy: String,
}

pub async fn clone(client: &Client, args: CloneArgs) -> anyhow::Result<()> {
    let report = client
        .clone_into(
            &args.to,
            &args.from,
            args.group.as_deref(),
            args.data_id.as_deref(),
            args.to_group.as_deref(),
            &args.policy,
        )
        .await?;
    print_report(&report, &args.to);
    Ok(())
}

pub fn print_report(report: &cairn_client::ImportReport, namespace: &str) {
    println!(
        "imported {} configs ({} bytes) into {namespace}; {} unchanged, {} left as they were, {} refused",
        report.imported,
        report.bytes,
        report.unchanged,
        report.skipped.len(),
        report.refused.len(),
    );
    for key in &report.skipped {
        println!("  skipped {key}: exists");
    }
    for refused in &report.refused {
        println!("  refused {}: {}", refused.item, refused.reason);
    }
    if report.grays > 0 {
        println!("  started {} gray release(s)", report.grays);
    }
    if report.history > 0 {
        println!("  wrote {} earlier version(s) as history", report.history);
    }
}

pub async fn export(client: &Client, args: ExportArgs) -> anyhow::Result<()> {
    if args.history && args.format != "cairn" {
        anyhow::bail!("--history is carried only by Cairn's format: add --format cairn");
    }
    let options = cairn_client::ExportOptions {
        group: args.group,
        data_id: args.data_id,
        format: args.format.clone(),
        history: args.history,
    };
    let zip = client
        .export_namespace_with(&args.namespace, &options)
        .await?;
    let extension = if args.format == "cairn" {
        "cairn.jsonl"
    } else {
        "zip"
    };
    let path = args
        .output
        .unwrap_or_else(|| PathBuf::from(format!("{}.{extension}", args.namespace)));
    std::fs::write(&path, &zip)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    println!(
        "exported namespace {} to {}",
        args.namespace,
        path.display()
    );
    Ok(())
}

pub async fn import(client: &Client, args: ImportArgs) -> anyhow::Result<()> {
    let zip = std::fs::read(&args.file)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", args.file.display()))?;
    let options = cairn_client::ImportOptions {
        policy: args.policy,
        skip_invalid: args.skip_invalid,
    };
    let report = client
        .import_namespace_with(&args.namespace, zip, &options)
        .await?;
    print_report(&report, &args.namespace);
    Ok(())
}
