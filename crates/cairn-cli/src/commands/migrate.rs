//! `cairn migrate`: copies the configs of a running Nacos or Apollo into Cairn through
//! their own HTTP APIs (Nacos's namespace list and export zip; Apollo's config
//! service), as imports that can be repeated: a config already in Cairn as the source
//! has it is not published again.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use anyhow::{bail, Context};
use cairn_client::{Client, ImportOptions, ImportReport};
use cairn_core::{DataId, Format, Group};
use cairn_server::transfer::Item;
use clap::{ArgGroup, Args};
use serde::Deserialize;

#[derive(Args)]
#[command(group(ArgGroup::new("source").required(true).args(["from_nacos", "from_apollo"])))]
pub struct MigrateArgs {
    /// A Nacos server to copy from, e.g. http://nacos:8848 (`/nacos` is added when the
    /// URL has no path).
    #[arg(long, value_name = "URL")]
    from_nacos: Option<String>,
    /// An Apollo config service (or meta server) to copy from, e.g.
    /// http://apollo-config:8080. Needs --app.
    #[arg(long, value_name = "URL", requires = "app")]
    from_apollo: Option<String>,
    /// Nacos: only these namespaces, by id (`public` for Nacos's default one)
    /// [default: every one]. Apollo: these namespaces of the app [default: application].
    #[arg(long = "namespace", value_name = "NAMESPACE")]
    namespaces: Vec<String>,
    /// Nacos: log in as this user (the password from --password, or asked for).
    #[arg(long)]
    username: Option<String>,
    /// Nacos: the user's password.
    #[arg(long, env = "CAIRN_MIGRATE_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// Apollo: the app id; its configs land in the group of that name.
    #[arg(long)]
    app: Option<String>,
    /// Apollo: the clusters to read [default: default]. A cluster other than `default`
    /// lands as data id `CLUSTER:NAMESPACE`, as Cairn's Apollo surface serves it.
    #[arg(long = "cluster", value_name = "CLUSTER")]
    clusters: Vec<String>,
    /// Apollo: the app's access key secret, when its reads must be signed.
    #[arg(long, env = "CAIRN_MIGRATE_APOLLO_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// Apollo: the Cairn namespace to copy into (Apollo's env).
    #[arg(long, default_value = "public")]
    to: String,
    /// What to do about configs Cairn holds with other content: overwrite (the source
    /// wins), skip, or abort (copy nothing into that namespace).
    #[arg(long, default_value = "overwrite")]
    policy: String,
}

/// How long one request to the source may take (an export of a large namespace is one).
const SOURCE_TIMEOUT: Duration = Duration::from_secs(120);

pub async fn run(client: &Client, args: MigrateArgs) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .timeout(SOURCE_TIMEOUT)
        .build()
        .context("cannot make an HTTP client")?;
    let mut totals = Totals::default();
    if let Some(url) = args.from_nacos.clone() {
        from_nacos(client, &http, &url, &args, &mut totals).await?;
    } else if let Some(url) = args.from_apollo.clone() {
        from_apollo(client, &http, &url, &args, &mut totals).await?;
    }
    println!(
        "migrated {} configs ({} bytes) into {} namespace(s); {} unchanged, {} skipped, {} refused",
        totals.imported,
        totals.bytes,
        totals.namespaces,
        totals.unchanged,
        totals.skipped,
        totals.refused
    );
    Ok(())
}

#[derive(Default)]
struct Totals {
    namespaces: usize,
    imported: u64,
    bytes: u64,
    unchanged: u64,
    skipped: usize,
    refused: usize,
}

impl Totals {
    fn add(&mut self, report: &ImportReport) {
        self.namespaces += 1;
        self.imported += report.imported;
        self.bytes += report.bytes;
        self.unchanged += report.unchanged;
        self.skipped += report.skipped.len();
        self.refused += report.refused.len();
    }
}

fn options(args: &MigrateArgs) -> ImportOptions {
    ImportOptions {
        policy: args.policy.clone(),
        // A source may hold what Cairn refuses (a YAML config that does not parse, a
        // name Cairn does not allow): it is reported, and the rest still moves.
        skip_invalid: true,
    }
}

/// The body of a refused request, shortened, for an error message.
async fn failure(response: reqwest::Response) -> String {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let text: String = text.trim().chars().take(300).collect();
    format!("{status}: {text}")
}

// --- Nacos ---------------------------------------------------------------------------

