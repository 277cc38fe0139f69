//! The web console in a real headless Chromium, driven over WebDriver, against a real
//! `cairn server`: what a person does in it, page by page, with a screenshot of each
//! page under `target/console-screenshots/`. `CAIRN_TEST_CHROMEDRIVER` names the
//! chromedriver to use (`.ci/run` installs Debian's `chromium` and `chromium-driver`);
//! without it this test says so and skips.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::common::Server;

const PASSWORD: &str = "console-password-1";

/// A chromedriver process on a free port; killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn driver() -> Option<Driver> {
    let Ok(path) = std::env::var("CAIRN_TEST_CHROMEDRIVER") else {
        eprintln!("CAIRN_TEST_CHROMEDRIVER is not set; skipping the browser test of the console");
        return None;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(path)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    })
}

async fn browser(driver: &Driver, width: u32) -> Client {
    browser_with(driver, width, &[]).await
}

/// A browser session with extra command-line switches.
async fn browser_with(driver: &Driver, width: u32, extra: &[&str]) -> Client {
    let binary =
        std::env::var("CAIRN_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let mut args = vec![
        "--headless=new".to_owned(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-dev-shm-usage".into(),
        format!("--window-size={width},1000"),
        "--lang=en-US".into(),
    ];
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({ "binary": binary, "args": args }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a browser session")
}

fn shots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(shots().join(format!("{name}.png")), png).unwrap();
}

/// The element `css` selects, once the page shows it (a click that submits a form
/// returns before the next page has loaded).
async fn find(c: &Client, css: &str) -> fantoccini::elements::Element {
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css} on the page: {e}"))
}

/// Whether an element went away under us: the page it was found on was replaced by
/// the next one (a form's answer arriving) between finding and using it.
fn stale(e: &fantoccini::error::CmdError) -> bool {
    matches!(e, fantoccini::error::CmdError::Standard(w)
        if w.error == fantoccini::error::ErrorStatus::StaleElementReference)
}

/// Runs `act` on the element `css` selects, again on the next page's element when the
/// page changed under it.
async fn on_element<T, F, Fut>(c: &Client, css: &str, act: F) -> T
where
    F: Fn(fantoccini::elements::Element) -> Fut,
    Fut: std::future::Future<Output = Result<T, fantoccini::error::CmdError>>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match act(find(c, css).await).await {
            Ok(done) => return done,
            Err(e) if stale(&e) && Instant::now() < deadline => continue,
            Err(e) => panic!("{css}: {e}"),
        }
    }
}

async fn text(c: &Client, css: &str) -> String {
    on_element(c, css, |e| async move { e.text().await }).await
}

async fn fill(c: &Client, css: &str, value: &str) {
    on_element(c, css, |e| async move {
        e.clear().await?;
        e.send_keys(value).await
    })
    .await
}

/// Sets the code editor's content as typing would.
async fn set_editor(c: &Client, value: &str) {
    // The editing form's editor: the page before may have had a read-only one.
    set_code_in(c, "form#editor", value).await;
}

/// Sets the code editor inside the form `form` finds.
async fn set_code_in(c: &Client, form: &str, value: &str) {
    let editor = format!("{form} .CodeMirror");
    find(c, &editor).await;
    c.execute(
        "document.querySelector(arguments[0]).CodeMirror.setValue(arguments[1]); return true;",
        vec![json!(editor), json!(value)],
    )
    .await
    .unwrap();
}

/// What the page's code editor holds.
async fn editor_value(c: &Client) -> String {
    c.execute(
        "return document.querySelector('.CodeMirror').CodeMirror.getValue();",
        vec![],
    )
    .await
    .unwrap()
    .as_str()
    .unwrap()
    .to_owned()
}

async fn click(c: &Client, css: &str) {
    on_element(c, css, |e| async move { e.click().await.map(drop) }).await
}

