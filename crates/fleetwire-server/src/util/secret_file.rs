//! Writing secrets to files: the one way the server and its commands do it (`player add` and
//! `logger add --secrets-out`, the accounts snapshot, the mail outbox).
//!
//! A secret never lands in a file that someone else may already hold open or have prepared:
//!
//! - [`Overwrite::Refuse`] creates the file itself with `O_CREAT | O_EXCL` and mode 0600. An
//!   existing file, directory or symbolic link (even a dangling one: with `O_EXCL` the kernel
//!   never follows a link in the last component) makes it fail, and nothing is written.
//! - [`Overwrite::Replace`] (`--force`) writes a new temporary file beside it the same way
//!   (exclusive, 0600, a random name), syncs it, and renames it over the path. A rename replaces
//!   the directory entry, so a symbolic link is replaced, not followed, and a reader that opened
//!   the old file never sees the new contents (it is a new inode).
//!
//! A [`SecretFile`] is reserved before the secrets exist anywhere else (so `player add` refuses
//! a bad path before it provisions anything) and removed again if it is dropped uncommitted.
//! The process umask (077, `datadir`) can only make the mode stricter.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use rand_core::{OsRng, RngCore as _};

/// What to do when the path already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Overwrite {
    /// Refuse: the path must not exist (not even as a symbolic link).
    Refuse,
    /// Replace whatever is there (a file or a link) atomically with a new private file.
    Replace,
}

impl Overwrite {
    /// `--force` → [`Overwrite::Replace`].
    pub(crate) fn with_force(force: bool) -> Self {
        if force { Self::Replace } else { Self::Refuse }
    }
}

/// Why a secret file was not written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum SecretFileError {
    /// The path exists and the caller did not ask to replace it.
    #[error(
        "{} already exists (a file or a symbolic link): secrets are only written to a new file; \
         choose another path, or pass --force to replace it",
        .0.display()
    )]
    Exists(PathBuf),
    /// Creating, writing, syncing or renaming failed.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// An append-only secret file (the outbox) is not a plain file of ours.
    #[error(
        "{} is not a regular file (a symbolic link, or replaced while opening): refusing to write secrets to it",
        .0.display()
    )]
    NotRegular(PathBuf),
}

/// A secret file reserved on disk, written by [`commit`](Self::commit).
#[derive(Debug)]
pub(crate) struct SecretFile {
    path: PathBuf,
    /// What is on disk now and goes away if this is dropped: the new file itself (refuse) or
    /// the temporary file (replace).
    created: PathBuf,
    file: Option<File>,
    replace: bool,
}

impl SecretFile {
    /// Reserves `path` (see the module docs).
    pub(crate) fn create(path: &Path, overwrite: Overwrite) -> Result<Self, SecretFileError> {
        let (created, file) = match overwrite {
            Overwrite::Refuse => (path.to_owned(), create_exclusive(path)?),
            Overwrite::Replace => {
                let mut attempt = 0;
                loop {
                    let tmp = tmp_path(path);
                    match create_exclusive(&tmp) {
                        Ok(f) => break (tmp, f),
                        // A name that exists (someone else's, or a collision): another name.
                        Err(SecretFileError::Exists(_)) if attempt < 8 => attempt += 1,
                        Err(e) => return Err(e),
                    }
                }
            }
        };
        Ok(Self {
            path: path.to_owned(),
            created,
            file: Some(file),
            replace: overwrite == Overwrite::Replace,
        })
    }

    /// Writes `bytes`, syncs, and (replacing) renames the temporary file over the path.
    pub(crate) fn commit(mut self, bytes: &[u8]) -> Result<(), SecretFileError> {
        let io = |source| SecretFileError::Io {
            path: self.path.clone(),
            source,
        };
        let mut file = self
            .file
            .take()
            .ok_or_else(|| io(std::io::Error::other("committed twice")))?;
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(io)?;
        drop(file);
        if self.replace {
            std::fs::rename(&self.created, &self.path).map_err(io)?;
        }
        // Done: nothing to clean up. The directory entry is made durable best-effort.
        self.created = PathBuf::new();
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(())
    }
}

