//! A [`SourceGate`] over `fleetwire-auth`'s lockout engine (feature `login-gate`): players
//! that keep failing to log in are refused, for a block that grows while the failures continue,
//! before they cost a signature check — and a source that keeps trying new player ids is
//! refused at accept, before it costs a TLS handshake.
//!
//! - **What counts.** Failures of *authentication*: a wrong signature or unknown player, a
//!   malformed or unexpected frame, the login deadline, a TLS handshake that failed on bad bytes
//!   or timed out. A player waiting for approval, a version mismatch, a peer that closes before
//!   saying anything (a TCP health check) or the server shutting down count for nothing.
//! - **Two lanes.** A failure whose `Hello` named a player counts in the lane of that
//!   (source, player) pair: after `failures` consecutive ones, that player is refused from that
//!   source right after its `Hello`, while other players behind the same address (a site's NAT)
//!   still log in. The source's own lane counts each *new* failing pair once (the first failure
//!   of a pair's streak) and every failure that named no player (TLS, garbage, timeouts): after
//!   `failures` of those — a source cycling through player ids, or failing before any `Hello` —
//!   the whole source is refused at accept. A good login ends the streak of its pair and of its
//!   source.
//! - **Which source.** [`Source`]: the IPv4 address, or the /64 prefix of an IPv6 address.
//! - **Memory.** The engine's table: about 21 bytes per tracked lane, at most `max_keys`.

use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use fleetwire_auth::UnixTime;
use fleetwire_auth::lockout::{
    BlockGrowth, LockStatus, LockoutConfig, LockoutConfigError, LockoutEngine, LockoutKey, Outcome,
};
use fleetwire_session::SessionError;

use fleetwire_session::PlayerId;

use crate::session::SourceGate;
use crate::source::Source;

/// The lockout namespace of sources.
pub const NAMESPACE: &str = "player-login-source";
/// The lockout namespace of (source, player) pairs.
pub const PAIR_NAMESPACE: &str = "player-login-pair";

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

/// The lane key of a (source, player) pair: the source's 9 bytes, then the player's 16.
fn pair_key(source: IpAddr, player: &PlayerId) -> [u8; 25] {
    let mut key = [0u8; 25];
    key[..9].copy_from_slice(Source::of(source).as_bytes());
    key[9..].copy_from_slice(player.as_bytes());
    key
}

fn refusal(status: LockStatus, now: UnixTime, what: &str) -> Result<(), String> {
    match status {
        LockStatus::Open { .. } => Ok(()),
        LockStatus::Locked(locked) => Err(match locked.until {
            Some(until) => format!(
                "too many failed logins {what}: refused for {} s more",
                until.as_secs().saturating_sub(now.as_secs())
            ),
            None => format!("too many failed logins {what}: refused until cleared"),
        }),
    }
}

/// Counts one failure in a lane; a lane already blocked is not counted again.
fn fail(engine: &mut LockoutEngine, key: &LockoutKey<'_>, now: UnixTime) {
    if let Ok(ticket) = engine.begin_attempt(key, now) {
        engine.finish(ticket, Outcome::Failure, now);
    }
}

impl SourceGate for LockoutGate {
    fn admit(&self, source: IpAddr) -> Result<(), String> {
        let key = Self::source_key(source);
        let now = now();
        let status = self
            .engine()
            .status(&LockoutKey::untrusted(NAMESPACE, &key), now);
        refusal(status, now, "from this address")
    }

    fn admit_player(&self, source: IpAddr, player: &PlayerId) -> Result<(), String> {
        let key = pair_key(source, player);
        let now = now();
        let status = self
            .engine()
            .status(&LockoutKey::untrusted(PAIR_NAMESPACE, &key), now);
        refusal(
            status,
            now,
            &format!("of player {player} from this address"),
        )
    }

    fn logged_in(&self, source: IpAddr, player: &PlayerId) {
        let mut engine = self.engine();
        engine.clear(&LockoutKey::untrusted(
            PAIR_NAMESPACE,
            &pair_key(source, player),
        ));
        engine.clear(&LockoutKey::untrusted(NAMESPACE, &Self::source_key(source)));
    }

