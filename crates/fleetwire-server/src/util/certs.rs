//! The server's TLS identity: a self-signed certificate made on first run, kept in the data
//! directory. Players pin its SHA-256 fingerprint.

use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

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
