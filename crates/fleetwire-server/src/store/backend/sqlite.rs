//! The embedded store: one SQLite file in WAL mode (the README says why SQLite). The server and
//! the command line use it at the same time.

use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::Connection;

use crate::store::StoreError;

/// `synchronous = FULL`: every commit syncs the write-ahead log before it returns, so whatever
/// the server acknowledges (a logger's readings, an account change, a thing join) survives a
/// power cut or kernel crash. With `NORMAL` a WAL commit is synced only at checkpoints and an
/// acknowledged write could vanish (issue 10, hole 14). Sensor ingest pays one sync per group of
/// batches, not per batch (group commit).
const PRAGMAS: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = FULL;
PRAGMA foreign_keys = ON;
";

/// One connection, shared behind a lock; queries run on the blocking pool.
pub(crate) struct Db {
    conn: Mutex<Connection>,
}

impl Db {
    /// Opens (or creates) the file and sets the pragmas. Migrations run after.
    pub(crate) async fn open(path: &Path) -> Result<Self, StoreError> {
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || {
            let fail =
                |e: rusqlite::Error| StoreError::Unavailable(format!("{}: {e}", path.display()));
            let conn = Connection::open(&path).map_err(fail)?;
            conn.busy_timeout(Duration::from_secs(5)).map_err(fail)?;
            conn.execute_batch(PRAGMAS).map_err(fail)?;
            Ok(Self {
                conn: Mutex::new(conn),
            })
        })
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?
    }

    /// The connection. Hold it briefly, and never on the async executor.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
