//! The server's own keys, the same on every node: a 0600 file in the data directory on the
//! embedded store (created on first use; `util::datadir` refuses to start if one is readable by
//! others), a row of `server_keys` with PostgreSQL (the first node creates it).

use std::io::{Read as _, Write as _};
use std::path::Path;

use ring::rand::{SecureRandom, SystemRandom};

use crate::store::{Store, StoreError};

/// Why a key could not be had.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KeyError {
    /// The key file exists but is not a key of the right size, or cannot be read or written.
    #[error("{path}: {why}")]
    File { path: String, why: String },
    /// The stored key has the wrong size.
    #[error("key {name} is {len} bytes, expected {expected}")]
    Size {
        name: String,
        len: usize,
        expected: usize,
    },
    /// No randomness.
    #[error("no system randomness for key {0}")]
    NoRandomness(String),
    /// The store refused.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The key `name` (`content.key`, `totp.key`, …) of `N` bytes: loaded, or made on first use.
pub(crate) async fn load_or_create<const N: usize>(
    store: &Store,
    data_dir: &Path,
    name: &str,
) -> Result<[u8; N], KeyError> {
    let mut fresh = [0u8; N];
    SystemRandom::new()
        .fill(&mut fresh)
        .map_err(|_| KeyError::NoRandomness(name.to_owned()))?;
    let bytes = match store.kind() {
        "sqlite" => return file(&data_dir.join(name), fresh),
        _ => store.keys().get_or_insert(name, fresh.to_vec()).await?,
    };
    <[u8; N]>::try_from(bytes.as_slice()).map_err(|_| KeyError::Size {
        name: name.to_owned(),
        len: bytes.len(),
        expected: N,
    })
}

/// Reads the key file, or creates it (0600, exclusively) with `fresh`.
fn file<const N: usize>(path: &Path, fresh: [u8; N]) -> Result<[u8; N], KeyError> {
    let fail = |why: String| KeyError::File {
        path: path.display().to_string(),
        why,
    };
    let mut key = [0u8; N];
    match std::fs::File::open(path) {
        Ok(mut f) => {
            f.read_exact(&mut key)
                .map_err(|e| fail(format!("{e} (expected a {N}-byte key)")))?;
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            options
                .open(path)
                .and_then(|mut f| f.write_all(&fresh).and_then(|()| f.sync_all()))
                .map_err(|e| fail(format!("cannot write: {e}")))?;
            Ok(fresh)
        }
        Err(e) => Err(fail(e.to_string())),
    }
}

/// The key files of an embedded data directory that have a shared form, and the
/// name of the TLS device identity (certificate chain and key, PEM) in `server_keys`.
pub(crate) const TLS_IDENTITY: &str = "tls/identity.pem";

/// Moves the data directory's keys into `target`'s `server_keys` (`store copy`): each key file
/// that exists, and the TLS device identity, so every node signs, seals and presents what this
/// one did (players keep their pinned fingerprint). A target that already holds a different
/// key under the same name is an error. Returns the names copied.
pub(crate) async fn move_files_to(
    target: &Store,
    data_dir: &Path,
) -> Result<Vec<String>, KeyError> {
    let mut moved = Vec::new();
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for name in crate::util::datadir::KEY_FILES {
        if name.starts_with("tls/") {
            continue;
        }
        match std::fs::read(data_dir.join(name)) {
            Ok(bytes) => files.push(((*name).to_owned(), bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(KeyError::File {
                    path: data_dir.join(name).display().to_string(),
                    why: e.to_string(),
                });
            }
        }
    }
    let tls = data_dir.join("tls");
    if tls.join("cert.pem").exists() {
        let identity = crate::util::certs::load_or_create(&tls).map_err(|why| KeyError::File {
            path: tls.display().to_string(),
            why,
        })?;
        files.push((TLS_IDENTITY.to_owned(), identity.to_pem().into_bytes()));
    }
    for (name, bytes) in files {
        let stored = target.keys().get_or_insert(&name, bytes.clone()).await?;
        if stored != bytes {
            return Err(KeyError::File {
                path: name,
                why: "the target already holds a different key under this name".into(),
            });
        }
        moved.push(name);
    }
    Ok(moved)
}

/// The TLS device identity every node of a fleet presents: on PostgreSQL the one in
/// `server_keys` (the first node, or `store copy`, put its own there), else `local`.
pub(crate) async fn tls_identity(
    store: &Store,
    local: crate::util::certs::Identity,
) -> Result<crate::util::certs::Identity, KeyError> {
    if store.kind() == "sqlite" {
        return Ok(local);
    }
    let pem = local.to_pem();
    let shared = store
        .keys()
        .get_or_insert(TLS_IDENTITY, pem.clone().into_bytes())
        .await?;
    if shared == pem.as_bytes() {
        return Ok(local);
    }
    let text = String::from_utf8(shared).map_err(|_| KeyError::File {
        path: TLS_IDENTITY.into(),
        why: "not PEM text".into(),
    })?;
    crate::util::certs::Identity::from_pem(&text).map_err(|why| KeyError::File {
        path: TLS_IDENTITY.into(),
        why,
    })
}
