//! Nacos's gRPC protocol, driven by a raw tonic client: what the SDKs send and also what
//! they never do (requests before setup, unknown types, garbage, unacknowledged pushes).

use std::time::Duration;

use cairn_server::api::grpc::proto::{Metadata, Payload};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;
use tonic_prost::ProstCodec;

use crate::helpers::{settings, TestApp, TestCa, ADMIN_PASSWORD};

/// One client connection: its channel (one HTTP/2 transport) and, once set up, its
/// stream both ways.
pub(crate) struct Client {
    channel: Channel,
    to_server: Option<mpsc::Sender<Payload>>,
    from_server: Option<tonic::Streaming<Payload>>,
    pub(crate) token: Option<String>,
}

fn payload(kind: &str, body: Value, token: Option<&str>) -> Payload {
    let mut payload = Payload::json(kind, &body);
    let metadata = payload.metadata.get_or_insert_with(Metadata::default);
    metadata.client_ip = "127.0.0.1".into();
    if let Some(token) = token {
        metadata.headers.insert("accessToken".into(), token.into());
    }
    payload
}

fn body(payload: &Payload) -> Value {
    serde_json::from_slice(payload.body()).expect("a JSON body")
}

impl Client {
    pub(crate) async fn connect(app: &TestApp) -> Client {
        let channel = Channel::from_shared(format!("http://{}", app.grpc.expect("gRPC is on")))
            .unwrap()
            .connect()
            .await
            .unwrap();
        Client::over(channel)
    }

    fn over(channel: Channel) -> Client {
        Client {
            channel,
            to_server: None,
            from_server: None,
            token: None,
        }
    }

    /// A client that set up its stream and logged in, as SDKs do.
    async fn ready(app: &TestApp) -> Client {
        let mut client = Client::connect(app).await;
        client.setup().await;
        client.token = Some(app.login("admin", ADMIN_PASSWORD).await);
        client
    }

    async fn send_raw(&self, payload: Payload) -> Result<Payload, tonic::Status> {
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        grpc.ready().await.unwrap();
        grpc.unary(
            tonic::Request::new(payload),
            PathAndQuery::from_static("/Request/request"),
            ProstCodec::<Payload, Payload>::default(),
        )
        .await
        .map(tonic::Response::into_inner)
    }

    /// A unary request; returns the answer's type and body.
    pub(crate) async fn call(&self, kind: &str, request: Value) -> (String, Value) {
        let answer = self
            .send_raw(payload(kind, request, self.token.as_deref()))
            .await
            .expect("a unary answer");
        (answer.kind().to_owned(), body(&answer))
    }

