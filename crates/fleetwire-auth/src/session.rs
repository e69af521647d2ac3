//! Sessions with a per-user idle timeout (or none, as the sensor cloud allows) and an absolute
//! lifetime that always applies.
//!
//! Only [`Activity::User`] extends the idle timer; background polling ([`Activity::Background`])
//! is checked but does not. [`SessionInfo::expires_at`] is for a UI countdown. Tokens are random
//! 256-bit strings; the store keeps only their SHA-256 digests. The store never lets time run
//! backwards: it judges expiry by the latest `now` it has seen, so a clock stepping back cannot
//! revive or extend a session.

use std::collections::BTreeMap;

use data_encoding::BASE64URL_NOPAD;
use rand_core::CryptoRngCore;
use ring::digest;
use serde::{Deserialize, Serialize};

use crate::time::UnixTime;

/// Session parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionConfig {
    /// Lifetime from creation, whatever the activity.
    pub absolute_lifetime_ms: u64,
    /// Idle timeout for users who have not chosen one; `None` turns it off.
    pub default_idle_timeout_ms: Option<u64>,
    /// Most live sessions per user; creating one more ends the oldest.
    pub max_sessions_per_user: u32,
}

impl Default for SessionConfig {
    /// 12 hours absolute, 30 minutes idle, 16 sessions per user.
    fn default() -> Self {
        Self {
            absolute_lifetime_ms: 12 * 3600 * 1000,
            default_idle_timeout_ms: Some(30 * 60 * 1000),
            max_sessions_per_user: 16,
        }
    }
}

/// What caused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Activity {
    /// The user did something: extends the idle timer.
    User,
    /// Automatic traffic (polling, refresh): does not extend the idle timer.
    Background,
}

/// A live session as the server sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// The user.
    pub user: String,
    /// When it was created.
    pub created_at: UnixTime,
    /// When it ends unless the user acts (idle) or at the latest (absolute).
    pub expires_at: UnixTime,
}

/// Why a session was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// No such session (never existed, ended, or expired and purged).
    #[error("session not found; sign in again")]
    Unknown,
    /// The session was idle too long.
    #[error("signed out after inactivity; sign in again")]
    IdleExpired,
    /// The absolute lifetime is over.
    #[error("session lifetime over; sign in again")]
    LifetimeExpired,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    user: String,
    created: UnixTime,
    last_activity: UnixTime,
}

/// All sessions, serializable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionStore {
    config: SessionConfig,
    /// Digest (hex) → session.
    sessions: BTreeMap<String, Record>,
    /// Per-user idle timeout; absent means the default, `None` means off.
    idle: BTreeMap<String, Option<u64>>,
    high_water: UnixTime,
}

impl SessionStore {
    /// An empty store.
    pub fn new(config: SessionConfig) -> Self {
        Self {
            config,
            sessions: BTreeMap::new(),
            idle: BTreeMap::new(),
            high_water: UnixTime::EPOCH,
        }
    }

    /// Sets a user's idle timeout (`None`: never time out for inactivity). The absolute lifetime
    /// still applies.
    pub fn set_idle_timeout(&mut self, user: &str, timeout_ms: Option<u64>) {
        self.idle.insert(user.to_owned(), timeout_ms);
    }

    /// The idle timeout that applies to `user`.
    pub fn idle_timeout(&self, user: &str) -> Option<u64> {
        self.idle
            .get(user)
            .copied()
            .unwrap_or(self.config.default_idle_timeout_ms)
    }

    /// Creates a session and returns its token (give it to the client) and info.
    pub fn create(
        &mut self,
        user: &str,
        now: UnixTime,
        rng: &mut impl CryptoRngCore,
    ) -> (String, SessionInfo) {
        let now = self.advance(now);
        let (token, digest) = new_token(rng);
        let mine: Vec<(String, UnixTime)> = self
            .sessions
            .iter()
            .filter(|(_, r)| r.user == user)
            .map(|(k, r)| (k.clone(), r.created))
            .collect();
        if mine.len() >= self.config.max_sessions_per_user.max(1) as usize {
            if let Some((oldest, _)) = mine.iter().min_by_key(|(_, c)| *c) {
                self.sessions.remove(oldest);
            }
        }
        let record = Record {
            user: user.to_owned(),
            created: now,
            last_activity: now,
        };
        let info = self.info(&record);
        self.sessions.insert(digest, record);
        (token, info)
    }

