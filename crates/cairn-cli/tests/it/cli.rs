//! The real `cairn` binary: a server process, and the CLI commands against it.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::common::{write_certificates, Server, BIN};

/// Runs `cairn` with the profile kept in `home`.
fn cairn(home: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .env("CAIRN_CONFIG_DIR", home)
        .env_remove("CAIRN_SERVER")
        .env_remove("CAIRN_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn ok(home: &Path, args: &[&str]) -> String {
    ok_with_stdin(home, args, None)
}

fn ok_with_stdin(home: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let out = cairn(home, args, stdin);
    assert!(
        out.status.success(),
        "cairn {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fails(home: &Path, args: &[&str]) -> String {
    let out = cairn(home, args, None);
    assert!(!out.status.success(), "cairn {args:?} should fail");
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn the_cli_tour() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let server = Server::start(&dir.path().join("data"), Some("tour-password-1"));

    let out = ok_with_stdin(
        &home,
        &["login", "--server", &server.url, "--password-stdin"],
        Some("tour-password-1\n"),
    );
    assert!(out.contains("logged in"), "{out}");

    let file = dir.path().join("app.yaml");
    std::fs::write(&file, "server:\n  port: 8080\n").unwrap();
    let key = "public/DEFAULT_GROUP/app.yaml";
    let out = ok(
        &home,
        &["publish", key, "-f", file.to_str().unwrap(), "--tag", "web"],
    );
    assert!(out.contains("revision 1 (yaml"), "{out}");
    assert_eq!(ok(&home, &["get", key]), "server:\n  port: 8080\n");
    let meta: serde_json::Value =
        serde_json::from_str(&ok(&home, &["get", key, "--meta"])).unwrap();
    assert_eq!(meta["tags"], serde_json::json!(["web"]));

    // An invalid file is refused with the parser's position.
    std::fs::write(&file, "server:\n  port: [8080\n").unwrap();
    let err = fails(&home, &["publish", key, "-f", file.to_str().unwrap()]);
    assert!(err.contains("invalid yaml at line"), "{err}");

    // The format comes from the file's extension when the data id has none.
    let props = dir.path().join("db.properties");
    std::fs::write(&props, "url = jdbc:x\n").unwrap();
    let out = ok(
        &home,
        &["publish", "public/shop/db", "-f", props.to_str().unwrap()],
    );
    assert!(out.contains("(properties"), "{out}");

    // A watcher prints the next version.
    let mut watcher = Command::new(BIN)
        .args(["watch", key, "--count", "1"])
        .env("CAIRN_CONFIG_DIR", &home)
        .env_remove("CAIRN_SERVER")
        .env_remove("CAIRN_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(watcher.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(line.contains("watching 1 key"), "{line}");
    std::fs::write(&file, "server:\n  port: 9090\n").unwrap();
    ok(
        &home,
        &[
            "publish",
            key,
            "-f",
            file.to_str().unwrap(),
            "-m",
            "new port",
        ],
    );
    let mut printed = String::new();
    watcher
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut printed)
        .unwrap();
    assert!(watcher.wait().unwrap().success());
    assert!(
        printed.contains("--- public/DEFAULT_GROUP/app.yaml revision 3"),
        "{printed}"
    );
    assert!(printed.contains("port: 9090"), "{printed}");

    let history = ok(&home, &["history", key]);
    assert!(history.starts_with("REVISION  OP"), "{history}");
    assert!(history.contains("new port"), "{history}");
    assert!(history.contains("2 entries in all"), "{history}");

    let diff = ok(&home, &["diff", key, "--from", "1", "--to", "3"]);
    assert!(diff.contains("-  port: 8080\n+  port: 9090\n"), "{diff}");
    let out = ok(&home, &["rollback", key, "--to", "1"]);
    assert!(out.contains("new revision 4"), "{out}");
    assert_eq!(ok(&home, &["get", key]), "server:\n  port: 8080\n");
    assert_eq!(
        ok(&home, &["get", key, "--revision", "3"]),
        "server:\n  port: 9090\n"
    );

    // Canary a change: only clients labelled canary=true see it, until promoted.
    let canary_file = dir.path().join("canary.yaml");
    std::fs::write(&canary_file, "server:\n  port: 7070\n").unwrap();
    let out = ok(
        &home,
        &[
            "gray",
            "publish",
            key,
            "-f",
            canary_file.to_str().unwrap(),
            "--label",
            "canary=true",
        ],
    );
    assert!(out.contains("labels [canary=true]"), "{out}");
    assert_eq!(
        ok(&home, &["get", key, "--as-label", "canary=true"]),
        "server:\n  port: 7070\n"
    );
    assert_eq!(ok(&home, &["get", key]), "server:\n  port: 8080\n");
    let shown = ok(&home, &["gray", "show", key]);
    assert!(
        shown.contains("# labels: canary=true") && shown.contains("7070"),
        "{shown}"
    );
    ok(&home, &["gray", "abandon", key]);
    assert_eq!(
        ok(&home, &["get", key, "--as-label", "canary=true"]),
        "server:\n  port: 8080\n"
    );
    ok(
        &home,
        &[
            "gray",
            "publish",
            key,
            "-f",
            canary_file.to_str().unwrap(),
            "--ip",
            "10.0.0.9",
        ],
    );
    assert_eq!(
        ok(&home, &["get", key, "--as-ip", "10.0.0.9"]),
        "server:\n  port: 7070\n"
    );
    let out = ok(&home, &["gray", "promote", key]);
    assert!(out.contains("for everyone"), "{out}");
    assert_eq!(ok(&home, &["get", key]), "server:\n  port: 7070\n");
    let err = fails(&home, &["gray", "show", key]);
    assert!(err.contains("no gray release"), "{err}");

    let list = ok(&home, &["list", "--data-id", "*.yaml"]);
    assert!(
        list.contains("app.yaml") && !list.contains("shop"),
        "{list}"
    );
    assert!(list.contains("1 configs in all"), "{list}");

    // Apollo access keys: created, listed, disabled, enabled, deleted.
    let out = ok(&home, &["access-key", "create", "shop"]);
    let id = out
        .strip_prefix("access key ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("{out}"))
        .to_owned();
    let list = ok(&home, &["access-key", "list", "shop"]);
    assert!(list.contains(&id) && list.contains("enabled"), "{list}");
    ok(&home, &["access-key", "disable", "shop", &id]);
    assert!(ok(&home, &["access-key", "list", "shop"]).contains("disabled"));
    ok(&home, &["access-key", "enable", "shop", &id]);
    assert!(!ok(&home, &["access-key", "list", "shop"]).contains("disabled"));
    ok(&home, &["access-key", "delete", "shop", &id]);
    assert!(!ok(&home, &["access-key", "list", "shop"]).contains(&id));
    let err = fails(&home, &["access-key", "delete", "shop", &id]);
    assert!(
        err.contains("not_found") || err.contains("no access key"),
        "{err}"
    );

    ok(
        &home,
        &["ns", "create", "dev", "--description", "Development"],
    );
    let ns = ok(&home, &["ns", "list"]);
    assert!(ns.contains("dev") && ns.contains("Development"), "{ns}");
    let out = ok(
        &home,
        &["ns", "update", "dev", "--apollo-anonymous", "shop,web-*"],
    );
    assert!(out.contains("unsigned Apollo reads: shop,web-*"), "{out}");
    let out = ok(&home, &["ns", "update", "dev", "--apollo-anonymous", ""]);
    assert!(out.contains("signed reads only"), "{out}");
    let out = ok(
        &home,
        &["access-key", "create", "shop", "--namespace", "dev"],
    );
    assert!(out.contains("secret"), "{out}");

    // Grants and roles: a new user may do nothing until granted.
    ok_with_stdin(
        &home,
        &["user", "add", "dana", "--password-stdin"],
        Some("dana-password\n"),
    );
    let out = ok(&home, &["grant", "--user", "dana", "dev/*/*.yaml", "write"]);
    assert!(
        out.contains("user dana now has write on dev/*/*.yaml"),
        "{out}"
    );
    ok(&home, &["role", "add", "readers", "dana"]);
    ok(&home, &["grant", "--role", "readers", "public", "read"]);
    let out = ok(&home, &["grant", "--user", "dana", "dev/db", "read-secret"]);
    assert!(out.contains("read-secret on dev/db"), "{out}");
    let grants = ok(&home, &["grants", "--user", "dana"]);
    assert!(
        grants.contains("dev/*/*.yaml") && grants.contains("write"),
        "{grants}"
    );
    assert!(ok(&home, &["role", "list"]).contains("readers"));
    let err = fails(&home, &["grant", "--user", "dana", "a/b/c/d", "read"]);
    assert!(err.contains("NAMESPACE[/GROUP[/DATA_ID]]"), "{err}");
    let err = fails(&home, &["grant", "--user", "nobody", "dev", "read"]);
    assert!(err.contains("user_not_found"), "{err}");
    let made = ok(
        &home,
        &["token", "create", "deploy", "--scope", "dev=write"],
    );
    let secret = made
        .split_whitespace()
        .find(|w| w.starts_with("cst_"))
        .unwrap_or_else(|| panic!("{made}"))
        .to_owned();
    let listed = ok(&home, &["token", "list"]);
    assert!(
        listed.contains("deploy") && listed.contains("dev=write"),
        "{listed}"
    );
    assert!(!listed.contains(&secret), "the token is shown once");
    let err = fails(&home, &["--token", &secret, "user", "list"]);
    assert!(err.contains("forbidden"), "{err}");
    ok(&home, &["token", "revoke", "deploy"]);
    let audit = ok(&home, &["audit", "--action", "token", "--json"]);
    assert!(audit.contains("\"action\":\"token.create\""), "{audit}");
    ok(&home, &["revoke", "--user", "dana", "dev/*/*.yaml"]);
    ok(&home, &["revoke", "--user", "dana", "dev/db"]);
    ok(&home, &["role", "delete", "readers"]);
    assert!(!ok(&home, &["grants"]).contains("dana"));
    ok(&home, &["user", "delete", "dana"]);
    ok(&home, &["ns", "delete", "dev"]);
    assert!(!ok(&home, &["ns", "list"]).contains("dev "));

    ok_with_stdin(
        &home,
        &["user", "add", "carol", "--password-stdin"],
        Some("carol-password\n"),
    );
    assert!(ok(&home, &["user", "list"]).contains("carol"));
    let err = fails(&home, &["user", "delete", "admin"]);
    assert!(err.contains("last admin"), "{err}");
    ok(&home, &["user", "delete", "carol"]);

    ok(&home, &["delete", key]);
    let err = fails(&home, &["get", key]);
    assert!(err.contains("does not exist"), "{err}");

    // Flags win over the profile: a bad token is refused with a clear message.
    let err = fails(&home, &["--token", "bogus", "list"]);
    assert!(err.contains("invalid_token"), "{err}");

    // Changing your own password asks for the current one and voids the old token.
    let out = cairn(
        &home,
        &["user", "passwd", "admin", "--password-stdin"],
        Some("wrong-one\nnext-password-2\n"),
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong_password"));
    ok_with_stdin(
        &home,
        &["user", "passwd", "admin", "--password-stdin"],
        Some("tour-password-1\nnext-password-2\n"),
    );
    let err = fails(&home, &["list"]);
    assert!(err.contains("invalid_token"), "{err}");
    ok_with_stdin(
        &home,
        &["login", "--password-stdin"],
        Some("next-password-2\n"),
    );
    ok(&home, &["list"]);

    assert!(server.terminate().success(), "SIGTERM is a clean exit");
}

#[test]
fn first_start_writes_a_random_admin_password_to_a_private_file() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, None);
    let file = server
        .banner
        .lines()
        .skip_while(|l| !l.contains("its password is in"))
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.contains("its password is in"))
        .expect("the file is named")
        .to_owned();
    assert_eq!(std::path::Path::new(&file), data.join("admin-password"));
    let password = std::fs::read_to_string(&file).unwrap().trim().to_owned();
    assert!(
        !server.banner.contains(&password),
        "the password is not printed: {}",
        server.banner
    );
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(std::path::Path::new(&file)), 0o600);
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("cairn.db")), 0o600);
    assert!(password.len() >= 20, "{password:?}");
    let home = dir.path().join("home");
    ok_with_stdin(
        &home,
        &["login", "--server", &server.url, "--password-stdin"],
        Some(&format!("{password}\n")),
    );
    assert!(server.terminate().success());

    // The second start creates nothing and prints no password.
    let again = Server::start(&data, Some("ignored-password"));
    assert!(!again.banner.contains("created user"), "{}", again.banner);
    drop(again);
    let key = std::fs::read_to_string(data.join("token.key")).unwrap();
    assert_eq!(key.trim().len(), 64, "a 256-bit signing key was generated");
}

