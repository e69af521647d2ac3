//! Backups of the embedded store: SQLite's online backup API on a connection of its own, so the
//! server keeps serving (WAL: the copy reads one snapshot, writers are not blocked), then the
//! copy is verified on its own (`PRAGMA integrity_check`, rows per table). Restoring swaps a
//! verified copy in for the database file, its write-ahead log removed with it.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::StoreError;

/// What a verified copy holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Verified {
    /// `ok`, or the first problem `integrity_check` found.
    pub(crate) integrity: String,
    /// Rows per table.
    pub(crate) tables: BTreeMap<String, u64>,
}

impl Verified {
    pub(crate) fn ok(&self) -> bool {
        self.integrity == "ok"
    }
}

/// Copies the database at `db` into a new file `to` (which must not exist) while it is in use,
/// and verifies the copy.
pub(crate) fn take(db: &Path, to: &Path) -> Result<Verified, StoreError> {
    if to.exists() {
        return Err(StoreError::Invalid(format!("{} exists", to.display())));
    }
    let fail = |e: rusqlite::Error| StoreError::Unavailable(format!("{}: {e}", db.display()));
    let source = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(fail)?;
    source.busy_timeout(Duration::from_secs(30)).map_err(fail)?;
    let mut target = Connection::open(to).map_err(fail)?;
    {
        let backup = rusqlite::backup::Backup::new(&source, &mut target).map_err(fail)?;
        // All pages in one step: one read snapshot of the source; writers go on in WAL mode.
        // A step that finds the database locked (a checkpoint) is retried for up to a minute.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            match backup.step(-1).map_err(fail)? {
                rusqlite::backup::StepResult::Done => break,
                _ if std::time::Instant::now() > deadline => {
                    return Err(StoreError::Unavailable(format!(
                        "{}: still locked after a minute",
                        db.display()
                    )));
                }
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
    target
        .execute_batch("PRAGMA journal_mode = DELETE;")
        .map_err(fail)?;
    drop(target);
    verify(to)
}

/// Opens `file` read-only and checks it: integrity, and rows per table.
pub(crate) fn verify(file: &Path) -> Result<Verified, StoreError> {
    let fail = |e: rusqlite::Error| StoreError::Invalid(format!("{}: {e}", file.display()));
    let conn = Connection::open_with_flags(file, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(fail)?;
    let integrity: String = conn
        .query_row("PRAGMA integrity_check(1)", [], |r| r.get(0))
        .map_err(fail)?;
    let names: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(fail)?;
    let mut tables = BTreeMap::new();
    for name in names {
        let n: i64 = conn
            .query_row(
                &format!("SELECT COUNT(*) FROM \"{}\"", name.replace('"', "\"\"")),
                [],
                |r| r.get(0),
            )
            .map_err(fail)?;
        tables.insert(name, u64::try_from(n).unwrap_or(0));
    }
    Ok(Verified { integrity, tables })
}

/// Replaces the database at `db` with the verified copy `from`: copied beside it, checked,
/// then renamed over it, with the old write-ahead log and shared-memory files removed (they
/// belong to the old database). The database must not be open.
pub(crate) fn restore(from: &Path, db: &Path) -> Result<Verified, StoreError> {
    let staged = db.with_extension("db.restoring");
    let io = |e: std::io::Error| StoreError::Unavailable(format!("{}: {e}", db.display()));
    let _ = std::fs::remove_file(&staged);
    std::fs::copy(from, &staged).map_err(io)?;
    let checked = verify(&staged)?;
    if !checked.ok() {
        let _ = std::fs::remove_file(&staged);
        return Err(StoreError::Invalid(format!(
            "{} fails its integrity check: {}",
            from.display(),
            checked.integrity
        )));
    }
    for side in ["db-wal", "db-shm"] {
        match std::fs::remove_file(db.with_extension(side)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
    }
    std::fs::rename(&staged, db).map_err(io)?;
    if let Some(dir) = db.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
    }
    Ok(checked)
}

/// A small WAL database with one table `t` of two rows (for tests of the backup policy).
#[cfg(test)]
pub(crate) fn tiny_database(path: &Path) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; CREATE TABLE t (x); INSERT INTO t VALUES (1), (2);",
    )
    .unwrap();
}