    /// Checks a session on a request and, for user activity, extends its idle timer. An expired
    /// session is removed.
    pub fn check(
        &mut self,
        token: &str,
        now: UnixTime,
        activity: Activity,
    ) -> Result<SessionInfo, SessionError> {
        let now = self.advance(now);
        let key = digest_hex(token);
        let record = self.sessions.get(&key).ok_or(SessionError::Unknown)?;
        if let Err(e) = self.expired(record, now) {
            self.sessions.remove(&key);
            return Err(e);
        }
        let record = self.sessions.get_mut(&key).ok_or(SessionError::Unknown)?;
        if activity == Activity::User {
            record.last_activity = now;
        }
        let record = record.clone();
        Ok(self.info(&record))
    }

    /// Ends one session (sign-out). Unknown tokens are ignored.
    pub fn end(&mut self, token: &str) {
        self.sessions.remove(&digest_hex(token));
    }

    /// Ends every session of `user` (password change, reset, administrator); returns how many.
    pub fn end_all(&mut self, user: &str) -> usize {
        let before = self.sessions.len();
        self.sessions.retain(|_, r| r.user != user);
        before - self.sessions.len()
    }

    /// Ends every session of `user` except the one `keep` (the token of the request that made a
    /// security change: the password, the second factor); returns how many ended.
    pub fn end_others(&mut self, user: &str, keep: &str) -> usize {
        let keep = digest_hex(keep);
        let before = self.sessions.len();
        self.sessions.retain(|k, r| r.user != user || *k == keep);
        before - self.sessions.len()
    }

    /// Ends every session of `user` and forgets its idle-timeout choice (the account was
    /// deleted); returns how many sessions ended.
    pub fn forget_user(&mut self, user: &str) -> usize {
        self.idle.remove(user);
        self.end_all(user)
    }

    /// Keeps only the sessions whose token digest `keep` accepts; returns how many were removed.
    /// The digest is the lower-case hex SHA-256 of the token, which is what a server keeps in a
    /// durable session table: this reconciles a loaded snapshot with that table (sessions ended
    /// after the snapshot was taken stay ended).
    pub fn retain_digests(&mut self, mut keep: impl FnMut(&str) -> bool) -> usize {
        let before = self.sessions.len();
        self.sessions.retain(|k, _| keep(k));
        before - self.sessions.len()
    }

    /// Re-creates a session known only by its token digest (lower-case hex SHA-256), from a
    /// durable session table, unless the store already has it. `last_activity` should be the
    /// latest activity known for certain (the creation time if nothing else): a session never
    /// lives longer for having been restored. Returns whether it was added. The per-user cap is
    /// not applied (the table was written under it).
    pub fn restore(
        &mut self,
        digest: &str,
        user: &str,
        created: UnixTime,
        last_activity: UnixTime,
    ) -> bool {
        let valid = digest.len() == 64
            && digest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !valid || self.sessions.contains_key(digest) {
            return false;
        }
        self.sessions.insert(
            digest.to_owned(),
            Record {
                user: user.to_owned(),
                created,
                last_activity: last_activity.max(created),
            },
        );
        true
    }

    /// Removes expired sessions.
    pub fn purge(&mut self, now: UnixTime) {
        let now = self.advance(now);
        let keep: Vec<String> = self
            .sessions
            .iter()
            .filter(|(_, r)| self.expired(r, now).is_ok())
            .map(|(k, _)| k.clone())
            .collect();
        self.sessions.retain(|k, _| keep.contains(k));
    }

