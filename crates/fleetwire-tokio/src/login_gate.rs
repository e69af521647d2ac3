//! A [`SourceGate`] over `fleetwire-auth`'s lockout engine (feature `login-gate`): a source
//! address that keeps failing to log in is refused at accept, for a block that grows while the
//! failures continue, before it costs a TLS handshake or a signature check.
//!
//! - **What counts.** Consecutive failures of *authentication* from one source: a wrong
//!   signature or unknown player, a malformed or unexpected frame, the login deadline, a TLS
//!   handshake that failed on bad bytes or timed out. A player waiting for approval, a version
//!   mismatch, a peer that closes before saying anything (a TCP health check) or the server
//!   shutting down count for nothing. A login that succeeds ends the source's streak.
//! - **Which source.** The IPv4 address, or the /64 prefix of an IPv6 address (one host owns a
//!   whole /64). Players behind one NAT share a source: the threshold is meant to be far above
//!   what a site's own misconfigured players produce between two good logins.
//! - **Memory.** The engine's table: about 21 bytes per tracked source, at most `max_keys`.

use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use fleetwire_auth::UnixTime;
use fleetwire_auth::lockout::{
    BlockGrowth, LockStatus, LockoutConfig, LockoutConfigError, LockoutEngine, LockoutKey, Outcome,
};
use fleetwire_session::SessionError;

use crate::session::SourceGate;

/// The lockout namespace of player logins.
pub const NAMESPACE: &str = "player-login-source";

/// Refuses sources after repeated failed player logins.
#[derive(Debug)]
pub struct LockoutGate {
    engine: Mutex<LockoutEngine>,
}

impl LockoutGate {
    /// A gate over `engine` (its keys are in [`NAMESPACE`]).
    pub fn new(engine: LockoutEngine) -> Self {
        Self {
            engine: Mutex::new(engine),
        }
    }

    /// The server's default: after `failures` consecutive failed logins a source is refused
    /// for 1 minute, then 2, 4 … up to 1 hour for each further failure; forgotten after a
    /// quiet day; at most `max_sources` sources tracked (about 21 bytes each).
    pub fn for_player_logins(
        failures: u16,
        max_sources: u32,
        secret: [u8; 16],
    ) -> Result<Self, LockoutConfigError> {
        let config = LockoutConfig {
            max_failures: failures,
            failures_per_block: 1,
            base_block_secs: 60,
            growth: BlockGrowth::Exponential,
            max_block_secs: 3600,
            jitter_percent: 10,
            failure_reset_secs: 24 * 3600,
            quick_failure: None,
            permanent_after_blocks: None,
            hard_limit: fleetwire_auth::lockout::NIST_MAX_CONSECUTIVE_FAILURES,
            max_keys: max_sources,
        };
        Ok(Self::new(LockoutEngine::new(config, secret)?))
    }

    /// The engine, to persist it or to clear a source.
    pub fn engine(&self) -> MutexGuard<'_, LockoutEngine> {
        self.engine.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Forgets a source's failures and block (an operator's unblock).
    pub fn clear(&self, source: IpAddr) {
        let key = Self::source_key(source);
        self.engine().clear(&LockoutKey::untrusted(NAMESPACE, &key));
    }

    /// The key bytes of a source: an IPv4 address, or the /64 prefix of an IPv6 one.
    pub fn source_key(source: IpAddr) -> [u8; 9] {
        *crate::source::Source::of(source).as_bytes()
    }
}

fn now() -> UnixTime {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    UnixTime::from_millis(ms)
}

/// Whether a failed login says something about the source.
fn counts(reason: Option<&SessionError>) -> bool {
    match reason {
        None => true,
        Some(e) => matches!(
            e,
            SessionError::AuthFailed
                | SessionError::Decode(_)
                | SessionError::Unexpected(_)
                | SessionError::LoginTimeout(_)
        ),
    }
}

impl SourceGate for LockoutGate {
    fn admit(&self, source: IpAddr) -> Result<(), String> {
        let key = Self::source_key(source);
        let now = now();
        match self
            .engine()
            .status(&LockoutKey::untrusted(NAMESPACE, &key), now)
        {
            LockStatus::Open { .. } => Ok(()),
            LockStatus::Locked(locked) => Err(match locked.until {
                Some(until) => format!(
                    "too many failed logins from this address: refused for {} s more",
                    until.as_secs().saturating_sub(now.as_secs())
                ),
                None => "too many failed logins from this address: refused until cleared".into(),
            }),
        }
    }

    fn logged_in(&self, source: IpAddr) {
        let key = Self::source_key(source);
        self.engine().clear(&LockoutKey::untrusted(NAMESPACE, &key));
    }

    fn login_failed(&self, source: IpAddr, reason: Option<&SessionError>) {
        if !counts(reason) {
            return;
        }
        let key = Self::source_key(source);
        let now = now();
        let mut engine = self.engine();
        // Refused while blocked: the failure is not counted (the block already runs).
        if let Ok(ticket) = engine.begin_attempt(&LockoutKey::untrusted(NAMESPACE, &key), now) {
            engine.finish(ticket, Outcome::Failure, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_hosts_of_one_64_share_a_source_and_mapped_v4_is_v4() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(LockoutGate::source_key(a), LockoutGate::source_key(b));
        assert_ne!(LockoutGate::source_key(a), LockoutGate::source_key(c));
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(LockoutGate::source_key(v4), LockoutGate::source_key(mapped));
    }

    #[test]
    fn blocks_after_consecutive_failures_and_a_login_ends_the_streak() {
        let gate = LockoutGate::for_player_logins(3, 100, [5; 16]).unwrap();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..2 {
            gate.login_failed(ip, Some(&SessionError::AuthFailed));
        }
        gate.logged_in(ip);
        for _ in 0..2 {
            gate.login_failed(ip, Some(&SessionError::AuthFailed));
        }
        assert!(gate.admit(ip).is_ok(), "the streak restarted at the login");
        // Waiting for approval is not a failure of the source.
        gate.login_failed(ip, Some(&SessionError::NotApproved("p".into())));
        assert!(gate.admit(ip).is_ok());
        gate.login_failed(ip, None);
        let why = gate.admit(ip).unwrap_err();
        assert!(why.contains("too many failed logins"), "{why}");
        assert!(gate.admit(other).is_ok(), "other sources are unaffected");
    }
}