#[derive(Deserialize)]
struct NacosNamespaces {
    data: Vec<NacosNamespace>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NacosNamespace {
    namespace: String,
    #[serde(default)]
    namespace_show_name: String,
    #[serde(default)]
    namespace_desc: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NacosLogin {
    access_token: String,
}

/// Nacos's base URL: the given one, with the default context path when it has none.
fn nacos_base(url: &str) -> anyhow::Result<String> {
    let parsed = reqwest::Url::parse(url).with_context(|| format!("{url} is not a URL"))?;
    let url = url.trim_end_matches('/');
    Ok(if parsed.path().trim_matches('/').is_empty() {
        format!("{url}/nacos")
    } else {
        url.to_owned()
    })
}

async fn from_nacos(
    client: &Client,
    http: &reqwest::Client,
    url: &str,
    args: &MigrateArgs,
    totals: &mut Totals,
) -> anyhow::Result<()> {
    let base = nacos_base(url)?;
    let token = match &args.username {
        Some(username) => Some(nacos_login(http, &base, username, args.password.clone()).await?),
        None => None,
    };
    let auth: Vec<(&str, &str)> = token.iter().map(|t| ("accessToken", t.as_str())).collect();

    let response = http
        .get(format!("{base}/v1/console/namespaces"))
        .query(&auth)
        .send()
        .await
        .with_context(|| format!("cannot reach Nacos at {base}"))?;
    if !response.status().is_success() {
        bail!(
            "Nacos did not list its namespaces ({}){}",
            failure(response).await,
            if token.is_none() {
                "; give --username if its auth is on"
            } else {
                ""
            }
        );
    }
    let listed: NacosNamespaces = response
        .json()
        .await
        .context("Nacos's namespace list is not what Nacos answers")?;
    let wanted: Vec<&NacosNamespace> = if args.namespaces.is_empty() {
        listed.data.iter().collect()
    } else {
        let mut wanted = Vec::new();
        for name in &args.namespaces {
            let id = if name == "public" { "" } else { name.as_str() };
            match listed.data.iter().find(|n| n.namespace == id) {
                Some(found) => wanted.push(found),
                None => bail!(
                    "Nacos has no namespace {name}; it has: {}",
                    listed
                        .data
                        .iter()
                        .map(|n| if n.namespace.is_empty() {
                            "public"
                        } else {
                            &n.namespace
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        }
        wanted
    };

    let mut existing: HashSet<String> = client
        .namespaces()
        .await?
        .into_iter()
        .map(|n| n.name)
        .collect();
    for source in wanted {
        let target = if source.namespace.is_empty() {
            "public"
        } else {
            source.namespace.as_str()
        };
        if !existing.contains(target) {
            let description = source
                .namespace_desc
                .clone()
                .filter(|d| !d.is_empty())
                .unwrap_or_else(|| source.namespace_show_name.clone());
            if let Err(e) = client.create_namespace(target, &description).await {
                println!("namespace {target}: not created, so not copied: {e}");
                continue;
            }
            existing.insert(target.to_owned());
        }
        let zip = nacos_export(http, &base, &source.namespace, &auth).await?;
        let report = client
            .import_namespace_with(target, zip, &options(args))
            .await
            .with_context(|| format!("importing Nacos namespace {target}"))?;
        crate::commands::transfer::print_report(&report, target);
        totals.add(&report);
    }
    Ok(())
}

async fn nacos_login(
    http: &reqwest::Client,
    base: &str,
    username: &str,
    password: Option<String>,
) -> anyhow::Result<String> {
    let password = match password {
        Some(password) => password,
        None => rpassword::prompt_password(format!("Nacos password for {username}: "))
            .context("cannot read the password")?,
    };
    let response = http
        .post(format!("{base}/v1/auth/login"))
        .form(&[("username", username), ("password", password.as_str())])
        .send()
        .await
        .with_context(|| format!("cannot reach Nacos at {base}"))?;
    if !response.status().is_success() {
        bail!("Nacos refused the login: {}", failure(response).await);
    }
    let login: NacosLogin = response
        .json()
        .await
        .context("Nacos's login answer has no accessToken")?;
    Ok(login.access_token)
}

/// A Nacos namespace's export zip: the newer layout (with types, descriptions and
/// tags) where the server has it, else the older one.
async fn nacos_export(
    http: &reqwest::Client,
    base: &str,
    tenant: &str,
    auth: &[(&str, &str)],
) -> anyhow::Result<Vec<u8>> {
    let mut last = String::new();
    for flag in ["exportV2", "export"] {
        let response = http
            .get(format!("{base}/v1/cs/configs"))
            .query(&[
                (flag, "true"),
                ("tenant", tenant),
                ("group", ""),
                ("dataId", ""),
            ])
            .query(auth)
            .send()
            .await
            .with_context(|| format!("cannot reach Nacos at {base}"))?;
        if response.status().is_success() {
            let bytes = response.bytes().await?;
            if bytes.starts_with(b"PK") {
                return Ok(bytes.to_vec());
            }
            last = "the answer is not a zip".to_owned();
        } else {
            last = failure(response).await;
        }
    }
    let shown = if tenant.is_empty() { "public" } else { tenant };
    bail!("Nacos did not export namespace {shown}: {last}")
}

// --- Apollo --------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApolloConfig {
    cluster: String,
    #[serde(default)]
    configurations: BTreeMap<String, String>,
}

/// Apollo namespaces whose release is one `content` key rather than properties.
const APOLLO_FILE_FORMATS: [&str; 5] = ["yaml", "yml", "json", "xml", "txt"];

async fn from_apollo(
    client: &Client,
    http: &reqwest::Client,
    url: &str,
    args: &MigrateArgs,
    totals: &mut Totals,
) -> anyhow::Result<()> {
    let app = args.app.as_deref().unwrap_or_default();
    let group = Group::parse(app).map_err(|e| anyhow::anyhow!("app {app}: {e}"))?;
    let base = reqwest::Url::parse(url).with_context(|| format!("{url} is not a URL"))?;
    let clusters = non_empty_or(&args.clusters, "default");
    let namespaces = non_empty_or(&args.namespaces, "application");
    let mut items = Vec::new();
    let mut absent = Vec::new();
    for cluster in &clusters {
        for namespace in &namespaces {
            let Some(config) =
                apollo_read(http, &base, app, cluster, namespace, args.secret.as_deref()).await?
            else {
                absent.push(format!(
                    "{cluster}/{namespace}: Apollo has no release of it"
                ));
                continue;
            };
            // Apollo answers a cluster without a release of its own with the default
            // cluster's, which is copied once, from `default`.
            if &config.cluster != cluster {
                absent.push(format!(
                    "{cluster}/{namespace}: no release in this cluster (Apollo answers with {}'s)",
                    config.cluster
                ));
                continue;
            }
            match apollo_item(&group, cluster, namespace, config.configurations) {
                Ok(item) => items.push(item),
                Err(why) => absent.push(format!("{cluster}/{namespace}: {why}")),
            }
        }
    }
    for line in &absent {
        println!("  not copied {line}");
    }
    let zip = cairn_server::transfer::write_zip(&items, true)
        .context("cannot pack the configs read from Apollo")?;
    let report = client
        .import_namespace_with(&args.to, zip, &options(args))
        .await
        .with_context(|| format!("importing into namespace {}", args.to))?;
    crate::commands::transfer::print_report(&report, &args.to);
    totals.add(&report);
    totals.skipped += absent.len();
    Ok(())
}

fn non_empty_or(given: &[String], default: &str) -> Vec<String> {
    if given.is_empty() {
        vec![default.to_owned()]
    } else {
        given.to_vec()
    }
}

/// One namespace's release from Apollo's config service, `None` when it has none.
async fn apollo_read(
    http: &reqwest::Client,
    base: &reqwest::Url,
    app: &str,
    cluster: &str,
    namespace: &str,
    secret: Option<&str>,
) -> anyhow::Result<Option<ApolloConfig>> {
    let mut url = base.clone();
    url.path_segments_mut()
        .map_err(|()| anyhow::anyhow!("{base} cannot be a base URL"))?
        .pop_if_empty()
        .extend(["configs", app, cluster, namespace]);
    let mut request = http.get(url.clone());
    if let Some(secret) = secret {
        let timestamp = cairn_server::now_millis().to_string();
        let signature = cairn_server::access_keys::signature(secret, &timestamp, url.path());
        request = request
            .header("Authorization", format!("Apollo {app}:{signature}"))
            .header("Timestamp", timestamp);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("cannot reach Apollo at {base}"))?;
    match response.status() {
        reqwest::StatusCode::NOT_FOUND => Ok(None),
        status if status.is_success() => Ok(Some(response.json().await.with_context(|| {
            format!("Apollo's answer for {cluster}/{namespace} is not a release")
        })?)),
        reqwest::StatusCode::UNAUTHORIZED => bail!(
            "Apollo refused to serve {app} unsigned or with this secret ({}); give --secret",
            failure(response).await
        ),
        _ => bail!(
            "Apollo did not serve {cluster}/{namespace}: {}",
            failure(response).await
        ),
    }
}

/// A release as a Cairn config, named as Cairn's Apollo surface serves it.
fn apollo_item(
    group: &Group,
    cluster: &str,
    namespace: &str,
    mut configurations: BTreeMap<String, String>,
) -> Result<Item, String> {
    let name = namespace.strip_suffix(".properties").unwrap_or(namespace);
    let file_format = name
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .filter(|ext| APOLLO_FILE_FORMATS.contains(&ext.as_str()))
        .and_then(|_| Format::from_file_name(name));
    let (format, content) = match file_format {
        Some(format) => (format, configurations.remove("content").unwrap_or_default()),
        None => (
            Format::Properties,
            cairn_core::properties::to_text(&configurations),
        ),
    };
    let data_id = if cluster == "default" {
        name.to_owned()
    } else {
        format!("{cluster}:{name}")
    };
    Ok(Item {
        group: group.clone(),
        data_id: DataId::parse(&data_id).map_err(|e| format!("data id {data_id}: {e}"))?,
        content,
        format: Some(format),
        description: String::new(),
        tags: Vec::new(),
        sensitive: false,
        gray: None,
        history: Vec::new(),
    })
}
