//! The content repository on SQLite.

use fleetwire_session::PlayerId;
use rusqlite::{Connection, OptionalExtension, params};

use super::{
    Assignee, BytesSent, ConfigHashRow, Item, NewItem, Published, Served, config_hash, count,
    hash32, player_id, stored_count,
};
use crate::store::StoreError;

/// The content tables (part of the baseline every earlier data directory has).
pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS content (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    sha256     TEXT NOT NULL,
    length     INTEGER NOT NULL,
    manifest   BLOB NOT NULL,
    added_at   INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS content_assignments (
    content INTEGER NOT NULL REFERENCES content(id) ON DELETE CASCADE,
    player  BLOB NOT NULL,            -- a player id, or X'' for every player
    PRIMARY KEY (content, player)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS content_bytes_sent (
    player BLOB PRIMARY KEY,
    bytes  INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
";

/// Items assigned to `?1` (directly or to every player).
const ASSIGNED: &str = "EXISTS (SELECT 1 FROM content_assignments a WHERE a.content = c.id \
                        AND (a.player = ?1 OR length(a.player) = 0))";

pub(super) fn reserve_id(conn: &mut Connection) -> Result<i64, StoreError> {
    Ok(
        conn.query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM content", [], |r| {
            r.get(0)
        })?,
    )
}

pub(super) fn publish(conn: &mut Connection, item: &NewItem) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let inserted = tx.execute(
        "INSERT INTO content (id, name, sha256, length, manifest, added_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (id) DO NOTHING",
        params![
            item.id,
            item.name,
            item.sha256,
            item.length,
            item.manifest,
            item.added_at
        ],
    )?;
    if inserted == 0 {
        return Err(StoreError::Query(format!(
            "content id {} was taken by another `content add` meanwhile: run it again",
            item.id
        )));
    }
    tx.execute(
        "INSERT INTO content_assignments (content, player) VALUES (?1, ?2)",
        params![item.id, item.to.key()],
    )?;
    refresh_config_hashes(&tx, item.to)?;
    tx.commit()?;
    Ok(())
}

/// Recomputes `players.config_hash` for the player `to` names, or every player.
fn refresh_config_hashes(conn: &Connection, to: Assignee) -> Result<(), StoreError> {
    let players: Vec<Vec<u8>> = match to {
        Assignee::Player(p) => vec![p.as_bytes().to_vec()],
        Assignee::All => {
            let mut stmt = conn.prepare("SELECT id FROM players")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        }
    };
    let mut items = conn.prepare(&format!(
        "SELECT c.id, c.manifest FROM content c WHERE {ASSIGNED} ORDER BY c.id"
    ))?;
    let mut update = conn.prepare("UPDATE players SET config_hash = ?2 WHERE id = ?1")?;
    for player in players {
        let rows = items
            .query_map([&player], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let hash = config_hash(rows.iter().map(|(id, m)| (*id, m.as_slice())));
        update.execute(params![player, &hash[..]])?;
    }
    Ok(())
}

pub(super) fn list(conn: &mut Connection) -> Result<Vec<Published>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT c.id, c.name, c.sha256, c.length, c.added_at, a.player FROM content c \
         LEFT JOIN content_assignments a ON a.content = c.id ORDER BY c.id, a.player",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            Item {
                id: r.get(0)?,
                name: r.get(1)?,
                sha256: r.get(2)?,
                length: r.get(3)?,
                added_at: r.get(4)?,
            },
            r.get::<_, Option<Vec<u8>>>(5)?,
        ))
    })?;
    let mut out: Vec<Published> = Vec::new();
    for row in rows {
        let (item, player) = row?;
        let to = player.map(|p| Assignee::from_key(&p)).transpose()?;
        match out.last_mut() {
            Some(last) if last.item.id == item.id => last.to.extend(to),
            _ => out.push(Published {
                item,
                to: to.into_iter().collect(),
            }),
        }
    }
    Ok(out)
}

pub(super) fn for_player(
    conn: &mut Connection,
    player: &PlayerId,
) -> Result<Vec<Item>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT c.id, c.name, c.sha256, c.length, c.added_at FROM content c \
         WHERE {ASSIGNED} ORDER BY c.id"
    ))?;
    let rows = stmt.query_map([&player.as_bytes()[..]], item)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(super) fn served_to(
    conn: &mut Connection,
    player: &PlayerId,
) -> Result<Vec<Served>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT c.id, c.sha256, c.length, c.manifest FROM content c WHERE {ASSIGNED} ORDER BY c.id"
    ))?;
    let rows = stmt.query_map([&player.as_bytes()[..]], served)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(super) fn find_for(
    conn: &mut Connection,
    player: &PlayerId,
    id: i64,
) -> Result<Option<Served>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT c.id, c.sha256, c.length, c.manifest FROM content c WHERE c.id = ?2 AND {ASSIGNED}"
    ))?;
    Ok(stmt
        .query_row(params![&player.as_bytes()[..], id], served)
        .optional()?)
}

pub(super) fn newer_than(conn: &mut Connection, after: i64) -> Result<Vec<Item>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT c.id, c.name, c.sha256, c.length, c.added_at FROM content c \
         WHERE c.id > ?1 ORDER BY c.id",
    )?;
    let rows = stmt.query_map([after], item)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(super) fn config_hashes(
    conn: &mut Connection,
    players: &[PlayerId],
) -> Result<Vec<ConfigHashRow>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT config_hash FROM players WHERE id = ?1")?;
    let mut out = Vec::new();
    for player in players {
        let hash: Option<Option<Vec<u8>>> = stmt
            .query_row([&player.as_bytes()[..]], |r| r.get(0))
            .optional()?;
        if let Some(hash) = hash.flatten() {
            out.push(ConfigHashRow {
                player: *player,
                hash: hash32(&hash)?,
            });
        }
    }
    Ok(out)
}

pub(super) fn add_sent(conn: &mut Connection, sent: &[BytesSent]) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    {
        let mut add = tx.prepare_cached(
            "INSERT INTO content_bytes_sent (player, bytes) VALUES (?1, ?2) \
             ON CONFLICT (player) DO UPDATE SET bytes = bytes + excluded.bytes",
        )?;
        for s in sent {
            add.execute(params![&s.player.as_bytes()[..], stored_count(s.bytes)])?;
        }
    }
    tx.commit()?;
    Ok(())
}

pub(super) fn sent(conn: &mut Connection) -> Result<Vec<BytesSent>, StoreError> {
    let mut stmt = conn.prepare("SELECT player, bytes FROM content_bytes_sent ORDER BY player")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?)))?;
    rows.map(|row| {
        let (player, bytes) = row?;
        Ok(BytesSent {
            player: player_id(&player)?,
            bytes: count(bytes),
        })
    })
    .collect()
}

fn item(r: &rusqlite::Row<'_>) -> rusqlite::Result<Item> {
    Ok(Item {
        id: r.get(0)?,
        name: r.get(1)?,
        sha256: r.get(2)?,
        length: r.get(3)?,
        added_at: r.get(4)?,
    })
}

fn served(r: &rusqlite::Row<'_>) -> rusqlite::Result<Served> {
    Ok(Served {
        id: r.get(0)?,
        sha256: r.get(1)?,
        length: r.get(2)?,
        manifest: r.get(3)?,
    })
}
