//! Players: provisioning, and presence written in batches.

use std::collections::HashMap;

use fleetwire_session::{PlayerId, PlayerSecret, SessionError};
use ring::rand::{SecureRandom, SystemRandom};

use crate::store::audit::SecurityEvent;
use crate::store::players::{NewPlayer, Seen, Transition};
use crate::store::{Store, StoreError};

/// Why provisioning failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProvisionError {
    /// The name would print as something else in an operator's terminal.
    #[error("the name may not hold control or bidirectional-override characters")]
    UnsafeName,
    /// No randomness for ids and secrets.
    #[error("no system randomness")]
    NoRandomness,
    /// The store refused.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Provisions `count` players: a random id and secret each; the store keeps only the
/// verifier. Returns the secrets, to be handed to the players once.
pub(crate) async fn provision(
    store: &Store,
    name: &str,
    approved: bool,
    count: usize,
    now: i64,
) -> Result<Vec<(PlayerId, PlayerSecret)>, ProvisionError> {
    if name.chars().any(crate::util::term::is_unsafe) {
        return Err(ProvisionError::UnsafeName);
    }
    let rng = SystemRandom::new();
    let mut made = Vec::with_capacity(count);
    for _ in 0..count {
        let mut id = [0u8; 16];
        let mut secret = [0u8; 32];
        rng.fill(&mut id)
            .and_then(|()| rng.fill(&mut secret))
            .map_err(|_| ProvisionError::NoRandomness)?;
        made.push((PlayerId::from_bytes(id), PlayerSecret::from_bytes(secret)));
    }
    let rows = made
        .iter()
        .map(|(id, secret)| NewPlayer {
            id: *id,
            verifier: secret.verifier(),
            name: name.to_owned(),
            approved,
        })
        .collect();
    store.players().add(rows, now).await?;
    Ok(made)
}

/// A heartbeat that changes nothing but the time is written at most this often per player.
/// Whether a player is online never depends on it (that is `online_node` and the node's own
/// liveness); it is the "last seen" of a player whose node died, so it can lag by this much.
pub(crate) const LAST_SEEN_REFRESH_SECS: i64 = 300;

/// What a node learned about its players since the last flush, written once a second: online
/// and offline transitions, heartbeats that changed a player's status (content, versions,
/// configuration), and each online player's time at most every [`LAST_SEEN_REFRESH_SECS`] and
/// when it goes offline. A million players at a 30 s interval thus cost their nodes about
/// 3,300 row updates a second in a few transactions, not 33,000 (docs/SCALING.md).
#[derive(Debug, Default)]
pub(crate) struct PresenceBatch {
    transitions: Vec<Transition>,
    seen: HashMap<PlayerId, Seen>,
    /// This node's online players: when each was last written, and its latest heartbeat.
    online: HashMap<PlayerId, Written>,
    events: Vec<SecurityEvent>,
    refused: u64,
}

#[derive(Debug)]
struct Written {
    at: i64,
    latest: Seen,
}

/// Whether two statuses differ in what an operator reads (free storage moves with every
/// download; it is refreshed with the time).
fn same_status(a: &fleetwire_session::PlayerStatus, b: &fleetwire_session::PlayerStatus) -> bool {
    a.content == b.content && a.versions == b.versions && a.config_hash == b.config_hash
}

impl PresenceBatch {
    /// A player logged in from `peer`.
    pub(crate) fn logged_in(&mut self, now: i64, player: PlayerId, peer: String) {
        self.event(now, "login", Some(player), Some(peer), String::new());
    }

    /// A login failed; `claimed` is the id the peer named (not authenticated).
    pub(crate) fn login_failed(
        &mut self,
        now: i64,
        claimed: Option<PlayerId>,
        peer: String,
        reason: &SessionError,
    ) {
        self.event(now, "login_failed", claimed, Some(peer), reason.to_string());
    }

    /// A logged-in player's session ended.
    pub(crate) fn disconnected(&mut self, now: i64, player: PlayerId, reason: &SessionError) {
        self.event(now, "disconnected", Some(player), None, reason.to_string());
    }

    /// A heartbeat: written if it changed the status or the player's time is due a refresh;
    /// only the last one of each player per batch is written.
    pub(crate) fn heartbeat(&mut self, seen: Seen) {
        match self.online.get_mut(&seen.id) {
            Some(w)
                if same_status(&w.latest.status, &seen.status)
                    && seen.at - w.at < LAST_SEEN_REFRESH_SECS =>
            {
                w.latest = seen;
            }
            _ => {
                self.online.insert(
                    seen.id,
                    Written {
                        at: seen.at,
                        latest: seen.clone(),
                    },
                );
                self.seen.insert(seen.id, seen);
            }
        }
    }

