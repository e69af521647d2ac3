//! Content for players: published items (a signed manifest and the SHA-256 of the file), who
//! each is assigned to, bytes sent per player, the players' configuration hashes, and — with
//! PostgreSQL — the file bytes and the nonces of signed requests, shared by every node.
//!
//! - **Items** are numbered from one sequence (`reserve_id`), so nodes and command lines
//!   publishing at once never take the same id. A publish inserts the item, assigns it and
//!   recomputes the affected players' configuration hashes in one transaction; on PostgreSQL
//!   publishes take an advisory lock, so a hash always covers every item committed before it.
//! - **File bytes** (PostgreSQL only): `content_blobs` holds each file in pieces keyed by the
//!   file's SHA-256 and the piece's byte position, so a node that has not got a file on its own
//!   disk fetches it (and verifies it against the SHA-256) before serving it. On SQLite the one
//!   node's disk is the only copy and nothing here holds bytes.
//! - **Nonces** (PostgreSQL only): a signed request is admitted by inserting its (player, nonce)
//!   with `ON CONFLICT DO NOTHING`, so a request accepted by one node is a replay on every other;
//!   rows leave once their time is outside the tolerance (`purge_nonces`). On SQLite (one node)
//!   the service keeps them in memory.
//! - **Bytes sent** are added with an atomic upsert (`bytes = bytes + excluded.bytes`), so nodes
//!   flushing their counters at once lose nothing.

pub(crate) mod postgres;
pub(crate) mod sqlite;
#[cfg(test)]
mod tests;

use fleetwire_session::PlayerId;

use super::backend::Backend;
use super::{Store, StoreError};

/// A new item, ready to be stored: its id comes from [`Content::reserve_id`] (the signed
/// manifest names it).
#[derive(Debug, Clone)]
pub(crate) struct NewItem {
    pub(crate) id: i64,
    pub(crate) name: String,
    /// Lower-case hex SHA-256 of the file (its name in the content directory and in
    /// `content_blobs`).
    pub(crate) sha256: String,
    pub(crate) length: i64,
    /// The signed manifest.
    pub(crate) manifest: Vec<u8>,
    pub(crate) added_at: i64,
    pub(crate) to: Assignee,
}

/// Who an item is assigned to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Assignee {
    /// Every player, present and future.
    All,
    /// One player.
    Player(PlayerId),
}

impl Assignee {
    /// As stored: the player id, or no bytes for every player.
    fn key(self) -> Vec<u8> {
        match self {
            Self::All => Vec::new(),
            Self::Player(p) => p.as_bytes().to_vec(),
        }
    }

    fn from_key(bytes: &[u8]) -> Result<Self, StoreError> {
        if bytes.is_empty() {
            Ok(Self::All)
        } else {
            player_id(bytes).map(Self::Player)
        }
    }
}

/// An item as a player's listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Item {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) sha256: String,
    pub(crate) length: i64,
    pub(crate) added_at: i64,
}

/// An item as `content list` shows it: with its assignments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Published {
    pub(crate) item: Item,
    pub(crate) to: Vec<Assignee>,
}

/// What serving an item needs: its signed manifest and the SHA-256 naming its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Served {
    pub(crate) id: i64,
    pub(crate) sha256: String,
    pub(crate) length: i64,
    pub(crate) manifest: Vec<u8>,
}

/// Content bytes sent to one player.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BytesSent {
    pub(crate) player: PlayerId,
    pub(crate) bytes: u64,
}

/// A player's configuration hash as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConfigHashRow {
    pub(crate) player: PlayerId,
    pub(crate) hash: [u8; 32],
}

/// What [`Content::admit_nonce`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Not seen before: remembered now.
    Fresh,
    /// Seen before (on any node): a replay.
    Replayed,
    /// The player has as many unexpired requests remembered as allowed.
    Full,
}

/// A nonce to admit: the player's, until `expires` (Unix seconds).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Nonce {
    pub(crate) player: PlayerId,
    /// The request's 16 random bytes.
    pub(crate) value: [u8; 16],
    pub(crate) expires: i64,
}

