//! Real client libraries of other configuration centers against a real `cairn server`
//! process. They run under the Python named by `CAIRN_TEST_PYTHON` (`.ci/run` makes a
//! virtualenv with them from PyPI); without it these tests say so and skip.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{Server, BIN};

const PASSWORD: &str = "compat-password-1";

fn python() -> Option<String> {
    match std::env::var("CAIRN_TEST_PYTHON") {
        Ok(python) => Some(python),
        Err(_) => {
            eprintln!("CAIRN_TEST_PYTHON is not set; skipping the real-client compatibility test");
            None
        }
    }
}

/// Runs a client script with a time limit; returns its standard output.
fn run_script(python: &str, script: &str, args: &[&str]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(script);
    // Output goes to files, not pipes: helper processes a client library starts may
    // outlive the script and would hold a pipe open.
    let logs = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (logs.path().join("out"), logs.path().join("err"));
    let mut child = Command::new(python)
        .arg(path)
        .args(args)
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("python runs");
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "{script} did not finish in 90 s; it printed:\n{}\n{}",
                std::fs::read_to_string(&out_path).unwrap_or_default(),
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    assert!(
        status.success(),
        "{script} failed.\nstdout:\n{stdout}\nstderr:\n{}",
        std::fs::read_to_string(&err_path).unwrap_or_default()
    );
    stdout
}

/// Runs the real `cairn` CLI against the node, with its login kept in `home`.
fn cli(home: &Path, address: &str, args: &[&str], stdin: &str) -> String {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .args(args)
        .args(["--server", &format!("http://{address}")])
        .env("CAIRN_CONFIG_DIR", home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn apollocfg_reads_watches_and_signs() {
    let Some(python) = python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), Some(PASSWORD));
    let home = dir.path().join("home");
    let address = server.address();
    cli(
        &home,
        address,
        &["login", "--password-stdin"],
        &format!("{PASSWORD}\n"),
    );
    let profile = std::fs::read_to_string(home.join("profile.toml")).unwrap();
    let token = profile
        .lines()
        .find_map(|l| l.strip_prefix("token = \""))
        .map(|t| t.trim_end_matches('"').to_owned())
        .expect("the login keeps a token");
    let props = dir.path().join("application.properties");
    std::fs::write(&props, "greeting=hello\n").unwrap();
    cli(
        &home,
        address,
        &[
            "publish",
            "public/shop/application",
            "-f",
            props.to_str().unwrap(),
        ],
        "",
    );
    let yaml = dir.path().join("app.yaml");
    std::fs::write(&yaml, "server:\n  port: 8080\n").unwrap();
    cli(
        &home,
        address,
        &[
            "publish",
            "public/shop/app.yaml",
            "-f",
            yaml.to_str().unwrap(),
        ],
        "",
    );
    let created = cli(&home, address, &["access-key", "create", "shop"], "");
    let secret = created.trim().rsplit(' ').next().unwrap().to_owned();
    let base = server.url.clone();
    let out = run_script(
        &python,
        "apollo_client.py",
        &[&base, "shop", &secret, &token],
    );
    let steps: Vec<&str> = out.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(steps, ["read", "watched", "gray", "refused"], "{out}");
}

#[test]
fn nacos_sdk_python_publishes_reads_listens_and_deletes() {
    let Some(python) = python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), Some(PASSWORD));
    let work = dir.path().join("client");
    let out = run_script(
        &python,
        "nacos_client.py",
        &[server.address(), "admin", PASSWORD, work.to_str().unwrap()],
    );
    let steps: Vec<&str> = out.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(
        steps,
        [
            "published",
            "read",
            "watched",
            "history",
            "deleted",
            "refused"
        ],
        "{out}"
    );
}

#[test]
fn nacos_sdk_python_v2_gets_publishes_listens_over_grpc() {
    let Some(python) = python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), Some(PASSWORD));
    let grpc = server.grpc.clone().expect("the node serves gRPC");
    let grpc_port = grpc.rsplit(':').next().unwrap();
    let work = dir.path().join("client");
    let out = run_script(
        &python,
        "nacos_grpc_client.py",
        &[
            server.address(),
            grpc_port,
            "admin",
            PASSWORD,
            work.to_str().unwrap(),
        ],
    );
    let steps: Vec<&str> = out.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(
        steps,
        [
            "published",
            "cas",
            "pushed-grpc",
            "pushed-http",
            "beta",
            "removed",
            "refused"
        ],
        "{out}"
    );
    // A change reaches a listening client by push, not by its next poll (every 5 s).
    for line in out.lines().filter(|l| l.starts_with("pushed")) {
        let seconds: f64 = line.split(' ').nth(1).unwrap().parse().unwrap();
        assert!(seconds < 1.0, "{line}");
    }
}

#[test]
fn a_nacos_grpc_listener_hears_changes_after_its_node_restarts() {
    let Some(python) = python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, Some(PASSWORD));
    let (address, grpc) = (server.address().to_owned(), server.grpc.clone().unwrap());
    let grpc_port = grpc.rsplit(':').next().unwrap().to_owned();
    let work = dir.path().join("client");
    let signal = dir.path().join("restarted");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/nacos_grpc_restart.py");
    let out_path = dir.path().join("out");
    let mut client = Command::new(&python)
        .arg(script)
        .args([&address, &grpc_port, "admin", PASSWORD])
        .args([&work, &signal])
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(dir.path().join("err")).unwrap())
        .spawn()
        .unwrap();
    let printed = |what: &str| std::fs::read_to_string(&out_path).unwrap().contains(what);
    let wait_for = |what: &str, client: &mut std::process::Child| {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !printed(what) {
            if let Some(status) = client.try_wait().unwrap() {
                let log = std::fs::read_to_string(work.join("log/nacos-config.log"))
                    .or_else(|_| std::fs::read_to_string(work.join("log/config.log")))
                    .unwrap_or_default();
                panic!(
                    "the client exited ({status}) before {what:?}: {}\nits log:\n{log}",
                    std::fs::read_to_string(dir.path().join("err")).unwrap()
                );
            }
            assert!(std::time::Instant::now() < deadline, "no {what:?} in 60 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_for("listening", &mut client);

    // A graceful restart on the same addresses.
    assert!(server.terminate().success());
    let server = Server::start_on(&data, &address, Some(PASSWORD), &["--grpc-listen", &grpc]);
    let home = dir.path().join("home");
    cli(
        &home,
        server.address(),
        &["login", "--password-stdin"],
        &format!("{PASSWORD}\n"),
    );
    let file = dir.path().join("restart.properties");
    std::fs::write(&file, "v=after-restart").unwrap();
    cli(
        &home,
        server.address(),
        &[
            "publish",
            "public/DEFAULT_GROUP/restart.properties",
            "-f",
            file.to_str().unwrap(),
        ],
        "",
    );
    std::fs::write(&signal, "").unwrap();
    wait_for("heard", &mut client);
    assert!(client.wait().unwrap().success());
}