    /// A player came online (`true`) or went offline on this node; going offline writes its
    /// latest heartbeat if that was not written yet.
    pub(crate) fn transition(&mut self, id: PlayerId, online: bool) {
        self.transitions.push(Transition { id, online });
        if !online {
            if let Some(w) = self.online.remove(&id) {
                if w.latest.at > w.at {
                    self.seen.insert(id, w.latest);
                }
            }
        }
    }

    /// A connection was refused at accept: counted, written as one event per flush.
    pub(crate) fn refused(&mut self) {
        self.refused += 1;
    }

    /// Writes what was gathered (presence of `node`, then the security events).
    pub(crate) async fn flush(
        &mut self,
        store: &Store,
        node: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        if self.refused > 0 {
            let n = std::mem::take(&mut self.refused);
            self.event(
                now,
                "connections_refused",
                None,
                None,
                format!("{n} connections refused (limit, gate or TLS)"),
            );
        }
        if !self.transitions.is_empty() || !self.seen.is_empty() {
            let transitions = std::mem::take(&mut self.transitions);
            let seen = std::mem::take(&mut self.seen).into_values().collect();
            store
                .players()
                .record_presence(node.to_owned(), transitions, seen)
                .await?;
        }
        let events = std::mem::take(&mut self.events);
        store.audit().record(events).await
    }

    fn event(
        &mut self,
        at: i64,
        kind: &'static str,
        player: Option<PlayerId>,
        peer: Option<String>,
        detail: String,
    ) {
        self.events.push(SecurityEvent {
            at,
            kind,
            player,
            peer,
            detail,
        });
    }
}

#[cfg(test)]
mod tests {
    use fleetwire_session::PlayerStatus;

    use super::*;

    fn beat(id: u8, at: i64, content: &str, free: u64) -> Seen {
        Seen {
            id: PlayerId::from_bytes([id; 16]),
            at,
            status: PlayerStatus {
                content: content.into(),
                free_storage_bytes: free,
                ..PlayerStatus::default()
            },
        }
    }

    /// Drains the batch as a flush would; what would have been written.
    fn written(batch: &mut PresenceBatch) -> Vec<Seen> {
        std::mem::take(&mut batch.seen).into_values().collect()
    }

    #[test]
    fn a_steady_heartbeat_is_written_once_per_refresh_not_once_per_beat() {
        let mut batch = PresenceBatch::default();
        batch.transition(PlayerId::from_bytes([1; 16]), true);
        batch.heartbeat(beat(1, 1_000, "menu", 5));
        assert_eq!(
            written(&mut batch).len(),
            1,
            "the first heartbeat is written"
        );
        // Ten minutes of heartbeats every 30 s, free storage moving: two refreshes.
        let mut writes = 0;
        for i in 1..=20 {
            batch.heartbeat(beat(
                1,
                1_000 + 30 * i,
                "menu",
                5 + u64::try_from(i).unwrap(),
            ));
            writes += written(&mut batch).len();
        }
        assert_eq!(writes, 2);
    }

    #[test]
    fn a_status_change_is_written_at_once() {
        let mut batch = PresenceBatch::default();
        batch.heartbeat(beat(1, 1_000, "menu", 5));
        written(&mut batch);
        batch.heartbeat(beat(1, 1_030, "menu", 5));
        assert!(written(&mut batch).is_empty());
        batch.heartbeat(beat(1, 1_060, "breakfast", 5));
        let w = written(&mut batch);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].status.content, "breakfast");
    }

    #[test]
    fn going_offline_writes_the_latest_time_and_forgets_the_player() {
        let mut batch = PresenceBatch::default();
        let id = PlayerId::from_bytes([1; 16]);
        batch.heartbeat(beat(1, 1_000, "menu", 5));
        written(&mut batch);
        batch.heartbeat(beat(1, 1_090, "menu", 5));
        assert!(written(&mut batch).is_empty());
        batch.transition(id, false);
        let w = written(&mut batch);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].at, 1_090);
        assert!(batch.online.is_empty());
        // Offline with nothing unwritten: nothing more.
        batch.heartbeat(beat(1, 2_000, "menu", 5));
        written(&mut batch);
        batch.transition(id, false);
        assert!(written(&mut batch).is_empty());
    }
}