    /// Opens the stream and sends `ConnectionSetupRequest`; returns once the node has
    /// registered the connection (a health check passes).
    pub(crate) async fn setup(&mut self) {
        let (tx, rx) = mpsc::channel(16);
        tx.send(payload(
            "ConnectionSetupRequest",
            json!({ "clientVersion": "raw-test", "tenant": "", "labels": { "AppName": "it" } }),
            None,
        ))
        .await
        .unwrap();
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        grpc.ready().await.unwrap();
        let inbound = grpc
            .streaming(
                tonic::Request::new(ReceiverStream::new(rx)),
                PathAndQuery::from_static("/BiRequestStream/requestBiStream"),
                ProstCodec::<Payload, Payload>::default(),
            )
            .await
            .unwrap()
            .into_inner();
        self.to_server = Some(tx);
        self.from_server = Some(inbound);
        for _ in 0..100 {
            let (kind, _) = self.call("HealthCheckRequest", json!({})).await;
            if kind == "HealthCheckResponse" {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the connection never registered");
    }

    /// The next request the node pushes, within `wait`.
    async fn pushed(&mut self, wait: Duration) -> Option<Payload> {
        let inbound = self.from_server.as_mut().expect("set up");
        match tokio::time::timeout(wait, inbound.message()).await {
            Ok(Ok(Some(p))) => Some(p),
            _ => None,
        }
    }

    async fn ack(&self, push: &Payload) {
        let id = body(push)["requestId"].as_str().unwrap().to_owned();
        let answer = payload(
            "ConfigChangeNotifyResponse",
            json!({ "resultCode": 200, "errorCode": 0, "requestId": id }),
            None,
        );
        self.to_server.as_ref().unwrap().send(answer).await.unwrap();
    }
}

fn listen(data_id: &str, md5: &str) -> Value {
    json!({
        "listen": true,
        "configListenContexts": [{ "dataId": data_id, "group": "g", "tenant": "", "md5": md5 }],
    })
}

#[tokio::test]
async fn every_failure_is_a_nacos_answer_on_a_live_connection() {
    let app = TestApp::spawn().await;
    let mut client = Client::connect(&app).await;

    // Before setup: the server check answers with the connection's id; anything else
    // is 301, which clients answer by reconnecting.
    let (kind, check) = client.call("ServerCheckRequest", json!({})).await;
    assert_eq!(kind, "ServerCheckResponse");
    assert_eq!(check["resultCode"], 200);
    let id = check["connectionId"].as_str().unwrap().to_owned();
    assert!(id.contains("_127.0.0.1_"), "{id}");
    let (answer, error) = client
        .call("ConfigQueryRequest", json!({ "dataId": "d", "group": "g" }))
        .await;
    assert_eq!(
        (answer.as_str(), &error["errorCode"]),
        ("ErrorResponse", &json!(301))
    );
    // A health check must fail outright: clients read a 3xx there as healthy.
    let (answer, error) = client.call("HealthCheckRequest", json!({})).await;
    assert_eq!(
        (answer.as_str(), &error["errorCode"]),
        ("ErrorResponse", &json!(500))
    );
    // Unknown types, and service discovery, which Cairn does not serve: 302 and why.
    let (kind, error) = client.call("NoSuchRequest", json!({})).await;
    assert_eq!(
        (kind.as_str(), &error["errorCode"]),
        ("ErrorResponse", &json!(302))
    );
    let (_, error) = client.call("InstanceRequest", json!({})).await;
    assert_eq!(error["errorCode"], 302);
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("service discovery"),
        "{error}"
    );

    client.setup().await;
    let (_, again) = client.call("ServerCheckRequest", json!({})).await;
    assert_eq!(again["connectionId"], id.as_str(), "one id per transport");
    // Garbage: not JSON, or not an object.
    let mut garbage = payload("ConfigQueryRequest", json!({}), None);
    garbage.body.as_mut().unwrap().value = b"\xff{not json".to_vec();
    let answer = client.send_raw(garbage).await.unwrap();
    assert_eq!(
        (answer.kind(), &body(&answer)["errorCode"]),
        ("ErrorResponse", &json!(502))
    );
    let (_, error) = client.call("ConfigQueryRequest", json!([1, 2])).await;
    assert_eq!(error["errorCode"], 502);
    // No token, or a forged one: 403 in the request's own answer type, with the fields
    // clients decode even from failures.
    let (kind, denied) = client
        .call("ConfigQueryRequest", json!({ "dataId": "d", "group": "g" }))
        .await;
    assert_eq!(kind, "ConfigQueryResponse");
    assert_eq!(
        (&denied["resultCode"], &denied["errorCode"]),
        (&json!(500), &json!(403))
    );
    assert_eq!(
        (&denied["lastModified"], &denied["beta"]),
        (&json!(0), &json!(false))
    );
    client.token = Some("forged".into());
    let (kind, denied) = client
        .call(
            "ConfigPublishRequest",
            json!({ "dataId": "d", "group": "g", "content": "x" }),
        )
        .await;
    assert_eq!(
        (kind.as_str(), &denied["errorCode"]),
        ("ConfigPublishResponse", &json!(403))
    );

    // The connection still works after all of that.
    client.token = Some(app.login("admin", ADMIN_PASSWORD).await);
    let (_, missing) = client
        .call(
            "ConfigQueryRequest",
            json!({ "dataId": "d", "group": "g", "tenant": "" }),
        )
        .await;
    assert_eq!(missing["errorCode"], 300, "{missing}");
    // A bad name is the client's mistake, said as such.
    let (_, bad) = client
        .call(
            "ConfigPublishRequest",
            json!({ "dataId": "../x", "group": "g", "content": "x" }),
        )
        .await;
    assert_eq!(bad["errorCode"], 400, "{bad}");
    assert!(bad["message"].as_str().unwrap().contains("dataId"), "{bad}");

    // Over a namespace's quota: a client's mistake, said as such (not a 403, which
    // Nacos clients answer by logging in again).
    let r = app
        .request(reqwest::Method::PUT, "/api/v1/namespaces/public")
        .json(&json!({ "max_configs": 0 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    let r = app
        .request(reqwest::Method::PUT, "/api/v1/namespaces/public")
        .json(&json!({ "max_total_bytes": 1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    let (_, over) = client
        .call(
            "ConfigPublishRequest",
            json!({ "dataId": "big", "group": "g", "content": "xx" }),
        )
        .await;
    assert_eq!(over["errorCode"], 400, "{over}");
    assert!(
        over["message"]
            .as_str()
            .unwrap()
            .contains("max_total_bytes is 1"),
        "{over}"
    );

    // Where review is required: refused, saying so (again not a 403).
    let r = app
        .request(reqwest::Method::PUT, "/api/v1/namespaces/public")
        .json(&json!({ "require_review": true, "max_total_bytes": null }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    let (_, reviewed) = client
        .call(
            "ConfigPublishRequest",
            json!({ "dataId": "big", "group": "g", "content": "xx" }),
        )
        .await;
    assert_eq!(reviewed["errorCode"], 400, "{reviewed}");
    assert!(
        reviewed["message"]
            .as_str()
            .unwrap()
            .contains("requires review"),
        "{reviewed}"
    );
}

#[tokio::test]
async fn config_requests_go_through_the_one_service() {
    let app = TestApp::spawn().await;
    let client = Client::ready(&app).await;
    let publish = |content: &str, addition: Value| {
        json!({ "dataId": "app.yaml", "group": "g", "tenant": "", "content": content,
                "additionMap": addition })
    };
    let (kind, done) = client
        .call(
            "ConfigPublishRequest",
            publish("a: 1", json!({ "type": "yaml", "desc": "the app", "config_tags": "x,y", "encryptedDataKey": "" })),
        )
        .await;
    assert_eq!(
        (kind.as_str(), &done["resultCode"]),
        ("ConfigPublishResponse", &json!(200)),
        "{done}"
    );
    // What the native API sees is what gRPC wrote.
    let (status, config) = app
        .get_json("/api/v1/configs/public/g/app.yaml?view=json")
        .await;
    assert_eq!(config["format"], "yaml", "{config} {status}");
    assert_eq!(config["description"], "the app");
    assert_eq!(config["tags"], json!(["x", "y"]));
    // Validation as over HTTP: YAML typed content must parse.
    let (_, refused) = client
        .call(
            "ConfigPublishRequest",
            publish("a: [", json!({ "type": "yaml" })),
        )
        .await;
    assert_eq!(refused["errorCode"], 400, "{refused}");

    let (kind, read) = client
        .call(
            "ConfigQueryRequest",
            json!({ "dataId": "app.yaml", "group": "g", "tenant": "" }),
        )
        .await;
    assert_eq!(kind, "ConfigQueryResponse");
    assert_eq!(
        (&read["content"], &read["contentType"]),
        (&json!("a: 1"), &json!("yaml"))
    );
    let md5 = read["md5"].as_str().unwrap().to_owned();

    // Compare-and-set: over the current md5 it lands, over a stale one it is refused.
    let mut cas = publish("a: 2", json!({ "type": "yaml" }));
    cas["casMd5"] = json!(md5);
    let (_, done) = client.call("ConfigPublishRequest", cas.clone()).await;
    assert_eq!(done["resultCode"], 200, "{done}");
    let (_, conflict) = client.call("ConfigPublishRequest", cas).await;
    assert_eq!(conflict["errorCode"], 409, "{conflict}");
    assert!(conflict["message"]
        .as_str()
        .unwrap()
        .contains("Cas publish fail"));

    // A beta release to this client's IP is what it reads; the main content is not.
    let (_, done) = client
        .call(
            "ConfigPublishRequest",
            publish("a: beta", json!({ "betaIps": "127.0.0.1" })),
        )
        .await;
    assert_eq!(done["resultCode"], 200, "{done}");
    let (_, read) = client
        .call(
            "ConfigQueryRequest",
            json!({ "dataId": "app.yaml", "group": "g" }),
        )
        .await;
    assert_eq!(
        (&read["content"], &read["beta"]),
        (&json!("a: beta"), &json!(true))
    );

    let (kind, removed) = client
        .call(
            "ConfigRemoveRequest",
            json!({ "dataId": "app.yaml", "group": "g" }),
        )
        .await;
    assert_eq!(
        (kind.as_str(), &removed["resultCode"]),
        ("ConfigRemoveResponse", &json!(200))
    );
    let (_, gone) = client
        .call(
            "ConfigQueryRequest",
            json!({ "dataId": "app.yaml", "group": "g" }),
        )
        .await;
    assert_eq!(gone["errorCode"], 300);

    // Nulls count as absent, as Nacos's own decoder reads them.
    let (_, listened) = client
        .call(
            "ConfigBatchListenRequest",
            json!({ "listen": null, "configListenContexts": null, "tenant": null }),
        )
        .await;
    assert_eq!(
        (&listened["resultCode"], &listened["changedConfigs"]),
        (&json!(200), &json!([]))
    );
}

#[tokio::test]
async fn listeners_hear_of_changes_by_push_until_they_acknowledge() {
    let app = TestApp::spawn().await;
    let mut client = Client::ready(&app).await;
    app.publish_ok("public/g/held", "one").await;

    // Listening with a stale md5 answers with what already differs; with none for a
    // config that does not exist, nothing.
    let (kind, listened) = client
        .call("ConfigBatchListenRequest", listen("held", "stale"))
        .await;
    assert_eq!(kind, "ConfigChangeBatchListenResponse");
    assert_eq!(
        listened["changedConfigs"],
        json!([{ "dataId": "held", "group": "g", "tenant": "" }])
    );
    let (_, listened) = client
        .call("ConfigBatchListenRequest", listen("later", ""))
        .await;
    assert_eq!(listened["changedConfigs"], json!([]));
    let metrics = app.metrics().await;
    for line in ["cairn_grpc_connections 1", "cairn_grpc_listens 2"] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
    // The connection is listed among the config's listeners. It said it held a stale
    // md5, so it was pushed the change: the node counts it as holding the current one.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, answer) = app
            .get_json("/api/v1/configs/public/g/held/listeners")
            .await;
        let listeners = &answer["listeners"];
        if listeners[0]["protocol"] == "nacos-grpc" {
            assert_eq!(listeners[0]["client_ip"], "127.0.0.1");
            assert_eq!(listeners[0]["md5"], cairn_core::md5::md5_hex("one"));
            assert_eq!(listeners[0]["current"], true);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{listeners}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A publish through another surface is pushed to the listener.
    app.publish_ok("public/g/later", "now").await;
    let push = client.pushed(Duration::from_secs(5)).await.expect("a push");
    assert_eq!(push.kind(), "ConfigChangeNotifyRequest");
    let pushed = body(&push);
    assert_eq!(
        (&pushed["dataId"], &pushed["group"]),
        (&json!("later"), &json!("g"))
    );
    assert_eq!(
        pushed["headers"],
        json!({}),
        "clients need the headers object"
    );

    // Unacknowledged, it comes again (3 s wait, then 2 s), with a new id.
    let again = client
        .pushed(Duration::from_secs(8))
        .await
        .expect("a retry");
    assert_eq!(body(&again)["dataId"], "later");
    assert_ne!(body(&again)["requestId"], pushed["requestId"]);
    client.ack(&again).await;
    assert!(
        client.pushed(Duration::from_secs(6)).await.is_none(),
        "an acknowledged change is not pushed again"
    );

    // Not listening any more: no push.
    let mut stop = listen("later", "");
    stop["listen"] = json!(false);
    client.call("ConfigBatchListenRequest", stop).await;
    app.publish_ok("public/g/later", "again").await;
    assert!(client.pushed(Duration::from_millis(500)).await.is_none());
}

#[tokio::test]
async fn limits_are_refused_with_the_reason() {
    let app = TestApp::spawn_with(|s| {
        s.grpc_max_connections = 1;
        s.grpc_max_listens = 2;
    })
    .await;
    let first = Client::ready(&app).await;
    let (_, refused) = first
        .call(
            "ConfigBatchListenRequest",
            json!({ "listen": true, "configListenContexts": [
                { "dataId": "a", "group": "g", "md5": "" },
                { "dataId": "b", "group": "g", "md5": "" },
                { "dataId": "c", "group": "g", "md5": "" },
            ]}),
        )
        .await;
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("grpc_max_listens"),
        "{refused}"
    );

    // A second connection past the limit: its stream ends with the reason, and its
    // requests stay unregistered (so the client tries elsewhere), not hung.
    let mut second = Client::connect(&app).await;
    let (tx, rx) = mpsc::channel(1);
    tx.send(payload("ConnectionSetupRequest", json!({}), None))
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(second.channel.clone());
    grpc.ready().await.unwrap();
    let mut inbound = grpc
        .streaming(
            tonic::Request::new(ReceiverStream::new(rx)),
            PathAndQuery::from_static("/BiRequestStream/requestBiStream"),
            ProstCodec::<Payload, Payload>::default(),
        )
        .await
        .unwrap()
        .into_inner();
    let status = tokio::time::timeout(Duration::from_secs(5), inbound.message())
        .await
        .expect("answered in time")
        .expect_err("refused");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    assert!(
        status.message().contains("grpc_max_connections"),
        "{status:?}"
    );
    second.token = first.token.clone();
    let (_, error) = second
        .call("ConfigQueryRequest", json!({ "dataId": "d", "group": "g" }))
        .await;
    assert_eq!(error["errorCode"], 301);
}

#[tokio::test]
async fn clients_are_asked_to_move_at_shutdown() {
    let app = TestApp::spawn().await;
    let mut client = Client::ready(&app).await;
    app.shutdown.cancel();
    let push = client
        .pushed(Duration::from_secs(5))
        .await
        .expect("a reset");
    assert_eq!(push.kind(), "ConnectResetRequest");
}

#[tokio::test]
async fn a_missing_grant_is_errorcode_403() {
    let app = TestApp::spawn().await;
    for ns in ["dev", "prod"] {
        let r = app
            .request(reqwest::Method::POST, "/api/v1/namespaces")
            .json(&json!({ "name": ns }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), reqwest::StatusCode::CREATED);
    }
    app.publish_ok("dev/g/a.yaml", "a: 1").await;
    app.publish_ok("prod/g/b.yaml", "b: 1").await;
    let r = app
        .request(reqwest::Method::POST, "/api/v1/users")
        .json(&json!({ "username": "reader", "password": "reader-password-1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::CREATED);
    let r = app
        .request(reqwest::Method::PUT, "/api/v1/grants")
        .json(&json!({ "user": "reader", "namespace": "dev", "level": "read" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::NO_CONTENT);
    let mut client = Client::connect(&app).await;
    client.setup().await;
    client.token = Some(app.login("reader", "reader-password-1").await);

    let query =
        |tenant: &str, data_id: &str| json!({ "dataId": data_id, "group": "g", "tenant": tenant });
    let (_, read) = client
        .call("ConfigQueryRequest", query("dev", "a.yaml"))
        .await;
    assert_eq!(read["content"], "a: 1", "{read}");
    let (kind, refused) = client
        .call("ConfigQueryRequest", query("prod", "b.yaml"))
        .await;
    assert_eq!(kind, "ConfigQueryResponse");
    assert_eq!(refused["errorCode"], 403, "{refused}");
    let mut publish = query("dev", "a.yaml");
    publish["content"] = json!("a: 2");
    let (_, refused) = client.call("ConfigPublishRequest", publish).await;
    assert_eq!(refused["errorCode"], 403, "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("reader may not change"),
        "{refused}"
    );
    let listen_prod = json!({
        "listen": true,
        "configListenContexts": [{ "dataId": "b.yaml", "group": "g", "tenant": "prod", "md5": "" }],
    });
    let (_, refused) = client.call("ConfigBatchListenRequest", listen_prod).await;
    assert_eq!(
        refused["errorCode"], 403,
        "a listen of prod is refused: {refused}"
    );
    app.stop().await;
}

#[tokio::test]
async fn grpc_is_served_over_tls_on_its_port() {
    let ca = TestCa::new("test CA");
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = ca.issue(dir.path(), "node", &["localhost", "127.0.0.1"]);
    let mut s = settings(dir.path());
    (s.tls_cert, s.tls_key) = (Some(cert), Some(key));
    let app = TestApp::start_with_client(dir, s, ca.client().build().unwrap()).await;
    let addr = app.grpc.expect("gRPC is on");
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(&ca.pem))
        .domain_name("localhost");
    let channel = Channel::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = Client::over(channel);
    client.setup().await;
    client.token = Some(app.token.clone());
    let (_, done) = client
        .call(
            "ConfigPublishRequest",
            json!({ "dataId": "tls.yaml", "group": "g", "tenant": "", "content": "secure: true" }),
        )
        .await;
    assert_eq!(done["resultCode"], 200, "{done}");
    let (_, read) = client
        .call(
            "ConfigQueryRequest",
            json!({ "dataId": "tls.yaml", "group": "g", "tenant": "" }),
        )
        .await;
    assert_eq!(read["content"], "secure: true", "{read}");

    // Plain HTTP/2 to the same port gets nowhere.
    let plain = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(2));
    let refused = match plain.connect().await {
        Err(_) => true,
        Ok(channel) => Client::over(channel)
            .send_raw(payload("ServerCheckRequest", json!({}), None))
            .await
            .is_err(),
    };
    assert!(refused, "a plaintext client was answered");
    app.stop().await;
}
