//! A structured, append-only, hash-chained audit log (seeds 001 A5, 000 S9) and a new-origin
//! detector (001 A9, 003 W4).
//!
//! Each [`AuditEntry`] carries the SHA-256 of the previous entry, so [`verify_chain`] detects any
//! edit, deletion, insertion or reordering. Cutting entries off the *end* is only detectable
//! against a head (sequence number and hash) kept elsewhere: pass it as `expected_head`.
//!
//! Entry hash = SHA-256( `"fleetwire-audit-v1\n"` ‖ seq (u64 BE) ‖ `at_ms` (u64 BE) ‖ prev (32
//! bytes) ‖ JSON of the event as serialized by `serde_json` (UTF-8) ).

use std::collections::BTreeMap;

use ring::digest;
use serde::{Deserialize, Serialize};

use crate::keys::TagKey;
use crate::time::UnixTime;

/// Something the server decided or did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuditEvent {
    /// A login succeeded.
    LoginSucceeded {
        /// The user.
        user: String,
        /// Where from (address, device).
        origin: String,
        /// The origin was new for this user.
        new_origin: bool,
    },
    /// A login failed (wrong password, wrong code, unknown user).
    LoginFailed {
        /// The user name as submitted.
        user: String,
        /// Where from.
        origin: String,
    },
    /// A login was refused because the account or source was locked or throttled.
    LoginLocked {
        /// The user name as submitted.
        user: String,
        /// Where from.
        origin: String,
    },
    /// A password reset was requested (whether or not the account exists).
    ResetRequested {
        /// The user name as submitted.
        user: String,
    },
    /// A password reset was completed.
    ResetCompleted {
        /// The user.
        user: String,
    },
    /// A user was added to or removed from a group.
    RoleChanged {
        /// Who did it.
        actor: String,
        /// Whose groups changed.
        user: String,
        /// The group.
        group: String,
        /// Added (`true`) or removed.
        granted: bool,
    },
    /// A device's security event: a player's or logger's login, failed or refused login,
    /// revocation or disconnect.
    DeviceEvent {
        /// What happened, e.g. `"login_failed"`.
        kind: String,
        /// The device (player or logger id); empty when the peer never named one.
        device: String,
        /// Where from; empty when not known.
        origin: String,
        /// Why, in words.
        detail: String,
    },
    /// Any other administrator action.
    AdminAction {
        /// Who did it.
        actor: String,
        /// What, e.g. `"unlock"`, `"end_sessions"`.
        action: String,
        /// On what.
        target: String,
    },
}

/// One link of the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position, from 0.
    pub seq: u64,
    /// When it was recorded.
    pub at: UnixTime,
    /// The event.
    pub event: AuditEvent,
    /// Hash of the previous entry (zeros for the first), hex.
    pub prev: String,
    /// Hash of this entry, hex.
    pub hash: String,
}

impl AuditEntry {
    /// The entry that follows `after` (the previous entry's number and hash; `None` for the
    /// first entry of a chain). A store appends with it without holding the whole chain.
    pub fn next(after: Option<(u64, &str)>, at: UnixTime, event: AuditEvent) -> Self {
        let (seq, prev) = after.map_or((0, "0".repeat(64)), |(seq, hash)| {
            (seq + 1, hash.to_owned())
        });
        let hash = entry_hash(seq, at, &prev, &event);
        Self {
            seq,
            at,
            event,
            prev,
            hash,
        }
    }
}

/// What [`verify_chain`] found wrong, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// An entry's hash does not match its content (edited).
    #[error("audit entry {0} was modified")]
    Modified(u64),
    /// An entry does not link to its predecessor (deleted, inserted or reordered entries).
    #[error("audit chain broken before entry {0}: entries deleted, inserted or reordered")]
    Broken(u64),
    /// The chain ends before the expected head (entries cut off the end).
    #[error("audit log truncated: expected head {expected}, found {found}")]
    Truncated {
        /// Expected number of entries.
        expected: u64,
        /// Entries present.
        found: u64,
    },
}

/// An append-only audit log kept in memory; persist [`AuditLog::entries`] anywhere.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditLog {
    entries: Vec<AuditEntry>,
}