    /// Number of live (not yet purged) sessions.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether there are no sessions.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    fn advance(&mut self, now: UnixTime) -> UnixTime {
        self.high_water = self.high_water.max(now);
        self.high_water
    }

    fn expired(&self, r: &Record, now: UnixTime) -> Result<(), SessionError> {
        self.config
            .judge(r.created, r.last_activity, self.idle_timeout(&r.user), now)
            .map(|_| ())
    }

    fn info(&self, r: &Record) -> SessionInfo {
        SessionInfo {
            user: r.user.clone(),
            created_at: r.created,
            expires_at: self.config.expires_at(
                r.created,
                r.last_activity,
                self.idle_timeout(&r.user),
            ),
        }
    }
}

impl SessionConfig {
    /// Judges one session kept elsewhere (a row per session in a database shared by several
    /// servers) as [`SessionStore::check`] does: its creation, its last recorded activity and
    /// the idle timeout that applies to its user (`None`: off). Returns when it ends unless the
    /// user acts, or why it is over. A caller that records activity only every few seconds
    /// judges by the last recorded one: a session may end that much early, never late.
    pub fn judge(
        &self,
        created: UnixTime,
        last_activity: UnixTime,
        idle_timeout_ms: Option<u64>,
        now: UnixTime,
    ) -> Result<UnixTime, SessionError> {
        if now >= created.plus_millis(self.absolute_lifetime_ms) {
            return Err(SessionError::LifetimeExpired);
        }
        if let Some(idle) = idle_timeout_ms {
            if now >= last_activity.plus_millis(idle) {
                return Err(SessionError::IdleExpired);
            }
        }
        Ok(self.expires_at(created, last_activity, idle_timeout_ms))
    }

    /// When a session ends unless its user acts: the idle deadline or the absolute one,
    /// whichever comes first.
    pub fn expires_at(
        &self,
        created: UnixTime,
        last_activity: UnixTime,
        idle_timeout_ms: Option<u64>,
    ) -> UnixTime {
        let absolute = created.plus_millis(self.absolute_lifetime_ms);
        match idle_timeout_ms {
            Some(idle) => absolute.min(last_activity.plus_millis(idle)),
            None => absolute,
        }
    }
}

/// A new session token (`fws1.` + 256 random bits, base64url) and its digest, the lower-case
/// hex SHA-256 that a durable session table keeps instead of the token.
pub fn new_token(rng: &mut impl CryptoRngCore) -> (String, String) {
    let mut raw = [0u8; 32];
    rng.fill_bytes(&mut raw);
    let token = format!("fws1.{}", BASE64URL_NOPAD.encode(&raw));
    let digest = digest_hex(&token);
    (token, digest)
}

/// The digest a durable session (or reset-token) table keeps: lower-case hex SHA-256 of the
/// token.
pub fn token_digest(token: &str) -> String {
    digest_hex(token)
}

