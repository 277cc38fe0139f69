//! The Nacos HTTP surface, against a real node: bodies, headers and statuses as Nacos
//! sends them, and the listener's edge cases.

use std::time::{Duration, Instant};

use crate::helpers::{TestApp, ADMIN_PASSWORD};
use reqwest::{header, Method, Response, StatusCode};
use serde_json::{json, Value};

struct Nacos<'a> {
    app: &'a TestApp,
    token: String,
}

impl<'a> Nacos<'a> {
    async fn login(app: &'a TestApp) -> Nacos<'a> {
        let r = app
            .http
            .post(format!(
                "{}/nacos/v1/auth/login?username=admin&password={ADMIN_PASSWORD}",
                app.base
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.headers()[header::AUTHORIZATION]
            .to_str()
            .unwrap()
            .starts_with("Bearer "));
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["tokenTtl"], 18_000);
        assert_eq!(body["globalAdmin"], true);
        assert_eq!(body["username"], "admin");
        Nacos {
            app,
            token: body["accessToken"].as_str().unwrap().to_owned(),
        }
    }

    fn url(&self, path: &str) -> String {
        let sep = if path.contains('?') { '&' } else { '?' };
        format!("{}{path}{sep}accessToken={}", self.app.base, self.token)
    }

    async fn get(&self, path: &str) -> Response {
        self.app.http.get(self.url(path)).send().await.unwrap()
    }

    async fn form(&self, method: Method, path: &str, form: &[(&str, &str)]) -> Response {
        self.app
            .http
            .request(method, self.url(path))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    async fn publish(&self, data_id: &str, content: &str, extra: &[(&str, &str)]) {
        let mut form = vec![
            ("dataId", data_id),
            ("group", "DEFAULT_GROUP"),
            ("content", content),
        ];
        form.extend_from_slice(extra);
        let r = self.form(Method::POST, "/nacos/v1/cs/configs", &form).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.text().await.unwrap(), "true");
    }

    /// A listener request; `timeout` is the `Long-Pulling-Timeout` header.
    async fn listen(&self, listening: &str, timeout: Option<&str>, no_hangup: bool) -> Response {
        let mut request = self
            .app
            .http
            .post(self.url("/nacos/v1/cs/configs/listener"))
            .form(&[("Listening-Configs", listening)]);
        if let Some(t) = timeout {
            request = request.header("Long-Pulling-Timeout", t);
        }
        if no_hangup {
            request = request.header("Long-Pulling-Timeout-No-Hangup", "true");
        }
        request.send().await.unwrap()
    }
}

fn md5(s: &str) -> String {
    cairn_core::md5::md5_hex(s)
}

async fn text(r: Response) -> (StatusCode, String) {
    let status = r.status();
    (status, r.text().await.unwrap())
}

#[tokio::test]
async fn configs_read_write_delete_like_nacos() {
    let app = TestApp::spawn().await;
    let nacos = Nacos::login(&app).await;
    nacos
        .publish(
            "app.json",
            "{\"a\": 1}",
            &[
                ("type", "json"),
                ("desc", "the app"),
                ("config_tags", "web,db"),
            ],
        )
        .await;

    let r = nacos
        .get("/nacos/v1/cs/configs?dataId=app.json&group=DEFAULT_GROUP")
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let h = r.headers().clone();
    assert_eq!(h["Content-MD5"], md5("{\"a\": 1}").as_str());
    assert_eq!(h["Config-Type"], "json");
    assert_eq!(h[header::CONTENT_TYPE], "application/json;charset=UTF-8");
    assert_eq!(h[header::CACHE_CONTROL], "no-cache,no-store");
    assert_eq!(h[header::PRAGMA], "no-cache");
    assert_eq!(h[header::EXPIRES], "Thu, 01 Jan 1970 00:00:00 GMT");
    assert!(h[header::LAST_MODIFIED].to_str().unwrap().ends_with(" GMT"));
    assert!(h.get("isBeta").is_none());
    assert_eq!(r.text().await.unwrap(), "{\"a\": 1}");
    // Stored with its metadata, visible through the native API.
    let (_, meta) = app
        .get_json("/api/v1/configs/public/DEFAULT_GROUP/app.json?view=json")
        .await;
    assert_eq!(
        (meta["description"].as_str(), meta["tags"].clone()),
        (Some("the app"), json!(["web", "db"]))
    );

    // `tenant=public` and no tenant are the same namespace; an unknown type is text.
    nacos
        .publish("plain", "x=1", &[("tenant", "public"), ("type", "ini")])
        .await;
    let r = nacos
        .get("/nacos/v1/cs/configs?dataId=plain&group=DEFAULT_GROUP")
        .await;
    assert_eq!(r.headers()["Config-Type"], "text");
    assert_eq!(
        r.headers()[header::CONTENT_TYPE],
        "text/plain;charset=UTF-8"
    );

    // A tenant that was never created is made on first publish, as Nacos allows.
    nacos
        .publish("dev.yaml", "a: 1", &[("tenant", "dev-1"), ("type", "yaml")])
        .await;
    let r = nacos
        .get("/nacos/v1/cs/configs?dataId=dev.yaml&group=DEFAULT_GROUP&tenant=dev-1")
        .await;
    assert_eq!(text(r).await, (StatusCode::OK, "a: 1".into()));

    let r = nacos
        .form(
            Method::DELETE,
            "/nacos/v1/cs/configs",
            &[("dataId", "app.json"), ("group", "DEFAULT_GROUP")],
        )
        .await;
    assert_eq!(text(r).await, (StatusCode::OK, "true".into()));
    let r = nacos
        .get("/nacos/v1/cs/configs?dataId=app.json&group=DEFAULT_GROUP")
        .await;
    assert_eq!(
        text(r).await,
        (StatusCode::NOT_FOUND, "config data not exist\n".into())
    );
    // Deleting what is not there is still `true`, as in Nacos.
    let r = nacos
        .form(
            Method::DELETE,
            "/nacos/v1/cs/configs",
            &[("dataId", "app.json"), ("group", "DEFAULT_GROUP")],
        )
        .await;
    assert_eq!(text(r).await, (StatusCode::OK, "true".into()));
}

#[tokio::test]
async fn errors_are_nacos_errors() {
    let app = TestApp::spawn().await;
    let nacos = Nacos::login(&app).await;
    let post = |form: Vec<(&'static str, String)>| {
        let form: Vec<(&str, String)> = form;
        let app = &app;
        let url = nacos.url("/nacos/v1/cs/configs");
        async move { text(app.http.post(url).form(&form).send().await.unwrap()).await }
    };
    assert_eq!(
        post(vec![("group", "g".into()), ("content", "x".into())]).await,
        (StatusCode::BAD_REQUEST, "caused: Required request parameter 'dataId' for method parameter type String is not present;".into())
    );
    assert_eq!(
        post(vec![
            ("dataId", "a b".into()),
            ("group", "g".into()),
            ("content", "x".into())
        ])
        .await,
        (
            StatusCode::BAD_REQUEST,
            "caused: invalid dataId : a b;".into()
        )
    );
    assert_eq!(
        post(vec![
            ("dataId", "a".into()),
            ("group", "g".into()),
            ("content", "x".into()),
            ("tenant", "bad/tenant".into())
        ])
        .await,
        (StatusCode::BAD_REQUEST, "caused: invalid tenant;".into())
    );
    assert_eq!(
        post(vec![
            ("dataId", "a".into()),
            ("group", "g".into()),
            ("content", "  ".into())
        ])
        .await,
        (
            StatusCode::BAD_REQUEST,
            "caused: content is blank : ;".into()
        )
    );
    assert_eq!(
        post(vec![
            ("dataId", "a".into()),
            ("group", "g".into()),
            ("content", "x".into()),
            ("desc", "d".repeat(129))
        ])
        .await,
        (
            StatusCode::BAD_REQUEST,
            "caused: too long desc, over 128;".into()
        )
    );
    assert_eq!(
        post(vec![
            ("dataId", "a".into()),
            ("group", "g".into()),
            ("content", "x".into()),
            ("config_tags", "a,b,c,d,e,f".into())
        ])
        .await,
        (
            StatusCode::BAD_REQUEST,
            "caused: too much config_tags, over 5;".into()
        )
    );
    let (status, body) = post(vec![
        ("dataId", "a.yaml".into()),
        ("group", "g".into()),
        ("content", "a: [".into()),
        ("type", "yaml".into()),
    ])
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.starts_with("caused: invalid yaml at line "), "{body}");

