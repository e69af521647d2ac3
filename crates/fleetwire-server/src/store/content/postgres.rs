//! The content repository on PostgreSQL.

use fleetwire_session::PlayerId;

use super::{
    Admission, Assignee, BytesSent, ConfigHashRow, Item, NewItem, Nonce, Published, Served, count,
    hash32, player_id, stored_count,
};
use crate::store::StoreError;
use crate::store::backend::postgres::Client;

pub(crate) const SCHEMA: &str = "
CREATE SEQUENCE content_ids;
CREATE TABLE content (
    id         BIGINT PRIMARY KEY,
    name       TEXT NOT NULL,
    sha256     TEXT NOT NULL,
    length     BIGINT NOT NULL,
    manifest   BYTEA NOT NULL,
    added_at   BIGINT NOT NULL
);
CREATE TABLE content_assignments (
    content BIGINT NOT NULL REFERENCES content(id) ON DELETE CASCADE,
    player  BYTEA NOT NULL,            -- a player id, or '' for every player
    PRIMARY KEY (content, player)
);
CREATE INDEX content_assignments_player ON content_assignments (player);
CREATE TABLE content_bytes_sent (
    player BYTEA PRIMARY KEY,
    bytes  BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE content_blobs (
    sha256 TEXT NOT NULL,
    pos    BIGINT NOT NULL,
    bytes  BYTEA NOT NULL,
    PRIMARY KEY (sha256, pos)
);
CREATE TABLE content_nonces (
    player  BYTEA NOT NULL,
    nonce   BYTEA NOT NULL,
    expires BIGINT NOT NULL,
    PRIMARY KEY (player, nonce)
);
CREATE INDEX content_nonces_player_expires ON content_nonces (player, expires);
CREATE INDEX content_nonces_expires ON content_nonces (expires);
";

/// The advisory lock that serializes publishes across nodes and command lines, so each
/// publish's configuration hashes cover every item committed before it.
const PUBLISH_LOCK: i64 = 7_465_727_734;

/// Items assigned to `$1` (directly or to every player).
const ASSIGNED: &str = "EXISTS (SELECT 1 FROM content_assignments a WHERE a.content = c.id \
                        AND (a.player = $1 OR a.player = ''::bytea))";

pub(super) async fn reserve_id(client: &Client) -> Result<i64, StoreError> {
    Ok(client
        .query_one("SELECT nextval('content_ids')", &[])
        .await?
        .get(0))
}

pub(super) async fn publish(client: &mut Client, item: &NewItem) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PUBLISH_LOCK])
        .await?;
    tx.execute(
        "INSERT INTO content (id, name, sha256, length, manifest, added_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &item.id,
            &item.name,
            &item.sha256,
            &item.length,
            &item.manifest,
            &item.added_at,
        ],
    )
    .await?;
    tx.execute(
        "INSERT INTO content_assignments (content, player) VALUES ($1, $2)",
        &[&item.id, &item.to.key()],
    )
    .await?;
    // The hash of `config_hash` (store/content/mod.rs) in one statement: per player, SHA-256
    // over the prefix and, per assigned item in id order, id (8 bytes, big-endian) and the
    // SHA-256 of its signed manifest.
    let only: Option<Vec<u8>> = match item.to {
        Assignee::All => None,
        Assignee::Player(p) => Some(p.as_bytes().to_vec()),
    };
    tx.execute(
        "WITH parts AS (
             SELECT c.id, int8send(c.id) || sha256(c.manifest) AS part FROM content c
         ),
         hashes AS (
             SELECT p.id AS player,
                    sha256('\\x666c6565747769726520636f6e66696720763100'::bytea || COALESCE(
                        (SELECT string_agg(parts.part, ''::bytea ORDER BY parts.id) FROM parts
                         WHERE EXISTS (SELECT 1 FROM content_assignments a
                                       WHERE a.content = parts.id
                                       AND (a.player = p.id OR a.player = ''::bytea))),
                        ''::bytea)) AS hash
             FROM players p WHERE $1::bytea IS NULL OR p.id = $1
         )
         UPDATE players p SET config_hash = h.hash FROM hashes h WHERE p.id = h.player",
        &[&only],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn list(client: &Client) -> Result<Vec<Published>, StoreError> {
    let rows = client
        .query(
            "SELECT c.id, c.name, c.sha256, c.length, c.added_at, a.player FROM content c \
             LEFT JOIN content_assignments a ON a.content = c.id ORDER BY c.id, a.player",
            &[],
        )
        .await?;
    let mut out: Vec<Published> = Vec::new();
    for r in &rows {
        let item = item(r);
        let player: Option<Vec<u8>> = r.get(5);
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

pub(super) async fn for_player(
    client: &Client,
    player: &PlayerId,
) -> Result<Vec<Item>, StoreError> {
    let rows = client
        .query(
            &format!(
                "SELECT c.id, c.name, c.sha256, c.length, c.added_at FROM content c \
                 WHERE {ASSIGNED} ORDER BY c.id"
            ),
            &[&&player.as_bytes()[..]],
        )
        .await?;
    Ok(rows.iter().map(item).collect())
}

pub(super) async fn served_to(
    client: &Client,
    player: &PlayerId,
) -> Result<Vec<Served>, StoreError> {
    let rows = client
        .query(
            &format!(
                "SELECT c.id, c.sha256, c.length, c.manifest FROM content c \
                 WHERE {ASSIGNED} ORDER BY c.id"
            ),
            &[&&player.as_bytes()[..]],
        )
        .await?;
    Ok(rows.iter().map(served).collect())
}

pub(super) async fn find_for(
    client: &Client,
    player: &PlayerId,
    id: i64,
) -> Result<Option<Served>, StoreError> {
    let row = client
        .query_opt(
            &format!(
                "SELECT c.id, c.sha256, c.length, c.manifest FROM content c \
                 WHERE c.id = $2 AND {ASSIGNED}"
            ),
            &[&&player.as_bytes()[..], &id],
        )
        .await?;
    Ok(row.as_ref().map(served))
}

pub(super) async fn newer_than(client: &Client, after: i64) -> Result<Vec<Item>, StoreError> {
    let rows = client
        .query(
            "SELECT c.id, c.name, c.sha256, c.length, c.added_at FROM content c \
             WHERE c.id > $1 ORDER BY c.id",
            &[&after],
        )
        .await?;
    Ok(rows.iter().map(item).collect())
}

pub(super) async fn config_hashes(
    client: &Client,
    players: &[PlayerId],
) -> Result<Vec<ConfigHashRow>, StoreError> {
    let keys: Vec<&[u8]> = players.iter().map(|p| &p.as_bytes()[..]).collect();
    let rows = client
        .query(
            "SELECT id, config_hash FROM players WHERE id = ANY($1) AND config_hash IS NOT NULL",
            &[&keys],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let id: Vec<u8> = r.get(0);
            let hash: Vec<u8> = r.get(1);
            Ok(ConfigHashRow {
                player: player_id(&id)?,
                hash: hash32(&hash)?,
            })
        })
        .collect()
}

pub(super) async fn add_sent(client: &mut Client, sent: &[BytesSent]) -> Result<(), StoreError> {
    let players: Vec<&[u8]> = sent.iter().map(|s| &s.player.as_bytes()[..]).collect();
    let bytes: Vec<i64> = sent.iter().map(|s| stored_count(s.bytes)).collect();
    // One statement; each row's addition is atomic however many nodes add at once.
    client
        .execute(
            "INSERT INTO content_bytes_sent (player, bytes)
             SELECT * FROM UNNEST($1::bytea[], $2::bigint[])
             ON CONFLICT (player) DO UPDATE
                 SET bytes = content_bytes_sent.bytes + excluded.bytes",
            &[&players, &bytes],
        )
        .await?;
    Ok(())
}

pub(super) async fn sent(client: &Client) -> Result<Vec<BytesSent>, StoreError> {
    let rows = client
        .query(
            "SELECT player, bytes FROM content_bytes_sent ORDER BY player",
            &[],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let player: Vec<u8> = r.get(0);
            Ok(BytesSent {
                player: player_id(&player)?,
                bytes: count(r.get(1)),
            })
        })
        .collect()
}

