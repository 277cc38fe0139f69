//! Export and import of a namespace in Nacos's zip format, through the native API and
//! Nacos's own routes: a round trip keeps everything, an import is all or nothing and
//! says why, and each policy does what it says.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{expect_error, zip_of, TestApp};

async fn create_namespace(app: &TestApp, name: &str) {
    let r = app
        .request(Method::POST, "/api/v1/namespaces")
        .json(&json!({ "name": name }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "create {name}");
}

async fn import(app: &TestApp, namespace: &str, policy: &str, zip: Vec<u8>) -> reqwest::Response {
    app.request(
        Method::POST,
        &format!("/api/v1/namespaces/{namespace}/import?policy={policy}"),
    )
    .header("content-type", "application/zip")
    .body(zip)
    .send()
    .await
    .unwrap()
}

async fn count(app: &TestApp, namespace: &str) -> u64 {
    let (_, page) = app
        .get_json(&format!("/api/v1/configs?namespace={namespace}"))
        .await;
    page["total"].as_u64().unwrap()
}

#[tokio::test]
async fn a_namespace_moves_whole_and_policies_hold() {
    let app = TestApp::spawn().await;
    let r = app
        .publish(
            "public/web/app.yaml",
            json!({ "content": "port: 80\n", "description": "the web app", "tags": ["web", "edge"] }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    app.publish_ok("public/web/db.properties", "url=x\n").await;
    app.publish_ok("public/jobs/cron.txt", "0 * * * *").await;

    let r = app
        .request(Method::GET, "/api/v1/namespaces/public/export")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/zip");
    let zip = r.bytes().await.unwrap().to_vec();
    // A filtered export holds only what it names.
    let r = app
        .request(Method::GET, "/api/v1/namespaces/public/export?group=web")
        .send()
        .await
        .unwrap();
    let web = cairn_server::transfer::read_zip(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(web.len(), 2);

    create_namespace(&app, "staging").await;
    // A watcher of a config the import creates hears of it once.
    let watch = app.spawn_watch(
        json!([{ "namespace": "staging", "group": "web", "data_id": "app.yaml", "md5": "" }]),
        10_000,
    );
    let r = import(&app, "staging", "abort", zip.clone()).await;
    assert_eq!(r.status(), StatusCode::OK);
    let answer: Value = r.json().await.unwrap();
    // port: 80\n, url=x\n, 0 * * * *
    let bytes = 9 + 6 + 9;
    assert_eq!(
        answer,
        json!({ "imported": 3, "bytes": bytes, "unchanged": 0, "skipped": [], "refused": [], "grays": 0, "history": 0 })
    );
    let (status, changed, _) = watch.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(changed["changed"].as_array().unwrap().len(), 1, "{changed}");
    let (_, copied) = app
        .get_json("/api/v1/configs/staging/web/app.yaml?view=json")
        .await;
    assert_eq!(copied["content"], "port: 80\n");
    assert_eq!(copied["format"], "yaml");
    assert_eq!(copied["description"], "the web app");
    assert_eq!(copied["tags"], json!(["web", "edge"]));

    // Again, as it is: nothing is written, whatever the policy, so an import repeats.
    for policy in ["abort", "skip", "overwrite"] {
        let r = import(&app, "staging", policy, zip.clone()).await;
        let answer: Value = r.json().await.unwrap();
        assert_eq!(
            (&answer["imported"], &answer["unchanged"]),
            (&json!(0), &json!(3)),
            "{policy}"
        );
    }
    let (_, same) = app
        .get_json("/api/v1/configs/staging/web/app.yaml?view=json")
        .await;
    assert_eq!(same["revision"], copied["revision"], "not published again");

    // Changed since: abort names it and changes nothing; skip leaves it; overwrite
    // writes the zip's content back.
    app.publish_ok("staging/web/app.yaml", "port: 81\n").await;
    let r = import(&app, "staging", "abort", zip.clone()).await;
    let message = expect_error(r, StatusCode::BAD_REQUEST, "invalid_argument").await;
    assert!(
        message.contains("staging/web/app.yaml: exists (policy abort)"),
        "{message}"
    );
    let r = import(&app, "staging", "skip", zip.clone()).await;
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["imported"], 0);
    assert_eq!(answer["skipped"], json!(["staging/web/app.yaml"]));
    assert_eq!(answer["unchanged"], 2);
    let (_, changed) = app
        .get_json("/api/v1/configs/staging/web/app.yaml?view=json")
        .await;
    let r = import(&app, "staging", "overwrite", zip).await;
    assert_eq!(r.json::<Value>().await.unwrap()["imported"], 1);
    let (_, again) = app
        .get_json("/api/v1/configs/staging/web/app.yaml?view=json")
        .await;
    assert_eq!(again["content"], "port: 80\n");
    assert!(again["revision"].as_i64().unwrap() > changed["revision"].as_i64().unwrap());
    let r = import(&app, "staging", "sometimes", Vec::new()).await;
    let message = expect_error(r, StatusCode::BAD_REQUEST, "invalid_argument").await;
    assert!(message.contains("abort, skip, overwrite"), "{message}");
    app.stop().await;
}

#[tokio::test]
async fn a_bad_zip_imports_nothing_and_names_each_problem() {
    let app = TestApp::spawn().await;
    create_namespace(&app, "staging").await;
    // Entries the zip itself makes unusable.
    let zip = zip_of(&[
        ("g/ok.txt", "fine"),
        ("../../etc/passwd", "x"),
        ("no-group", "x"),
    ]);
    let r = import(&app, "staging", "abort", zip).await;
    let message = expect_error(r, StatusCode::BAD_REQUEST, "invalid_import").await;
    assert!(
        message.contains("../../etc/passwd") && message.contains("no-group: is not group/dataId"),
        "{message}"
    );
    // Content that does not parse as its format.
    let zip = zip_of(&[("g/ok.txt", "fine"), ("g/bad.yaml", "a: [")]);
    let r = import(&app, "staging", "abort", zip).await;
    let message = expect_error(r, StatusCode::BAD_REQUEST, "invalid_argument").await;
    assert!(message.contains("staging/g/bad.yaml"), "{message}");
    assert!(!message.contains("ok.txt"), "{message}");
    assert_eq!(count(&app, "staging").await, 0, "nothing half-imported");
    // Asked to, an import leaves out what it cannot take, and says what and why.
    let zip = zip_of(&[
        ("g/ok.txt", "fine"),
        ("no-group", "x"),
        ("g/bad.yaml", "a: ["),
    ]);
    let r = import(&app, "staging", "abort&skip_invalid=true", zip).await;
    assert_eq!(r.status(), StatusCode::OK);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["imported"], 1, "{answer}");
    let refused = answer["refused"].as_array().unwrap();
    assert_eq!(refused.len(), 2, "{answer}");
    assert_eq!(refused[0]["item"], "no-group");
    assert_eq!(refused[1]["item"], "staging/g/bad.yaml");
    assert!(
        refused[1]["reason"].as_str().unwrap().contains("yaml"),
        "{answer}"
    );
    assert_eq!(count(&app, "staging").await, 1);
    // A zip that cannot be read at all is refused even so.
    let r = import(
        &app,
        "staging",
        "abort&skip_invalid=true",
        b"PK junk".to_vec(),
    )
    .await;
    expect_error(r, StatusCode::BAD_REQUEST, "invalid_import").await;
    let r = import(&app, "staging", "abort", b"not a zip".to_vec()).await;
    expect_error(r, StatusCode::BAD_REQUEST, "invalid_import").await;
    // An unknown namespace is said so.
    let r = import(&app, "nowhere", "abort", zip_of(&[("g/a.txt", "a")])).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    app.stop().await;
}

#[tokio::test]
async fn an_import_needs_write_access_to_every_config_it_holds() {
    let app = TestApp::spawn().await;
    create_namespace(&app, "staging").await;
    let r = app
        .request(Method::POST, "/api/v1/users")
        .json(&json!({ "username": "rita", "password": "rita-password-1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    // She may read staging, not write it.
    let r = app
        .request(Method::PUT, "/api/v1/grants")
        .json(&json!({ "user": "rita", "namespace": "staging", "level": "read" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let rita = app.login("rita", "rita-password-1").await;
    let r = app
        .http
        .post(format!("{}/api/v1/namespaces/staging/import", app.base))
        .bearer_auth(&rita)
        .body(zip_of(&[("g/a.txt", "a")]))
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::FORBIDDEN, "forbidden").await;
    assert_eq!(count(&app, "staging").await, 0);
    app.stop().await;
}

#[tokio::test]
async fn nacos_routes_export_and_import() {
    let app = TestApp::spawn().await;
    app.publish_ok("public/DEFAULT_GROUP/a.yaml", "a: 1\n")
        .await;
    create_namespace(&app, "copy").await;
    let r = app
        .http
        .get(format!(
            "{}/nacos/v1/cs/configs?exportV2=true&tenant=&accessToken={}",
            app.base, app.token
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let zip = r.bytes().await.unwrap().to_vec();
    let items = cairn_server::transfer::read_zip(&zip).unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].format, Some(cairn_core::Format::Yaml));

    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(zip).file_name("export.zip"),
    );
    let r = app
        .http
        .post(format!(
            "{}/nacos/v1/cs/configs?import=true&namespace=copy&policy=OVERWRITE&accessToken={}",
            app.base, app.token
        ))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["code"], 200, "{answer}");
    assert_eq!(answer["data"]["succCount"], 1, "{answer}");
    let (status, copied) = app
        .get_json("/api/v1/configs/copy/DEFAULT_GROUP/a.yaml?view=json")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(copied["content"], "a: 1\n");
    // An ordinary form publish on the same route is untouched.
    let r = app
        .http
        .post(format!("{}/nacos/v1/cs/configs", app.base))
        .form(&[
            ("dataId", "b.txt"),
            ("group", "DEFAULT_GROUP"),
            ("content", "b"),
            ("accessToken", app.token.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "true");
    app.stop().await;
}

#[tokio::test]
async fn a_clone_copies_only_what_its_author_may_read() {
    let app = TestApp::spawn().await;
    app.publish_ok("public/web/app.yaml", "port: 80\n").await;
    app.publish_ok("public/secret/keys.txt", "k").await;
    create_namespace(&app, "staging").await;
    let r = app
        .request(Method::POST, "/api/v1/users")
        .json(&json!({ "username": "cleo", "password": "cleo-password-1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    for grant in [
        json!({ "user": "cleo", "namespace": "public", "group": "web", "level": "read" }),
        json!({ "user": "cleo", "namespace": "staging", "level": "write" }),
    ] {
        let r = app
            .request(Method::PUT, "/api/v1/grants")
            .json(&grant)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT, "{grant}");
    }
    let cleo = app.login("cleo", "cleo-password-1").await;
    let r = app
        .http
        .post(format!("{}/api/v1/namespaces/staging/clone", app.base))
        .bearer_auth(&cleo)
        .json(&json!({ "from": "public", "to_group": "web-copy" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["imported"], 1);
    let (status, copied) = app
        .get_json("/api/v1/configs/staging/web-copy/app.yaml?view=json")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(copied["content"], "port: 80\n");
    assert_eq!(count(&app, "staging").await, 1, "nothing she may not read");
    app.stop().await;
}

#[tokio::test]
async fn cairns_own_format_carries_gray_releases_and_repeats_cleanly() {
    let app = TestApp::spawn().await;
    let r = app
        .publish(
            "public/web/app.yaml",
            json!({ "content": "color: blue\n", "description": "colors", "tags": ["ui"] }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .request(Method::PUT, "/api/v1/configs/public/web/app.yaml/gray")
        .json(
            &json!({ "content": "color: green\n", "labels": ["canary=true"], "ips": ["10.1.1.1"] }),
        )
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    app.publish_ok("public/web/plain.txt", "hello").await;

    let r = app
        .request(Method::GET, "/api/v1/namespaces/public/export?format=cairn")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/x-ndjson");
    let file = r.bytes().await.unwrap().to_vec();
    let text = String::from_utf8(file.clone()).unwrap();
    assert_eq!(text.lines().count(), 3, "a header and two configs: {text}");

    create_namespace(&app, "restore").await;
    let r = import(&app, "restore", "abort", file.clone()).await;
    assert_eq!(r.status(), StatusCode::OK);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(
        (&answer["imported"], &answer["grays"]),
        (&json!(2), &json!(1)),
        "{answer}"
    );
    let (_, copied) = app
        .get_json("/api/v1/configs/restore/web/app.yaml?view=json")
        .await;
    assert_eq!(copied["content"], "color: blue\n");
    assert_eq!(copied["description"], "colors");
    assert_eq!(copied["tags"], json!(["ui"]));
    let (status, gray) = app
        .get_json("/api/v1/configs/restore/web/app.yaml/gray")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(gray["content"], "color: green\n");
    assert_eq!(gray["ips"], json!(["10.1.1.1"]));
    assert_eq!(gray["labels"], json!(["canary=true"]));

    // Again: nothing to do.
    let r = import(&app, "restore", "abort", file.clone()).await;
    let answer: Value = r.json().await.unwrap();
    assert_eq!(
        (&answer["imported"], &answer["unchanged"], &answer["grays"]),
        (&json!(0), &json!(2), &json!(0)),
        "{answer}"
    );
    // A line changed by hand is caught by its md5, and nothing lands.
    create_namespace(&app, "tampered").await;
    let tampered = text.replace("\"content\":\"hello\"", "\"content\":\"hellO\"");
    let r = import(&app, "tampered", "abort", tampered.into_bytes()).await;
    let message = expect_error(r, StatusCode::BAD_REQUEST, "invalid_import").await;
    assert!(
        message.contains("web/plain.txt") && message.contains("md5"),
        "{message}"
    );
    assert_eq!(count(&app, "tampered").await, 0);
    app.stop().await;
}

#[tokio::test]
async fn an_export_with_history_carries_each_configs_versions_to_another_installation() {
    let source = TestApp::spawn().await;
    for (content, comment, sensitive) in [
        ("port: 80\n", "first", false),
        ("port: 81\npassword: Hunter2\n", "with a secret", true),
        ("port: 82\n", "secret moved out", false),
    ] {
        let body = json!({ "content": content, "comment": comment, "sensitive": sensitive });
        let r = source.publish("public/web/app.yaml", body).await;
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    }
    source.publish_ok("public/web/once.txt", "hello").await;

    let export = |path: &'static str| source.request(Method::GET, path).send();
    // Only Cairn's format carries history: asking for it chooses that format, and
    // asking for it in Nacos's is refused.
    let r = export("/api/v1/namespaces/public/export?format=nacos&history=true")
        .await
        .unwrap();
    let message = expect_error(r, StatusCode::BAD_REQUEST, "invalid_argument").await;
    assert!(message.contains("format=cairn"), "{message}");
    let r = export("/api/v1/namespaces/public/export?history=true")
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(String::from_utf8(r.bytes().await.unwrap().to_vec())
        .unwrap()
        .starts_with("{\"cairn_export\""));
    let r = export("/api/v1/namespaces/public/export?format=cairn&history=true")
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let file = r.bytes().await.unwrap().to_vec();
    let text = String::from_utf8(file.clone()).unwrap();
    assert!(
        text.contains("Hunter2"),
        "an admin's export keeps every version"
    );
    // Without history, as before.
    let plain = export("/api/v1/namespaces/public/export?format=cairn")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!plain.contains("\"history\""), "{plain}");
    // A reader without read-secret gets the versions written while not sensitive.
    let reader = source
        .user_with_grant("rita", "rita-password-1", "public", "read")
        .await;
    let theirs = source
        .http
        .get(format!(
            "{}/api/v1/namespaces/public/export?format=cairn&history=true",
            source.base
        ))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        theirs.contains("port: 80") && !theirs.contains("Hunter2"),
        "{theirs}"
    );

    let target = TestApp::spawn().await;
    let r = import(&target, "public", "abort", file.clone()).await;
    assert_eq!(r.status(), StatusCode::OK);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(
        (&answer["imported"], &answer["history"]),
        (&json!(2), &json!(4)),
        "{answer}"
    );
    let (status, history) = target
        .get_json("/api/v1/configs/public/web/app.yaml/history")
        .await;
    assert_eq!(status, StatusCode::OK);
    let items = history["items"].as_array().unwrap();
    let comments: Vec<&str> = items
        .iter()
        .map(|h| h["comment"].as_str().unwrap())
        .collect();
    assert_eq!(
        comments,
        ["import", "secret moved out", "with a secret", "first"]
    );
    assert_eq!(
        items[1]["content"],
        Value::Null,
        "a listing leaves contents out"
    );
    assert_eq!(items[3]["operator"], "admin");
    let oldest = items[3]["revision"].as_i64().unwrap();
    let (status, entry) = target
        .get_json(&format!(
            "/api/v1/configs/public/web/app.yaml/history/{oldest}"
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(entry["content"], "port: 80\n");
    // The version written while sensitive stays behind read-secret where it lands.
    let secret = items[2]["revision"].as_i64().unwrap();
    let rita = target
        .user_with_grant("rita", "rita-password-1", "public", "read")
        .await;
    let r = target
        .http
        .get(format!(
            "{}/api/v1/configs/public/web/app.yaml/history/{secret}",
            target.base
        ))
        .bearer_auth(&rita)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // An imported version can be rolled back to.
    let r = target
        .request(Method::POST, "/api/v1/configs/public/web/app.yaml/rollback")
        .json(&json!({ "revision": oldest }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (_, now) = target
        .get_json("/api/v1/configs/public/web/app.yaml?view=json")
        .await;
    assert_eq!(now["content"], "port: 80\n");

    // Configs that exist keep their own history: an overwrite brings none.
    let r = import(&target, "public", "overwrite", file).await;
    let answer: Value = r.json().await.unwrap();
    assert_eq!(
        (&answer["imported"], &answer["history"]),
        (&json!(1), &json!(0)),
        "{answer}"
    );
    // A version changed by hand is caught by its md5, and nothing lands.
    let tampered = text.replace("port: 81", "port: 91");
    let r = import(&target, "public", "overwrite", tampered.into_bytes()).await;
    let message = expect_error(r, StatusCode::BAD_REQUEST, "invalid_import").await;
    assert!(message.contains("history revision"), "{message}");
    source.stop().await;
    target.stop().await;
}
