//! HTTPS for the S3 port: rustls (TLS 1.2 and 1.3, ALPN h2 and http/1.1) with the certificate
//! and key from `--tls-cert` / `--tls-key`, re-read when the files change. New handshakes use the
//! new certificate; open connections keep theirs, so a renewal drops nothing.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

use crate::error::GatewayError;

/// How often the certificate files are checked for changes.
const RELOAD_CHECK: Duration = Duration::from_secs(5);

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn bad(path: &Path, what: impl std::fmt::Display) -> GatewayError {
    GatewayError::Internal(format!("TLS: {}: {what}", path.display()))
}

/// Reads a PEM certificate chain and private key into a signing identity.
pub fn load(cert: &Path, key: &Path) -> Result<CertifiedKey, GatewayError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad(cert, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(cert, e))?;
    if chain.is_empty() {
        return Err(bad(cert, "no certificate in the file"));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, e))?;
    let signing = provider().key_provider.load_private_key(key_der).map_err(|e| bad(key, e))?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| bad(key, format!("does not match the certificate: {e}")))?;
    Ok(certified)
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The current identity, swapped in place when the files change.
#[derive(Debug)]
struct Reloading {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|c| c.clone())
    }
}

impl Reloading {
    /// Polls the files' modification times; a pair that fails to load keeps the old identity.
    async fn watch(self: Arc<Self>) {
        let mut seen = (modified(&self.cert), modified(&self.key));
        loop {
            tokio::time::sleep(RELOAD_CHECK).await;
            let now = (modified(&self.cert), modified(&self.key));
            if now == seen {
                continue;
            }
            seen = now;
            let (cert, key) = (self.cert.clone(), self.key.clone());
            match tokio::task::spawn_blocking(move || load(&cert, &key)).await {
                Ok(Ok(identity)) => {
                    if let Ok(mut current) = self.current.write() {
                        *current = Arc::new(identity);
                    }
                    tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "TLS certificate changed but cannot be loaded; keeping the old one")
                }
                Err(e) => tracing::warn!(error = %e, "TLS reload task failed"),
            }
        }
    }
}

/// The acceptor for the S3 port, and the task that reloads its certificate (abort it to stop).
pub fn acceptor(cert: &Path, key: &Path) -> Result<(TlsAcceptor, tokio::task::JoinHandle<()>), GatewayError> {
    let identity = load(cert, key)?;
    let resolver = Arc::new(Reloading {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        current: RwLock::new(Arc::new(identity)),
    });
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| GatewayError::Internal(format!("TLS: {e}")))?
        .with_no_client_auth()
        .with_cert_resolver(resolver.clone());
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let watcher = tokio::spawn(resolver.watch());
    Ok((TlsAcceptor::from(Arc::new(config)), watcher))
}
