//! Idle timeout per user (or off), absolute lifetime always, only user activity extends, end all
//! sessions of a user, and arbitrary event sequences keep the invariants.

use fleetwire_auth::UnixTime;
use fleetwire_auth::session::{Activity, SessionConfig, SessionError, SessionStore};
use proptest::prelude::*;
use rand_core::SeedableRng;

const MIN: u64 = 60_000;

#[test]
fn idle_extends_only_with_user_activity_and_absolute_caps() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
    let cfg = SessionConfig {
        absolute_lifetime_ms: 60 * MIN,
        default_idle_timeout_ms: Some(10 * MIN),
        max_sessions_per_user: 4,
    };
    let mut s = SessionStore::new(cfg);
    let t0 = UnixTime::from_millis(1_700_000_000_000);
    let (tok, info) = s.create("amy", t0, &mut rng);
    assert_eq!(info.expires_at, t0.plus_millis(10 * MIN));
    // Keep acting every 9 minutes: the idle timer moves, the absolute lifetime does not.
    let mut t = t0;
    for _ in 0..6 {
        t = t.plus_millis(9 * MIN);
        let i = s.check(&tok, t, Activity::User).unwrap();
        assert_eq!(
            i.expires_at,
            t.plus_millis(10 * MIN).min(t0.plus_millis(60 * MIN))
        );
    }
    assert_eq!(
        s.check(&tok, t0.plus_millis(60 * MIN), Activity::User),
        Err(SessionError::LifetimeExpired)
    );
}

#[test]
fn idle_off_per_user_still_absolute() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(2);
    let mut s = SessionStore::new(SessionConfig::default());
    s.set_idle_timeout("sensor-owner", None);
    let t0 = UnixTime::from_secs(1_000_000);
    let (tok, info) = s.create("sensor-owner", t0, &mut rng);
    assert_eq!(info.expires_at, t0.plus_secs(12 * 3600));
    assert!(
        s.check(&tok, t0.plus_secs(11 * 3600), Activity::Background)
            .is_ok()
    );
    assert_eq!(
        s.check(&tok, t0.plus_secs(12 * 3600), Activity::User),
        Err(SessionError::LifetimeExpired)
    );
}

#[test]
fn end_all_sessions_of_a_user() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
    let mut s = SessionStore::new(SessionConfig::default());
    let t = UnixTime::from_secs(5);
    let (a, _) = s.create("amy", t, &mut rng);
    let (_b, _) = s.create("amy", t, &mut rng);
    let (c, _) = s.create("bob", t, &mut rng);
    assert_eq!(s.end_all("amy"), 2);
    assert_eq!(s.check(&a, t, Activity::User), Err(SessionError::Unknown));
    assert!(s.check(&c, t, Activity::User).is_ok());
}

proptest! {
    /// A session is never accepted past its absolute lifetime or idle timeout, whatever the
    /// sequence of requests and clock steps (including backwards).
    #[test]
    fn never_accepted_late(steps in proptest::collection::vec((0u64..20 * MIN, any::<bool>(), any::<bool>()), 1..100)) {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(4);
        let cfg = SessionConfig { absolute_lifetime_ms: 60 * MIN, default_idle_timeout_ms: Some(10 * MIN), max_sessions_per_user: 4 };
        let mut s = SessionStore::new(cfg);
        let t0 = 1_700_000_000_000u64;
        let (tok, _) = s.create("p", UnixTime::from_millis(t0), &mut rng);
        let (mut now, mut high, mut last_user) = (t0, t0, t0);
        for (dt, user, back) in steps {
            now = if back { now.saturating_sub(dt) } else { now + dt };
            high = high.max(now);
            let act = if user { Activity::User } else { Activity::Background };
            if let Ok(info) = s.check(&tok, UnixTime::from_millis(now), act) {
                prop_assert!(high < t0 + 60 * MIN);
                prop_assert!(high < last_user + 10 * MIN);
                if user { last_user = high; }
                prop_assert!(info.expires_at.as_millis() <= t0 + 60 * MIN);
            }
        }
    }
}
