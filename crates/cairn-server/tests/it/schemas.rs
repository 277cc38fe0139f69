//! JSON Schemas attached to configs: set by a namespace's admin, checked against the
//! configs they would govern, then enforced on every write of content through every
//! surface, with refusals that name each failing location and rule.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::grpc::Client;
use crate::helpers::{expect_error, zip_of, TestApp, ADMIN_PASSWORD};

const PORT_SCHEMA: &str = r#"{
  "type": "object",
  "required": ["server"],
  "properties": {
    "server": {
      "type": "object",
      "properties": { "port": { "type": "integer", "minimum": 1, "maximum": 65535 } }
    }
  }
}"#;

async fn set_schema(app: &TestApp, path: &str, body: Value) -> reqwest::Response {
    app.request(Method::PUT, &format!("/api/v1/schemas/{path}"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn port_schema() -> Value {
    serde_json::from_str(PORT_SCHEMA).unwrap()
}

#[tokio::test]
async fn a_schema_is_checked_first_then_holds_on_every_surface() {
    let app = TestApp::spawn().await;
    app.publish_ok("public/web/app.yaml", "server:\n  port: 80\n")
        .await;
    app.publish_ok("public/web/old.yaml", "server:\n  port: 99999\n")
        .await;
    app.publish_ok("public/web/notes.txt", "port: 99999").await;

    // A config as it is now breaks it: refused with the report, unless forced.
    let r = set_schema(
        &app,
        "public/web/*.yaml",
        json!({ "schema": port_schema() }),
    )
    .await;
    let message = expect_error(r, StatusCode::CONFLICT, "schema_rejects_content").await;
    assert!(
        message.contains(
            "public/web/old.yaml: /server/port: 99999 is greater than the maximum of 65535"
        ) && !message.contains("app.yaml"),
        "{message}"
    );
    assert_eq!(app.get_json("/api/v1/schemas").await.1, json!([]));
    app.publish_ok("public/web/old.yaml", "server:\n  port: 8080\n")
        .await;
    let r = set_schema(
        &app,
        "public/web/*.yaml",
        json!({ "schema": port_schema(), "expect_version": 0, "comment": "ports are ports" }),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let view: Value = r.json().await.unwrap();
    assert_eq!(view["version"], 1);
    assert_eq!(view["schema"], port_schema());
    let (status, shown) = app.get_json("/api/v1/schemas/public/web/*.yaml").await;
    assert_eq!(
        (status, &shown["updated_by"]),
        (StatusCode::OK, &json!("admin"))
    );

    // The native API.
    let r = app
        .publish(
            "public/web/app.yaml",
            json!({ "content": "server:\n  port: 70000\n" }),
        )
        .await;
    let message = expect_error(r, StatusCode::BAD_REQUEST, "schema_violation").await;
    assert!(
        message.contains("/server/port: 70000 is greater than the maximum of 65535")
            && message.contains("schema public/web/*.yaml (version 1)"),
        "{message}"
    );
    let r = app
        .publish("public/web/new.yaml", json!({ "content": "other: 1\n" }))
        .await;
    let message = expect_error(r, StatusCode::BAD_REQUEST, "schema_violation").await;
    assert!(
        message.contains(r#"(root): "server" is a required property"#),
        "{message}"
    );
    // Forcing skips the format's parser, not the schema.
    let r = app
        .publish(
            "public/web/app.yaml",
            json!({ "content": "server: [", "force": true }),
        )
        .await;
    let message = expect_error(r, StatusCode::BAD_REQUEST, "schema_violation").await;
    assert!(message.contains("does not parse as yaml"), "{message}");
    // Text configs and other data ids are not governed.
    app.publish_ok("public/web/notes.txt", "port: 70000").await;
    app.publish_ok("public/web/app.json", r#"{"server":{"port":70000}}"#)
        .await;

    // Nacos's HTTP publish: a 400 with the same words.
    let nacos_token = app.nacos_token().await;
    let r = app
        .http
        .post(format!(
            "{}/nacos/v1/cs/configs?accessToken={nacos_token}",
            app.base
        ))
        .form(&[
            ("dataId", "app.yaml"),
            ("group", "web"),
            ("content", "server:\n  port: 0\n"),
        ])
        .send()
        .await
        .unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(
        text.contains("/server/port: 0 is less than the minimum of 1"),
        "{text}"
    );

    // Nacos's gRPC publish: errorCode 400 with the same words.
    let mut client = Client::connect(&app).await;
    client.setup().await;
    client.token = Some(app.login("admin", ADMIN_PASSWORD).await);
    let publish = json!({
        "dataId": "app.yaml", "group": "web", "tenant": "", "content": "server:\n  port: -1\n",
    });
    let (_, refused) = client.call("ConfigPublishRequest", publish).await;
    assert_eq!(refused["errorCode"], 400, "{refused}");
    let text = refused["message"].as_str().unwrap();
    assert!(
        text.contains("/server/port: -1 is less than the minimum of 1"),
        "{text}"
    );

    // A gray release, and a rollback to a revision the schema now refuses.
    let r = app
        .request(Method::PUT, "/api/v1/configs/public/web/app.yaml/gray")
        .json(&json!({ "content": "server:\n  port: 65536\n", "ips": ["10.0.0.1"] }))
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::BAD_REQUEST, "schema_violation").await;
    // A gray release started before a stricter schema is not promoted past it.
    let r = app
        .request(Method::PUT, "/api/v1/configs/public/web/app.yaml/gray")
        .json(&json!({ "content": "server:\n  port: 8443\n", "ips": ["10.0.0.1"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let stricter = json!({
        "schema": { "properties": { "server": { "properties": { "port": { "maximum": 8080 } } } } },
    });
    let r = set_schema(&app, "public/web/app.yaml", stricter).await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "the main content, port 80, passes"
    );
    let r = app
        .request(
            Method::POST,
            "/api/v1/configs/public/web/app.yaml/gray/promote",
        )
        .send()
        .await
        .unwrap();
    let message = expect_error(r, StatusCode::BAD_REQUEST, "schema_violation").await;
    assert!(
        message.contains("/server/port: 8443 is greater than the maximum of 8080")
            && message.contains("schema public/web/app.yaml (version 1)"),
        "{message}"
    );
    let r = app
        .request(Method::DELETE, "/api/v1/configs/public/web/app.yaml/gray")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let r = app
        .request(Method::DELETE, "/api/v1/schemas/public/web/app.yaml")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let (_, history) = app
        .get_json("/api/v1/configs/public/web/old.yaml/history")
        .await;
    let first = history["items"].as_array().unwrap().last().unwrap()["revision"].clone();
    let r = app
        .request(Method::POST, "/api/v1/configs/public/web/old.yaml/rollback")
        .json(&json!({ "revision": first }))
        .send()
        .await
        .unwrap();
    let message = expect_error(r, StatusCode::BAD_REQUEST, "schema_violation").await;
    assert!(message.contains("99999"), "{message}");

    // Nothing refused was stored.
    let r = app
        .request(Method::GET, "/api/v1/configs/public/web/app.yaml")
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "server:\n  port: 80\n");
    let (status, _) = app.get_json("/api/v1/configs/public/web/new.yaml").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A stale writer is refused; a change and a removal are versions, audited.
    let r = set_schema(
        &app,
        "public/web/*.yaml",
        json!({ "schema": {"type": "object"}, "expect_version": 0 }),
    )
    .await;
    expect_error(r, StatusCode::CONFLICT, "concurrent_change").await;
    let r = app
        .request(
            Method::DELETE,
            "/api/v1/schemas/public/web/*.yaml?comment=done",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    app.publish_ok("public/web/app.yaml", "server:\n  port: 70000\n")
        .await;
    let (_, versions) = app
        .get_json("/api/v1/schemas/public/web/*.yaml/history")
        .await;
    assert_eq!(versions[0]["op"], "remove");
    assert_eq!(versions[0]["comment"], "done");
    assert_eq!(versions[1]["schema"], port_schema());
    let (_, audit) = app.get_json("/api/v1/audit?action=schema").await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["target"] == "public/web/*.yaml")
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["schema.remove", "schema.set"], "{audit}");
    app.stop().await;
}

#[tokio::test]
async fn bad_schemas_and_imports_are_refused_and_secrets_stay_out_of_refusals() {
    let app = TestApp::spawn().await;
    // Not JSON, not a schema, a remote reference, a bad target.
    for (schema, code) in [
        (json!([1, 2]), "invalid_schema"),
        (json!({ "type": "integr" }), "invalid_schema"),
        (
            json!({ "$ref": "http://169.254.169.254/latest/meta-data" }),
            "invalid_schema",
        ),
    ] {
        let r = set_schema(&app, "public/g/*.json", json!({ "schema": schema })).await;
        expect_error(r, StatusCode::BAD_REQUEST, code).await;
    }
    let r = set_schema(&app, "public/g/a b", json!({ "schema": {} })).await;
    expect_error(r, StatusCode::BAD_REQUEST, "invalid_argument").await;
    let r = set_schema(&app, "nowhere/g/*", json!({ "schema": {} })).await;
    expect_error(r, StatusCode::NOT_FOUND, "namespace_not_found").await;
    let r = set_schema(&app, "public/g/*", json!({ "schema": {}, "extra": 1 })).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    let schema = json!({ "properties": { "password": { "type": "string", "minLength": 20 } } });
    let r = set_schema(&app, "public/*/*", json!({ "schema": schema })).await;
    assert_eq!(r.status(), StatusCode::OK);

    // A sensitive config's values never appear in a refusal.
    let r = app
        .publish(
            "public/db/conn.yaml",
            json!({ "content": "password: hunter2-short\n", "sensitive": true }),
        )
        .await;
    let message = expect_error(r, StatusCode::BAD_REQUEST, "schema_violation").await;
    assert!(
        message.contains("/password") && !message.contains("hunter2"),
        "{message}"
    );
    let r = app
        .publish(
            "public/db/cipher-conn.yaml",
            json!({ "content": "password: hunter2-short\n" }),
        )
        .await;
    let message = expect_error(r, StatusCode::BAD_REQUEST, "schema_violation").await;
    assert!(!message.contains("hunter2"), "{message}");

    // An import with one config that breaks the schema lands nothing and names it.
    let zip = zip_of(&[
        ("g/good.yaml", "password: a-long-enough-password-1\n"),
        ("g/bad.yaml", "password: short\n"),
    ]);
    let r = app
        .request(
            Method::POST,
            "/api/v1/namespaces/public/import?policy=abort",
        )
        .header("content-type", "application/zip")
        .body(zip)
        .send()
        .await
        .unwrap();
    let message = expect_error(r, StatusCode::BAD_REQUEST, "invalid_argument").await;
    assert!(
        message.contains("public/g/bad.yaml") && message.contains("/password"),
        "{message}"
    );
    let (status, _) = app.get_json("/api/v1/configs/public/g/good.yaml").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Only the namespace's admins attach schemas; readers see them.
    let token = app
        .user_with_grant("dev", "dev-password-123", "public", "write")
        .await;
    let r = app
        .http
        .delete(format!("{}/api/v1/schemas/public/*/*", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::FORBIDDEN, "forbidden").await;
    let r = app
        .http
        .get(format!("{}/api/v1/schemas?namespace=public", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let listed: Value = r.json().await.unwrap();
    assert_eq!(listed[0]["data_id"], "*", "{listed}");
    app.stop().await;
}
