//! The two backends' connections: how they are opened and handed out, nothing of any domain.

pub(crate) mod postgres;
pub(crate) mod sqlite;

/// Where the data lives.
pub(crate) enum Backend {
    /// The embedded file.
    Sqlite(sqlite::Db),
    /// A PostgreSQL server shared by several nodes.
    Postgres(postgres::Db),
}