/// The content repository.
pub(crate) struct Content<'a>(pub(super) &'a Store);

impl Content<'_> {
    /// A new item id, never handed out before (PostgreSQL: a sequence; SQLite: one past the
    /// largest, so a concurrent `content add` on the same box makes one of the two fail at
    /// [`Content::publish`]).
    pub(crate) async fn reserve_id(&self) -> Result<i64, StoreError> {
        match self.0.backend() {
            Backend::Sqlite(_) => self.0.sqlite(sqlite::reserve_id).await,
            Backend::Postgres(_) => postgres::reserve_id(&self.0.postgres().await?).await,
        }
    }

    /// Stores and assigns an item and recomputes the configuration hash of every player it
    /// concerns, in one transaction. On PostgreSQL its bytes must be in `content_blobs` first
    /// ([`Content::put_piece`]).
    pub(crate) async fn publish(&self, item: NewItem) -> Result<(), StoreError> {
        match self.0.backend() {
            Backend::Sqlite(_) => self.0.sqlite(move |c| sqlite::publish(c, &item)).await,
            Backend::Postgres(_) => postgres::publish(&mut self.0.postgres().await?, &item).await,
        }
    }

    /// Every item with its assignments, by id.
    pub(crate) async fn list(&self) -> Result<Vec<Published>, StoreError> {
        match self.0.backend() {
            Backend::Sqlite(_) => self.0.sqlite(sqlite::list).await,
            Backend::Postgres(_) => postgres::list(&self.0.postgres().await?).await,
        }
    }

    /// The items assigned to `player` (directly or to every player), by id.
    pub(crate) async fn for_player(&self, player: PlayerId) -> Result<Vec<Item>, StoreError> {
        match self.0.backend() {
            Backend::Sqlite(_) => self.0.sqlite(move |c| sqlite::for_player(c, &player)).await,
            Backend::Postgres(_) => postgres::for_player(&self.0.postgres().await?, &player).await,
        }
    }

    /// What serving the items assigned to `player` needs, by id.
    pub(crate) async fn served_to(&self, player: PlayerId) -> Result<Vec<Served>, StoreError> {
        match self.0.backend() {
            Backend::Sqlite(_) => self.0.sqlite(move |c| sqlite::served_to(c, &player)).await,
            Backend::Postgres(_) => postgres::served_to(&self.0.postgres().await?, &player).await,
        }
    }

    /// Item `id`, if it is assigned to `player`.
    pub(crate) async fn find_for(
        &self,
        player: PlayerId,
        id: i64,
    ) -> Result<Option<Served>, StoreError> {
        match self.0.backend() {
            Backend::Sqlite(_) => {
                self.0
                    .sqlite(move |c| sqlite::find_for(c, &player, id))
                    .await
            }
            Backend::Postgres(_) => {
                postgres::find_for(&self.0.postgres().await?, &player, id).await
            }
        }
    }

    /// Items with an id above `after`, by id (a node caching newly published files).
    pub(crate) async fn newer_than(&self, after: i64) -> Result<Vec<Item>, StoreError> {
        match self.0.backend() {
            Backend::Sqlite(_) => self.0.sqlite(move |c| sqlite::newer_than(c, after)).await,
            Backend::Postgres(_) => postgres::newer_than(&self.0.postgres().await?, after).await,
        }
    }

    /// The stored configuration hashes of `players` (those that have one).
    pub(crate) async fn config_hashes(
        &self,
        players: Vec<PlayerId>,
    ) -> Result<Vec<ConfigHashRow>, StoreError> {
        match self.0.backend() {
            Backend::Sqlite(_) => {
                self.0
                    .sqlite(move |c| sqlite::config_hashes(c, &players))
                    .await
            }
            Backend::Postgres(_) => {
                postgres::config_hashes(&self.0.postgres().await?, &players).await
            }
        }
    }

    /// Adds bytes sent per player to the stored totals (one transaction, atomic per row).
    pub(crate) async fn add_sent(&self, sent: Vec<BytesSent>) -> Result<(), StoreError> {
        if sent.is_empty() {
            return Ok(());
        }
        match self.0.backend() {
            Backend::Sqlite(_) => self.0.sqlite(move |c| sqlite::add_sent(c, &sent)).await,
            Backend::Postgres(_) => postgres::add_sent(&mut self.0.postgres().await?, &sent).await,
        }
    }

    /// Bytes sent per player, by player id.
    pub(crate) async fn sent(&self) -> Result<Vec<BytesSent>, StoreError> {
        match self.0.backend() {
            Backend::Sqlite(_) => self.0.sqlite(sqlite::sent).await,
            Backend::Postgres(_) => postgres::sent(&self.0.postgres().await?).await,
        }
    }

    /// Whether several nodes may share this store (PostgreSQL): then the file bytes and the
    /// nonces of signed requests live in it. On SQLite (one node) the data directory holds the
    /// only copy of the files and the service keeps the nonces in memory.
    pub(crate) fn is_shared(&self) -> bool {
        matches!(self.0.backend(), Backend::Postgres(_))
    }

    /// Stores the piece of file `sha256` that starts at byte `pos` (PostgreSQL; a piece already
    /// there is kept: a file's bytes at a position never change).
    pub(crate) async fn put_piece(
        &self,
        sha256: &str,
        pos: i64,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        postgres::put_piece(&self.0.postgres().await?, sha256, pos, bytes).await
    }

    /// The piece of file `sha256` that starts at byte `pos`, if stored (PostgreSQL).
    pub(crate) async fn piece(
        &self,
        sha256: &str,
        pos: i64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        postgres::piece(&self.0.postgres().await?, sha256, pos).await
    }

    /// Remembers a signed request's nonce unless it was seen (on any node) or the player is at
    /// `per_player` unexpired ones as of `now` (PostgreSQL; SQLite's one node keeps them in
    /// memory). Two nodes admitting at the same instant may together pass the cap by a few.
    pub(crate) async fn admit_nonce(
        &self,
        nonce: Nonce,
        now: i64,
        per_player: i64,
    ) -> Result<Admission, StoreError> {
        postgres::admit_nonce(&self.0.postgres().await?, &nonce, now, per_player).await
    }

    /// Forgets nonces that expired before `now`; how many (PostgreSQL).
    pub(crate) async fn purge_nonces(&self, now: i64) -> Result<u64, StoreError> {
        postgres::purge_nonces(&self.0.postgres().await?, now).await
    }
}