#[test]
fn the_cli_verifies_a_tls_server_and_presents_its_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (home, certs) = (dir.path().join("home"), dir.path().join("certs"));
    std::fs::create_dir(&certs).unwrap();
    write_certificates(&certs, &["node", "ci"]);
    let file = |name: &str| certs.join(name).display().to_string();
    let server = Server::start_on(
        &dir.path().join("data"),
        "127.0.0.1:0",
        Some("tls-password-1"),
        &[
            "--tls-cert",
            &file("node.crt"),
            "--tls-key",
            &file("node.key"),
            "--tls-client-ca",
            &file("ca.pem"),
        ],
    );
    assert!(server.url.starts_with("https://"), "{}", server.url);
    let login = |extra: &[&str]| {
        let mut args = vec!["login", "--server", &server.url, "--password-stdin"];
        args.extend_from_slice(extra);
        cairn(&home, &args, Some("tls-password-1\n"))
    };

    // A server whose certificate the system does not trust is refused, and says why.
    let unverified = login(&[]);
    assert!(!unverified.status.success());
    let why = String::from_utf8_lossy(&unverified.stderr);
    assert!(why.contains("certificate"), "{why}");
    // Trusting the CA is not enough where the server asks for a client certificate.
    let (ca, cert, key) = (file("ca.pem"), file("ci.crt"), file("ci.key"));
    assert!(!login(&["--ca-file", &ca]).status.success());
    let out = login(&[
        "--ca-file",
        &ca,
        "--client-cert",
        &cert,
        "--client-key",
        &key,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tls = [
        "--ca-file",
        &ca,
        "--client-cert",
        &cert,
        "--client-key",
        &key,
    ];
    let content = dir.path().join("tls.txt");
    std::fs::write(&content, "over TLS").unwrap();
    let content = content.display().to_string();
    let mut publish = vec!["publish", "public/DEFAULT_GROUP/tls.txt", "-f", &content];
    publish.extend_from_slice(&tls);
    ok(&home, &publish);
    let mut get = vec!["get", "public/DEFAULT_GROUP/tls.txt"];
    get.extend_from_slice(&tls);
    assert_eq!(ok(&home, &get).trim_end(), "over TLS");
    // A key without its certificate is refused before anything is sent.
    let half = fails(
        &home,
        &["get", "public/DEFAULT_GROUP/tls.txt", "--client-key", &key],
    );
    assert!(half.contains("--client-cert"), "{half}");
}

#[test]
fn a_namespace_is_exported_and_imported_with_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let server = Server::start(&dir.path().join("data"), Some("move-password-1"));
    ok_with_stdin(
        &home,
        &["login", "--server", &server.url, "--password-stdin"],
        Some("move-password-1\n"),
    );
    let file = dir.path().join("app.yaml");
    std::fs::write(&file, "port: 8080\n").unwrap();
    let file = file.display().to_string();
    ok(
        &home,
        &[
            "publish",
            "public/web/app.yaml",
            "-f",
            &file,
            "--tag",
            "web",
        ],
    );
    ok(&home, &["publish", "public/jobs/app.yaml", "-f", &file]);
    ok(&home, &["ns", "create", "staging"]);

    let zip = dir.path().join("public.zip").display().to_string();
    let out = ok(&home, &["export", "public", "-o", &zip, "--group", "web"]);
    assert!(out.contains("exported namespace public"), "{out}");
    let out = ok(&home, &["import", "staging", &zip]);
    assert!(
        out.contains("imported 1 configs (11 bytes) into staging"),
        "{out}"
    );
    assert_eq!(ok(&home, &["get", "staging/web/app.yaml"]), "port: 8080\n");
    // Again: nothing to do, since it is there as the zip has it.
    let out = ok(&home, &["import", "staging", &zip]);
    assert!(
        out.contains("imported 0 configs") && out.contains("1 unchanged"),
        "{out}"
    );
    // Changed since: refused as a whole by default, and why; skipped when asked.
    let changed = dir.path().join("changed.yaml");
    std::fs::write(&changed, "port: 9090\n").unwrap();
    let changed = changed.display().to_string();
    ok(&home, &["publish", "staging/web/app.yaml", "-f", &changed]);
    let refused = fails(&home, &["import", "staging", &zip]);
    assert!(refused.contains("exists (policy abort)"), "{refused}");
    let out = ok(&home, &["import", "staging", &zip, "--policy", "skip"]);
    assert!(out.contains("skipped staging/web/app.yaml"), "{out}");
    assert_eq!(ok(&home, &["get", "staging/web/app.yaml"]), "port: 9090\n");
    // A clone copies what it names, into another group when asked.
    let out = ok(
        &home,
        &[
            "clone",
            "public",
            "staging",
            "--group",
            "jobs",
            "--to-group",
            "batch",
        ],
    );
    assert!(
        out.contains("imported 1 configs (11 bytes) into staging"),
        "{out}"
    );
    assert_eq!(
        ok(&home, &["get", "staging/batch/app.yaml"]),
        "port: 8080\n"
    );
    let refused = fails(&home, &["clone", "nowhere", "staging"]);
    assert!(refused.contains("nowhere"), "{refused}");

    // Cairn's own format, for a backup: out and back in.
    let backup = dir.path().join("public.cairn.jsonl").display().to_string();
    let out = ok(
        &home,
        &["export", "public", "--format", "cairn", "-o", &backup],
    );
    assert!(out.contains("exported namespace public"), "{out}");
    assert!(std::fs::read_to_string(&backup)
        .unwrap()
        .starts_with("{\"cairn_export\":1"));
    ok(&home, &["ns", "create", "restored"]);
    let out = ok(&home, &["import", "restored", &backup]);
    assert!(out.contains("imported 2 configs"), "{out}");
    assert_eq!(
        ok(&home, &["get", "restored/jobs/app.yaml"]),
        "port: 8080\n"
    );

    // With history: each config's versions come along where it is new.
    let refused = fails(&home, &["export", "public", "--history", "-o", &backup]);
    assert!(refused.contains("--format cairn"), "{refused}");
    let out = ok(
        &home,
        &[
            "export",
            "public",
            "--format",
            "cairn",
            "--history",
            "-o",
            &backup,
        ],
    );
    assert!(out.contains("exported namespace public"), "{out}");
    ok(&home, &["ns", "create", "archived"]);
    let out = ok(&home, &["import", "archived", &backup]);
    assert!(
        out.contains("imported 2 configs") && out.contains("wrote 2 earlier version(s)"),
        "{out}"
    );
    let history = ok(&home, &["history", "archived/web/app.yaml"]);
    assert!(history.contains("2 entries in all"), "{history}");
}

