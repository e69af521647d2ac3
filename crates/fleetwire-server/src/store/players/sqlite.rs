//! The players repository on SQLite.

use fleetwire_session::PlayerId;
use rusqlite::{Connection, OptionalExtension, params};

use super::{Found, NewPlayer, PlayerRow, Seen, Transition, bytes32, player_id};
use crate::store::StoreError;

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS players (
    id          BLOB PRIMARY KEY,
    name        TEXT NOT NULL DEFAULT '',
    verifier    BLOB NOT NULL,
    approved    INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    config_hash BLOB,
    online      INTEGER NOT NULL DEFAULT 0,
    last_seen   INTEGER,
    content     TEXT,
    free_bytes  INTEGER,
    versions    TEXT
) WITHOUT ROWID;
";

/// Version 2: presence by node (idempotent: a step interrupted between its parts reruns).
pub(crate) fn presence_by_node(conn: &Connection) -> rusqlite::Result<()> {
    let has_column = conn
        .prepare("SELECT 1 FROM pragma_table_info('players') WHERE name = 'online_node'")?
        .exists([])?;
    if !has_column {
        conn.execute("ALTER TABLE players ADD COLUMN online_node TEXT", [])?;
    }
    conn.execute_batch(
        "CREATE INDEX IF NOT EXISTS players_online_node ON players (online_node);
         CREATE TABLE IF NOT EXISTS server_nodes (
             id      TEXT PRIMARY KEY,
             seen_at INTEGER NOT NULL
         );",
    )
}

const ONLINE: &str = "(p.online_node IS NOT NULL AND EXISTS
    (SELECT 1 FROM server_nodes n WHERE n.id = p.online_node AND n.seen_at >= ?1))";

pub(super) fn add(
    conn: &mut Connection,
    players: &[NewPlayer],
    now: i64,
) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare(
            "INSERT INTO players (id, name, verifier, approved, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for p in players {
            insert.execute(params![
                &p.id.as_bytes()[..],
                p.name,
                &p.verifier.as_bytes()[..],
                p.approved,
                now
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}

pub(super) fn lookup(conn: &mut Connection, id: &PlayerId) -> Result<Option<Found>, StoreError> {
    let row = conn
        .query_row(
            "SELECT verifier, approved, config_hash FROM players WHERE id = ?1",
            [&id.as_bytes()[..]],
            |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, bool>(1)?,
                    r.get::<_, Option<Vec<u8>>>(2)?,
                ))
            },
        )
        .optional()?;
    row.map(|(v, approved, hash)| {
        Ok((
            bytes32(&v, "verifier")?,
            approved,
            hash.map(|h| bytes32(&h, "configuration hash"))
                .transpose()?,
        ))
    })
    .transpose()
}

pub(super) fn list(conn: &mut Connection, alive_since: i64) -> Result<Vec<PlayerRow>, StoreError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT p.id, p.name, p.approved, {ONLINE}, p.last_seen, p.content, p.versions
         FROM players p ORDER BY p.created_at, p.id"
    ))?;
    let rows = stmt.query_map([alive_since], |r| {
        Ok((
            r.get::<_, Vec<u8>>(0)?,
            PlayerRow {
                id: PlayerId::from_bytes([0; 16]),
                name: r.get(1)?,
                approved: r.get(2)?,
                online: r.get(3)?,
                last_seen: r.get(4)?,
                content: r.get(5)?,
                versions: r.get(6)?,
            },
        ))
    })?;
    rows.map(|row| {
        let (id, mut player) = row?;
        player.id = player_id(&id)?;
        Ok(player)
    })
    .collect()
}

pub(super) fn online_count(conn: &mut Connection, alive_since: i64) -> Result<u64, StoreError> {
    let n: i64 = conn.query_row(
        &format!("SELECT COUNT(*) FROM players p WHERE {ONLINE}"),
        [alive_since],
        |r| r.get(0),
    )?;
    Ok(u64::try_from(n).unwrap_or(0))
}

pub(super) fn approve(conn: &mut Connection, id: &PlayerId) -> Result<bool, StoreError> {
    let n = conn.execute(
        "UPDATE players SET approved = 1 WHERE id = ?1",
        [&id.as_bytes()[..]],
    )?;
    Ok(n == 1)
}

pub(super) fn remove(conn: &mut Connection, id: &PlayerId) -> Result<bool, StoreError> {
    let n = conn.execute("DELETE FROM players WHERE id = ?1", [&id.as_bytes()[..]])?;
    Ok(n == 1)
}

pub(super) fn revoked_among(
    conn: &mut Connection,
    ids: &[PlayerId],
) -> Result<Vec<PlayerId>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT approved FROM players WHERE id = ?1")?;
    let mut out = Vec::new();
    for id in ids {
        let approved: Option<bool> = stmt
            .query_row([&id.as_bytes()[..]], |r| r.get(0))
            .optional()?;
        if approved != Some(true) {
            out.push(*id);
        }
    }
    Ok(out)
}

pub(super) fn record_presence(
    conn: &mut Connection,
    node: &str,
    transitions: &[Transition],
    seen: &[Seen],
) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    {
        let mut online = tx.prepare_cached("UPDATE players SET online_node = ?2 WHERE id = ?1")?;
        let mut offline = tx.prepare_cached(
            "UPDATE players SET online_node = NULL WHERE id = ?1 AND online_node = ?2",
        )?;
        for t in transitions {
            if t.online {
                online.execute(params![&t.id.as_bytes()[..], node])?;
            } else {
                offline.execute(params![&t.id.as_bytes()[..], node])?;
            }
        }
        let mut touch = tx.prepare_cached(
            "UPDATE players SET last_seen = ?2, content = ?3, free_bytes = ?4, versions = ?5 WHERE id = ?1",
        )?;
        for s in seen {
            touch.execute(params![
                &s.id.as_bytes()[..],
                s.at,
                s.status.content,
                i64::try_from(s.status.free_storage_bytes).unwrap_or(i64::MAX),
                s.status.versions
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}

pub(super) fn node_alive(conn: &mut Connection, node: &str, now: i64) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO server_nodes (id, seen_at) VALUES (?1, ?2)
         ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at",
        params![node, now],
    )?;
    Ok(())
}

pub(super) fn node_gone(conn: &mut Connection, node: &str) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    tx.execute(
        "UPDATE players SET online_node = NULL WHERE online_node = ?1",
        [node],
    )?;
    tx.execute("DELETE FROM server_nodes WHERE id = ?1", [node])?;
    tx.commit()?;
    Ok(())
}
