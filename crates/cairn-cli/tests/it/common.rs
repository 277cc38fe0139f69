//! What the binary's test files share: a real `cairn server` child process.

// Each test file is its own crate and uses only part of this.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_cairn");

/// A `cairn server` process; killed when dropped.
pub struct Server {
    child: Child,
    /// Kept open so that the server's stdout is never a closed pipe.
    _stdout: BufReader<std::process::ChildStdout>,
    /// `http://host:port`.
    pub url: String,
    /// Where Nacos's gRPC protocol is served, `host:port`.
    pub grpc: Option<String>,
    /// Everything the server printed to stdout up to the listening line (and the
    /// first-start notice after it, when it made up a password).
    pub banner: String,
}

impl Server {
    /// A server on a free loopback port; `admin_password` as `CAIRN_ADMIN_PASSWORD`, or
    /// none (the server makes one up on its first start and prints it).
    pub fn start(data_dir: &Path, admin_password: Option<&str>) -> Server {
        Self::start_on(data_dir, "127.0.0.1:0", admin_password, &[])
    }

    /// A server listening on `listen`, with `extra` arguments.
    pub fn start_on(
        data_dir: &Path,
        listen: &str,
        admin_password: Option<&str>,
        extra: &[&str],
    ) -> Server {
        let mut command = Command::new(BIN);
        command
            .args(["server", "--listen", listen, "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env_remove("CAIRN_ADMIN_PASSWORD")
            .env("CAIRN_LOG_LEVEL", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(p) = admin_password {
            command.env("CAIRN_ADMIN_PASSWORD", p);
        }
        let mut child = command.spawn().expect("the server starts");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut banner = String::new();
        let url = loop {
            let mut line = String::new();
            if stdout.read_line(&mut line).unwrap() == 0 {
                panic!("the server exited before listening: {banner}");
            }
            banner.push_str(&line);
            if let Some(rest) = line.strip_prefix("Cairn is listening on ") {
                break rest.to_owned();
            }
        };
        let grpc = url
            .split_once("Nacos gRPC on ")
            .map(|(_, rest)| rest.trim_end().trim_end_matches(')').to_owned());
        let url = url.split_whitespace().next().unwrap().to_owned();
        // Read the rest of the first-start notice, which follows the listening line.
        if admin_password.is_none() {
            for _ in 0..7 {
                let mut line = String::new();
                stdout.read_line(&mut line).unwrap();
                banner.push_str(&line);
            }
        }
        Server {
            child,
            _stdout: stdout,
            url,
            grpc,
            banner,
        }
    }

    /// `host:port`, without the scheme.
    pub fn address(&self) -> &str {
        let url = self.url.trim_start_matches("http://");
        url.trim_start_matches("https://")
    }

    /// Stops the server at once (SIGKILL).
    pub fn kill(self) {
        // Dropping kills and reaps it.
    }

    /// Asks the server to stop (SIGTERM) and waits for it to exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a test CA (`ca.pem`) and, for each of `names`, a certificate it signed for
/// `127.0.0.1` (`{name}.crt`, `{name}.key`), good for server and client use, into `dir`.
pub fn write_certificates(dir: &Path, names: &[&str]) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    std::fs::write(dir.join("ca.pem"), ca.self_signed(&ca_key).unwrap().pem()).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    for name in names {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &issuer).unwrap();
        std::fs::write(dir.join(format!("{name}.crt")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
    }
}
