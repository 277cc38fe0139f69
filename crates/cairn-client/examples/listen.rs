//! Listen to a config: the callback hears each change once, in order.
//!
//! ```text
//! CAIRN_PASSWORD=<admin password> cargo run -p cairn-client --example listen
//! ```
//!
//! It publishes three versions itself and exits once it has heard them all; publish to
//! `public/DEFAULT_GROUP/feature-flags.properties` from elsewhere (`cairn publish …`)
//! while it runs to see those too.

mod common;

use std::time::Duration;

use cairn_client::{Key, Publish};
use tokio::sync::mpsc;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let client = common::connect()?;
    let key = Key::parse("public/DEFAULT_GROUP/feature-flags.properties")?;
    client
        .publish(&key, &Publish::new("checkout.v2=off\n"))
        .await?;

    let (heard, mut changes) = mpsc::unbounded_channel();
    let listener = client
        .add_listener(key.clone(), move |change| {
            let content = change.config.and_then(|c| c.content);
            println!(
                "heard: {}",
                content.as_deref().unwrap_or("<deleted>").trim()
            );
            let _ = heard.send(content);
        })
        .await?;

    for (i, flags) in [
        "checkout.v2=canary\n",
        "checkout.v2=on\n",
        "checkout.v2=on\nsearch.v3=on\n",
    ]
    .into_iter()
    .enumerate()
    {
        client.publish(&key, &Publish::new(flags)).await?;
        println!("published version {}", i + 1);
        // Wait for the listener before the next publish, so each version is heard.
        tokio::time::timeout(Duration::from_secs(10), changes.recv())
            .await?
            .ok_or("the listener stopped")?;
    }
    listener.remove();
    Ok(())
}
