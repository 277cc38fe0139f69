//! Publish a config, read it back raw and typed.
//!
//! Start a server (`cargo run --release -- server`), then:
//!
//! ```text
//! CAIRN_PASSWORD=<admin password> cargo run -p cairn-client --example quickstart
//! ```
//!
//! `CAIRN_URL` (default `http://127.0.0.1:8848`) and `CAIRN_USERNAME` (default `admin`)
//! say where and who.

mod common;

use cairn_client::{Key, Publish};

#[derive(serde::Deserialize)]
struct Server {
    port: u16,
    workers: usize,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let client = common::connect()?;
    let key = Key::parse("public/DEFAULT_GROUP/quickstart.yaml")?;

    let published = client
        .publish(&key, &Publish::new("port: 8080\nworkers: 4\n"))
        .await?;
    println!("published {key} revision {}", published.revision);

    let config = client
        .get(&key)
        .await?
        .ok_or("the config just published is gone")?;
    println!(
        "read back ({}, md5 {}):\n{}",
        config.format,
        config.md5,
        config.content.unwrap_or_default()
    );

    let typed: Server = client.get_as(&key).await?.ok_or("gone")?;
    println!(
        "as a struct: port {}, {} workers",
        typed.port, typed.workers
    );
    Ok(())
}