/// Writes `text` to `name` in `dir`; its path.
fn write_file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// A source node and a target node of a migration, each with a logged-in home:
/// (dir, source, target, source home, target home).
fn source_and_target() -> (
    tempfile::TempDir,
    Server,
    Server,
    std::path::PathBuf,
    std::path::PathBuf,
) {
    let dir = tempfile::tempdir().unwrap();
    let (source_home, home) = (dir.path().join("source-home"), dir.path().join("home"));
    let source = Server::start(&dir.path().join("source"), Some("source-password-1"));
    let target = Server::start(&dir.path().join("target"), Some("target-password-1"));
    login(&source_home, &source, "source-password-1");
    login(&home, &target, "target-password-1");
    (dir, source, target, source_home, home)
}

/// Logs `home` in to `server` as the first admin.
fn login(home: &Path, server: &Server, password: &str) {
    ok_with_stdin(
        home,
        &["login", "--server", &server.url, "--password-stdin"],
        Some(&format!("{password}\n")),
    );
}

#[test]
fn a_running_nacos_is_migrated_and_the_migration_can_be_repeated() {
    // The source is a Cairn node, read only through Nacos's own routes (namespace list,
    // login, export), as a Nacos server would be.
    let (dir, source, _target, source_home, home) = source_and_target();
    let file = |name: &str, text: &str| write_file(dir.path(), name, text);
    let yaml = file("app.yaml", "port: 8080\n");
    ok(
        &source_home,
        &[
            "publish",
            "public/web/app.yaml",
            "-f",
            &yaml,
            "--tag",
            "edge",
        ],
    );
    ok(
        &source_home,
        &["ns", "create", "dev", "--description", "developers"],
    );
    let props = file("db.properties", "url=jdbc:x\n");
    ok(
        &source_home,
        &["publish", "dev/jobs/db.properties", "-f", &props],
    );

    let from = [
        "migrate",
        "--from-nacos",
        source.url.as_str(),
        "--username",
        "admin",
    ];
    let migrate = |extra: &[&str]| {
        let args: Vec<&str> = from.iter().chain(extra).copied().collect();
        ok_with_stdin(&home, &args, None)
    };
    let wrong = cairn(
        &home,
        &[&from[..], &["--password", "not-it"]].concat(),
        None,
    );
    assert!(!wrong.status.success());
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(err.contains("Nacos refused the login"), "{err}");

    let out = migrate(&["--password", "source-password-1"]);
    assert!(
        out.contains("migrated 2 configs") && out.contains("into 2 namespace(s)"),
        "{out}"
    );
    assert_eq!(ok(&home, &["get", "public/web/app.yaml"]), "port: 8080\n");
    assert_eq!(
        ok(&home, &["get", "dev/jobs/db.properties"]),
        "url=jdbc:x\n"
    );
    let info = ok(&home, &["get", "public/web/app.yaml", "--meta"]);
    assert!(info.contains("edge"), "the tag came along: {info}");
    assert!(ok(&home, &["ns", "list"]).contains("developers"));

    // Repeated: nothing is published again; a change at the source moves alone.
    let history_before = ok(&home, &["history", "public/web/app.yaml"]);
    let out = migrate(&["--password", "source-password-1"]);
    assert!(
        out.contains("migrated 0 configs") && out.contains("2 unchanged"),
        "{out}"
    );
    assert_eq!(
        ok(&home, &["history", "public/web/app.yaml"]),
        history_before
    );
    let newer = file("app2.yaml", "port: 9090\n");
    ok(
        &source_home,
        &["publish", "public/web/app.yaml", "-f", &newer],
    );
    let out = migrate(&["--password", "source-password-1", "--namespace", "public"]);
    assert!(
        out.contains("migrated 1 configs") && out.contains("0 unchanged"),
        "{out}"
    );
    assert_eq!(ok(&home, &["get", "public/web/app.yaml"]), "port: 9090\n");

    let unknown = cairn(
        &home,
        &[
            &from[..],
            &["--password", "source-password-1", "--namespace", "prod"],
        ]
        .concat(),
        None,
    );
    let err = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        err.contains("Nacos has no namespace prod; it has: public, dev"),
        "{err}"
    );
}

