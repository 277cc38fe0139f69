//! The layered manager over local sources: priorities between files, environment and
//! arguments; a watched file's saves as batches of events; typed handles; whole-file
//! values; and clear errors for sources that cannot be read.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_client::layered::{Event, EventKind, Manager, SourceKind, Value};
use cairn_client::Error;
use serde::Deserialize;
use serde_json::json;

fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Replaces `path` the way deploy tools do: a new file renamed over the old one.
fn replace(path: &Path, content: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Waits until `recorded` holds `n` batches, and a little longer to catch extra ones.
async fn batches(recorded: &Arc<Mutex<Vec<Vec<Event>>>>, n: usize) -> Vec<Vec<Event>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while recorded.lock().unwrap().len() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "expected {n} batches, got {:?}",
            recorded.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    recorded.lock().unwrap().clone()
}

fn recorder(manager: &Manager, prefix: &str) -> Arc<Mutex<Vec<Vec<Event>>>> {
    let recorded = Arc::new(Mutex::new(Vec::new()));
    let sink = recorded.clone();
    manager.on_prefix(prefix, move |events| {
        sink.lock().unwrap().push(events.to_vec())
    });
    recorded
}

#[tokio::test]
async fn arguments_beat_environment_beats_files_unless_told_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.yaml");
    let local = dir.path().join("local.properties");
    std::fs::write(&base, "a: file\nb: file\nc: file\nd: base\n").unwrap();
    std::fs::write(&local, "d=local\n").unwrap();
    let env = vars(&[("SVC_B", "env"), ("SVC_C", "env"), ("OTHER_A", "x")]);
    let args = ["svc", "--c=args", "positional"];

    let manager = Manager::builder()
        .file(&base)
        .env_from("SVC_", env.clone())
        .args(args)
        .file(&local)
        .build()
        .await
        .unwrap();
    let got: Vec<String> = ["a", "b", "c", "d"]
        .iter()
        .map(|k| manager.get(k).unwrap())
        .collect();
    // Of two files, the one added later wins.
    assert_eq!(got, ["file", "env", "args", "local"]);

    let manager = Manager::builder()
        .file(&base)
        .env_from("SVC_", env)
        .args(args)
        .priority(SourceKind::File, 100)
        .priority(SourceKind::Env, 50)
        .build()
        .await
        .unwrap();
    assert_eq!(manager.get::<String>("c").unwrap(), "file");
    assert_eq!(manager.get::<String>("d").unwrap(), "base");

    // Variables match keys spelled in camelCase or kebab-case elsewhere.
    let spelled = dir.path().join("spelled.yaml");
    std::fs::write(&spelled, "pool:\n  maxSize: 4\n  idle-timeout: 30\n").unwrap();
    let manager = Manager::builder()
        .file(&spelled)
        .env_from(
            "SVC_",
            vars(&[
                ("SVC_POOL__MAX_SIZE", "16"),
                ("SVC_POOL__IDLE_TIMEOUT", "5"),
            ]),
        )
        .build()
        .await
        .unwrap();
    assert_eq!(manager.get::<u32>("pool.maxSize").unwrap(), 16);
    assert_eq!(manager.get::<u32>("pool.idle-timeout").unwrap(), 5);
    assert_eq!(manager.all().len(), 2, "{:?}", manager.all());
}

#[derive(Debug, Deserialize, PartialEq)]
struct Registry {
    interval: u64,
    servers: Vec<String>,
    tls: bool,
}

#[tokio::test]
async fn a_watched_file_save_is_one_batch_of_events() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.yaml");
    std::fs::write(
        &path,
        "registry:\n  interval: 30\n  servers: [a, b]\n  tls: false\n  zone: eu\nname: app\n",
    )
    .unwrap();
    let manager = Manager::builder()
        // Strings from the environment convert to the type asked for.
        .env_from("APP_", vars(&[("APP_REGISTRY__TLS", "true")]))
        .file(&path)
        .build()
        .await
        .unwrap();
    let registry = manager.handle::<Registry>("registry").unwrap();
    assert_eq!(
        *registry.get(),
        Registry {
            interval: 30,
            servers: vec!["a".into(), "b".into()],
            tls: true
        }
    );
    assert_eq!(manager.get::<u64>("registry.interval").unwrap(), 30);
    let by_prefix = recorder(&manager, "registry.");
    let by_key = Arc::new(Mutex::new(Vec::new()));
    let sink = by_key.clone();
    manager.on_key("name", move |events: &[Event]| {
        sink.lock().unwrap().push(events.to_vec())
    });

    // One save: one key updated, one added, one deleted, one overridden by env (no
    // event: the merged value does not change), and one outside the prefix.
    replace(
        &path,
        "registry:\n  interval: 5\n  servers: [a, b]\n  tls: false\n  retries: 3\nname: app2\n",
    );
    let seen = batches(&by_prefix, 1).await;
    assert_eq!(seen.len(), 1, "one save is one batch: {seen:?}");
    let summary: Vec<(&str, EventKind, Option<&Value>, Option<&Value>)> = seen[0]
        .iter()
        .map(|e| (e.key.as_str(), e.kind, e.old.as_ref(), e.new.as_ref()))
        .collect();
    assert_eq!(
        summary,
        [
            (
                "registry.interval",
                EventKind::Updated,
                Some(&json!(30)),
                Some(&json!(5))
            ),
            ("registry.retries", EventKind::Added, None, Some(&json!(3))),
            (
                "registry.zone",
                EventKind::Deleted,
                Some(&json!("eu")),
                None
            ),
        ]
    );
    assert_eq!(by_key.lock().unwrap().len(), 1);
    assert_eq!(by_key.lock().unwrap()[0][0].new, Some(json!("app2")));
    assert_eq!(registry.get().interval, 5);

    // Content that does not parse changes nothing; the last good values stay.
    replace(&path, "registry: [unclosed\n");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(by_prefix.lock().unwrap().len(), 1);
    assert_eq!(manager.get::<u64>("registry.interval").unwrap(), 5);

    // A value the handle's type cannot take is logged and the handle keeps its value.
    std::fs::write(&path, "registry:\n  interval: soon\n  servers: [a]\n").unwrap();
    let seen = batches(&by_prefix, 2).await;
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(registry.get().interval, 5);
    assert!(matches!(
        manager.get::<u64>("registry.interval"),
        Err(Error::Value { .. })
    ));

    // The file removed: its keys are deleted (the environment's stay).
    std::fs::remove_file(&path).unwrap();
    let seen = batches(&by_prefix, 3).await;
    assert!(seen[2].iter().all(|e| e.kind == EventKind::Deleted));
    assert!(matches!(
        manager.get::<String>("name"),
        Err(Error::Missing { .. })
    ));
    assert!(manager.get::<bool>("registry.tls").unwrap());
    assert_eq!(manager.get_or("registry.interval", 60u64), 60);
}