pub(super) async fn put_piece(
    client: &Client,
    sha256: &str,
    pos: i64,
    bytes: &[u8],
) -> Result<(), StoreError> {
    client
        .execute(
            "INSERT INTO content_blobs (sha256, pos, bytes) VALUES ($1, $2, $3)
             ON CONFLICT (sha256, pos) DO NOTHING",
            &[&sha256, &pos, &bytes],
        )
        .await?;
    Ok(())
}

pub(super) async fn piece(
    client: &Client,
    sha256: &str,
    pos: i64,
) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(client
        .query_opt(
            "SELECT bytes FROM content_blobs WHERE sha256 = $1 AND pos = $2",
            &[&sha256, &pos],
        )
        .await?
        .map(|r| r.get(0)))
}

pub(super) async fn admit_nonce(
    client: &Client,
    nonce: &Nonce,
    now: i64,
    per_player: i64,
) -> Result<Admission, StoreError> {
    // The CTE's insert and the outer SELECT see the same snapshot: `seen` is whether the nonce
    // was there before this statement, `fresh` whether this statement inserted it.
    let row = client
        .query_one(
            "WITH fresh AS (
                 INSERT INTO content_nonces (player, nonce, expires)
                 SELECT $1, $2, $3
                 WHERE (SELECT COUNT(*) FROM content_nonces
                        WHERE player = $1 AND expires >= $4) < $5
                 ON CONFLICT (player, nonce) DO NOTHING
                 RETURNING 1
             )
             SELECT EXISTS (SELECT 1 FROM fresh),
                    EXISTS (SELECT 1 FROM content_nonces WHERE player = $1 AND nonce = $2)",
            &[
                &&nonce.player.as_bytes()[..],
                &&nonce.value[..],
                &nonce.expires,
                &now,
                &per_player,
            ],
        )
        .await?;
    let (fresh, seen): (bool, bool) = (row.get(0), row.get(1));
    Ok(if fresh {
        Admission::Fresh
    } else if seen {
        Admission::Replayed
    } else {
        // Not inserted and not there before: either the cap, or another node inserted the same
        // nonce concurrently (then this one is the replay). Ask again.
        let again = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM content_nonces WHERE player = $1 AND nonce = $2)",
                &[&&nonce.player.as_bytes()[..], &&nonce.value[..]],
            )
            .await?;
        if again.get(0) {
            Admission::Replayed
        } else {
            Admission::Full
        }
    })
}

pub(super) async fn purge_nonces(client: &Client, now: i64) -> Result<u64, StoreError> {
    Ok(client
        .execute("DELETE FROM content_nonces WHERE expires < $1", &[&now])
        .await?)
}

fn item(r: &tokio_postgres::Row) -> Item {
    Item {
        id: r.get(0),
        name: r.get(1),
        sha256: r.get(2),
        length: r.get(3),
        added_at: r.get(4),
    }
}

fn served(r: &tokio_postgres::Row) -> Served {
    Served {
        id: r.get(0),
        sha256: r.get(1),
        length: r.get(2),
        manifest: r.get(3),
    }
}
