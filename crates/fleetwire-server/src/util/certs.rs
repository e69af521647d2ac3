//! The server's TLS identities, picked per handshake by [`Resolver`]:
//!
//! - the **device identity**: a self-signed certificate made on first run and kept in the data
//!   directory (`tls/`). Players, loggers and `fleetwire-fetch` pin its SHA-256 fingerprint, so
//!   it never changes by itself; every handshake that does not name a public domain gets it.
//! - the **public identity** (optional): a certificate for the domains in `[acme]`, obtained and
//!   renewed by ACME (`service::acme`) for browsers and API clients that check the web PKI. A
//!   handshake whose SNI names one of those domains gets it. It is replaced in place at each
//!   renewal: connections already open keep the certificate they started with.

use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Picks the public certificate for its domains' SNI, the device certificate for the rest.
#[derive(Debug)]
pub(crate) struct Resolver {
    device: Arc<CertifiedKey>,
    public: RwLock<Option<Public>>,
}

#[derive(Debug)]
struct Public {
    domains: Vec<String>,
    key: Arc<CertifiedKey>,
}

impl Resolver {
    /// A resolver serving `device` until a public certificate is installed.
    pub(crate) fn new(device: Arc<CertifiedKey>) -> Self {
        Self {
            device,
            public: RwLock::new(None),
        }
    }

    /// Installs (or replaces) the public certificate for `domains`.
    pub(crate) fn set_public(&self, domains: Vec<String>, key: Arc<CertifiedKey>) {
        let domains = domains
            .into_iter()
            .map(|d| d.to_ascii_lowercase())
            .collect();
        *self.public.write().unwrap_or_else(PoisonError::into_inner) =
            Some(Public { domains, key });
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if let Some(name) = hello.server_name() {
            let public = self.public.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(p) = public.as_ref() {
                if p.domains.iter().any(|d| d.eq_ignore_ascii_case(name)) {
                    return Some(p.key.clone());
                }
            }
        }
        Some(self.device.clone())
    }
}

/// A chain and its key, ready for a resolver.
pub(crate) fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: &PrivateKeyDer<'static>,
) -> Result<Arc<CertifiedKey>, String> {
    let signer = rustls::crypto::ring::sign::any_supported_type(key)
        .map_err(|e| format!("unusable private key: {e}"))?;
    Ok(Arc::new(CertifiedKey::new(chain, signer)))
}

pub(crate) struct Identity {
    pub(crate) chain: Vec<CertificateDer<'static>>,
    pub(crate) key: PrivateKeyDer<'static>,
    pub(crate) created: bool,
}

impl Identity {
    /// The chain then the key, PEM.
    pub(crate) fn to_pem(&self) -> String {
        let mut pem = String::new();
        for cert in &self.chain {
            pem.push_str(&pem_block("CERTIFICATE", cert.as_ref()));
        }
        let label = match &self.key {
            PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
            PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
            _ => "PRIVATE KEY",
        };
        pem.push_str(&pem_block(label, self.key.secret_der()));
        pem
    }

    /// Reads what [`Self::to_pem`] wrote.
    pub(crate) fn from_pem(pem: &str) -> Result<Self, String> {
        let chain = CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("certificate: {e}"))?;
        if chain.is_empty() {
            return Err("no certificate".into());
        }
        let key = PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| format!("key: {e}"))?;
        Ok(Self {
            chain,
            key,
            created: false,
        })
    }
}

fn pem_block(label: &str, der: &[u8]) -> String {
    let body = data_encoding::BASE64.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out + &format!("-----END {label}-----\n")
}

/// Loads `cert.pem` and `key.pem` from `dir`, creating them if absent.
pub(crate) fn load_or_create(dir: &Path) -> Result<Identity, String> {
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    let mut created = false;
    if !cert_path.exists() || !key_path.exists() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let _ = std::fs::remove_file(&key_path);
        let names = vec!["fleetwire.local".to_owned(), "localhost".to_owned()];
        let cert = rcgen::generate_simple_self_signed(names).map_err(|e| e.to_string())?;
        write_private(&key_path, cert.signing_key.serialize_pem().as_bytes())?;
        std::fs::write(&cert_path, cert.cert.pem())
            .map_err(|e| format!("cannot write {}: {e}", cert_path.display()))?;
        created = true;
    }
    let chain = CertificateDer::pem_file_iter(&cert_path)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| format!("{}: {e}", cert_path.display()))?;
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|e| format!("{}: {e}", key_path.display()))?;
    if chain.is_empty() {
        return Err(format!("{} holds no certificate", cert_path.display()));
    }
    Ok(Identity {
        chain,
        key,
        created,
    })
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.write_all(bytes)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}
