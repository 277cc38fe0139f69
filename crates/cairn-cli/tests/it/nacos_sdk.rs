//! The Rust Nacos client (`nacos-sdk`, unmodified) against real `cairn server`
//! processes over gRPC: what an application written for Nacos 2.x does, and a cluster.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_store::scratch::{Engine, Scratch};
use nacos_sdk::api::config::{
    ConfigChangeListener, ConfigResponse, ConfigService, ConfigServiceBuilder,
};
use nacos_sdk::api::error::Error;
use nacos_sdk::api::props::ClientProps;
use tokio::sync::mpsc;

use crate::common::Server;

const PASSWORD: &str = "sdk-password-1";
const GROUP: &str = "DEFAULT_GROUP";

/// Hands each change the client reports to the test.
struct Changes(mpsc::UnboundedSender<(Instant, String)>);

impl ConfigChangeListener for Changes {
    fn notify(&self, config: ConfigResponse) {
        let _ = self.0.send((Instant::now(), config.content().clone()));
    }
}

async fn service(server: &Server, password: &str, cache: &Path) -> Result<ConfigService, Error> {
    let grpc = server.grpc.as_deref().expect("the node serves gRPC");
    let port = grpc.rsplit(':').next().unwrap().parse().unwrap();
    let props = ClientProps::new()
        .server_addr(server.address())
        .remote_grpc_port(port)
        .namespace("")
        .app_name("nacos-sdk-test")
        // Only what is set here: no NACOS_CLIENT_* variables or .env files.
        .env_first(false)
        .cache_dir(cache)
        .auth_username("admin")
        .auth_password(password);
    ConfigServiceBuilder::new(props)
        .enable_auth_plugin_http()
        .build()
        .await
}

async fn next_change(
    changes: &mut mpsc::UnboundedReceiver<(Instant, String)>,
) -> (Instant, String) {
    tokio::time::timeout(Duration::from_secs(10), changes.recv())
        .await
        .expect("a change within 10 s")
        .expect("the listener lives")
}

fn s(text: &str) -> String {
    text.to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nacos_sdk_rust_gets_publishes_and_listens_over_grpc() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), Some(PASSWORD));
    let config = service(&server, PASSWORD, &dir.path().join("cache"))
        .await
        .expect("the client connects");
    let id = s("rust-sdk.yaml");

    match config.get_config(id.clone(), s(GROUP)).await {
        Err(Error::ConfigNotFound(_)) => {}
        other => panic!("a missing config: {other:?}"),
    }
    assert!(config
        .publish_config(id.clone(), s(GROUP), s("a: 1"), Some(s("yaml")))
        .await
        .unwrap());
    let read = config.get_config(id.clone(), s(GROUP)).await.unwrap();
    assert_eq!(
        (read.content().as_str(), read.content_type().as_str()),
        ("a: 1", "yaml")
    );

    // Compare-and-set over the current md5 lands; over a stale one it is refused.
    let md5 = read.md5().clone();
    assert!(config
        .publish_config_cas(id.clone(), s(GROUP), s("a: 2"), None, md5.clone())
        .await
        .unwrap());
    let stale = config
        .publish_config_cas(id.clone(), s(GROUP), s("a: 3"), None, md5)
        .await;
    assert!(
        !matches!(stale, Ok(true)),
        "a stale compare-and-set landed: {stale:?}"
    );

    // A listener hears of a publish made over gRPC and one made over HTTP, by push.
    let (tx, mut changes) = mpsc::unbounded_channel();
    config
        .add_listener(id.clone(), s(GROUP), Arc::new(Changes(tx)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent = Instant::now();
    config
        .publish_config(id.clone(), s(GROUP), s("a: 4"), None)
        .await
        .unwrap();
    let (at, content) = next_change(&mut changes).await;
    assert_eq!(content, "a: 4");
    assert!(
        at - sent < Duration::from_secs(1),
        "pushed after {:?}",
        at - sent
    );
    let http = reqwest::Client::new();
    let login: serde_json::Value = http
        .post(format!(
            "{}/nacos/v1/auth/login?username=admin&password={PASSWORD}",
            server.url
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["accessToken"].as_str().unwrap();
    assert!(
        login["tokenTtl"].as_u64().unwrap() > 0,
        "the Rust client needs tokenTtl"
    );
    let published = http
        .post(format!("{}/nacos/v1/cs/configs", server.url))
        .form(&[
            ("dataId", id.as_str()),
            ("group", GROUP),
            ("content", "a: 5"),
            ("accessToken", token),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(published.text().await.unwrap(), "true");
    assert_eq!(next_change(&mut changes).await.1, "a: 5");

    assert!(config.remove_config(id.clone(), s(GROUP)).await.unwrap());
    // The client answers listened keys from its own cache, so ask as another client.
    let other = service(&server, PASSWORD, &dir.path().join("cache2"))
        .await
        .unwrap();
    assert!(matches!(
        other.get_config(id.clone(), s(GROUP)).await,
        Err(Error::ConfigNotFound(_))
    ));

    // Wrong password: the login fails, so its requests carry no token and are refused.
    let refused = service(&server, "not-the-password", &dir.path().join("cache3")).await;
    let read = match refused {
        Ok(refused) => refused.get_config(id.clone(), s(GROUP)).await,
        Err(e) => Err(e),
    };
    let message = format!("{read:?}");
    assert!(message.contains("403"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_of_one_node_hears_a_publish_on_another() {
    let Some(db) = Scratch::create(Engine::Postgres).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let args = ["--database", db.url.as_str(), "--sync-poll-ms", "50"];
    let a = Server::start_on(&dir.path().join("a"), "127.0.0.1:0", Some(PASSWORD), &args);
    let b = Server::start_on(&dir.path().join("b"), "127.0.0.1:0", Some(PASSWORD), &args);
    let on_a = service(&a, PASSWORD, &dir.path().join("cache-a"))
        .await
        .unwrap();
    let on_b = service(&b, PASSWORD, &dir.path().join("cache-b"))
        .await
        .unwrap();
    let id = s("shared.properties");
    assert!(on_a
        .publish_config(id.clone(), s(GROUP), s("k=1"), None)
        .await
        .unwrap());
    let (tx, mut changes) = mpsc::unbounded_channel();
    on_b.add_listener(id.clone(), s(GROUP), Arc::new(Changes(tx)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent = Instant::now();
    assert!(on_a
        .publish_config(id.clone(), s(GROUP), s("k=2"), None)
        .await
        .unwrap());
    let (at, content) = next_change(&mut changes).await;
    assert_eq!(content, "k=2");
    assert!(
        at - sent < Duration::from_secs(2),
        "heard after {:?}",
        at - sent
    );
    drop((a, b));
    db.drop_database().await;
}
