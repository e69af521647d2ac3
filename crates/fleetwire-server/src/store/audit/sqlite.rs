//! The audit repository on SQLite.

use fleetwire_auth::UnixTime;
use fleetwire_auth::audit::AuditEvent;
use rusqlite::{Connection, OptionalExtension, params};

use super::{Row, SecurityEvent, TailEntry, at_ms, event_json, link, seq};
use crate::store::StoreError;

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS security_events (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,
    at     INTEGER NOT NULL,
    kind   TEXT NOT NULL,
    player BLOB,
    peer   TEXT,
    detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS auth_audit (
    seq   INTEGER PRIMARY KEY,
    at_ms INTEGER NOT NULL,
    event TEXT NOT NULL,
    prev  TEXT NOT NULL,
    hash  TEXT NOT NULL
);
";

pub(super) fn record(conn: &mut Connection, events: &[SecurityEvent]) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO security_events (at, kind, player, peer, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for e in events {
            insert.execute(params![
                e.at,
                e.kind,
                e.player.map(|p| p.as_bytes().to_vec()),
                e.peer,
                e.detail
            ])?;
        }
    }
    let chained: Vec<_> = events.iter().map(SecurityEvent::audit_event).collect();
    append(&tx, &chained)?;
    tx.commit()?;
    Ok(())
}

/// Appends to the chain inside the caller's (immediate) transaction.
pub(crate) fn append(tx: &Connection, events: &[(UnixTime, AuditEvent)]) -> Result<(), StoreError> {
    let last: Option<(i64, String)> = tx
        .query_row(
            "SELECT seq, hash FROM auth_audit ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO auth_audit (seq, at_ms, event, prev, hash) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for e in link(last, events) {
        insert.execute(params![seq(&e), at_ms(&e), event_json(&e)?, e.prev, e.hash])?;
    }
    Ok(())
}

pub(super) fn all(conn: &mut Connection) -> Result<Vec<Row>, StoreError> {
    let mut stmt =
        conn.prepare("SELECT seq, at_ms, event, prev, hash FROM auth_audit ORDER BY seq")?;
    let rows = stmt.query_map([], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(super) fn tail(conn: &mut Connection, count: i64) -> Result<Vec<TailEntry>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT seq, at_ms, event FROM (SELECT seq, at_ms, event FROM auth_audit
         ORDER BY seq DESC LIMIT ?1) ORDER BY seq",
    )?;
    let rows = stmt.query_map([count], |r| {
        Ok(TailEntry {
            seq: r.get(0)?,
            at_ms: r.get(1)?,
            event_json: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
