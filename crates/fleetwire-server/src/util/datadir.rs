//! The data directory holds live secrets: logger HMAC keys, Argon2 hashes, session digests and
//! thing codes in the store, the SMTP password in `fleetwire.toml`, and the key files. Only the
//! server's own user may read any of it.
//!
//! Before anything opens a file, [`secure`]:
//!
//! 1. sets the process umask to `077`, so every file the server or a library creates later —
//!    `SQLite`'s `-wal` and `-shm` side files, content files, the outbox — is born `0600` (and
//!    every directory `0700`) without a race between create and `chmod`;
//! 2. creates the directory `0700`;
//! 3. refuses to start when a key file is readable or writable by anyone but the owner: such a
//!    key must be taken as leaked (replace it, or `chmod 600` it if you know it was not);
//! 4. tightens every other file and directory in it to `0600` / `0700`, with one warning each
//!    (data directories made by earlier versions had `0644` files).
//!
//! Symbolic links inside the directory are neither followed nor changed.

use std::fs;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use rustix::fs::Mode;

/// Files whose disclosure gives away a key. Relative to the data directory.
pub(crate) const KEY_FILES: &[&str] = &[
    "tls/key.pem",
    "totp.key",
    "device-cookie.key",
    "content.key",
];

/// Permission bits for anyone but the owner.
const NOT_OWNER: u32 = 0o077;

/// Makes `dir` and everything in it private to the server's user (see the module docs).
pub(crate) fn secure(dir: &Path) -> Result<(), String> {
    rustix::process::umask(Mode::from_raw_mode(NOT_OWNER));
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for key in KEY_FILES {
        let path = dir.join(key);
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.permissions().mode() & NOT_OWNER != 0 => {
                return Err(format!(
                    "key file {} has mode {:04o}: readable or writable by other users, so the key \
                     may have leaked. Replace the key (delete the file; a new one is made at the \
                     next start), or if you are sure it did not leak: chmod 600 {}",
                    path.display(),
                    meta.permissions().mode() & 0o7777,
                    path.display()
                ));
            }
            _ => {}
        }
    }
    for (path, mode) in loose(dir)? {
        let private = if fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
            0o700
        } else {
            0o600
        };
        fs::set_permissions(&path, fs::Permissions::from_mode(private))
            .map_err(|e| format!("cannot restrict {}: {e}", path.display()))?;
        tracing::warn!(
            path = %path.display(),
            was = format_args!("{:04o}", mode & 0o7777),
            now = format_args!("{private:04o}"),
            "data directory entry was accessible to other users; restricted it"
        );
    }
    Ok(())
}

/// Every entry under `root` (and `root` itself) with permission bits for others, and its mode.
/// Does not follow symbolic links.
fn loose(root: &Path) -> Result<Vec<(PathBuf, u32)>, String> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_owned()];
    while let Some(path) = pending.pop() {
        let meta = fs::symlink_metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if meta.file_type().is_symlink() {
            continue;
        }
        let mode = meta.permissions().mode();
        if mode & NOT_OWNER != 0 {
            found.push((path.clone(), mode));
        }
        if meta.is_dir() {
            for entry in fs::read_dir(&path).map_err(|e| format!("{}: {e}", path.display()))? {
                pending.push(
                    entry
                        .map_err(|e| format!("{}: {e}", path.display()))?
                        .path(),
                );
            }
        }
    }
    Ok(found)
}