#[test]
fn an_apollo_app_is_migrated_from_its_config_service() {
    let (dir, source, _target, source_home, home) = source_and_target();
    let file = |name: &str, text: &str| write_file(dir.path(), name, text);
    // Apollo's `application` namespace, a yaml one, and the `east` cluster's own
    // `application`.
    let props = file("application", "timeout=30\nname=shop\n");
    ok(
        &source_home,
        &[
            "publish",
            "public/shop/application",
            "-f",
            &props,
            "--format",
            "properties",
        ],
    );
    let yaml = file("app.yaml", "port: 8080\n");
    ok(
        &source_home,
        &["publish", "public/shop/app.yaml", "-f", &yaml],
    );
    let east = file("east", "timeout=10\n");
    ok(
        &source_home,
        &[
            "publish",
            "public/shop/east:application",
            "-f",
            &east,
            "--format",
            "properties",
        ],
    );
    let out = ok(&source_home, &["access-key", "create", "shop"]);
    let secret = out.rsplit("secret ").next().unwrap().trim().to_owned();

    let base = [
        "migrate",
        "--from-apollo",
        source.url.as_str(),
        "--app",
        "shop",
    ];
    let unsigned = cairn(&home, &base, None);
    let err = String::from_utf8_lossy(&unsigned.stderr);
    assert!(
        !unsigned.status.success() && err.contains("give --secret"),
        "{err}"
    );

    let args: Vec<&str> = base
        .iter()
        .copied()
        .chain([
            "--secret",
            &secret,
            "--namespace",
            "application",
            "--namespace",
            "app.yaml",
            "--namespace",
            "missing",
            "--cluster",
            "default",
            "--cluster",
            "east",
            "--cluster",
            "west",
        ])
        .collect();
    let out = ok(&home, &args);
    assert!(out.contains("migrated 3 configs"), "{out}");
    assert!(
        out.contains("not copied default/missing: Apollo has no release of it"),
        "{out}"
    );
    assert!(
        out.contains("not copied west/application: no release in this cluster"),
        "{out}"
    );
    let application = ok(&home, &["get", "public/shop/application"]);
    assert!(
        application.contains("timeout=30") && application.contains("name=shop"),
        "{application}"
    );
    assert_eq!(ok(&home, &["get", "public/shop/app.yaml"]), "port: 8080\n");
    assert!(ok(&home, &["get", "public/shop/east:application"]).contains("timeout=10"));
    let info = ok(&home, &["get", "public/shop/application", "--meta"]);
    assert!(info.contains("properties"), "{info}");

    let out = ok(&home, &args);
    assert!(
        out.contains("migrated 0 configs") && out.contains("3 unchanged"),
        "{out}"
    );
}