pub(crate) fn digest_hex(token: &str) -> String {
    hex::encode(digest::digest(&digest::SHA256, token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;

    #[test]
    fn background_does_not_extend() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        let mut s = SessionStore::new(SessionConfig::default());
        let t0 = UnixTime::from_secs(1000);
        let (tok, info) = s.create("u", t0, &mut rng);
        assert_eq!(info.expires_at, t0.plus_secs(1800));
        let t1 = t0.plus_secs(1000);
        assert_eq!(
            s.check(&tok, t1, Activity::Background).unwrap().expires_at,
            t0.plus_secs(1800)
        );
        assert_eq!(
            s.check(&tok, t0.plus_secs(1800), Activity::Background),
            Err(SessionError::IdleExpired)
        );
        assert_eq!(
            s.check(&tok, t0.plus_secs(1801), Activity::User),
            Err(SessionError::Unknown)
        );
    }

    #[test]
    fn end_others_keeps_only_the_current_session() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(2);
        let mut s = SessionStore::new(SessionConfig::default());
        let t = UnixTime::from_secs(1000);
        let (mine, _) = s.create("u", t, &mut rng);
        let (other, _) = s.create("u", t, &mut rng);
        let (theirs, _) = s.create("v", t, &mut rng);
        assert_eq!(s.end_others("u", &mine), 1);
        assert!(s.check(&mine, t, Activity::User).is_ok());
        assert_eq!(
            s.check(&other, t, Activity::User),
            Err(SessionError::Unknown)
        );
        assert!(
            s.check(&theirs, t, Activity::User).is_ok(),
            "other users keep theirs"
        );
    }

    #[test]
    fn restore_and_reconcile_by_digest() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
        let t0 = UnixTime::from_secs(1000);
        let mut s = SessionStore::new(SessionConfig::default());
        let (kept, _) = s.create("u", t0, &mut rng);
        let (ended, _) = s.create("u", t0, &mut rng);
        // A durable table that knows `kept` and a session created after the snapshot.
        let mut other = SessionStore::new(SessionConfig::default());
        let (late, _) = other.create("v", t0.plus_secs(10), &mut rng);
        let table = [digest_hex(&kept), digest_hex(&late)];
        assert_eq!(s.retain_digests(|d| table.iter().any(|t| t == d)), 1);
        assert!(s.restore(&table[1], "v", t0.plus_secs(10), t0.plus_secs(10)));
        assert!(!s.restore(&table[1], "v", t0, t0), "already present");
        assert!(!s.restore("not-a-digest", "v", t0, t0));
        let t1 = t0.plus_secs(60);
        assert!(s.check(&kept, t1, Activity::User).is_ok());
        assert_eq!(s.check(&late, t1, Activity::User).unwrap().user, "v");
        assert_eq!(
            s.check(&ended, t1, Activity::User),
            Err(SessionError::Unknown)
        );
        // Restored with its creation time as the last activity: idle expiry counts from there.
        let (gone, _) = other.create("w", t0, &mut rng);
        assert!(s.restore(&digest_hex(&gone), "w", t0, t0));
        assert_eq!(
            s.check(&gone, t0.plus_secs(1800), Activity::User),
            Err(SessionError::IdleExpired)
        );
        s.set_idle_timeout("v", None);
        assert_eq!(s.forget_user("v"), 1);
        assert_eq!(
            s.idle_timeout("v"),
            SessionConfig::default().default_idle_timeout_ms
        );
    }

    #[test]
    fn a_session_kept_elsewhere_is_judged_as_the_store_judges_it() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(4);
        let cfg = SessionConfig::default();
        let mut s = SessionStore::new(cfg);
        let t0 = UnixTime::from_secs(1000);
        let (token, info) = s.create("u", t0, &mut rng);
        let idle = s.idle_timeout("u");
        assert_eq!(cfg.judge(t0, t0, idle, t0), Ok(info.expires_at));
        // Background checks leave the last activity at creation, as an unchanged row does.
        for secs in [600, 1700, 1800] {
            let now = t0.plus_secs(secs);
            let store = s.check(&token, now, Activity::Background);
            assert_eq!(
                store.map(|i| i.expires_at),
                cfg.judge(t0, t0, idle, now),
                "{secs}"
            );
        }
        assert_eq!(
            cfg.judge(t0, t0, None, t0.plus_secs(12 * 3600)),
            Err(SessionError::LifetimeExpired)
        );
        let (token, digest) = new_token(&mut rng);
        assert!(token.starts_with("fws1.") && token_digest(&token) == digest);
    }

    #[test]
    fn session_cap_ends_oldest() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(2);
        let cfg = SessionConfig {
            max_sessions_per_user: 2,
            ..SessionConfig::default()
        };
        let mut s = SessionStore::new(cfg);
        let (a, _) = s.create("u", UnixTime::from_secs(1), &mut rng);
        let (_b, _) = s.create("u", UnixTime::from_secs(2), &mut rng);
        let (_c, _) = s.create("u", UnixTime::from_secs(3), &mut rng);
        assert_eq!(s.len(), 2);
        assert_eq!(
            s.check(&a, UnixTime::from_secs(4), Activity::User),
            Err(SessionError::Unknown)
        );
    }
}