    // Compare-and-set through the casMd5 header.
    nacos.publish("cas", "v1", &[]).await;
    let cas = |md5: String| {
        app.http
            .post(nacos.url("/nacos/v1/cs/configs"))
            .header("casMd5", md5)
            .form(&[
                ("dataId", "cas"),
                ("group", "DEFAULT_GROUP"),
                ("content", "v2"),
            ])
            .send()
    };
    assert_eq!(
        text(cas(md5("nope")).await.unwrap()).await,
        (
            StatusCode::CONFLICT,
            "caused: Cas publish fail, server md5 may have changed.;".into()
        )
    );
    assert_eq!(
        text(cas(md5("v1")).await.unwrap()).await,
        (StatusCode::OK, "true".into())
    );

    // Without credentials: Nacos's 403.
    let r = app
        .http
        .get(format!(
            "{}/nacos/v1/cs/configs?dataId=cas&group=DEFAULT_GROUP",
            app.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (body["status"].as_i64(), body["message"].as_str()),
        (Some(403), Some("user not found!"))
    );
    assert_eq!(body["path"], "/nacos/v1/cs/configs");
    let r = app
        .http
        .get(format!(
            "{}/nacos/v1/cs/configs?dataId=cas&group=DEFAULT_GROUP&accessToken=forged",
            app.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap()["message"],
        "token invalid!"
    );
    // Credentials on the request itself work too, and a wrong password does not.
    let with = |password: &str| {
        format!("{}/nacos/v1/cs/configs?dataId=cas&group=DEFAULT_GROUP&username=admin&password={password}", app.base)
    };
    assert_eq!(
        text(app.http.get(with(ADMIN_PASSWORD)).send().await.unwrap()).await,
        (StatusCode::OK, "v2".into())
    );
    assert_eq!(
        app.http
            .get(with("wrong-password"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );
    let r = app
        .http
        .post(format!(
            "{}/nacos/v1/auth/login?username=admin&password=wrong",
            app.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        text(r).await,
        (StatusCode::FORBIDDEN, "user not found!".into())
    );
}

fn line(data_id: &str, md5: &str, tenant: Option<&str>) -> String {
    match tenant {
        Some(t) => format!("{data_id}\u{2}DEFAULT_GROUP\u{2}{md5}\u{2}{t}\u{1}"),
        None => format!("{data_id}\u{2}DEFAULT_GROUP\u{2}{md5}\u{1}"),
    }
}

fn encoded(text: &str) -> String {
    let mut out: String = form_urlencoded::byte_serialize(text.as_bytes()).collect();
    out.push('\n');
    out
}

#[tokio::test]
async fn the_listener_holds_answers_and_wakes() {
    let app = TestApp::spawn_with(|s| {
        s.watch_max_timeout_ms = cairn_server::settings::Millis::new(1_500);
        s.watch_default_timeout_ms = cairn_server::settings::Millis::new(1_500);
    })
    .await;
    let nacos = Nacos::login(&app).await;
    nacos.publish("a.properties", "k=1", &[]).await;

    // Stale md5: answered at once with the changed key, URL-encoded, plus a newline.
    let started = Instant::now();
    let r = nacos
        .listen(&line("a.properties", "stale", None), Some("30000"), false)
        .await;
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(r.headers()[header::CACHE_CONTROL], "no-cache,no-store");
    assert_eq!(
        text(r).await,
        (
            StatusCode::OK,
            encoded("a.properties\u{2}DEFAULT_GROUP\u{1}")
        )
    );

    // Current md5: held (here until the node's maximum hold), then an empty 200.
    let started = Instant::now();
    let r = nacos
        .listen(
            &line("a.properties", &md5("k=1"), None),
            Some("30000"),
            false,
        )
        .await;
    assert!(started.elapsed() >= Duration::from_millis(1_400));
    assert_eq!(text(r).await, (StatusCode::OK, String::new()));

    // No-Hangup: answered at once even though nothing changed.
    let started = Instant::now();
    let r = nacos
        .listen(
            &line("a.properties", &md5("k=1"), None),
            Some("30000"),
            true,
        )
        .await;
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(text(r).await, (StatusCode::OK, String::new()));

    // Held listeners, with a blank tenant field and with a tenant, are woken by a
    // publish through the native API: one hub for every surface.
    nacos
        .publish("t.yaml", "a: 1", &[("tenant", "team-1")])
        .await;
    let listening = format!(
        "{}{}",
        line("a.properties", &md5("k=1"), Some("")),
        line("t.yaml", &md5("a: 1"), Some("team-1"))
    );
    let held = {
        let (url, http) = (nacos.url("/nacos/v1/cs/configs/listener"), app.http.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let r = http
                .post(url)
                .header("Long-Pulling-Timeout", "30000")
                .form(&[("Listening-Configs", listening)])
                .send()
                .await
                .unwrap();
            (r.text().await.unwrap(), started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.publish_ok("team-1/DEFAULT_GROUP/t.yaml", "a: 2").await;
    let (body, waited) = held.await.unwrap();
    assert!(
        waited < Duration::from_millis(1_400),
        "woken by the publish, not the timeout"
    );
    assert_eq!(body, encoded("t.yaml\u{2}DEFAULT_GROUP\u{2}team-1\u{1}"));

    // 3,000 keys, one stale: answered at once with just that one.
    let mut many: String = (0..2_999)
        .map(|i| line(&format!("k{i}"), "", None))
        .collect();
    many.push_str(&line("a.properties", "", None));
    let started = Instant::now();
    let r = nacos.listen(&many, Some("30000"), false).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(
        text(r).await,
        (
            StatusCode::OK,
            encoded("a.properties\u{2}DEFAULT_GROUP\u{1}")
        )
    );

    // Without the timeout header: compared and answered at once.
    let r = nacos
        .listen(&line("a.properties", &md5("k=1"), None), None, false)
        .await;
    assert_eq!(text(r).await, (StatusCode::OK, String::new()));

    // Malformed or oversized lists are refused.
    for bad in [
        "",
        "no-separators",
        "a\u{2}b\u{2}c\u{2}d\u{2}e\u{1}",
        "bad id\u{2}g\u{2}\u{1}",
    ] {
        let r = nacos.listen(bad, Some("30000"), false).await;
        assert_eq!(
            text(r).await,
            (
                StatusCode::BAD_REQUEST,
                "caused: invalid probeModify;".into()
            ),
            "{bad:?}"
        );
    }
    let too_many: String = (0..10_001)
        .map(|i| line(&format!("k{i}"), "", None))
        .collect();
    let r = nacos.listen(&too_many, Some("30000"), false).await;
    let (status, message) = text(r).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        message.contains("more than 10000 configs in one listener request"),
        "{message}"
    );
    let r = nacos
        .listen(&line("a.properties", "", None), Some("soon"), false)
        .await;
    assert_eq!(
        text(r).await,
        (
            StatusCode::BAD_REQUEST,
            "caused: For input string: \"soon\";".into()
        )
    );
}

#[tokio::test]
async fn beta_releases_go_to_their_ips() {
    let app = TestApp::spawn().await;
    let nacos = Nacos::login(&app).await;
    nacos.publish("b.properties", "k=main", &[]).await;
    let r = app
        .http
        .post(nacos.url("/nacos/v1/cs/configs"))
        .header("betaIps", "10.9.9.9,127.0.0.1")
        .form(&[
            ("dataId", "b.properties"),
            ("group", "DEFAULT_GROUP"),
            ("content", "k=beta"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(text(r).await, (StatusCode::OK, "true".into()));

    // This test connects from 127.0.0.1, which is listed.
    let r = nacos
        .get("/nacos/v1/cs/configs?dataId=b.properties&group=DEFAULT_GROUP")
        .await;
    assert_eq!(r.headers()["isBeta"], "true");
    assert_eq!(r.text().await.unwrap(), "k=beta");
    let r = nacos
        .get("/nacos/v1/cs/configs?dataId=b.properties&group=DEFAULT_GROUP&beta=true")
        .await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (body["code"].as_i64(), body["message"].as_str()),
        (Some(200), Some("query beta ok"))
    );
    assert_eq!(body["data"]["content"], "k=beta");
    assert_eq!(body["data"]["betaIps"], "10.9.9.9,127.0.0.1");
    // Others read the main content.
    let (_, main) = app
        .get_json("/api/v1/configs/public/DEFAULT_GROUP/b.properties?view=json")
        .await;
    assert_eq!(
        main["content"], "k=beta",
        "the test client itself is listed"
    );
    let r = app
        .request(
            Method::GET,
            "/api/v1/configs/public/DEFAULT_GROUP/b.properties",
        )
        .header("x-cairn-client-ip", "10.1.1.1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "k=main");

    let r = nacos
        .form(
            Method::DELETE,
            "/nacos/v1/cs/configs?beta=true",
            &[("dataId", "b.properties"), ("group", "DEFAULT_GROUP")],
        )
        .await;
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({ "code": 200, "message": "stop beta ok", "data": true })
    );
    let r = nacos
        .get("/nacos/v1/cs/configs?dataId=b.properties&group=DEFAULT_GROUP")
        .await;
    assert!(r.headers().get("isBeta").is_none());
    assert_eq!(r.text().await.unwrap(), "k=main");
    let r = nacos
        .get("/nacos/v1/cs/configs?dataId=b.properties&group=DEFAULT_GROUP&beta=true")
        .await;
    assert_eq!(r.json::<Value>().await.unwrap()["data"], Value::Null);
}

#[tokio::test]
async fn history_namespaces_v2_and_server_list() {
    let app = TestApp::spawn().await;
    let nacos = Nacos::login(&app).await;
    nacos.publish("h.txt", "one", &[]).await;
    nacos.publish("h.txt", "two", &[]).await;

    let r = nacos
        .get("/nacos/v1/cs/history?search=accurate&dataId=h.txt&group=DEFAULT_GROUP")
        .await;
    let page: Value = r.json().await.unwrap();
    assert_eq!(
        (
            page["totalCount"].as_i64(),
            page["pageNumber"].as_i64(),
            page["pagesAvailable"].as_i64()
        ),
        (Some(2), Some(1), Some(1))
    );
    let newest = &page["pageItems"][0];
    assert_eq!(
        (
            newest["opType"].as_str(),
            page["pageItems"][1]["opType"].as_str()
        ),
        (Some("U"), Some("I"))
    );
    assert_eq!(newest["srcUser"], "admin");
    assert!(newest["content"].is_null(), "lists carry no content");
    assert!(newest["createdTime"].as_str().unwrap().ends_with("+00:00"));
    let nid = newest["id"].as_str().unwrap().to_owned();
    let r = nacos
        .get(&format!(
            "/nacos/v1/cs/history?nid={nid}&dataId=h.txt&group=DEFAULT_GROUP"
        ))
        .await;
    assert_eq!(r.json::<Value>().await.unwrap()["content"], "two");
    let r = nacos
        .get(&format!(
            "/nacos/v1/cs/history/previous?id={nid}&dataId=h.txt&group=DEFAULT_GROUP"
        ))
        .await;
    assert_eq!(r.json::<Value>().await.unwrap()["content"], "one");
    let r = nacos
        .get("/nacos/v1/cs/history?nid=999999&dataId=h.txt&group=DEFAULT_GROUP")
        .await;
    assert_eq!(text(r).await, (StatusCode::OK, String::new()));
    let r = nacos.get("/nacos/v1/cs/history/configs?tenant=").await;
    assert_eq!(r.json::<Value>().await.unwrap()[0]["dataId"], "h.txt");

    // Namespaces, as the Nacos console API shows them.
    let r = nacos
        .form(
            Method::POST,
            "/nacos/v1/console/namespaces",
            &[
                ("customNamespaceId", "prod"),
                ("namespaceName", "Production"),
                ("namespaceDesc", "What customers use"),
            ],
        )
        .await;
    assert_eq!(text(r).await, (StatusCode::OK, "true".into()));
    let r = nacos
        .form(
            Method::POST,
            "/nacos/v1/console/namespaces",
            &[("customNamespaceId", "prod"), ("namespaceName", "Again")],
        )
        .await;
    assert_eq!(text(r).await, (StatusCode::OK, "false".into()));
    let r = nacos.get("/nacos/v1/console/namespaces").await;
    let list: Value = r.json().await.unwrap();
    assert_eq!(list["code"], 200);
    assert_eq!(
        list["data"][0],
        json!({ "namespace": "", "namespaceShowName": "public", "namespaceDesc": null, "quota": 50_000, "configCount": 1, "type": 0 })
    );
    assert_eq!(
        (
            list["data"][1]["namespace"].as_str(),
            list["data"][1]["namespaceShowName"].as_str(),
            list["data"][1]["namespaceDesc"].as_str(),
            list["data"][1]["type"].as_i64()
        ),
        (
            Some("prod"),
            Some("Production"),
            Some("What customers use"),
            Some(2)
        )
    );
    let r = nacos
        .form(
            Method::PUT,
            "/nacos/v1/console/namespaces",
            &[
                ("namespace", "prod"),
                ("namespaceShowName", "Prod"),
                ("namespaceDesc", "Live"),
            ],
        )
        .await;
    assert_eq!(text(r).await, (StatusCode::OK, "true".into()));
    let r = nacos
        .get("/nacos/v1/console/namespaces?show=all&namespaceId=prod")
        .await;
    let shown: Value = r.json().await.unwrap();
    assert_eq!(
        (&shown["namespaceShowName"], &shown["namespaceDesc"]),
        (&json!("Prod"), &json!("Live"))
    );
    // A change of the show name alone keeps the description.
    let r = nacos
        .form(
            Method::PUT,
            "/nacos/v1/console/namespaces",
            &[("namespace", "prod"), ("namespaceShowName", "Production")],
        )
        .await;
    assert_eq!(text(r).await, (StatusCode::OK, "true".into()));
    let (_, native) = app.get_json("/api/v1/namespaces/prod").await;
    assert_eq!(
        (&native["display_name"], &native["description"]),
        (&json!("Production"), &json!("Live"))
    );
    let r = nacos
        .form(
            Method::DELETE,
            "/nacos/v1/console/namespaces",
            &[("namespaceId", "prod")],
        )
        .await;
    assert_eq!(text(r).await, (StatusCode::OK, "true".into()));

    // The v2 API and its envelope.
    let r = nacos
        .form(
            Method::POST,
            "/nacos/v2/cs/config",
            &[
                ("dataId", "v2.txt"),
                ("group", "DEFAULT_GROUP"),
                ("content", "hello"),
            ],
        )
        .await;
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({ "code": 0, "message": "success", "data": true })
    );
    let r = nacos
        .get("/nacos/v2/cs/config?dataId=v2.txt&group=DEFAULT_GROUP&namespaceId=public")
        .await;
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({ "code": 0, "message": "success", "data": "hello" })
    );
    let r = nacos
        .get("/nacos/v2/cs/config?dataId=none&group=DEFAULT_GROUP")
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({ "code": 20004, "message": "resource not found", "data": "config data not exist" })
    );
    let r = nacos.get("/nacos/v2/cs/config?group=DEFAULT_GROUP").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], 10000);
    let r = nacos
        .get("/nacos/v2/cs/config?dataId=a%20b&group=DEFAULT_GROUP")
        .await;
    assert_eq!(r.json::<Value>().await.unwrap()["code"], 20002);
    let r = nacos
        .get("/nacos/v2/cs/history/list?dataId=h.txt&group=DEFAULT_GROUP")
        .await;
    assert_eq!(r.json::<Value>().await.unwrap()["data"]["totalCount"], 2);
    let r = nacos
        .get(&format!(
            "/nacos/v2/cs/history?nid={nid}&dataId=h.txt&group=DEFAULT_GROUP"
        ))
        .await;
    assert_eq!(r.json::<Value>().await.unwrap()["data"]["content"], "two");
    let r = nacos
        .form(
            Method::DELETE,
            "/nacos/v2/cs/config",
            &[("dataId", "v2.txt"), ("group", "DEFAULT_GROUP")],
        )
        .await;
    assert_eq!(r.json::<Value>().await.unwrap()["data"], true);

    // The server list Nacos clients discover nodes with.
    let r = app
        .http
        .get(format!("{}/nacos/serverlist", app.base))
        .send()
        .await
        .unwrap();
    let host = app.base.trim_start_matches("http://");
    assert_eq!(text(r).await, (StatusCode::OK, format!("{host}\n")));
}

/// Two listeners on one config, one of them on a beta IP: the beta wakes only that one
/// and serves it the beta content; promoting wakes the other; stopping a second beta
/// returns the first to the main content; history shows every step.
#[tokio::test]
async fn beta_releases_wake_only_their_listeners() {
    let app = TestApp::spawn_with(|s| {
        s.watch_max_timeout_ms = cairn_server::settings::Millis::new(1_500);
        s.watch_default_timeout_ms = cairn_server::settings::Millis::new(1_500);
    })
    .await;
    let nacos = Nacos::login(&app).await;
    nacos.publish("w.properties", "k=main", &[]).await;
    let path = "/nacos/v1/cs/configs?dataId=w.properties&group=DEFAULT_GROUP";
    let listen_as = |ip: &'static str, content: &str| {
        let (url, http) = (nacos.url("/nacos/v1/cs/configs/listener"), app.http.clone());
        let listening = line("w.properties", &md5(content), None);
        tokio::spawn(async move {
            let started = Instant::now();
            let r = http
                .post(url)
                .header("Long-Pulling-Timeout", "30000")
                .header("x-cairn-client-ip", ip)
                .form(&[("Listening-Configs", listening)])
                .send()
                .await
                .unwrap();
            (r.text().await.unwrap(), started.elapsed())
        })
    };
    let read_as = |ip: &'static str| {
        let request = app
            .http
            .get(nacos.url(path))
            .header("x-cairn-client-ip", ip);
        async move {
            let r = request.send().await.unwrap();
            let beta = r.headers().get("isBeta").is_some();
            (r.text().await.unwrap(), beta)
        }
    };
    let beta = |content: &'static str| {
        app.http
            .post(nacos.url("/nacos/v1/cs/configs"))
            .header("betaIps", "10.9.9.9")
            .form(&[
                ("dataId", "w.properties"),
                ("group", "DEFAULT_GROUP"),
                ("content", content),
            ])
            .send()
    };
    let changed = encoded("w.properties\u{2}DEFAULT_GROUP\u{1}");

    // The beta publish wakes the listed listener at once; the other sleeps to its timeout.
    let (listed, other) = (
        listen_as("10.9.9.9", "k=main"),
        listen_as("10.1.1.1", "k=main"),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(text(beta("k=beta").await.unwrap()).await.1, "true");
    let (body, waited) = listed.await.unwrap();
    assert_eq!(body, changed);
    assert!(waited < Duration::from_millis(1_200), "woken by the beta");
    let (body, waited) = other.await.unwrap();
    assert_eq!(body, "", "not listed: nothing changed for it");
    assert!(waited >= Duration::from_millis(1_400));
    assert_eq!(read_as("10.9.9.9").await, ("k=beta".to_owned(), true));
    assert_eq!(read_as("10.1.1.1").await, ("k=main".to_owned(), false));

    // Promoting it wakes the other listener; the listed one already reads that content.
    let (listed, other) = (
        listen_as("10.9.9.9", "k=beta"),
        listen_as("10.1.1.1", "k=main"),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = app
        .request(
            Method::POST,
            "/api/v1/configs/public/DEFAULT_GROUP/w.properties/gray/promote",
        )
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let (body, waited) = other.await.unwrap();
    assert_eq!(body, changed);
    assert!(
        waited < Duration::from_millis(1_200),
        "woken by the promotion"
    );
    assert_eq!(listed.await.unwrap().0, "");
    assert_eq!(read_as("10.1.1.1").await, ("k=beta".to_owned(), false));

    // A second beta, stopped: the listed listener is woken and reads the main content.
    assert_eq!(text(beta("k=second").await.unwrap()).await.1, "true");
    let (listed, other) = (
        listen_as("10.9.9.9", "k=second"),
        listen_as("10.1.1.1", "k=beta"),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = nacos
        .form(
            Method::DELETE,
            "/nacos/v1/cs/configs?beta=true",
            &[("dataId", "w.properties"), ("group", "DEFAULT_GROUP")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let (body, waited) = listed.await.unwrap();
    assert_eq!(body, changed);
    assert!(waited < Duration::from_millis(1_200), "woken by the stop");
    assert_eq!(other.await.unwrap().0, "");
    assert_eq!(read_as("10.9.9.9").await, ("k=beta".to_owned(), false));

    // The native history has every step, newest first.
    let (_, history) = app
        .get_json("/api/v1/configs/public/DEFAULT_GROUP/w.properties/history")
        .await;
    let ops: Vec<&str> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["op"].as_str().unwrap())
        .collect();
    assert_eq!(
        ops,
        [
            "gray_abandon",
            "gray_publish",
            "gray_promote",
            "gray_publish",
            "publish"
        ]
    );
}

/// What Nacos clients send besides the common case: type-less publishes, tokens in
/// every place Nacos takes them, tags, other users' tenants, and malformed listener
/// records, each answered as Nacos answers it (or, where Cairn differs, refused
/// clearly).
#[tokio::test]
async fn details_clients_rely_on() {
    let app = TestApp::spawn_with(|s| {
        s.max_content_bytes = 1_000;
        s.listen = "0.0.0.0:0".parse().unwrap();
    })
    .await;
    let nacos = Nacos::login(&app).await;

    // Without a type a config is text, whatever its name says, and is not parsed.
    nacos.publish("raw.yaml", "key: [unclosed", &[]).await;
    let r = nacos
        .get("/nacos/v1/cs/configs?dataId=raw.yaml&group=DEFAULT_GROUP")
        .await;
    assert_eq!(r.headers()["Config-Type"], "text");
    assert_eq!(r.text().await.unwrap(), "key: [unclosed");

    // The token as a form field, as a bearer header; the second login path.
    let r = app
        .http
        .post(format!("{}/nacos/v1/cs/configs", app.base))
        .form(&[
            ("dataId", "form.txt"),
            ("group", "DEFAULT_GROUP"),
            ("content", "x"),
            ("accessToken", nacos.token.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(text(r).await, (StatusCode::OK, "true".into()));
    let r = app
        .http
        .get(format!(
            "{}/nacos/v1/cs/configs?dataId=form.txt&group=DEFAULT_GROUP",
            app.base
        ))
        .bearer_auth(&nacos.token)
        .send()
        .await
        .unwrap();
    assert_eq!(text(r).await, (StatusCode::OK, "x".into()));
    let r = app
        .http
        .post(format!("{}/nacos/v1/auth/users/login", app.base))
        .form(&[("username", "admin"), ("password", ADMIN_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.json::<Value>().await.unwrap()["accessToken"].is_string());

    // A tag names a tagged copy, which Cairn does not have: refused, never applied to
    // the main config.
    let r = nacos
        .form(
            Method::DELETE,
            "/nacos/v1/cs/configs",
            &[
                ("dataId", "form.txt"),
                ("group", "DEFAULT_GROUP"),
                ("tag", "t1"),
            ],
        )
        .await;
    let (status, body) = text(r).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.starts_with("caused: the tag parameter"), "{body}");
    let r = nacos
        .get("/nacos/v2/cs/config?dataId=form.txt&group=DEFAULT_GROUP&tag=t1")
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], 20002);
    let r = nacos
        .get("/nacos/v1/cs/configs?dataId=form.txt&group=DEFAULT_GROUP")
        .await;
    assert_eq!(text(r).await, (StatusCode::OK, "x".into()), "still there");

    // Content over the limit, with Nacos's message.
    let big = "x".repeat(1_001);
    let r = nacos
        .form(
            Method::POST,
            "/nacos/v1/cs/configs",
            &[
                ("dataId", "big.txt"),
                ("group", "DEFAULT_GROUP"),
                ("content", &big),
            ],
        )
        .await;
    assert_eq!(
        text(r).await,
        (
            StatusCode::BAD_REQUEST,
            "caused: invalid content, over 1000;".into()
        )
    );

    // Only an admin's publish makes a new tenant's namespace.
    let r = app
        .request(Method::POST, "/api/v1/users")
        .json(&json!({ "username": "dev", "password": "dev-password-1", "role": "user" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    // Allowed to write anywhere, but still not to make namespaces.
    let r = app
        .request(Method::PUT, "/api/v1/grants")
        .json(&json!({ "user": "dev", "namespace": "*", "level": "write" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = app
        .http
        .post(format!(
            "{}/nacos/v1/cs/configs?username=dev&password=dev-password-1",
            app.base
        ))
        .form(&[
            ("dataId", "a.txt"),
            ("group", "DEFAULT_GROUP"),
            ("content", "x"),
            ("tenant", "made-by-dev"),
        ])
        .send()
        .await
        .unwrap();
    let (status, body) = text(r).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("made-by-dev"), "{body}");
    nacos
        .publish("a.txt", "x", &[("tenant", "made-by-admin")])
        .await;

    // Listener records need dataId, group and md5; escapes must be well formed.
    for bad in [
        "a.txt\u{2}DEFAULT_GROUP\u{1}".to_owned(),
        line("a.txt", "%zz", None),
    ] {
        let r = nacos.listen(&bad, Some("30000"), false).await;
        assert_eq!(
            text(r).await,
            (
                StatusCode::BAD_REQUEST,
                "caused: invalid probeModify;".into()
            ),
            "{bad:?}"
        );
    }

    // A node listening on every interface lists the address it was reached by.
    let reached = app.base.replace("0.0.0.0", "127.0.0.1");
    let r = app
        .http
        .get(format!("{reached}/nacos/serverlist"))
        .send()
        .await
        .unwrap();
    let host = reached.trim_start_matches("http://");
    assert_eq!(text(r).await, (StatusCode::OK, format!("{host}\n")));
    // The Host header is the client's to choose; the list never echoes it.
    let r = app
        .http
        .get(format!("{reached}/nacos/serverlist"))
        .header(header::HOST, "evil.example:80")
        .send()
        .await
        .unwrap();
    assert_eq!(text(r).await, (StatusCode::OK, format!("{host}\n")));
}

#[tokio::test]
async fn who_listens_is_answered_for_every_surface_as_nacos_answers_it() {
    let app = TestApp::spawn().await;
    let nacos = Nacos::login(&app).await;
    nacos.publish("who.yaml", "a: 1", &[]).await;
    let current = md5("a: 1");

    // Two held long polls of one config, over Nacos HTTP and the native API, each
    // holding the current md5 (an old one would be answered at once).
    let held_nacos = {
        let (url, http) = (nacos.url("/nacos/v1/cs/configs/listener"), app.http.clone());
        let listening = line("who.yaml", &current, None);
        tokio::spawn(async move {
            http.post(url)
                .header("Long-Pulling-Timeout", "30000")
                .form(&[("Listening-Configs", listening)])
                .send()
                .await
                .unwrap()
        })
    };
    let held_native = app.spawn_watch(
        json!([{ "namespace": "public", "group": "DEFAULT_GROUP", "data_id": "who.yaml", "md5": current }]),
        30_000,
    );
    let key = "/api/v1/configs/public/DEFAULT_GROUP/who.yaml/listeners";
    let deadline = Instant::now() + Duration::from_secs(10);
    let listeners = loop {
        let (status, body) = app.get_json(key).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if body["listeners"].as_array().map_or(0, Vec::len) == 2 {
            break body["listeners"].clone();
        }
        assert!(
            Instant::now() < deadline,
            "both listeners are listed: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut protocols: Vec<&str> = listeners
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["protocol"].as_str().unwrap())
        .collect();
    protocols.sort();
    assert_eq!(protocols, ["nacos-http", "native"]);
    for l in listeners.as_array().unwrap() {
        assert_eq!(l["client_ip"], "127.0.0.1");
        assert_eq!(l["md5"], current.as_str());
        assert_eq!(l["current"], true);
    }

    // Nacos's own queries, by config and by client, in its shape and spelling.
    let (status, body) = text(
        nacos
            .get("/nacos/v1/cs/configs/listener?dataId=who.yaml&group=DEFAULT_GROUP")
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["collectStatus"], 200);
    assert_eq!(
        body["lisentersGroupkeyStatus"]["127.0.0.1"],
        current.as_str()
    );
    let (_, body) = text(nacos.get("/nacos/v1/cs/listener?ip=127.0.0.1").await).await;
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body["lisentersGroupkeyStatus"]["who.yaml+DEFAULT_GROUP"],
        current.as_str()
    );
    let (status, _) = text(nacos.get("/nacos/v1/cs/listener?ip=not-an-ip").await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // By client through the native API; a change makes the listeners answer and go.
    let (_, by_client) = app.get_json("/api/v1/listeners?ip=127.0.0.1").await;
    assert_eq!(
        by_client["watches"].as_array().unwrap().len(),
        2,
        "{by_client}"
    );
    nacos.publish("who.yaml", "a: 2", &[]).await;
    held_nacos.await.unwrap();
    held_native.await.unwrap();
    let (_, after) = app.get_json(key).await;
    assert_eq!(
        after,
        json!({ "listeners": [], "unanswered": [] }),
        "answered polls are no longer listed"
    );
}

#[tokio::test]
async fn invalid_utf8_is_refused_not_replaced() {
    let app = TestApp::spawn().await;
    let body = format!(
        "dataId=bytes.txt&group=DEFAULT_GROUP&content=caf%E9&accessToken={}",
        app.token
    );
    let r = app
        .http
        .post(format!("{}/nacos/v1/cs/configs", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let message = r.text().await.unwrap();
    assert!(
        message.contains("parameter content is not UTF-8"),
        "{message}"
    );
    let (status, _) = app
        .get_json("/api/v1/configs/public/DEFAULT_GROUP/bytes.txt")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was stored");
    // In the query too.
    let r = app
        .http
        .get(format!(
            "{}/nacos/v1/cs/configs?dataId=a%FF&group=DEFAULT_GROUP&accessToken={}",
            app.base, app.token
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    app.stop().await;
}
