//! The audit repository on PostgreSQL.

use deadpool_postgres::Transaction;
use fleetwire_auth::UnixTime;
use fleetwire_auth::audit::AuditEvent;

use super::{Row, SecurityEvent, TailEntry, at_ms, event_json, link, seq};
use crate::store::StoreError;
use crate::store::backend::postgres::Client;

pub(crate) const SCHEMA: &str = "
CREATE TABLE security_events (
    seq    BIGSERIAL PRIMARY KEY,
    at     BIGINT NOT NULL,
    kind   TEXT NOT NULL,
    player BYTEA,
    peer   TEXT,
    detail TEXT NOT NULL
);
CREATE TABLE auth_audit (
    seq   BIGINT PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    event TEXT NOT NULL,
    prev  TEXT NOT NULL,
    hash  TEXT NOT NULL
);
";

/// The advisory lock that serializes appends to the chain across nodes.
const CHAIN_LOCK: i64 = 7_465_727_733;

pub(super) async fn record(
    client: &mut Client,
    events: &[SecurityEvent],
) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    let insert = tx
        .prepare_cached(
            "INSERT INTO security_events (at, kind, player, peer, detail) VALUES ($1, $2, $3, $4, $5)",
        )
        .await?;
    for e in events {
        let player = e.player.map(|p| p.as_bytes().to_vec());
        tx.execute(
            &insert,
            &[&e.at, &e.kind.to_owned(), &player, &e.peer, &e.detail],
        )
        .await?;
    }
    let chained: Vec<_> = events.iter().map(SecurityEvent::audit_event).collect();
    append(&tx, &chained).await?;
    tx.commit().await?;
    Ok(())
}

/// Appends to the chain inside the caller's transaction (one writer at a time, any node).
pub(crate) async fn append(
    tx: &Transaction<'_>,
    events: &[(UnixTime, AuditEvent)],
) -> Result<(), StoreError> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&CHAIN_LOCK])
        .await?;
    let last = tx
        .query_opt(
            "SELECT seq, hash FROM auth_audit ORDER BY seq DESC LIMIT 1",
            &[],
        )
        .await?
        .map(|r| (r.get::<_, i64>(0), r.get::<_, String>(1)));
    let insert = tx
        .prepare_cached(
            "INSERT INTO auth_audit (seq, at_ms, event, prev, hash) VALUES ($1, $2, $3, $4, $5)",
        )
        .await?;
    for e in link(last, events) {
        let json = event_json(&e)?;
        tx.execute(&insert, &[&seq(&e), &at_ms(&e), &json, &e.prev, &e.hash])
            .await?;
    }
    Ok(())
}

pub(super) async fn all(client: &Client) -> Result<Vec<Row>, StoreError> {
    let rows = client
        .query(
            "SELECT seq, at_ms, event, prev, hash FROM auth_audit ORDER BY seq",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect())
}

pub(super) async fn tail(client: &Client, count: i64) -> Result<Vec<TailEntry>, StoreError> {
    let rows = client
        .query(
            "SELECT seq, at_ms, event FROM (SELECT seq, at_ms, event FROM auth_audit
             ORDER BY seq DESC LIMIT $1) t ORDER BY seq",
            &[&count],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| TailEntry {
            seq: r.get(0),
            at_ms: r.get(1),
            event_json: r.get(2),
        })
        .collect())
}
