//! The embedded store: one `SQLite` file in WAL mode (the README says why `SQLite`). The server
//! and the command line use it at the same time; the file keeps only verifiers, never secrets.

use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use fleetwire_session::{ConfigHash, PlayerId, PlayerLookup, PlayerStatus, PlayerVerifier};
use rusqlite::{Connection, OptionalExtension, params};

pub(crate) struct Store {
    conn: Mutex<Connection>,
}

/// A player as `player list` shows it.
pub(crate) struct PlayerRow {
    pub(crate) id: PlayerId,
    pub(crate) name: String,
    pub(crate) approved: bool,
    pub(crate) online: bool,
    pub(crate) last_seen: Option<i64>,
    pub(crate) content: Option<String>,
    pub(crate) versions: Option<String>,
}

/// A security event row: time, kind, player, peer address, detail.
pub(crate) type EventRow = (i64, &'static str, Option<PlayerId>, Option<String>, String);

/// A heartbeat's worth of presence, written in batches.
pub(crate) struct Seen {
    pub(crate) id: PlayerId,
    pub(crate) at: i64,
    pub(crate) status: PlayerStatus,
}

/// Every module's tables. A protocol module adds its own `SCHEMA` here (idempotent SQL:
/// `CREATE TABLE IF NOT EXISTS …`); all run at every open.
const SCHEMAS: &[&str] = &[
    PRAGMAS,
    SCHEMA,
    crate::loggers::SCHEMA,
    crate::accounts::SCHEMA,
    crate::content::SCHEMA,
    crate::things::SCHEMA,
];

/// `synchronous = FULL`: every commit syncs the write-ahead log before it returns, so whatever
/// the server acknowledges (a logger's readings, an account change, a thing join) survives a
/// power cut or kernel crash. With `NORMAL` a WAL commit is synced only at checkpoints and an
/// acknowledged write could vanish (issue 10, hole 14). Sensor ingest pays one sync per group of
/// batches, not per batch (`loggers.rs`, group commit).
const PRAGMAS: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = FULL;
PRAGMA foreign_keys = ON;
";

const SCHEMA: &str = "
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
CREATE TABLE IF NOT EXISTS security_events (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,
    at     INTEGER NOT NULL,
    kind   TEXT NOT NULL,
    player BLOB,
    peer   TEXT,
    detail TEXT NOT NULL
);
";

impl Store {
    pub(crate) fn open(path: &Path) -> Result<Self, String> {
        let conn = Connection::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        for schema in SCHEMAS {
            conn.execute_batch(schema)
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        crate::things::migrate(&conn).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    /// The connection, for a module's own queries. Hold it briefly, and never on the async
    /// executor: call from `spawn_blocking` or a command-line path.
    pub(crate) fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn add_players(
        &self,
        players: &[(PlayerId, PlayerVerifier)],
        name: &str,
        approved: bool,
        now: i64,
    ) -> rusqlite::Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut insert = tx.prepare(
                "INSERT INTO players (id, name, verifier, approved, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (id, verifier) in players {
                insert.execute(params![
                    &id.as_bytes()[..],
                    name,
                    &verifier.as_bytes()[..],
                    approved,
                    now
                ])?;
            }
        }
        tx.commit()
    }

    pub(crate) fn lookup(&self, id: &PlayerId) -> rusqlite::Result<PlayerLookup> {
        let row = self
            .conn()
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
        Ok(match row {
            Some((verifier, approved, hash)) => match <[u8; 32]>::try_from(verifier.as_slice()) {
                Ok(v) => PlayerLookup::Known {
                    verifier: PlayerVerifier::from_bytes(v),
                    approved,
                    config_hash: hash
                        .and_then(|h| <[u8; 32]>::try_from(h.as_slice()).ok())
                        .map(ConfigHash),
                },
                Err(_) => PlayerLookup::Unknown,
            },
            None => PlayerLookup::Unknown,
        })
    }

    pub(crate) fn list(&self) -> rusqlite::Result<Vec<PlayerRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, name, approved, online, last_seen, content, versions FROM players ORDER BY created_at, id",
        )?;
        let rows = stmt.query_map([], |r| {
            let id: Vec<u8> = r.get(0)?;
            Ok(PlayerRow {
                id: PlayerId::from_bytes(<[u8; 16]>::try_from(id.as_slice()).unwrap_or([0; 16])),
                name: r.get(1)?,
                approved: r.get(2)?,
                online: r.get(3)?,
                last_seen: r.get(4)?,
                content: r.get(5)?,
                versions: r.get(6)?,
            })
        })?;
        rows.collect()
    }

    pub(crate) fn approve(&self, id: &PlayerId) -> rusqlite::Result<bool> {
        let n = self.conn().execute(
            "UPDATE players SET approved = 1 WHERE id = ?1",
            [&id.as_bytes()[..]],
        )?;
        Ok(n == 1)
    }

    pub(crate) fn remove(&self, id: &PlayerId) -> rusqlite::Result<bool> {
        let n = self
            .conn()
            .execute("DELETE FROM players WHERE id = ?1", [&id.as_bytes()[..]])?;
        Ok(n == 1)
    }

    /// Of `ids`, those that no longer exist or are no longer approved.
    pub(crate) fn revoked_among(&self, ids: &[PlayerId]) -> rusqlite::Result<Vec<PlayerId>> {
        let conn = self.conn();
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

    pub(crate) fn set_online(
        &self,
        changes: &[(PlayerId, bool)],
        seen: &[Seen],
    ) -> rusqlite::Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut online = tx.prepare_cached("UPDATE players SET online = ?2 WHERE id = ?1")?;
            for (id, on) in changes {
                online.execute(params![&id.as_bytes()[..], on])?;
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
        tx.commit()
    }

    pub(crate) fn reset_presence(&self) -> rusqlite::Result<()> {
        self.conn()
            .execute("UPDATE players SET online = 0 WHERE online = 1", [])
            .map(|_| ())
    }

    /// Records security events in `security_events` and appends them to the audit hash chain.
    pub(crate) fn record_events(&self, events: &[EventRow]) -> rusqlite::Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO security_events (at, kind, player, peer, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (at, kind, player, peer, detail) in events {
                insert.execute(params![
                    at,
                    kind,
                    player.map(|p| p.as_bytes().to_vec()),
                    peer,
                    detail
                ])?;
            }
        }
        tx.commit()?;
        // The same events, hash-chained with every account decision (`audit verify`).
        let chained: Vec<_> = events
            .iter()
            .map(|(at, kind, player, peer, detail)| {
                let at = u64::try_from(*at).unwrap_or(0).saturating_mul(1000);
                (
                    fleetwire_auth::UnixTime::from_millis(at),
                    fleetwire_auth::audit::AuditEvent::DeviceEvent {
                        kind: (*kind).to_owned(),
                        device: player.map(|p| p.to_string()).unwrap_or_default(),
                        origin: peer.clone().unwrap_or_default(),
                        detail: detail.clone(),
                    },
                )
            })
            .collect();
        crate::accounts::append_audit(&mut conn, &chained)
    }
}