#[derive(Debug, Deserialize, PartialEq)]
struct Route {
    path: String,
    upstream: String,
}

#[tokio::test]
async fn a_file_kept_whole_changes_as_one_value() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routes.json");
    std::fs::write(&path, r#"[{"path": "/a", "upstream": "x"}]"#).unwrap();
    let manager = Manager::builder()
        .file_whole(&path, "routes")
        .build()
        .await
        .unwrap();
    let routes = manager.handle::<Vec<Route>>("routes").unwrap();
    assert_eq!(routes.get()[0].upstream, "x");
    let recorded = recorder(&manager, "");
    replace(
        &path,
        r#"[{"path": "/a", "upstream": "y"}, {"path": "/b", "upstream": "z"}]"#,
    );
    let seen = batches(&recorded, 1).await;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].len(), 1, "the whole table is one key: {seen:?}");
    assert_eq!(seen[0][0].key, "routes");
    assert_eq!(seen[0][0].kind, EventKind::Updated);
    assert_eq!(routes.get().len(), 2);
}

#[tokio::test]
async fn sources_that_cannot_be_read_fail_the_build_and_say_which() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent.yaml");
    let err = Manager::builder()
        .file(&missing)
        .build()
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("absent.yaml"), "{err}");

    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "port = \n").unwrap();
    let err = Manager::builder()
        .file(&broken)
        .build()
        .await
        .err()
        .unwrap();
    assert!(
        matches!(&err, Error::Source { origin, .. } if origin.ends_with("broken.toml")),
        "{err}"
    );

    let unknown = dir.path().join("settings.conf");
    std::fs::write(&unknown, "x").unwrap();
    let err = Manager::builder()
        .file(&unknown)
        .build()
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("cannot tell its format"), "{err}");

    let manager = Manager::builder().build().await.unwrap();
    let err = manager.get::<u64>("port").unwrap_err();
    assert_eq!(err.to_string(), "no configuration value at \"port\"");
    assert_eq!(manager.get::<Option<u64>>("port").unwrap(), None);
}

#[tokio::test]
async fn handles_inside_whole_values_follow_and_listeners_cannot_break_the_manager() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routes.json");
    std::fs::write(&path, r#"{"/a": {"upstream": "x"}}"#).unwrap();
    let manager = Manager::builder()
        .file_whole(&path, "routes")
        .build()
        .await
        .unwrap();
    // A handle on a part of a whole value follows the whole.
    let upstream = manager.handle::<String>("routes./a.upstream").unwrap();
    assert_eq!(*upstream.get(), "x");
    // A listener that panics is logged; the others still hear every change.
    manager.on_prefix("", |_| panic!("a listener's own bug"));
    let recorded = recorder(&manager, "routes");
    // A listener owning the last clone of a handle can be removed (the handle's own
    // listener goes with it).
    let owned = manager.handle::<String>("routes./a.upstream").unwrap();
    let id = manager.on_key("routes", move |_| drop(owned.get()));
    manager.remove_listener(id);

    replace(&path, r#"{"/a": {"upstream": "y"}}"#);
    batches(&recorded, 1).await;
    assert_eq!(*upstream.get(), "y");
    replace(&path, r#"{"/a": {"upstream": "z"}}"#);
    batches(&recorded, 2).await;
    assert_eq!(*upstream.get(), "z");
}

#[tokio::test]
async fn a_whole_value_hides_the_lower_keys_inside_it_and_yields_to_higher_ones() {
    let dir = tempfile::tempdir().unwrap();
    let defaults = dir.path().join("defaults.yaml");
    std::fs::write(&defaults, "db:\n  url: file-url\n  pool: 4\n").unwrap();
    let db = dir.path().join("db.json");
    std::fs::write(&db, r#"{"url": "whole-url"}"#).unwrap();
    let manager = Manager::builder()
        .file(&defaults)
        .file_whole(&db, "db")
        .args(["--db.timeout=5"])
        .build()
        .await
        .unwrap();
    // The whole value (added later, so higher) replaces the lower file's keys under it.
    assert_eq!(manager.get::<String>("db.url").unwrap(), "whole-url");
    assert!(matches!(
        manager.get::<u32>("db.pool"),
        Err(Error::Missing { .. })
    ));
    // A higher source's key inside it wins, and the section shows both.
    assert_eq!(
        manager.get::<Value>("db").unwrap(),
        json!({"url": "whole-url", "timeout": "5"})
    );
}