impl Drop for SecretFile {
    fn drop(&mut self) {
        if !self.created.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.created);
        }
    }
}

/// [`SecretFile::create`] then [`SecretFile::commit`].
pub(crate) fn write(
    path: &Path,
    bytes: &[u8],
    overwrite: Overwrite,
) -> Result<(), SecretFileError> {
    SecretFile::create(path, overwrite)?.commit(bytes)
}

/// Appends `line` and a newline to an append-only file of secrets (the mail outbox): created
/// 0600 if missing; an existing one must be a regular file (a symbolic link is refused, checked
/// against the opened file so a swap while opening is caught too), and is tightened to 0600 with
/// a warning if others could read it.
pub(crate) fn append_private(path: &Path, line: &str) -> Result<(), SecretFileError> {
    let io = |source| SecretFileError::Io {
        path: path.to_owned(),
        source,
    };
    let before = match std::fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_file() => return Err(SecretFileError::NotRegular(path.into())),
        Ok(m) => Some(m),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io(e)),
    };
    let mut file = match before {
        None => match create_exclusive(path) {
            Ok(f) => f,
            // Created by someone else in between: open it as an existing file, checked below.
            Err(SecretFileError::Exists(_)) => return append_private(path, line),
            Err(e) => return Err(e),
        },
        Some(before) => {
            let file = OpenOptions::new().append(true).open(path).map_err(io)?;
            let opened = file.metadata().map_err(io)?;
            if !same_file(&before, &opened) {
                return Err(SecretFileError::NotRegular(path.into()));
            }
            tighten(path, &file, &opened).map_err(io)?;
            file
        }
    };
    writeln!(file, "{line}").map_err(io)
}

fn create_exclusive(path: &Path) -> Result<File, SecretFileError> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            SecretFileError::Exists(path.to_owned())
        } else {
            SecretFileError::Io {
                path: path.to_owned(),
                source: e,
            }
        }
    })
}

/// `.NAME.RANDOM.tmp` beside `path`.
fn tmp_path(path: &Path) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tag = OsRng.next_u64();
    path.with_file_name(format!(".{name}.{tag:016x}.tmp"))
}

#[cfg(unix)]
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    a.dev() == b.dev() && a.ino() == b.ino() && b.file_type().is_file()
}

#[cfg(not(unix))]
fn same_file(_: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    b.file_type().is_file()
}

#[cfg(unix)]
fn tighten(path: &Path, file: &File, meta: &std::fs::Metadata) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        tracing::warn!(
            "{} had mode {mode:04o} (others could read the secrets in it): now 0600",
            path.display()
        );
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn tighten(_: &Path, _: &File, _: &std::fs::Metadata) -> std::io::Result<()> {
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("fw-secret-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn dropped_uncommitted_leaves_nothing() {
        let d = dir("drop");
        for overwrite in [Overwrite::Refuse, Overwrite::Replace] {
            let p = d.join("x");
            drop(SecretFile::create(&p, overwrite).unwrap());
            assert_eq!(std::fs::read_dir(&d).unwrap().count(), 0, "{overwrite:?}");
        }
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn append_refuses_links_and_tightens_loose_files() {
        let d = dir("append");
        let outbox = d.join("outbox");
        append_private(&outbox, "one").unwrap();
        assert_eq!(
            std::fs::metadata(&outbox).unwrap().permissions().mode() & 0o777,
            0o600
        );
        std::fs::set_permissions(&outbox, std::fs::Permissions::from_mode(0o644)).unwrap();
        append_private(&outbox, "two").unwrap();
        assert_eq!(std::fs::read_to_string(&outbox).unwrap(), "one\ntwo\n");
        assert_eq!(
            std::fs::metadata(&outbox).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let victim = d.join("victim");
        std::fs::write(&victim, "v").unwrap();
        let link = d.join("link");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        assert!(matches!(
            append_private(&link, "secret"),
            Err(SecretFileError::NotRegular(_))
        ));
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "v");
        let _ = std::fs::remove_dir_all(&d);
    }
}
