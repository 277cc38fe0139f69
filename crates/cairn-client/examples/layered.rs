//! The layered manager: a remote config, the environment, the command line and a local
//! file merged by priority, with a typed handle that follows every change.
//!
//! ```text
//! CAIRN_PASSWORD=<admin password> APP_REGISTRY__ZONE=eu-1 \
//!     cargo run -p cairn-client --example layered -- --registry.retries=5
//! ```
//!
//! It publishes `public/DEFAULT_GROUP/registry.yaml`, writes `target/example-local.yaml`,
//! prints the merged view, then publishes a change and prints the batch of events it
//! caused, and exits.

mod common;

use std::time::Duration;

use cairn_client::layered::Manager;
use cairn_client::{Key, Publish};
use tokio::sync::mpsc;

#[derive(serde::Deserialize)]
struct Registry {
    interval: u64,
    servers: Vec<String>,
    retries: u32,
    zone: String,
}

impl std::fmt::Display for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "every {}s to {:?}, {} retries, zone {}",
            self.interval, self.servers, self.retries, self.zone
        )
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let client = common::connect()?;
    let key = Key::parse("public/DEFAULT_GROUP/registry.yaml")?;
    client
        .publish(
            &key,
            &Publish::new("registry:\n  interval: 30\n  servers: [10.0.0.1, 10.0.0.2]\n"),
        )
        .await?;
    // Local defaults, lowest priority: what nobody else says.
    let local = std::path::Path::new("target/example-local.yaml");
    std::fs::create_dir_all("target")?;
    std::fs::write(
        local,
        "registry:\n  retries: 3\n  zone: local\n  interval: 60\n",
    )?;

    let config = Manager::builder()
        .remote(&client, key.clone())
        .args(std::env::args())
        .env("APP_")
        .file(local)
        .build()
        .await?;
    for (k, v) in config.all() {
        println!("{k} = {v}");
    }
    let registry = config.handle::<Registry>("registry")?;
    println!("as a struct: {}", registry.get());

    let (tx, mut batches) = mpsc::unbounded_channel();
    config.on_prefix("registry.", move |events| {
        let _ = tx.send(events.to_vec());
    });
    client
        .publish(
            &key,
            &Publish::new("registry:\n  interval: 10\n  servers: [10.0.0.3]\n"),
        )
        .await?;
    let events = tokio::time::timeout(Duration::from_secs(10), batches.recv())
        .await?
        .ok_or("the manager stopped")?;
    println!("one publish, one batch:");
    for event in events {
        let show = |v: Option<serde_json::Value>| v.map_or("-".to_owned(), |v| v.to_string());
        println!(
            "  {:?} {}: {} -> {}",
            event.kind,
            event.key,
            show(event.old),
            show(event.new)
        );
    }
    println!("the handle now holds: {}", registry.get());
    Ok(())
}
