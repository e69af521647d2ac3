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

    /// The public certificate's chain, if one is installed.
    pub(crate) fn public_chain(&self) -> Option<Vec<CertificateDer<'static>>> {
        self.public
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|p| p.key.cert.clone())
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