#[test]
fn namespace_quotas_and_retention_are_set_and_shown_with_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let server = Server::start(&dir.path().join("data"), Some("quota-password-1"));
    login(&home, &server, "quota-password-1");
    ok(&home, &["ns", "create", "team"]);
    ok(
        &home,
        &[
            "ns",
            "update",
            "team",
            "--max-configs",
            "1",
            "--max-total-bytes",
            "unlimited",
            "--history-revisions",
            "5",
        ],
    );
    let file = dir.path().join("a.txt");
    std::fs::write(&file, "hello").unwrap();
    let file = file.display().to_string();
    ok(&home, &["publish", "team/g/a.txt", "-f", &file]);
    let shown = ok(&home, &["ns", "show", "team"]);
    assert!(shown.contains("configs      1 of 1"), "{shown}");
    assert!(shown.contains("bytes        5 of unlimited"), "{shown}");
    assert!(
        shown.contains("the last 5 revisions of each config"),
        "{shown}"
    );
    let refused = fails(&home, &["publish", "team/g/b.txt", "-f", &file]);
    assert!(refused.contains("its quota max_configs is 1"), "{refused}");
    ok(&home, &["ns", "update", "team", "--max-configs", "default"]);
    ok(&home, &["publish", "team/g/b.txt", "-f", &file]);
    let shown = ok(&home, &["ns", "show", "team"]);
    assert!(shown.contains("configs      2 of 50000"), "{shown}");
    let bad = fails(&home, &["ns", "update", "team", "--max-configs", "lots"]);
    assert!(
        bad.contains("not a number, `unlimited` or `default`"),
        "{bad}"
    );
}

#[test]
fn a_schema_set_with_the_cli_guards_every_publish() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let server = Server::start(&dir.path().join("data"), Some("schema-password-1"));
    login(&home, &server, "schema-password-1");
    let app = write_file(dir.path(), "app.yaml", "server:\n  port: 99999\n");
    ok(&home, &["publish", "public/web/app.yaml", "-f", &app]);
    let schema = write_file(
        dir.path(),
        "port.json",
        r#"{"properties":{"server":{"properties":{"port":{"maximum":65535}}}}}"#,
    );
    // The config as it is breaks it: refused, naming it, unless forced.
    let refused = fails(
        &home,
        &["schema", "set", "public/web/*.yaml", "-f", &schema],
    );
    assert!(
        refused.contains(
            "public/web/app.yaml: /server/port: 99999 is greater than the maximum of 65535"
        ),
        "{refused}"
    );
    let out = ok(
        &home,
        &[
            "schema",
            "set",
            "public/web/*.yaml",
            "-f",
            &schema,
            "--force",
            "-m",
            "ports",
        ],
    );
    assert!(out.contains("version 1"), "{out}");
    let refused = fails(&home, &["publish", "public/web/app.yaml", "-f", &app]);
    assert!(
        refused.contains("/server/port: 99999 is greater than"),
        "{refused}"
    );
    let fixed = write_file(dir.path(), "fixed.yaml", "server:\n  port: 8080\n");
    ok(&home, &["publish", "public/web/app.yaml", "-f", &fixed]);
    let shown = ok(&home, &["schema", "show", "public/web/*.yaml"]);
    assert!(
        shown.contains("version 1") && shown.contains("\"maximum\": 65535"),
        "{shown}"
    );
    let listed = ok(&home, &["schema", "list", "public"]);
    assert!(listed.contains("public/web/*.yaml  1"), "{listed}");
    ok(&home, &["schema", "rm", "public/web/*.yaml", "-m", "done"]);
    let history = ok(&home, &["schema", "history", "public/web/*.yaml"]);
    let ops: Vec<&str> = history
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(ops, ["remove", "set"], "{history}");
    ok(&home, &["publish", "public/web/app.yaml", "-f", &app]);
    let bad = fails(&home, &["schema", "show", "public/web"]);
    assert!(bad.contains("is not namespace/group/data_id"), "{bad}");
}

