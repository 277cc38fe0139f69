//! TLS on the HTTP and gRPC ports: the certificate and key the settings name, re-read
//! when their files change so that a renewal needs no restart; client certificates
//! checked against a CA when one is configured; and the client side a node uses to ask
//! the other nodes of its cluster.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_util::sync::CancellationToken;

use crate::settings::Settings;

/// How often the certificate files are looked at for a change.
const RELOAD_CHECK: Duration = Duration::from_secs(2);
/// How long a client may take over the TLS handshake; like the header deadline, it keeps
/// a silent connection from holding a slot.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The one provider: ring, which the database drivers' TLS already links.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A node's TLS: one certificate, served on both ports.
pub struct Tls {
    certificate: Arc<Certificate>,
    /// HTTP/1.1 (ALPN `http/1.1`): the only version the HTTP port speaks.
    pub http: TlsAcceptor,
    /// HTTP/2 (ALPN `h2`), which gRPC clients insist on.
    pub grpc: TlsAcceptor,
    /// How this node connects to other nodes: their certificates verified against the
    /// system's roots and `tls_client_ca`, this node's own certificate presented when
    /// client certificates are required.
    pub peers: TlsConnector,
}

/// The certificate being served and the files it came from.
#[derive(Debug)]
struct Certificate {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    /// The files' modification times and sizes when they were last read.
    stamp: Mutex<Stamp>,
}

type Stamp = [Option<(SystemTime, u64)>; 2];

impl ResolvesServerCert for Certificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }
}

/// Also the client certificate this node presents to other nodes: the same files.
impl rustls::client::ResolvesClientCert for Certificate {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }

    fn has_certs(&self) -> bool {
        true
    }
}

impl Certificate {
    fn stamp(&self) -> Stamp {
        [&self.cert, &self.key].map(|path| {
            let meta = std::fs::metadata(path).ok()?;
            Some((meta.modified().ok()?, meta.len()))
        })
    }

    /// Reads the files again if they changed since they were last read. A pair that does
    /// not load (a renewal caught half-written, say) leaves the served one in place; the
    /// next change is tried again.
    fn reload_if_changed(&self) {
        let now = self.stamp();
        {
            let mut seen = self.stamp.lock().unwrap_or_else(PoisonError::into_inner);
            if *seen == now {
                return;
            }
            *seen = now;
        }
        match read_certified(&self.cert, &self.key) {
            Ok(loaded) => {
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(loaded);
                tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
            }
            Err(e) => tracing::warn!(
                error = format!("{e:#}"),
                "the TLS certificate files changed but cannot be used; still serving the \
                 previous certificate"
            ),
        }
    }
}

fn read_certificates(path: &Path, setting: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("cannot read {setting} {}", path.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "{setting} {} holds no PEM certificate",
        path.display()
    );
    Ok(certs)
}

fn read_certified(cert: &Path, key: &Path) -> anyhow::Result<CertifiedKey> {
    let chain = read_certificates(cert, "tls_cert")?;
    // The error names the file, never what is in it.
    let key_der = PrivateKeyDer::from_pem_file(key).with_context(|| {
        format!(
            "cannot read a PEM private key from tls_key {}",
            key.display()
        )
    })?;
    CertifiedKey::from_der(chain, key_der, &provider()).with_context(|| {
        format!(
            "tls_key {} does not fit tls_cert {}, or is of an unsupported kind",
            key.display(),
            cert.display()
        )
    })
}

impl Tls {
    /// The node's TLS, or `None` when the settings ask for none.
    pub fn load(settings: &Settings) -> anyhow::Result<Option<Arc<Tls>>> {
        let (Some(cert), Some(key)) = (&settings.tls_cert, &settings.tls_key) else {
            return Ok(None);
        };
        let certificate = Arc::new(Certificate {
            cert: cert.clone(),
            key: key.clone(),
            current: RwLock::new(Arc::new(read_certified(cert, key)?)),
            stamp: Mutex::default(),
        });
        *certificate
            .stamp
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = certificate.stamp();
        let client_ca = match &settings.tls_client_ca {
            Some(path) => {
                let mut roots = RootCertStore::empty();
                for cert in read_certificates(path, "tls_client_ca")? {
                    roots.add(cert).with_context(|| {
                        format!(
                            "tls_client_ca {} holds an unusable certificate",
                            path.display()
                        )
                    })?;
                }
                Some(Arc::new(roots))
            }
            None => None,
        };
        let server = |alpn: &[u8]| -> anyhow::Result<TlsAcceptor> {
            let builder = ServerConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()?;
            let builder = match &client_ca {
                Some(roots) => builder.with_client_cert_verifier(
                    WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
                        .build()
                        .context("tls_client_ca cannot verify client certificates")?,
                ),
                None => builder.with_no_client_auth(),
            };
            let mut config = builder.with_cert_resolver(certificate.clone());
            config.alpn_protocols = vec![alpn.to_vec()];
            Ok(TlsAcceptor::from(Arc::new(config)))
        };
        let mut trusted = RootCertStore::empty();
        // A system store that cannot be read in part still lends what it could.
        let system = rustls_native_certs::load_native_certs();
        let (added, _unusable) = trusted.add_parsable_certificates(system.certs);
        tracing::debug!(added, "system roots trusted for other nodes' certificates");
        if let Some(roots) = &client_ca {
            trusted.roots.extend(roots.roots.iter().cloned());
        }
        let client = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(trusted);
        let mut client = if client_ca.is_some() {
            client.with_client_cert_resolver(certificate.clone())
        } else {
            client.with_no_client_auth()
        };
        client.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Some(Arc::new(Tls {
            http: server(b"http/1.1")?,
            grpc: server(b"h2")?,
            peers: TlsConnector::from(Arc::new(client)),
            certificate,
        })))
    }

    /// Looks at the certificate files every few seconds and serves a changed pair from
    /// the next handshake on, until `shutdown`.
    pub async fn watch_files(self: Arc<Self>, shutdown: CancellationToken) {
        let mut every = tokio::time::interval(RELOAD_CHECK);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            let certificate = self.certificate.clone();
            // File reads and key parsing are blocking work.
            let _ = tokio::task::spawn_blocking(move || certificate.reload_if_changed()).await;
        }
    }
}

/// gRPC's connections over TLS: accepted on `listener`, each handshake on a task of its
/// own (a slow client holds up nobody), until `shutdown`.
pub fn incoming(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    shutdown: CancellationToken,
) -> tokio_stream::wrappers::ReceiverStream<std::io::Result<TlsStream<TcpStream>>> {
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    tokio::spawn(async move {
        loop {
            let tcp = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((tcp, _)) => tcp,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot accept a gRPC connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = tx.closed() => return,
                _ = shutdown.cancelled() => return,
            };
            let _ = tcp.set_nodelay(true);
            let (tx, acceptor) = (tx.clone(), acceptor.clone());
            tokio::spawn(async move {
                if let Some(stream) = handshake(&acceptor, tcp).await {
                    let _ = tx.send(Ok(stream)).await;
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// The server side of a handshake, bounded in time; `None` (and a debug line) when it
/// fails, which is the client's affair.
pub async fn handshake(acceptor: &TlsAcceptor, tcp: TcpStream) -> Option<TlsStream<TcpStream>> {
    let remote = tcp.peer_addr().ok();
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(e)) => {
            metrics::counter!("cairn_tls_handshakes_failed_total").increment(1);
            tracing::debug!(?remote, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            metrics::counter!("cairn_tls_handshakes_failed_total").increment(1);
            tracing::debug!(?remote, "TLS handshake timed out");
            None
        }
    }
}
