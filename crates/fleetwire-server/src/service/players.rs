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

/// What a node learned about its players since the last flush: written once a second, so a
/// fleet's heartbeats cost one transaction a second per node, not one per heartbeat.
#[derive(Debug, Default)]
pub(crate) struct PresenceBatch {
    transitions: Vec<Transition>,
    seen: HashMap<PlayerId, Seen>,
    events: Vec<SecurityEvent>,
    refused: u64,
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

    /// A heartbeat: only the last one of each player per batch is written.
    pub(crate) fn heartbeat(&mut self, seen: Seen) {
        self.seen.insert(seen.id, seen);
    }

    /// A player came online (`true`) or went offline on this node.
    pub(crate) fn transition(&mut self, id: PlayerId, online: bool) {
        self.transitions.push(Transition { id, online });
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
