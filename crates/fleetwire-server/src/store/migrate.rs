//! Versioned migrations, one list per backend. Each step runs once, in order, in a transaction,
//! and is recorded in `schema_migrations`; on PostgreSQL an advisory lock makes nodes that start
//! together migrate one at a time. A store whose recorded version is newer than this build
//! knows is refused: an older binary must not write a newer schema.

use super::backend::Backend;
use super::{Store, StoreError};

/// One step: its version, a name for people, its SQL, and (SQLite only) a data migration in
/// code that runs after the SQL and manages its own transaction (it must be idempotent).
pub(crate) struct Migration {
    pub(crate) version: i64,
    pub(crate) name: &'static str,
    pub(crate) sql: &'static [&'static str],
    pub(crate) code: Option<fn(&rusqlite::Connection) -> rusqlite::Result<()>>,
}

/// SQLite's steps. Version 1 is the baseline every earlier data directory already has (its
/// statements are `IF NOT EXISTS`, so an existing file passes through it unchanged), with the
/// data migrations earlier versions ran at every open.
const SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        name: "baseline",
        sql: &[
            super::players::sqlite::SCHEMA,
            super::audit::sqlite::SCHEMA,
            super::loggers::sqlite::SCHEMA,
            super::accounts::sqlite::SCHEMA,
            super::content::sqlite::SCHEMA,
            super::things::sqlite::SCHEMA,
        ],
        code: Some(super::things::sqlite::migrate),
    },
    Migration {
        version: 2,
        name: "presence by node",
        sql: &[],
        code: Some(super::players::sqlite::presence_by_node),
    },
];

/// PostgreSQL's steps.
const POSTGRES: &[Migration] = &[Migration {
    version: 1,
    name: "baseline",
    sql: &[
        super::players::postgres::SCHEMA,
        super::audit::postgres::SCHEMA,
        super::keys::postgres::SCHEMA,
        super::accounts::postgres::SCHEMA,
        super::things::postgres::SCHEMA,
        super::content::postgres::SCHEMA,
        super::loggers::postgres::SCHEMA,
    ],
    code: None,
}];

const TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version    BIGINT PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at BIGINT NOT NULL
)";

/// Brings the store to the newest version this build knows.
pub(crate) async fn run(store: &Store) -> Result<(), StoreError> {
    match store.backend() {
        Backend::Sqlite(_) => store.sqlite(sqlite).await,
        Backend::Postgres(_) => postgres(&mut store.postgres().await?).await,
    }
}

fn sqlite(conn: &mut rusqlite::Connection) -> Result<(), StoreError> {
    conn.execute_batch(TABLE)?;
    let current = |c: &rusqlite::Connection| -> rusqlite::Result<i64> {
        c.query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            [],
            |r| r.get(0),
        )
    };
    check_known(current(conn)?, SQLITE)?;
    for m in SQLITE {
        // Each step in its own transaction; a step another process applied meanwhile is
        // skipped (the version is re-read under the write lock).
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        if current(&tx)? >= m.version {
            continue;
        }
        for sql in m.sql {
            tx.execute_batch(sql)?;
        }
        tx.commit()?;
        if let Some(code) = m.code {
            code(conn)?;
        }
        conn.execute(
            "INSERT OR IGNORE INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
            rusqlite::params![m.version, m.name, crate::unix_now()],
        )?;
    }
    Ok(())
}

async fn postgres(client: &mut deadpool_postgres::Object) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    // One node at a time; released at commit.
    tx.execute("SELECT pg_advisory_xact_lock(7465727732)", &[])
        .await?;
    tx.batch_execute(TABLE).await?;
    let current: i64 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            &[],
        )
        .await?
        .get(0);
    check_known(current, POSTGRES)?;
    for m in POSTGRES.iter().filter(|m| m.version > current) {
        for sql in m.sql {
            tx.batch_execute(sql).await?;
        }
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            &[&m.version, &m.name, &crate::unix_now()],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

fn check_known(current: i64, steps: &[Migration]) -> Result<(), StoreError> {
    let newest = steps.last().map_or(0, |m| m.version);
    if current > newest {
        return Err(StoreError::Invalid(format!(
            "the store is at schema version {current}, this build knows up to {newest}: \
             run the newer fleetwire-server that wrote it"
        )));
    }
    Ok(())
}