/// A player's configuration hash: SHA-256 over `"fleetwire config v1\0"` and, per assigned item
/// in id order, `id:u64be ‖ SHA-256(signed manifest)`. (PostgreSQL computes the same in SQL.)
pub(crate) fn config_hash<'a>(items: impl IntoIterator<Item = (i64, &'a [u8])>) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"fleetwire config v1\0");
    for (id, manifest) in items {
        ctx.update(&id.to_be_bytes());
        ctx.update(ring::digest::digest(&ring::digest::SHA256, manifest).as_ref());
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// A stored 16-byte player id.
fn player_id(bytes: &[u8]) -> Result<PlayerId, StoreError> {
    <[u8; 16]>::try_from(bytes)
        .map(PlayerId::from_bytes)
        .map_err(|_| StoreError::Invalid(format!("a player id of {} bytes", bytes.len())))
}

/// A stored 32-byte configuration hash.
fn hash32(bytes: &[u8]) -> Result<[u8; 32], StoreError> {
    <[u8; 32]>::try_from(bytes)
        .map_err(|_| StoreError::Invalid(format!("a configuration hash of {} bytes", bytes.len())))
}

/// A stored byte count (never negative).
fn count(bytes: i64) -> u64 {
    u64::try_from(bytes).unwrap_or(0)
}

/// A byte count to store.
fn stored_count(bytes: u64) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}
