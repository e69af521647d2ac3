//! The store: the only code that knows SQL. Typed repositories per domain, each with its SQL
//! written once for each backend:
//!
//! - **SQLite** (rusqlite, bundled): the zero-configuration default, one file in the data
//!   directory, WAL with `synchronous = FULL` (a commit is on disk before it returns).
//! - **PostgreSQL** (tokio-postgres with a deadpool pool): `[store] url = "postgres://…"`, for
//!   several server nodes sharing one fleet.
//!
//! A repository is a borrowed view (`store.players()`) whose methods are `async` and return
//! structs with named fields. SQLite work runs on the blocking pool, never on the executor.
//! Both backends apply their versioned migrations at open ([`migrate`]); a data directory made
//! by an earlier version migrates forward.

pub(crate) mod accounts;
pub(crate) mod audit;
mod backend;
pub(crate) mod backup;
pub(crate) mod content;
pub(crate) mod copy;
pub(crate) mod keys;
pub(crate) mod loggers;
mod migrate;
pub(crate) mod players;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
pub(crate) mod things;

use std::path::Path;
use std::sync::Arc;

pub(crate) use backend::Backend;
use backend::{postgres, sqlite};

use crate::config::StoreSettings;

/// The embedded store's file in the data directory.
pub(crate) const SQLITE_FILE: &str = "fleetwire.db";

/// A handle on the store; cheap to clone.
#[derive(Clone)]
pub(crate) struct Store {
    backend: Arc<Backend>,
}

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    /// The database cannot be reached (PostgreSQL down, pool exhausted, file not openable).
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// The query failed.
    #[error("store query failed: {0}")]
    Query(String),
    /// The stored data is not what this version expects (a corrupt row, an unknown migration).
    #[error("stored data is invalid: {0}")]
    Invalid(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Query(e.to_string())
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        // The error's own Display is only "db error": the server's message is in the DbError.
        let message = e.as_db_error().map_or_else(
            || e.to_string(),
            |db| format!("{}: {}", db.code().code(), db.message()),
        );
        if e.is_closed() {
            Self::Unavailable(message)
        } else {
            Self::Query(message)
        }
    }
}

impl Store {
    /// Opens the store `settings` name (SQLite in `data_dir` by default) and migrates it.
    pub(crate) async fn open(
        settings: &StoreSettings,
        data_dir: &Path,
    ) -> Result<Self, StoreError> {
        let backend = match &settings.url {
            None => Backend::Sqlite(sqlite::Db::open(&data_dir.join(SQLITE_FILE)).await?),
            Some(url) => Backend::Postgres(
                postgres::Db::open(url, settings.pool_size, settings.ca_file.as_deref()).await?,
            ),
        };
        let store = Self {
            backend: Arc::new(backend),
        };
        migrate::run(&store).await?;
        Ok(store)
    }

    /// Which backend, for messages: `sqlite` or `postgresql`.
    pub(crate) fn kind(&self) -> &'static str {
        match &*self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgresql",
        }
    }

    /// Players: provisioning, lookup at login, presence.
    pub(crate) fn players(&self) -> players::Players<'_> {
        players::Players(self)
    }

    /// Accounts: users, groups, sessions, reset tokens, second factors, the command queue,
    /// and (PostgreSQL) the lockout, throttle, CAPTCHA and origin state the nodes share.
    pub(crate) fn accounts(&self) -> accounts::Accounts<'_> {
        accounts::Accounts(self)
    }

    /// Keys shared by the nodes of a fleet (PostgreSQL).
    pub(crate) fn keys(&self) -> keys::Keys<'_> {
        keys::Keys(self)
    }

    /// Content for players: items, assignments, bytes sent, configuration hashes; with
    /// PostgreSQL also the file bytes and the signed requests' nonces every node shares.
    pub(crate) fn content(&self) -> content::Content<'_> {
        content::Content(self)
    }

    /// Sensor loggers: keys, readings, epochs, status.
    pub(crate) fn loggers(&self) -> loggers::Loggers<'_> {
        loggers::Loggers(self)
    }

    /// The security events and the hash-chained audit log.
    pub(crate) fn audit(&self) -> audit::Audit<'_> {
        audit::Audit(self)
    }

    /// Things: codes, access, principals, events.
    pub(crate) fn things(&self) -> things::Things<'_> {
        things::Things(self)
    }

    pub(crate) fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Runs `f` on the SQLite connection, on the blocking pool.
    pub(crate) async fn sqlite<T, E>(
        &self,
        f: impl FnOnce(&mut rusqlite::Connection) -> Result<T, E> + Send + 'static,
    ) -> Result<T, StoreError>
    where
        T: Send + 'static,
        E: Into<StoreError>,
    {
        let backend = self.backend.clone();
        tokio::task::spawn_blocking(move || match &*backend {
            Backend::Sqlite(db) => f(&mut db.lock()).map_err(Into::into),
            Backend::Postgres(_) => Err(StoreError::Invalid(
                "an SQLite query was sent to PostgreSQL".into(),
            )),
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("store task failed: {e}")))?
    }

    /// A pooled PostgreSQL connection.
    pub(crate) async fn postgres(&self) -> Result<postgres::Client, StoreError> {
        match &*self.backend {
            Backend::Postgres(db) => db.client().await,
            Backend::Sqlite(_) => Err(StoreError::Invalid(
                "a PostgreSQL query was sent to SQLite".into(),
            )),
        }
    }
}
