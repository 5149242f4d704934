//! TLS for the endpoint (rustls with the *ring* provider): a certificate
//! chain and key from PEM files, or a self-signed certificate made at
//! start, whose SHA-256 fingerprint the server prints.

use std::io;
use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

/// A server TLS configuration and its leaf certificate's fingerprint.
#[derive(Debug, Clone)]
pub struct Tls {
    /// The rustls configuration.
    pub config: Arc<rustls::ServerConfig>,
    /// SHA-256 of the leaf certificate (DER), as `AB:CD:...`.
    pub fingerprint: String,
}

fn bad(what: &str, path: &Path, e: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{}: {what}: {e}", path.display()),
    )
}

fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn build(certs: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> io::Result<Tls> {
    let fp = certs
        .first()
        .map(|c| fingerprint(c.as_ref()))
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no certificate"))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| io::Error::other(e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Tls {
        config: Arc::new(config),
        fingerprint: fp,
    })
}

/// TLS from a PEM certificate chain and a PEM private key.
pub fn from_pem_files(cert: &Path, key: &Path) -> io::Result<Tls> {
    let certs = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad("cannot read certificates", cert, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad("bad certificate", cert, e))?;
    if certs.is_empty() {
        return Err(bad("no certificate", cert, "empty"));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| bad("bad private key", key, e))?;
    build(certs, key)
}

/// A self-signed certificate for `localhost` and `127.0.0.1` (and `names`).
pub fn self_signed(names: &[String]) -> io::Result<Tls> {
    let mut subject = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    subject.extend(names.iter().cloned());
    let cert = rcgen::generate_simple_self_signed(subject)
        .map_err(|e| io::Error::other(format!("cannot make a certificate: {e}")))?;
    let der = cert.cert.der().clone();
    let key = PrivateKeyDer::try_from(cert.signing_key.serialize_der())
        .map_err(|e| io::Error::other(e.to_string()))?;
    build(vec![der], key)
}