/// The page's path, once it is `want` (or after 10 s, whatever it is then).
async fn path_becomes(c: &Client, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let path = c.current_url().await.unwrap().path().to_owned();
        if path == want || Instant::now() > deadline {
            return path;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Logs `c` in to the console at `url`.
async fn log_in(c: &Client, url: &str, user: &str, password: &str) {
    c.goto(&format!("{url}/console/login")).await.unwrap();
    fill(c, "#username", user).await;
    fill(c, "#password", password).await;
    click(c, "button[type=submit]").await;
    assert_eq!(
        path_becomes(c, "/console/configs").await,
        "/console/configs",
        "{user} logs in"
    );
}

/// A native API token for the admin.
async fn api_token(url: &str) -> String {
    let login: serde_json::Value = reqwest::Client::new()
        .post(format!("{url}/api/v1/auth/login"))
        .json(&json!({ "username": "admin", "password": PASSWORD }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    login["token"].as_str().unwrap().to_owned()
}

/// Publishes through the native API, as another person would.
async fn publish_elsewhere(url: &str, data_id: &str, content: &str) {
    let http = reqwest::Client::new();
    let token = api_token(url).await;
    let token = token.as_str();
    let status = http
        .put(format!(
            "{url}/api/v1/configs/public/DEFAULT_GROUP/{data_id}"
        ))
        .bearer_auth(token)
        .json(&json!({ "content": content, "comment": "from the API" }))
        .send()
        .await
        .unwrap()
        .status();
    assert!(status.is_success(), "{status}");
}

#[tokio::test]
async fn a_person_manages_configs_in_the_console() {
    let Some(driver) = driver() else { return };
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Some(PASSWORD));
    assert!(
        server
            .banner
            .contains(&format!("console at {}/console/", server.url)),
        "the startup line names the console: {}",
        server.banner
    );
    let url = server.url.clone();
    let c = browser(&driver, 1280).await;

    // Any page sends a stranger to the login page, which sends them back afterwards.
    c.goto(&format!("{url}/console/configs")).await.unwrap();
    assert_eq!(path_becomes(&c, "/console/login").await, "/console/login");
    shot(&c, "01-login").await;
    fill(&c, "#username", "admin").await;
    fill(&c, "#password", "not-the-password").await;
    click(&c, "button[type=submit]").await;
    assert!(text(&c, ".flash.error")
        .await
        .contains("user name or password is wrong"));
    shot(&c, "02-login-refused").await;
    fill(&c, "#password", PASSWORD).await;
    click(&c, "button[type=submit]").await;
    assert_eq!(
        path_becomes(&c, "/console/configs").await,
        "/console/configs"
    );
    assert!(text(&c, "#count").await.starts_with("0 "));

    // A new config whose YAML does not parse: the error names its line, and the editor
    // marks that line.
    click(&c, "a.button.primary").await;
    assert_eq!(path_becomes(&c, "/console/new").await, "/console/new");
    fill(&c, "#data_id", "app.yaml").await;
    set_editor(&c, "server:\n  port: 8080\n  hosts: [a, b\n").await;
    click(&c, "button[value=review]").await;
    let problem = text(&c, "#problem").await;
    assert!(problem.contains("line"), "{problem}");
    c.find(Locator::Css(".cm-error-line"))
        .await
        .expect("the editor marks the line");
    shot(&c, "03-invalid-yaml").await;

    // Fixed, reviewed as a diff, published.
    set_editor(&c, "server:\n  port: 8080\n  hosts: [a, b]\n").await;
    click(&c, "button[value=review]").await;
    assert!(text(&c, "table.diff").await.contains("port: 8080"));
    shot(&c, "04-review").await;
    fill(&c, "#message", "first version").await;
    click(&c, "button[value=publish]").await;
    assert_eq!(
        path_becomes(&c, "/console/c/public/DEFAULT_GROUP/app.yaml").await,
        "/console/c/public/DEFAULT_GROUP/app.yaml"
    );
    assert!(text(&c, ".flash.ok").await.contains("Published"));
    assert!(text(&c, "#meta").await.contains("yaml"));
    shot(&c, "05-config").await;

    // Two sessions edit at once: the one that publishes second is shown the other's
    // change and keeps its own content, never overwriting silently.
    click(&c, "a.button.primary").await;
    set_editor(&c, "server:\n  port: 9090\n  hosts: [a, b]\n").await;
    let other = browser(&driver, 1280).await;
    log_in(&other, &url, "admin", PASSWORD).await;
    other
        .goto(&format!(
            "{url}/console/c/public/DEFAULT_GROUP/app.yaml/edit"
        ))
        .await
        .unwrap();
    set_editor(&other, "server:\n  port: 8080\n  hosts: [a, b, c]\n").await;
    click(&other, "button[value=review]").await;
    fill(&other, "#message", "from another session").await;
    click(&other, "button[value=publish]").await;
    assert!(text(&other, ".flash.ok").await.contains("Published"));
    other.close().await.unwrap();
    click(&c, "button[value=review]").await;
    click(&c, "button[value=publish]").await;
    let conflict = text(&c, "#conflict").await;
    assert!(conflict.contains("hosts: [a, b, c]"), "{conflict}");
    assert!(conflict.contains("port: 9090"), "{conflict}");
    shot(&c, "06-conflict").await;
    // Merged by hand, then published on top of the other change.
    set_editor(&c, "server:\n  port: 9090\n  hosts: [a, b, c]\n").await;
    click(&c, "button[value=review]").await;
    click(&c, "button[value=publish]").await;
    assert!(text(&c, ".flash.ok").await.contains("Published"));
    let content = editor_value(&c).await;
    assert_eq!(content, "server:\n  port: 9090\n  hosts: [a, b, c]\n");

    // History, a diff side by side, and a rollback after seeing what it changes.
    c.goto(&format!(
        "{url}/console/c/public/DEFAULT_GROUP/app.yaml/history"
    ))
    .await
    .unwrap();
    let history = text(&c, "#history").await;
    assert!(
        history.contains("first version") && history.contains("from another session"),
        "{history}"
    );
    shot(&c, "07-history").await;
    let first = c
        .find_all(Locator::Css("#history tbody tr"))
        .await
        .unwrap()
        .len();
    assert_eq!(first, 3);
    click(&c, "#history tbody tr:last-child a[href*=diff]").await;
    c.find(Locator::Css("#view option[value=split]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    click(&c, "form.filters button[type=submit]").await;
    assert!(text(&c, "table.diff.split").await.contains("9090"));
    shot(&c, "08-diff-side-by-side").await;
    click(&c, "a[href*=rollback]").await;
    text(&c, "#rollback").await;
    assert!(text(&c, "table.diff").await.contains("8080"));
    click(&c, "#rollback button[type=submit]").await;
    assert!(text(&c, ".flash.ok").await.contains("Rolled back"));
    assert!(text(&c, "#meta").await.contains("admin"));

    // A gray release: rules and content, reviewed as a diff from the main content,
    // started, then promoted (after confirming) to everyone.
    c.goto(&format!(
        "{url}/console/c/public/DEFAULT_GROUP/app.yaml/gray"
    ))
    .await
    .unwrap();
    fill(&c, "#ips", "10.9.9.9").await;
    fill(&c, "#labels", "canary=true").await;
    set_editor(&c, "server:\n  port: 7070\n  hosts: [a, b]\n").await;
    click(&c, "button[value=review]").await;
    assert!(text(&c, "table.diff").await.contains("7070"));
    click(&c, "button[value=publish]").await;
    assert!(text(&c, ".flash.ok").await.contains("Gray release started"));
    let rules = text(&c, "#gray-meta").await;
    assert!(
        rules.contains("10.9.9.9") && rules.contains("canary=true"),
        "{rules}"
    );
    shot(&c, "09-gray").await;
    click(&c, "#promote button").await;
    c.accept_alert().await.unwrap();
    // The gray page had a flash of its own: wait for the config's page first.
    assert_eq!(
        path_becomes(&c, "/console/c/public/DEFAULT_GROUP/app.yaml").await,
        "/console/c/public/DEFAULT_GROUP/app.yaml"
    );
    assert!(text(&c, ".flash.ok").await.contains("Promoted"));
    let promoted = editor_value(&c).await;
    assert_eq!(promoted, "server:\n  port: 7070\n  hosts: [a, b]\n");

    // Content and descriptions are shown as text, never run.
    c.goto(&format!("{url}/console/new")).await.unwrap();
    fill(&c, "#data_id", "xss.html").await;
    fill(
        &c,
        "#description",
        "<script>window.__described = 1</script>",
    )
    .await;
    set_editor(
        &c,
        "<script>window.__ran = 1</script><img src=x onerror=\"window.__ran = 2\">",
    )
    .await;
    click(&c, "button[value=review]").await;
    click(&c, "button[value=publish]").await;
    assert!(text(&c, "#meta")
        .await
        .contains("<script>window.__described = 1</script>"));
    let ran = c
        .execute(
            "return [window.__ran === undefined, window.__described === undefined];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(ran, json!([true, true]), "user content ran as script");
    shot(&c, "10-content-as-text").await;

    // A 1 MiB config opens in the editor and takes an edit of one line.
    let big: String = (0..17_000)
        .map(|i| format!("key.{i}: value-{i}-{}\n", "x".repeat(40)))
        .collect();
    assert!(big.len() > 1_000_000);
    publish_elsewhere(&url, "big.yaml", &big).await;
    c.goto(&format!(
        "{url}/console/c/public/DEFAULT_GROUP/big.yaml/edit"
    ))
    .await
    .unwrap();
    find(&c, "form#editor .CodeMirror").await;
    c.execute(
        "var cm = document.querySelector('form#editor .CodeMirror').CodeMirror; \
         cm.replaceRange('key.8000: changed', {line: 8000, ch: 0}, {line: 8000, ch: cm.getLine(8000).length}); \
         return true;",
        vec![],
    )
    .await
    .unwrap();
    click(&c, "button[value=review]").await;
    let diff = text(&c, "table.diff").await;
    assert!(
        diff.contains("key.8000: changed") && diff.lines().count() < 20,
        "{diff}"
    );
    click(&c, "button[value=publish]").await;
    assert!(text(&c, ".flash.ok").await.contains("Published"));

    // Search by wildcard.
    c.goto(&format!("{url}/console/configs?data_id=app*"))
        .await
        .unwrap();
    assert!(text(&c, "#count").await.starts_with("1 "));
    assert!(text(&c, "#configs").await.contains("app.yaml"));
    shot(&c, "11-configs").await;

    // Another language, remembered.
    click(&c, "a[lang=zh-CN]").await;
    text(&c, "html[lang=zh-CN]").await;
    assert_eq!(text(&c, "h1").await, "配置列表");
    c.goto(&format!("{url}/console/c/public/DEFAULT_GROUP/app.yaml"))
        .await
        .unwrap();
    assert!(text(&c, "a.button.primary").await.contains("编辑"));
    shot(&c, "12-chinese").await;
    click(&c, "a[lang=en]").await;

    // Delete, after confirming.
    c.goto(&format!(
        "{url}/console/c/public/DEFAULT_GROUP/xss.html/delete"
    ))
    .await
    .unwrap();
    click(&c, "#delete button[type=submit]").await;
    assert!(text(&c, ".flash.ok").await.contains("Deleted"));
    assert!(!text(&c, "#configs").await.contains("xss.html"));

    // Who listens: a real client (`cairn watch`) long-polling app.yaml shows up, with
    // its address, its protocol and whether it holds the current content.
    let token = api_token(&url).await;
    let mut watcher = std::process::Command::new(crate::common::BIN)
        .args([
            "--server",
            &url,
            "--token",
            &token,
            "watch",
            "public/DEFAULT_GROUP/app.yaml",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cairn watch starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        c.goto(&format!(
            "{url}/console/c/public/DEFAULT_GROUP/app.yaml/listeners"
        ))
        .await
        .unwrap();
        if c.find(Locator::Css("#listeners")).await.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "the watcher never showed up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let listeners = text(&c, "#listeners").await;
    assert!(
        listeners.contains("127.0.0.1") && listeners.contains("native"),
        "{listeners}"
    );
    assert!(
        listeners.contains("yes"),
        "the watcher holds the current content: {listeners}"
    );
    shot(&c, "13-who-listens").await;
    click(&c, "#listeners a[href*=ip]").await;
    assert!(text(&c, "table.client-watch")
        .await
        .contains("public/DEFAULT_GROUP/app.yaml"));
    watcher.kill().unwrap();
    watcher.wait().unwrap();

    // Administration: a namespace, a user, an Apollo app's key (its secret shown once),
    // the cluster.
    c.goto(&format!("{url}/console/namespaces")).await.unwrap();
    fill(&c, "#new-namespace #name", "staging").await;
    fill(&c, "#new-namespace #display_name", "Staging").await;
    click(&c, "#new-namespace button").await;
    assert!(text(&c, ".flash.ok").await.contains("Saved"));
    assert!(text(&c, "#namespaces").await.contains("staging"));
    // Apollo reads must be signed until an admin lets a namespace serve an app unsigned.
    let apollo = format!("{url}/configs/shop/default/application");
    assert_eq!(reqwest::get(&apollo).await.unwrap().status(), 401);
    let public_apollo = "form[action='/console/namespaces/apollo']:has(input[value='public'])";
    fill(
        &c,
        &format!("{public_apollo} input[name=apollo_anonymous_apps]"),
        "shop",
    )
    .await;
    click(&c, &format!("{public_apollo} button")).await;
    // Served unsigned once saved: no such config yet, rather than unauthorized.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while reqwest::get(&apollo).await.unwrap().status() != 404 {
        assert!(
            std::time::Instant::now() < deadline,
            "app shop is never served unsigned"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    c.goto(&format!("{url}/console/namespaces")).await.unwrap();
    let shown = on_element(
        &c,
        &format!("{public_apollo} input[name=apollo_anonymous_apps]"),
        |e| async move { e.prop("value").await },
    )
    .await;
    assert_eq!(shown.as_deref(), Some("shop"));
    shot(&c, "14-namespaces").await;
    // Download a namespace in Cairn's format with history, and upload it into another.
    let exported = c
        .execute(
            "const link = document.querySelector(\"a[href='/console/namespaces/export?name=public&format=cairn&history=true']\");\
             return fetch(link.href).then(r => r.text());",
            vec![],
        )
        .await
        .unwrap();
    let exported = exported.as_str().unwrap().to_owned();
    assert!(
        exported.starts_with("{\"cairn_export\":1")
            && exported.contains("app.yaml")
            && exported.contains("\"history\":["),
        "{exported}"
    );
    let upload = dir.path().join("public.cairn.jsonl");
    std::fs::write(&upload, &exported).unwrap();
    c.execute(
        "document.querySelector('#import-name').value = 'staging'; return true;",
        vec![],
    )
    .await
    .unwrap();
    on_element(&c, "#import-file", |e| {
        let path = upload.display().to_string();
        async move { e.send_keys(&path).await }
    })
    .await;
    click(&c, "#import button").await;
    assert!(text(&c, ".flash.ok").await.contains("Imported"));
    shot(&c, "14b-imported").await;
    c.goto(&format!("{url}/console/configs?ns=staging"))
        .await
        .unwrap();
    find(&c, "a[href='/console/c/staging/DEFAULT_GROUP/app.yaml']").await;
    // Its versions came along: the first one published is in its history there.
    c.goto(&format!(
        "{url}/console/c/staging/DEFAULT_GROUP/app.yaml/history"
    ))
    .await
    .unwrap();
    let history = text(&c, "#history").await;
    assert!(history.contains("first version"), "{history}");
    c.goto(&format!("{url}/console/users")).await.unwrap();
    fill(&c, "#new-user #username", "bob").await;
    fill(&c, "#new-user #password", "bob-password-1").await;
    click(&c, "#new-user button").await;
    // The answer's own mark first: the page before had a #users table too.
    assert!(text(&c, ".flash.ok").await.contains("Saved"));
    assert!(text(&c, "#users").await.contains("bob"));
    shot(&c, "15-users").await;
    // A new user may do nothing until granted: bob may read the public namespace.
    c.goto(&format!("{url}/console/grants")).await.unwrap();
    fill(&c, "#new-grant #subject", "bob").await;
    fill(&c, "#new-grant #namespace", "public").await;
    click(&c, "#new-grant button").await;
    assert!(text(&c, ".flash.ok").await.contains("Saved"));
    let grants = text(&c, "#grants").await;
    assert!(
        grants.contains("bob") && grants.contains("read"),
        "{grants}"
    );
    shot(&c, "15b-grants").await;
    // The audit log names who did it, through the console.
    c.goto(&format!("{url}/console/audit")).await.unwrap();
    let audit = text(&c, "#audit").await;
    assert!(
        audit.contains("grant.set") && audit.contains("user.create") && audit.contains("console"),
        "{audit}"
    );
    shot(&c, "15c-audit").await;
    c.goto(&format!("{url}/console/access-keys?app=shop"))
        .await
        .unwrap();
    // A key that signs for the public namespace only.
    fill(&c, "#new-key-form #namespaces", "public").await;
    click(&c, "#new-key-form button").await;
    let made = text(&c, "#new-key").await;
    assert!(made.contains("not shown again"), "{made}");
    c.goto(&format!("{url}/console/access-keys?app=shop"))
        .await
        .unwrap();
    let keys = text(&c, "#access-keys").await;
    assert!(keys.contains("••••") && keys.contains("public"), "{keys}");
    shot(&c, "15d-access-keys").await;
    assert!(
        c.find(Locator::Css("#new-key")).await.is_err(),
        "the secret is not shown again"
    );
    c.goto(&format!("{url}/console/cluster")).await.unwrap();
    assert!(text(&c, "#nodes").await.contains(server.address()));
    shot(&c, "16-cluster").await;

    // Another user, on a narrow screen: no admin pages, and their own password changed
    // (which ends their session).
    let phone = browser(&driver, 390).await;
    log_in(&phone, &url, "bob", "bob-password-1").await;
    assert!(text(&phone, "#configs").await.contains("app.yaml"));
    shot(&phone, "17-narrow").await;
    assert!(phone
        .find(Locator::Css("a[href='/console/users']"))
        .await
        .is_err());
    phone.goto(&format!("{url}/console/users")).await.unwrap();
    assert!(text(&phone, ".flash.error").await.contains("admin role"));
    phone
        .goto(&format!("{url}/console/password"))
        .await
        .unwrap();
    fill(&phone, "#current", "bob-password-1").await;
    fill(&phone, "#new", "bob-password-2").await;
    click(&phone, "#password-form button").await;
    assert_eq!(
        path_becomes(&phone, "/console/login").await,
        "/console/login"
    );
    phone.goto(&format!("{url}/console/configs")).await.unwrap();
    assert_eq!(
        path_becomes(&phone, "/console/login").await,
        "/console/login"
    );
    fill(&phone, "#username", "bob").await;
    fill(&phone, "#password", "bob-password-2").await;
    click(&phone, "button[type=submit]").await;
    assert!(text(&phone, "#configs").await.contains("app.yaml"));

    // Marked sensitive in the editor, the config is gone from bob's list, and opening it
    // says what he would need.
    c.goto(&format!(
        "{url}/console/c/public/DEFAULT_GROUP/app.yaml/edit"
    ))
    .await
    .unwrap();
    set_editor(&c, "server:\n  port: 7070\n").await;
    click(&c, "#sensitive").await;
    click(&c, "button[value=review]").await;
    click(&c, "button[value=publish]").await;
    assert!(text(&c, ".flash.ok").await.contains("Published"));
    let meta = text(&c, "#meta").await;
    assert!(meta.contains("read-secret"), "{meta}");
    shot(&c, "05b-sensitive").await;
    phone.goto(&format!("{url}/console/configs")).await.unwrap();
    assert!(!text(&phone, "#configs").await.contains("app.yaml"));
    phone
        .goto(&format!("{url}/console/c/public/DEFAULT_GROUP/app.yaml"))
        .await
        .unwrap();
    let refused = text(&phone, ".flash.error").await;
    assert!(refused.contains("read-secret"), "{refused}");
    assert!(!phone.source().await.unwrap().contains("7070"));
    phone.close().await.unwrap();

    // A schema attached in the console: the configs it would refuse are listed first;
    // once attached, the editor shows each failing location before anything is sent.
    c.goto(&format!("{url}/console/schemas")).await.unwrap();
    fill(&c, "#schema-group", "DEFAULT_GROUP").await;
    fill(&c, "#schema-data-id", "*.yaml").await;
    let port_at_most = |max: u32| {
        format!(
            r#"{{"properties":{{"server":{{"properties":{{"port":{{"type":"integer","maximum":{max}}}}}}}}}}}"#
        )
    };
    set_code_in(&c, "form#schema-form", &port_at_most(1024)).await;
    click(&c, "#schema-form button.primary").await;
    let refused = text(&c, "#problem").await;
    assert!(
        refused.contains("public/DEFAULT_GROUP/app.yaml: /server/port")
            && refused.contains("maximum of 1024"),
        "{refused}"
    );
    shot(&c, "05c-schema-refused").await;
    set_code_in(&c, "form#schema-form", &port_at_most(65535)).await;
    click(&c, "#schema-form button.primary").await;
    assert!(text(&c, ".flash.ok").await.contains("Saved"));
    assert!(text(&c, "#schema-versions").await.contains("set"));
    c.goto(&format!("{url}/console/schemas")).await.unwrap();
    assert!(text(&c, "#schemas").await.contains("*.yaml"));
    c.goto(&format!(
        "{url}/console/c/public/DEFAULT_GROUP/app.yaml/edit"
    ))
    .await
    .unwrap();
    let applied = text(&c, "#applied-schemas").await;
    assert!(
        applied.contains("public/DEFAULT_GROUP/*.yaml (v1)"),
        "{applied}"
    );
    set_editor(&c, "server:\n  port: 70000\n").await;
    click(&c, "button[value=review]").await;
    let problem = text(&c, "#problem").await;
    assert!(
        problem.contains("/server/port") && problem.contains("maximum of 65535"),
        "{problem}"
    );
    // The config is sensitive: its values stay out of the message.
    assert!(!problem.contains("70000"), "{problem}");
    shot(&c, "05d-schema-inline").await;

    // A webhook added in the console; its delivery log shows each attempt, and a
    // delivery can be sent again. (`.invalid` never resolves: every attempt fails.)
    c.goto(&format!("{url}/console/webhooks")).await.unwrap();
    fill(&c, "#webhook-url", "https://hooks.example.invalid/cairn").await;
    fill(&c, "#webhook-secret", "console-webhook-secret-1").await;
    fill(&c, "#webhook-data-id", "*.yaml").await;
    click(&c, "#webhook-form button.primary").await;
    assert!(text(&c, ".flash.ok").await.contains("Saved"));
    let listed = text(&c, "#webhooks").await;
    assert!(
        listed.contains("hooks.example.invalid") && listed.contains("*.yaml"),
        "{listed}"
    );
    assert!(!c
        .source()
        .await
        .unwrap()
        .contains("console-webhook-secret-1"));
    shot(&c, "05e-webhooks").await;
    c.goto(&format!(
        "{url}/console/c/public/DEFAULT_GROUP/app.yaml/edit"
    ))
    .await
    .unwrap();
    set_editor(&c, "server:\n  port: 7071\n").await;
    click(&c, "button[value=review]").await;
    click(&c, "button[value=publish]").await;
    assert!(text(&c, ".flash.ok").await.contains("Published"));
    let mut attempted = String::new();
    for _ in 0..100 {
        c.goto(&format!("{url}/console/webhooks/deliveries?id=1"))
            .await
            .unwrap();
        let page = text(&c, "main").await;
        if page.contains("could not") {
            attempted = page;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        attempted.contains("DEFAULT_GROUP/app.yaml") && attempted.contains("pending"),
        "{attempted}"
    );
    shot(&c, "05f-deliveries").await;
    click(&c, "#deliveries button").await;
    assert!(text(&c, ".flash.ok").await.contains("sent again"));

    // A system in dark mode gets the dark theme, editor included.
    let dark = browser_with(
        &driver,
        1280,
        &[
            "--force-dark-mode",
            "--blink-settings=preferredColorScheme=0",
        ],
    )
    .await;
    log_in(&dark, &url, "admin", PASSWORD).await;
    dark.goto(&format!("{url}/console/c/public/DEFAULT_GROUP/app.yaml"))
        .await
        .unwrap();
    find(&dark, ".CodeMirror").await;
    let colors = dark
        .execute(
            "return [getComputedStyle(document.body).backgroundColor, \
             getComputedStyle(document.querySelector('.CodeMirror')).backgroundColor];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(colors, json!(["rgb(21, 24, 28)", "rgb(29, 33, 38)"]));
    shot(&dark, "18-dark").await;
    dark.close().await.unwrap();

    // Logging out ends the session on the server: its cookie no longer opens a page.
    let cookie = c.get_named_cookie("cairn_session").await.unwrap();
    click(&c, "header form button").await;
    assert_eq!(path_becomes(&c, "/console/login").await, "/console/login");
    let replay = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{url}/console/configs"))
        .header("cookie", format!("cairn_session={}", cookie.value()))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 303);
    assert!(replay.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with("/console/login"));
    c.close().await.unwrap();
}

#[tokio::test]
async fn console_answers_carry_the_security_headers_and_refuse_foreign_forms() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Some(PASSWORD));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = http
        .get(format!("{}/console/login", server.url))
        .send()
        .await
        .unwrap();
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    // The login form comes with a token, and a cookie that holds the same.
    let login_cookie = page.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(login_cookie.contains("SameSite=Strict"), "{login_cookie}");
    let login_cookie = login_cookie.split(';').next().unwrap().to_owned();
    let html = page.text().await.unwrap();
    let token = html
        .split("name=\"login_token\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the form carries its token")
        .to_owned();

    // A login posted by another site (no cookie, or not this form's token) is refused.
    for (cookie, sent) in [("", token.as_str()), (login_cookie.as_str(), "forged")] {
        let r = http
            .post(format!("{}/console/login", server.url))
            .header("cookie", cookie)
            .form(&[
                ("username", "admin"),
                ("password", PASSWORD),
                ("login_token", sent),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        assert!(r.text().await.unwrap().contains("came from another site"));
    }

    let login = http
        .post(format!("{}/console/login", server.url))
        .header("cookie", &login_cookie)
        .form(&[
            ("username", "admin"),
            ("password", PASSWORD),
            ("next", "//evil.example/"),
            ("login_token", token.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 303);
    assert_eq!(
        login.headers()["location"],
        "/console/configs",
        "no redirect off the node"
    );
    let cookie = login.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_owned();

    // A form without this session's token is refused and changes nothing.
    let forged = http
        .post(format!("{}/console/new", server.url))
        .header("cookie", &session)
        .form(&[
            ("csrf", "forged"),
            ("namespace", "public"),
            ("group", "DEFAULT_GROUP"),
            ("data_id", "forged.txt"),
            ("content", "x"),
            ("step", "publish"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert!(forged.text().await.unwrap().contains("reload the page"));
    let missing = http
        .get(format!(
            "{}/console/c/public/DEFAULT_GROUP/forged.txt",
            server.url
        ))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404, "the forged form published nothing");
}

/// A console session of `user`, logged in as a browser would; returns the session
/// cookie (`cairn_session=…`).
async fn console_session(http: &reqwest::Client, url: &str, user: &str, password: &str) -> String {
    let page = http
        .get(format!("{url}/console/login"))
        .send()
        .await
        .unwrap();
    let login_cookie = page.headers()["set-cookie"].to_str().unwrap();
    let login_cookie = login_cookie.split(';').next().unwrap().to_owned();
    let token = login_cookie.trim_start_matches("cairn_login=").to_owned();
    let login = http
        .post(format!("{url}/console/login"))
        .header("cookie", &login_cookie)
        .form(&[
            ("username", user),
            ("password", password),
            ("login_token", token.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 303, "{user} logs in");
    let cookie = login.headers()["set-cookie"].to_str().unwrap();
    cookie.split(';').next().unwrap().to_owned()
}

/// The review step of the new-config form, as `session` sends it, naming an existing
/// config and an earlier revision of it as the edit's base; returns the page.
async fn review_new_config(http: &reqwest::Client, url: &str, session: &str) -> String {
    let page = http
        .get(format!("{url}/console/new"))
        .header("cookie", session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the form carries the session's token")
        .to_owned();
    http.post(format!("{url}/console/new"))
        .header("cookie", session)
        .form(&[
            ("csrf", csrf.as_str()),
            ("namespace", "public"),
            ("group", "DEFAULT_GROUP"),
            ("data_id", "secret.yaml"),
            ("content", "x: 1"),
            ("step", "review"),
            ("base_md5", "00000000000000000000000000000000"),
            ("base_revision", "1"),
        ])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_new_config_form_shows_no_one_a_config_they_may_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Some(PASSWORD));
    let url = server.url.as_str();
    publish_elsewhere(url, "secret.yaml", "password: first-secret").await;
    publish_elsewhere(url, "secret.yaml", "password: second-secret").await;
    let created = reqwest::Client::new()
        .post(format!("{url}/api/v1/users"))
        .bearer_auth(api_token(url).await)
        .json(&json!({ "username": "eve", "password": "eve-password-1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // Someone who may read the config sees the revision they named as the base…
    let admin = console_session(&http, url, "admin", PASSWORD).await;
    let shown = review_new_config(&http, url, &admin).await;
    assert!(shown.contains("first-secret"), "{shown}");
    // …someone who may not, sees nothing of it.
    let eve = console_session(&http, url, "eve", "eve-password-1").await;
    let hidden = review_new_config(&http, url, &eve).await;
    assert!(!hidden.contains("first-secret"), "{hidden}");
    assert!(!hidden.contains("password:"), "{hidden}");
}

/// Makes a user with `level` over `namespace` through the native API.
async fn person(url: &str, token: &str, name: &str, namespace: &str, level: &str) {
    let http = reqwest::Client::new();
    let made = http
        .post(format!("{url}/api/v1/users"))
        .bearer_auth(token)
        .json(&json!({ "username": name, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 201, "{name} is made");
    let granted = http
        .put(format!("{url}/api/v1/grants"))
        .bearer_auth(token)
        .json(&json!({ "user": name, "namespace": namespace, "level": level }))
        .send()
        .await
        .unwrap();
    assert_eq!(granted.status(), 204, "{name} gets {level}");
}

#[tokio::test]
async fn a_change_waits_in_the_console_for_another_persons_approval() {
    let Some(driver) = driver() else { return };
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Some(PASSWORD));
    let url = server.url.clone();
    let token = api_token(&url).await;
    let http = reqwest::Client::new();
    let made = http
        .post(format!("{url}/api/v1/namespaces"))
        .bearer_auth(&token)
        .json(&json!({ "name": "prod" }))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 201);
    let published = http
        .put(format!("{url}/api/v1/configs/prod/web/app.yaml"))
        .bearer_auth(&token)
        .json(&json!({ "content": "replicas: 2\n" }))
        .send()
        .await
        .unwrap();
    assert_eq!(published.status(), 200);
    person(&url, &token, "alice", "prod", "write").await;
    person(&url, &token, "bob", "prod", "approve").await;

    // The admin turns review on for the namespace.
    let admin = browser(&driver, 1280).await;
    log_in(&admin, &url, "admin", PASSWORD).await;
    admin
        .goto(&format!("{url}/console/namespaces"))
        .await
        .unwrap();
    click(
        &admin,
        "form[action='/console/namespaces/review']:has(input[value=prod]) button",
    )
    .await;
    assert!(text(&admin, ".flash.ok").await.contains("Saved"));
    let rows = text(&admin, "#namespaces").await;
    assert!(rows.contains("required"), "{rows}");
    admin.close().await.unwrap();

    // Alice edits as ever; her change waits for review.
    let alice = browser(&driver, 1280).await;
    log_in(&alice, &url, "alice", PASSWORD).await;
    alice
        .goto(&format!("{url}/console/c/prod/web/app.yaml/edit"))
        .await
        .unwrap();
    set_editor(&alice, "replicas: 3\n").await;
    click(&alice, "button[value=review]").await;
    fill(&alice, "#message", "more replicas for the sale").await;
    let submit = text(&alice, "button[value=publish]").await;
    assert_eq!(
        submit, "Submit for review",
        "the button says what will happen"
    );
    click(&alice, "button[value=publish]").await;
    assert_eq!(
        path_becomes(&alice, "/console/reviews/view").await,
        "/console/reviews/view"
    );
    assert!(text(&alice, ".flash.ok").await.contains("Kept for review"));
    let timeline = text(&alice, "#review-timeline").await;
    assert!(
        timeline.contains("opened by alice") && timeline.contains("more replicas"),
        "{timeline}"
    );
    let actions = text(&alice, "#review-actions").await;
    assert!(
        !actions.contains("Approve") && actions.contains("Withdraw"),
        "the author may not approve: {actions}"
    );
    shot(&alice, "05g-review-opened").await;
    alice.close().await.unwrap();

    // Bob finds it among the open requests, reads the diff and approves it.
    let bob = browser(&driver, 1280).await;
    log_in(&bob, &url, "bob", PASSWORD).await;
    click(&bob, "header nav a[href='/console/reviews']").await;
    let listed = text(&bob, "#reviews").await;
    assert!(
        listed.contains("prod/web/app.yaml") && listed.contains("alice"),
        "{listed}"
    );
    shot(&bob, "05h-reviews").await;
    click(&bob, "#reviews td.key a").await;
    let diff = text(&bob, "table.diff").await;
    assert!(
        diff.contains("replicas: 2") && diff.contains("replicas: 3"),
        "{diff}"
    );
    fill(&bob, "#comment-approve", "ok for the sale").await;
    click(&bob, "form[action='/console/reviews/approve'] button").await;
    assert!(text(&bob, ".flash.ok")
        .await
        .contains("Approved and released"));
    assert!(text(&bob, "#review-title").await.contains("approved"));
    shot(&bob, "05i-review-approved").await;
    bob.close().await.unwrap();

    let now = http
        .get(format!("{url}/api/v1/configs/prod/web/app.yaml"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(now, "replicas: 3\n", "released by the approval");
}
