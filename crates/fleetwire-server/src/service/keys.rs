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
