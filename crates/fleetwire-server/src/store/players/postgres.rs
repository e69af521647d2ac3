//! The players repository on PostgreSQL.

use fleetwire_session::PlayerId;

use super::{Found, NewPlayer, PlayerRow, Seen, Transition, bytes32, player_id};
use crate::store::StoreError;
use crate::store::backend::postgres::Client;

pub(crate) const SCHEMA: &str = "
CREATE TABLE players (
    id          BYTEA PRIMARY KEY,
    name        TEXT NOT NULL DEFAULT '',
    verifier    BYTEA NOT NULL,
    approved    BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  BIGINT NOT NULL,
    config_hash BYTEA,
    online_node TEXT,
    last_seen   BIGINT,
    content     TEXT,
    free_bytes  BIGINT,
    versions    TEXT
);
CREATE INDEX players_online_node ON players (online_node);
CREATE INDEX players_created ON players (created_at, id);
CREATE TABLE server_nodes (
    id      TEXT PRIMARY KEY,
    seen_at BIGINT NOT NULL
);
";

const ONLINE: &str = "(p.online_node IS NOT NULL AND EXISTS
    (SELECT 1 FROM server_nodes n WHERE n.id = p.online_node AND n.seen_at >= $1))";

pub(super) async fn add(
    client: &mut Client,
    players: &[NewPlayer],
    now: i64,
) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    let insert = tx
        .prepare_cached(
            "INSERT INTO players (id, name, verifier, approved, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .await?;
    for p in players {
        tx.execute(
            &insert,
            &[
                &&p.id.as_bytes()[..],
                &p.name,
                &&p.verifier.as_bytes()[..],
                &p.approved,
                &now,
            ],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

pub(super) async fn lookup(client: &Client, id: &PlayerId) -> Result<Option<Found>, StoreError> {
    let row = client
        .query_opt(
            "SELECT verifier, approved, config_hash FROM players WHERE id = $1",
            &[&&id.as_bytes()[..]],
        )
        .await?;
    row.map(|r| {
        let verifier: Vec<u8> = r.get(0);
        let hash: Option<Vec<u8>> = r.get(2);
        Ok((
            bytes32(&verifier, "verifier")?,
            r.get(1),
            hash.map(|h| bytes32(&h, "configuration hash"))
                .transpose()?,
        ))
    })
    .transpose()
}

pub(super) async fn list(client: &Client, alive_since: i64) -> Result<Vec<PlayerRow>, StoreError> {
    let rows = client
        .query(
            &format!(
                "SELECT p.id, p.name, p.approved, {ONLINE}, p.last_seen, p.content, p.versions
                 FROM players p ORDER BY p.created_at, p.id"
            ),
            &[&alive_since],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let id: Vec<u8> = r.get(0);
            Ok(PlayerRow {
                id: player_id(&id)?,
                name: r.get(1),
                approved: r.get(2),
                online: r.get(3),
                last_seen: r.get(4),
                content: r.get(5),
                versions: r.get(6),
            })
        })
        .collect()
}

pub(super) async fn online_count(client: &Client, alive_since: i64) -> Result<u64, StoreError> {
    let n: i64 = client
        .query_one(
            &format!("SELECT COUNT(*) FROM players p WHERE {ONLINE}"),
            &[&alive_since],
        )
        .await?
        .get(0);
    Ok(u64::try_from(n).unwrap_or(0))
}

pub(super) async fn approve(client: &Client, id: &PlayerId) -> Result<bool, StoreError> {
    let n = client
        .execute(
            "UPDATE players SET approved = TRUE WHERE id = $1",
            &[&&id.as_bytes()[..]],
        )
        .await?;
    Ok(n == 1)
}

pub(super) async fn remove(client: &Client, id: &PlayerId) -> Result<bool, StoreError> {
    let n = client
        .execute("DELETE FROM players WHERE id = $1", &[&&id.as_bytes()[..]])
        .await?;
    Ok(n == 1)
}

pub(super) async fn revoked_among(
    client: &Client,
    ids: &[PlayerId],
) -> Result<Vec<PlayerId>, StoreError> {
    let keys: Vec<&[u8]> = ids.iter().map(|id| &id.as_bytes()[..]).collect();
    let rows = client
        .query(
            "SELECT id FROM players WHERE id = ANY($1) AND approved",
            &[&keys],
        )
        .await?;
    let approved: std::collections::HashSet<Vec<u8>> = rows.iter().map(|r| r.get(0)).collect();
    Ok(ids
        .iter()
        .filter(|id| !approved.contains(&id.as_bytes()[..]))
        .copied()
        .collect())
}

pub(super) async fn record_presence(
    client: &mut Client,
    node: &str,
    transitions: &[Transition],
    seen: &[Seen],
) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    let online = tx
        .prepare_cached("UPDATE players SET online_node = $2 WHERE id = $1")
        .await?;
    let offline = tx
        .prepare_cached("UPDATE players SET online_node = NULL WHERE id = $1 AND online_node = $2")
        .await?;
    for t in transitions {
        let stmt = if t.online { &online } else { &offline };
        tx.execute(stmt, &[&&t.id.as_bytes()[..], &node]).await?;
    }
    if !seen.is_empty() {
        // One statement for the whole batch: arrays unnested into rows.
        let ids: Vec<&[u8]> = seen.iter().map(|s| &s.id.as_bytes()[..]).collect();
        let at: Vec<i64> = seen.iter().map(|s| s.at).collect();
        let content: Vec<&str> = seen.iter().map(|s| s.status.content.as_str()).collect();
        let free: Vec<i64> = seen
            .iter()
            .map(|s| i64::try_from(s.status.free_storage_bytes).unwrap_or(i64::MAX))
            .collect();
        let versions: Vec<&str> = seen.iter().map(|s| s.status.versions.as_str()).collect();
        tx.execute(
            "UPDATE players p SET last_seen = s.at, content = s.content, free_bytes = s.free,
                 versions = s.versions
             FROM UNNEST($1::bytea[], $2::bigint[], $3::text[], $4::bigint[], $5::text[])
                 AS s(id, at, content, free, versions)
             WHERE p.id = s.id",
            &[&ids, &at, &content, &free, &versions],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

pub(super) async fn node_alive(client: &Client, node: &str, now: i64) -> Result<(), StoreError> {
    client
        .execute(
            "INSERT INTO server_nodes (id, seen_at) VALUES ($1, $2)
             ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at",
            &[&node, &now],
        )
        .await?;
    Ok(())
}

pub(super) async fn node_gone(client: &Client, node: &str) -> Result<(), StoreError> {
    client
        .execute(
            "UPDATE players SET online_node = NULL WHERE online_node = $1",
            &[&node],
        )
        .await?;
    client
        .execute("DELETE FROM server_nodes WHERE id = $1", &[&node])
        .await?;
    Ok(())
}