/// Every content column of the three tables that hold contents, as stored.
async fn stored_contents(url: &str) -> Vec<String> {
    use sqlx::Row as _;
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let mut all = Vec::new();
    for (table, column) in [
        ("configs", "content"),
        ("history", "content"),
        ("gray_releases", "content"),
        ("access_keys", "secret"),
        ("secrets", "value"),
    ] {
        let sql = format!("SELECT {column} AS content FROM {table}");
        for row in sqlx::query(&sql).fetch_all(&pool).await.unwrap() {
            // MySQL's LONGTEXT arrives through the Any driver as bytes.
            let content = match row.try_get::<String, _>("content") {
                Ok(text) => text,
                Err(_) => String::from_utf8(row.try_get::<Vec<u8>, _>("content").unwrap()).unwrap(),
            };
            all.push(content);
        }
    }
    pool.close().await;
    all
}

#[test]
fn a_key_rotation_moves_a_running_node_to_a_new_key() {
    const PASSWORD: &str = "rotate-password-1";
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let data = dir.path().join("data");
    let (old, new) = (dir.path().join("old.key"), dir.path().join("new.key"));
    let (old, new) = (old.display().to_string(), new.display().to_string());
    ok(&home, &["keygen", &old]);
    ok(&home, &["keygen", &new]);
    let get = |home: &Path| ok(home, &["get", "public/db/app.properties"]);

    // Written in the clear, before encryption was turned on; a node without a key has
    // nothing to rotate to.
    let server = Server::start_on(&data, "127.0.0.1:0", Some(PASSWORD), &[]);
    login(&home, &server, PASSWORD);
    ok_with_stdin(
        &home,
        &["publish", "public/db/plain.properties", "-f", "-"],
        Some("plain=1"),
    );
    let refused = fails(&home, &["rotate-key"]);
    assert!(refused.contains("encryption_key_file"), "{refused}");
    assert!(server.terminate().success());

    // Then sealed under the old key.
    let server = Server::start_on(
        &data,
        "127.0.0.1:0",
        Some(PASSWORD),
        &["--encryption-key-file", &old],
    );
    login(&home, &server, PASSWORD);
    ok_with_stdin(
        &home,
        &["publish", "public/db/app.properties", "-f", "-"],
        Some("password=first"),
    );
    let created = ok(&home, &["access-key", "create", "shop"]);
    let access_secret = created.rsplit("secret ").next().unwrap().trim().to_owned();
    assert!(server.terminate().success());

    // Restarted with the new key and the old: serves everything, and the rotation runs
    // while it does.
    let rotating = [
        "--encryption-key-file",
        new.as_str(),
        "--encryption-old-key-file",
        old.as_str(),
    ];
    let server = Server::start_on(&data, "127.0.0.1:0", Some(PASSWORD), &rotating);
    login(&home, &server, PASSWORD);
    assert!(get(&home).contains("password=first"));
    ok_with_stdin(
        &home,
        &["publish", "public/db/app.properties", "-f", "-"],
        Some("password=second"),
    );
    let done = ok(&home, &["rotate-key"]);
    assert!(
        done.contains("re-wrapped") && done.contains("remove encryption_old_key_file"),
        "{done}"
    );
    assert!(!done.starts_with("0 re-wrapped"), "{done}");
    assert!(get(&home).contains("password=second"), "served throughout");
    let again = ok(&home, &["rotate-key"]);
    assert!(
        again.starts_with("0 re-wrapped under the new key, 0 stored in the clear"),
        "{again}"
    );
    assert!(server.terminate().success());

    // The new key alone now opens everything, the signing key file included (a node
    // whose token.key does not open refuses to start). The old key alone opens nothing.
    let server = Server::start_on(
        &data,
        "127.0.0.1:0",
        Some(PASSWORD),
        &["--encryption-key-file", &new],
    );
    login(&home, &server, PASSWORD);
    let at = |args: &[&str]| ok(&home, args);
    assert!(at(&["get", "public/db/app.properties"]).contains("password=second"));
    assert!(at(&["get", "public/db/plain.properties"]).contains("plain=1"));
    assert!(at(&["access-key", "list", "shop"]).contains(&access_secret));
    let history = at(&["history", "public/db/app.properties"]);
    assert!(history.lines().count() >= 2, "{history}");
    assert!(server.terminate().success());
    let refused = std::process::Command::new(crate::common::BIN)
        .args([
            "server",
            "--listen",
            "127.0.0.1:0",
            "--encryption-key-file",
            &old,
            "--data-dir",
        ])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("does not open"), "{err}");
}

