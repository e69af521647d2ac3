//! Players: provisioning, the lookup at login, and presence across nodes.
//!
//! **Presence without a write per heartbeat.** A player's row says which node holds its session
//! (`online_node`), written only when it comes online or goes offline; `last_seen` and the status
//! strings are written in batches (once a second per node, whatever the fleet's size). Each node
//! refreshes its row in `server_nodes` every few seconds; a player counts as online only while
//! the node that holds it is alive, so a node that died takes its players offline with it. An
//! offline transition clears the claim only if the same node still holds it: a player that moved
//! to another node is not taken offline by the old one.

pub(crate) mod postgres;
pub(crate) mod sqlite;

use fleetwire_session::{ConfigHash, PlayerId, PlayerLookup, PlayerStatus, PlayerVerifier};

use super::backend::Backend;
use super::{Store, StoreError};

/// A node that has not refreshed its row for this long is taken as dead, and its players as
/// offline.
pub(crate) const NODE_TIMEOUT_SECS: i64 = 15;

/// A new player: its id, its verifier (the public key; the secret is never stored), its name
/// and whether it may log in at once.
#[derive(Debug, Clone)]
pub(crate) struct NewPlayer {
    pub(crate) id: PlayerId,
    pub(crate) verifier: PlayerVerifier,
    pub(crate) name: String,
    pub(crate) approved: bool,
}

/// A player as `player list` shows it.
#[derive(Debug, Clone)]
pub(crate) struct PlayerRow {
    pub(crate) id: PlayerId,
    pub(crate) name: String,
    pub(crate) approved: bool,
    pub(crate) online: bool,
    pub(crate) last_seen: Option<i64>,
    pub(crate) content: Option<String>,
    pub(crate) versions: Option<String>,
}

/// A heartbeat's worth of presence, written in batches.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) id: PlayerId,
    pub(crate) at: i64,
    pub(crate) status: PlayerStatus,
}

/// A player coming online (`true`) or going offline on this node.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Transition {
    pub(crate) id: PlayerId,
    pub(crate) online: bool,
}

/// The players repository.
pub(crate) struct Players<'a>(pub(super) &'a Store);