    fn login_failed(
        &self,
        source: IpAddr,
        claimed: Option<&PlayerId>,
        reason: Option<&SessionError>,
    ) {
        if !counts(reason) {
            return;
        }
        let source_key = Self::source_key(source);
        let source_lane = LockoutKey::untrusted(NAMESPACE, &source_key);
        let now = now();
        let mut engine = self.engine();
        match claimed {
            Some(player) => {
                let key = pair_key(source, player);
                let pair = LockoutKey::untrusted(PAIR_NAMESPACE, &key);
                if engine.failures(&pair, now) == 0 {
                    // A pair's streak counts once against its source.
                    fail(&mut engine, &source_lane, now);
                }
                fail(&mut engine, &pair, now);
            }
            None => fail(&mut engine, &source_lane, now),
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

    fn id(n: u8) -> PlayerId {
        PlayerId::from_bytes([n; 16])
    }

    const AUTH: Option<&SessionError> = Some(&SessionError::AuthFailed);

    #[test]
    fn one_failing_player_is_refused_alone_and_its_neighbours_still_log_in() {
        let gate = LockoutGate::for_player_logins(3, 100, [5; 16]).unwrap();
        let nat: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..3 {
            assert!(gate.admit(nat).is_ok());
            assert!(gate.admit_player(nat, &id(1)).is_ok());
            gate.login_failed(nat, Some(&id(1)), AUTH);
        }
        let why = gate.admit_player(nat, &id(1)).unwrap_err();
        assert!(why.contains("too many failed logins of player"), "{why}");
        // The site's other players are untouched, and so is the address.
        assert!(gate.admit(nat).is_ok());
        assert!(gate.admit_player(nat, &id(2)).is_ok());
        // The same player from another address is not refused either.
        assert!(
            gate.admit_player("192.0.2.9".parse().unwrap(), &id(1))
                .is_ok()
        );
    }

    #[test]
    fn a_source_cycling_through_player_ids_is_refused_at_accept() {
        let gate = LockoutGate::for_player_logins(3, 100, [5; 16]).unwrap();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for n in 0..2 {
            // Many failures of one id count once against the source.
            for _ in 0..5 {
                gate.login_failed(ip, Some(&id(n)), AUTH);
            }
            assert!(gate.admit(ip).is_ok(), "after {} distinct ids", n + 1);
        }
        gate.login_failed(ip, Some(&id(7)), AUTH);
        let why = gate.admit(ip).unwrap_err();
        assert!(why.contains("from this address"), "{why}");
        assert!(gate.admit("192.0.2.2".parse().unwrap()).is_ok());
    }

    #[test]
    fn failures_before_any_hello_count_against_the_source() {
        let gate = LockoutGate::for_player_logins(3, 100, [5; 16]).unwrap();
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        for _ in 0..3 {
            gate.login_failed(ip, None, None);
        }
        // Another host of the same /64 is the same source.
        assert!(gate.admit("2001:db8::2".parse().unwrap()).is_err());
    }

    #[test]
    fn a_good_login_ends_the_streaks_and_approval_waits_do_not_count() {
        let gate = LockoutGate::for_player_logins(3, 100, [5; 16]).unwrap();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..2 {
            gate.login_failed(ip, Some(&id(1)), AUTH);
        }
        gate.logged_in(ip, &id(1));
        for _ in 0..2 {
            gate.login_failed(ip, Some(&id(1)), AUTH);
        }
        assert!(
            gate.admit_player(ip, &id(1)).is_ok(),
            "the streak restarted"
        );
        let waiting = SessionError::NotApproved("p".into());
        for _ in 0..10 {
            gate.login_failed(ip, Some(&id(1)), Some(&waiting));
        }
        assert!(gate.admit_player(ip, &id(1)).is_ok());
        gate.login_failed(ip, Some(&id(1)), AUTH);
        assert!(gate.admit_player(ip, &id(1)).is_err());
    }
}