#[test]
fn contents_are_stored_encrypted_when_a_key_is_configured() {
    const SECRET: &str = "db.password=Hunter2-Sealed-7731";
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let key = dir.path().join("cairn.key");
    let key_arg = key.display().to_string();
    let out = ok(&home, &["keygen", &key_arg]);
    assert!(out.contains("wrote a new encryption key"), "{out}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let again = fails(&home, &["keygen", &key_arg]);
    assert!(again.contains("never overwritten"), "{again}");
    let secret_file = dir.path().join("secret.properties");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    let secret_file = secret_file.display().to_string();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut backends: Vec<(&str, Option<cairn_store::scratch::Scratch>)> = vec![("sqlite", None)];
    for engine in [
        cairn_store::scratch::Engine::Postgres,
        cairn_store::scratch::Engine::MySql,
    ] {
        if let Some(db) = runtime.block_on(cairn_store::scratch::Scratch::create(engine)) {
            backends.push(("server", Some(db)));
        }
    }
    for (i, (name, db)) in backends.into_iter().enumerate() {
        let data = dir.path().join(format!("data-{name}-{i}"));
        let mut args = vec!["--encryption-key-file", key_arg.as_str()];
        if let Some(db) = &db {
            args.extend(["--database", db.url.as_str()]);
        }
        let server = Server::start_on(&data, "127.0.0.1:0", Some("seal-password-1"), &args);
        login(&home, &server, "seal-password-1");
        // A content, a newer one (so history holds the first), and a gray release.
        ok(
            &home,
            &["publish", "public/db/app.properties", "-f", &secret_file],
        );
        let other = dir.path().join("other.properties");
        std::fs::write(&other, format!("{SECRET}\nmore=1\n")).unwrap();
        let other = other.display().to_string();
        ok(
            &home,
            &["publish", "public/db/app.properties", "-f", &other],
        );
        ok(
            &home,
            &[
                "gray",
                "publish",
                "public/db/app.properties",
                "-f",
                &secret_file,
                "--ip",
                "10.0.0.9",
            ],
        );
        assert!(ok(&home, &["get", "public/db/app.properties"]).contains(SECRET));
        let created = ok(&home, &["access-key", "create", "shop"]);
        let access_secret = created.rsplit("secret ").next().unwrap().trim().to_owned();
        assert!(server.terminate().success());
        match &db {
            None => {
                // No file of the data directory holds it: database, WAL, journal.
                for entry in std::fs::read_dir(&data).unwrap() {
                    let path = entry.unwrap().path();
                    let bytes = std::fs::read(&path).unwrap();
                    for secret in [SECRET, access_secret.as_str()] {
                        let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
                        assert!(!found, "{} holds a secret in the clear", path.display());
                    }
                }
                let signing_key = std::fs::read_to_string(data.join("token.key")).unwrap();
                assert!(signing_key.starts_with("cairn:sealed:1:"), "{signing_key}");
            }
            Some(db) => {
                let stored = runtime.block_on(stored_contents(&db.url));
                // The config, the history of two publishes and a gray publish, the gray
                // release, the access key and the token signing key.
                assert_eq!(stored.len(), 7);
                for content in stored {
                    assert!(!content.contains(&access_secret), "stored in the clear");
                    assert!(
                        !content.contains("Hunter2"),
                        "stored in the clear: {content}"
                    );
                    assert!(content.starts_with("cairn:sealed:1:"), "{content}");
                }
            }
        }
        if let Some(db) = db {
            runtime.block_on(db.drop_database());
            continue;
        }
        // Without the key the node refuses to start, and says what it needs.
        let refused = std::process::Command::new(crate::common::BIN)
            .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .env("CAIRN_ADMIN_PASSWORD", "seal-password-1")
            .env_remove("CAIRN_ENCRYPTION_KEY_FILE")
            .output()
            .unwrap();
        assert!(!refused.status.success());
        let err = String::from_utf8_lossy(&refused.stderr);
        assert!(err.contains("encryption_key_file"), "{err}");
        // With it, everything reads back.
        let server = Server::start_on(&data, "127.0.0.1:0", Some("seal-password-1"), &args);
        login(&home, &server, "seal-password-1");
        assert!(ok(&home, &["get", "public/db/app.properties"]).contains("more=1"));
        assert!(ok(&home, &["access-key", "list", "shop"]).contains(&access_secret));
        let history = ok(&home, &["history", "public/db/app.properties"]);
        assert!(history.lines().count() >= 3, "{history}");
    }
}

#[test]
fn webhooks_are_managed_and_their_deliveries_read_with_the_cli() {
    // A receiver in this process, on loopback (which the node is told to allow).
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let got: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>> = Default::default();
    let seen = got.clone();
    let url = runtime.block_on(async move {
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |body: axum::body::Bytes| {
                let seen = seen.clone();
                async move {
                    seen.lock()
                        .unwrap()
                        .push(serde_json::from_slice(&body).unwrap());
                    axum::http::StatusCode::NO_CONTENT
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        url
    });
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let server = Server::start_on(
        &dir.path().join("data"),
        "127.0.0.1:0",
        Some("hooks-password-1"),
        &["--webhook-allow-private-targets", "true"],
    );
    login(&home, &server, "hooks-password-1");
    let refused = fails(
        &home,
        &["webhook", "add", "public", &url, "--secret", "short"],
    );
    assert!(refused.contains("16"), "{refused}");
    let out = ok(
        &home,
        &[
            "webhook",
            "add",
            "public",
            &url,
            "--secret",
            "cli-webhook-secret-0001",
            "--events",
            "publish,delete",
            "--pattern",
            "web/*",
        ],
    );
    assert!(out.starts_with("webhook 1 added"), "{out}");
    let list = ok(&home, &["webhook", "list"]);
    assert!(
        list.contains(&url) && list.contains("publish,delete") && list.contains("web/*"),
        "{list}"
    );
    assert!(!list.contains("cli-webhook-secret-0001"), "{list}");
    let file = write_file(dir.path(), "app.yaml", "port: 80\n");
    ok(&home, &["publish", "public/web/app.yaml", "-f", &file]);
    ok(&home, &["publish", "public/other/app.yaml", "-f", &file]);
    let mut waited = 0;
    while got.lock().unwrap().is_empty() && waited < 100 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        waited += 1;
    }
    let deliveries = ok(&home, &["webhook", "deliveries", "1"]);
    assert!(
        deliveries.contains("public/web/app.yaml")
            && deliveries.contains("delivered")
            && deliveries.contains("204")
            && deliveries.contains("1 deliveries in all"),
        "{deliveries}"
    );
    let first = got.lock().unwrap()[0].clone();
    assert_eq!(
        (&first["group"], &first["data_id"]),
        (&"web".into(), &"app.yaml".into())
    );
    let out = ok(&home, &["webhook", "redeliver", "1", "1"]);
    assert!(out.contains("sent again"), "{out}");
    while got.lock().unwrap().len() < 2 && waited < 200 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        waited += 1;
    }
    let again = got.lock().unwrap()[1].clone();
    assert_eq!(again["id"], first["id"], "the same event again");
    let out = ok(&home, &["webhook", "rm", "1"]);
    assert!(out.contains("webhook 1 removed"), "{out}");
    assert!(fails(&home, &["webhook", "deliveries", "1"]).contains("does not exist"));
    drop(server);
}

#[test]
fn changes_are_reviewed_with_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), Some("review-password-1"));
    let admin = dir.path().join("admin");
    login(&admin, &server, "review-password-1");
    ok(&admin, &["ns", "create", "prod"]);
    let file = |name: &str, content: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let v1 = file("v1.yaml", "replicas: 2\n");
    ok(&admin, &["publish", "prod/web/app.yaml", "-f", &v1]);
    let out = ok(
        &admin,
        &["ns", "update", "prod", "--require-review", "true"],
    );
    assert!(out.contains("review before release: required"), "{out}");
    assert!(ok(&admin, &["ns", "show", "prod"]).contains("required before release"));

    // Two people: one who writes, one who approves.
    let person = |name: &str, level: &str| {
        let password = format!("{name}-password-1");
        ok_with_stdin(
            &admin,
            &["user", "add", name, "--password-stdin"],
            Some(&format!("{password}\n")),
        );
        ok(&admin, &["grant", "--user", name, "prod", level]);
        let home = dir.path().join(name);
        ok_with_stdin(
            &home,
            &[
                "login",
                "--server",
                &server.url,
                "--username",
                name,
                "--password-stdin",
            ],
            Some(&format!("{password}\n")),
        );
        home
    };
    let alice = person("alice", "write");
    let bob = person("bob", "approve");

    let v2 = file("v2.yaml", "replicas: 3\n");
    let out = ok(
        &alice,
        &[
            "publish",
            "prod/web/app.yaml",
            "-f",
            &v2,
            "-m",
            "more replicas",
        ],
    );
    assert!(
        out.contains("requires review: opened change request 1"),
        "{out}"
    );
    assert_eq!(ok(&alice, &["get", "prod/web/app.yaml"]), "replicas: 2\n");
    let listed = ok(&bob, &["review", "list", "--namespace", "prod"]);
    assert!(
        listed.contains("prod/web/app.yaml") && listed.contains("alice"),
        "{listed}"
    );
    let shown = ok(&bob, &["review", "show", "1"]);
    assert!(
        shown.contains("-replicas: 2") && shown.contains("+replicas: 3"),
        "{shown}"
    );
    assert!(shown.contains("opened by alice: more replicas"), "{shown}");
    let err = fails(&alice, &["review", "approve", "1"]);
    assert!(err.contains("another person"), "{err}");
    let out = ok(&bob, &["review", "approve", "1", "-m", "ok"]);
    assert!(out.contains("is approved: released as revision"), "{out}");
    assert_eq!(ok(&alice, &["get", "prod/web/app.yaml"]), "replicas: 3\n");

    // A request overtaken by an emergency goes stale; its author rebases it.
    let v4 = file("v4.yaml", "replicas: 4\n");
    ok(&alice, &["publish", "prod/web/app.yaml", "-f", &v4]);
    let err = fails(
        &admin,
        &["publish", "prod/web/app.yaml", "-f", &v1, "--emergency"],
    );
    assert!(
        err.contains("--message"),
        "an emergency needs its reason: {err}"
    );
    let out = ok(
        &admin,
        &[
            "publish",
            "prod/web/app.yaml",
            "-f",
            &v1,
            "--emergency",
            "-m",
            "rollback under load",
        ],
    );
    assert!(out.contains("published prod/web/app.yaml"), "{out}");
    let err = fails(&bob, &["review", "approve", "2"]);
    assert!(err.contains("stale") && err.contains("rebase"), "{err}");
    let v5 = file("v5.yaml", "replicas: 5\n");
    let out = ok(&alice, &["review", "rebase", "2", "-f", &v5]);
    assert!(out.contains("is open again"), "{out}");
    let err = fails(&bob, &["review", "reject", "2"]);
    assert!(err.contains("why"), "{err}");
    let out = ok(&bob, &["review", "reject", "2", "-m", "keep 2 for now"]);
    assert!(out.contains("is rejected"), "{out}");
    assert_eq!(ok(&alice, &["get", "prod/web/app.yaml"]), "replicas: 2\n");
    let rejected = ok(&bob, &["review", "list", "--status", "rejected"]);
    assert!(rejected.contains("alice"), "{rejected}");

    // A pipeline's token skips review only when made to.
    let made = ok(
        &admin,
        &[
            "token",
            "create",
            "pipeline",
            "--scope",
            "prod=write",
            "--publish-without-review",
        ],
    );
    let token = made
        .split_whitespace()
        .find(|w| w.starts_with("cst_"))
        .unwrap()
        .to_owned();
    let out = ok(
        &alice,
        &["--token", &token, "publish", "prod/web/app.yaml", "-f", &v5],
    );
    assert!(out.contains("published"), "{out}");
    assert!(ok(&admin, &["token", "list"]).contains("yes"));
    let history = ok(&admin, &["history", "prod/web/app.yaml"]);
    assert!(history.contains("approved by bob"), "{history}");
    let audit = ok(
        &admin,
        &["audit", "--action", "config.publish.emergency", "--json"],
    );
    assert!(audit.contains("rollback under load"), "{audit}");
}
