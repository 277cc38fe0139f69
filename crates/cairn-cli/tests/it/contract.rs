//! The native API's contract, checked by Schemathesis: a real node is fuzzed through
//! its own OpenAPI document (every operation, every check, a fixed seed and a bounded
//! number of examples), and any response the document does not allow, any valid
//! request refused or invalid one accepted, or any server error fails the test.
//! `tests/contract/schemathesis.toml` says which operations and checks are left out
//! and why. Schemathesis runs from the virtualenv of `CAIRN_TEST_PYTHON` (`.ci/run`
//! installs it there); without it this test says so and skips.

use std::path::PathBuf;
use std::process::Command;

use crate::common::Server;

const PASSWORD: &str = "contract-password-1";

#[tokio::test]
async fn the_api_answers_as_its_document_says() {
    let Ok(python) = std::env::var("CAIRN_TEST_PYTHON") else {
        eprintln!("CAIRN_TEST_PYTHON is not set; skipping the Schemathesis run of the API");
        return;
    };
    let st = PathBuf::from(&python).with_file_name("st");
    assert!(
        st.exists(),
        "{} is missing: install Schemathesis beside {python} (`pip install 'schemathesis>=4.32,<5'`, as .ci/run does)",
        st.display()
    );
    let dir = tempfile::tempdir().unwrap();
    // Held watches answer within a quarter second, so a run does not wait on them.
    let server = Server::start_on(
        &dir.path().join("data"),
        "127.0.0.1:0",
        Some(PASSWORD),
        &[
            "--watch-max-timeout-ms",
            "250",
            "--watch-default-timeout-ms",
            "250",
        ],
    );
    let http = reqwest::Client::new();
    let login: serde_json::Value = http
        .post(format!("{}/api/v1/auth/login", server.url))
        .json(&serde_json::json!({ "username": "admin", "password": PASSWORD }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["token"].as_str().unwrap().to_owned();
    // The user the operations on one user act on (see the configuration).
    let made = http
        .post(format!("{}/api/v1/users", server.url))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "username": "fuzz-target", "password": "fuzz-target-password" }))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 201);
    let document = http
        .get(format!("{}/api/v1/openapi.json", server.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let document_file = dir.path().join("openapi.json");
    std::fs::write(&document_file, document).unwrap();
    let config = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/contract/schemathesis.toml");
    // The node is a process of its own: waiting on Schemathesis here blocks nothing it
    // needs.
    let run = Command::new(&st)
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(&document_file)
        .args(["--url", &server.url])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--seed", "1", "--max-examples", "25"])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--request-timeout", "10", "--no-color"])
        .env("NO_COLOR", "1")
        // It keeps a cache of what it found in its working directory: the test's own,
        // not the checkout.
        .current_dir(dir.path())
        .output()
        .expect("schemathesis runs");
    let report = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "Schemathesis found the API and its document disagreeing:\n{report}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        report.contains("Tested:") || report.contains("generated"),
        "Schemathesis tested nothing: {report}"
    );
}