impl Players<'_> {
    /// Adds players in one transaction (all or none).
    pub(crate) async fn add(&self, players: Vec<NewPlayer>, now: i64) -> Result<(), StoreError> {
        match self.0.backend() {
            Backend::Sqlite(_) => self.0.sqlite(move |c| sqlite::add(c, &players, now)).await,
            Backend::Postgres(_) => {
                postgres::add(&mut self.0.postgres().await?, &players, now).await
            }
        }
    }

    /// What a login needs to know of a player.
    pub(crate) async fn lookup(&self, id: PlayerId) -> Result<PlayerLookup, StoreError> {
        let found = match self.0.backend() {
            Backend::Sqlite(_) => self.0.sqlite(move |c| sqlite::lookup(c, &id)).await?,
            Backend::Postgres(_) => postgres::lookup(&self.0.postgres().await?, &id).await?,
        };
        Ok(match found {
            Some((verifier, approved, hash)) => PlayerLookup::Known {
                verifier: PlayerVerifier::from_bytes(verifier),
                approved,
                config_hash: hash.map(ConfigHash),
            },
            None => PlayerLookup::Unknown,
        })
    }

    /// Every player, oldest first, with its presence as of `now`.
    pub(crate) async fn list(&self, now: i64) -> Result<Vec<PlayerRow>, StoreError> {
        let alive_since = now - NODE_TIMEOUT_SECS;
        match self.0.backend() {
            Backend::Sqlite(_) => self.0.sqlite(move |c| sqlite::list(c, alive_since)).await,
            Backend::Postgres(_) => postgres::list(&self.0.postgres().await?, alive_since).await,
        }
    }

    /// Players online as of `now`, on any node.
    pub(crate) async fn online_count(&self, now: i64) -> Result<u64, StoreError> {
        let alive_since = now - NODE_TIMEOUT_SECS;
        match self.0.backend() {
            Backend::Sqlite(_) => {
                self.0
                    .sqlite(move |c| sqlite::online_count(c, alive_since))
                    .await
            }
            Backend::Postgres(_) => {
                postgres::online_count(&self.0.postgres().await?, alive_since).await
            }
        }
    }

    /// Approves a player; false if there is no such player.
    pub(crate) async fn approve(&self, id: PlayerId) -> Result<bool, StoreError> {
        match self.0.backend() {
            Backend::Sqlite(_) => self.0.sqlite(move |c| sqlite::approve(c, &id)).await,
            Backend::Postgres(_) => postgres::approve(&self.0.postgres().await?, &id).await,
        }
    }

    /// Removes a player; false if there is no such player.
    pub(crate) async fn remove(&self, id: PlayerId) -> Result<bool, StoreError> {
        match self.0.backend() {
            Backend::Sqlite(_) => self.0.sqlite(move |c| sqlite::remove(c, &id)).await,
            Backend::Postgres(_) => postgres::remove(&self.0.postgres().await?, &id).await,
        }
    }

    /// Of `ids`, those that no longer exist or are no longer approved.
    pub(crate) async fn revoked_among(
        &self,
        ids: Vec<PlayerId>,
    ) -> Result<Vec<PlayerId>, StoreError> {
        match self.0.backend() {
            Backend::Sqlite(_) => self.0.sqlite(move |c| sqlite::revoked_among(c, &ids)).await,
            Backend::Postgres(_) => postgres::revoked_among(&self.0.postgres().await?, &ids).await,
        }
    }

    /// Writes one batch of presence of `node`: transitions, then the last heartbeats.
    pub(crate) async fn record_presence(
        &self,
        node: String,
        transitions: Vec<Transition>,
        seen: Vec<Seen>,
    ) -> Result<(), StoreError> {
        match self.0.backend() {
            Backend::Sqlite(_) => {
                self.0
                    .sqlite(move |c| sqlite::record_presence(c, &node, &transitions, &seen))
                    .await
            }
            Backend::Postgres(_) => {
                postgres::record_presence(&mut self.0.postgres().await?, &node, &transitions, &seen)
                    .await
            }
        }
    }

    /// Says `node` is alive at `now` (every few seconds, while it serves).
    pub(crate) async fn node_alive(&self, node: String, now: i64) -> Result<(), StoreError> {
        match self.0.backend() {
            Backend::Sqlite(_) => {
                self.0
                    .sqlite(move |c| sqlite::node_alive(c, &node, now))
                    .await
            }
            Backend::Postgres(_) => {
                postgres::node_alive(&self.0.postgres().await?, &node, now).await
            }
        }
    }

    /// Takes every player `node` holds offline and removes the node (at its start and stop).
    pub(crate) async fn node_gone(&self, node: String) -> Result<(), StoreError> {
        match self.0.backend() {
            Backend::Sqlite(_) => self.0.sqlite(move |c| sqlite::node_gone(c, &node)).await,
            Backend::Postgres(_) => postgres::node_gone(&self.0.postgres().await?, &node).await,
        }
    }
}

/// What a login reads of a player: verifier, approved, configuration hash.
pub(super) type Found = ([u8; 32], bool, Option<[u8; 32]>);

/// A stored 16-byte player id.
fn player_id(bytes: &[u8]) -> Result<PlayerId, StoreError> {
    <[u8; 16]>::try_from(bytes)
        .map(PlayerId::from_bytes)
        .map_err(|_| StoreError::Invalid(format!("a player id of {} bytes", bytes.len())))
}

/// A stored 32-byte value (verifier, configuration hash).
fn bytes32(bytes: &[u8], what: &str) -> Result<[u8; 32], StoreError> {
    <[u8; 32]>::try_from(bytes)
        .map_err(|_| StoreError::Invalid(format!("a {what} of {} bytes", bytes.len())))
}
