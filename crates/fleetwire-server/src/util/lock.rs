//! One server per data directory: `serve` holds an exclusive lock on `serve.lock` for as long
//! as it runs, and commands that must not run beside it (`backup restore`) take the same lock.

use std::fs::File;
use std::path::Path;

use rustix::fs::{FlockOperation, flock};

/// The held lock; released when dropped (or when the process ends, however it ends).
#[derive(Debug)]
pub(crate) struct DataDirLock(#[allow(dead_code)] File);

/// Takes the data directory's lock, or says that a server holds it.
pub(crate) fn exclusive(data_dir: &Path) -> Result<DataDirLock, String> {
    let path = data_dir.join("serve.lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    flock(&file, FlockOperation::NonBlockingLockExclusive).map_err(|_| {
        format!(
            "a server is running on {} (it holds {}): stop it first",
            data_dir.display(),
            path.display()
        )
    })?;
    Ok(DataDirLock(file))
}