impl AuditLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends an event and returns the new entry.
    pub fn append(&mut self, at: UnixTime, event: AuditEvent) -> &AuditEntry {
        let after = self.entries.last().map(|e| (e.seq, e.hash.as_str()));
        let entry = AuditEntry::next(after, at, event);
        self.entries.push(entry);
        // INVARIANT: an entry was pushed just above.
        self.entries.last().expect("just pushed")
    }

    /// All entries, oldest first.
    pub fn entries(&self) -> &[AuditEntry] {
        &self.entries
    }

    /// The head to keep elsewhere: number of entries and the last hash.
    pub fn head(&self) -> (u64, String) {
        (
            self.entries.len() as u64,
            self.entries
                .last()
                .map_or_else(|| "0".repeat(64), |e| e.hash.clone()),
        )
    }
}

/// Checks a chain from its first entry; with `expected_head` also that nothing was cut off.
pub fn verify_chain(
    entries: &[AuditEntry],
    expected_head: Option<(u64, &str)>,
) -> Result<(), AuditError> {
    let mut prev = "0".repeat(64);
    for (i, e) in entries.iter().enumerate() {
        let i = i as u64;
        if e.seq != i || e.prev != prev {
            return Err(AuditError::Broken(i));
        }
        if entry_hash(e.seq, e.at, &e.prev, &e.event) != e.hash {
            return Err(AuditError::Modified(i));
        }
        prev.clone_from(&e.hash);
    }
    if let Some((count, hash)) = expected_head {
        let found = entries.len() as u64;
        if found < count {
            return Err(AuditError::Truncated {
                expected: count,
                found,
            });
        }
        if found == count && hash != prev {
            return Err(AuditError::Broken(found));
        }
    }
    Ok(())
}

fn entry_hash(seq: u64, at: UnixTime, prev: &str, event: &AuditEvent) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(b"fleetwire-audit-v1\n");
    ctx.update(&seq.to_be_bytes());
    ctx.update(&at.as_millis().to_be_bytes());
    let mut prev_bytes = [0u8; 32];
    if hex::decode_to_slice(prev, &mut prev_bytes).is_err() {
        prev_bytes = [0xff; 32];
    }
    ctx.update(&prev_bytes);
    // INVARIANT: AuditEvent has only strings and bools, which serde_json always serializes.
    let json = serde_json::to_vec(event).expect("AuditEvent serializes");
    ctx.update(&json);
    hex::encode(ctx.finish())
}

/// Remembers the recent origins of each user and flags a login from a new one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginTracker {
    key: TagKey,
    per_user: usize,
    seen: BTreeMap<String, Vec<u64>>,
}

impl OriginTracker {
    /// Keeps up to `per_user` recent origins per user; `secret` keys the stored origin hashes.
    pub fn new(secret: [u8; 16], per_user: usize) -> Self {
        Self {
            key: TagKey(secret),
            per_user: per_user.max(1),
            seen: BTreeMap::new(),
        }
    }

    /// Records a successful login from `origin`; returns `true` if it is new for `user` (the
    /// first login of a user counts as new).
    pub fn observe(&mut self, user: &str, origin: &str) -> bool {
        let tag = self.key.tag(&[origin.as_bytes()]);
        let list = self.seen.entry(user.to_owned()).or_default();
        let new = if let Some(pos) = list.iter().position(|t| *t == tag) {
            list.remove(pos);
            false
        } else {
            true
        };
        list.push(tag);
        if list.len() > self.per_user {
            list.remove(0);
        }
        new
    }

    /// Forgets every origin of `user` (the account was deleted).
    pub fn forget(&mut self, user: &str) {
        self.seen.remove(user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_origin_flagged_once() {
        let mut o = OriginTracker::new([1; 16], 2);
        assert!(o.observe("u", "10.0.0.1"));
        assert!(!o.observe("u", "10.0.0.1"));
        assert!(o.observe("u", "10.0.0.2"));
        assert!(o.observe("u", "10.0.0.3"));
        assert!(
            o.observe("u", "10.0.0.1"),
            "forgotten after two newer origins"
        );
        o.forget("u");
        assert!(o.observe("u", "10.0.0.3"), "forgotten with the account");
    }
}
