//! Blocks grow 1, 2, 4 … 60 minutes while failures continue, and the streak is forgotten after a
//! quiet period; Keycloak's linear growth is expressible; properties hold for arbitrary histories.

use fleetwire_auth::UnixTime;
use fleetwire_auth::lockout::{
    BlockGrowth, LockStatus, LockoutConfig, LockoutEngine, LockoutKey, Outcome,
};
use proptest::prelude::*;

const KEY: LockoutKey<'static> = LockoutKey {
    namespace: "login",
    subject: b"carol",
    lane: fleetwire_auth::lockout::Lane::Untrusted,
};

/// Fails until locked; returns the block length in seconds.
fn fail_until_locked(e: &mut LockoutEngine, now: UnixTime) -> u64 {
    loop {
        match e.begin_attempt(&KEY, now) {
            Ok(t) => e.finish(t, Outcome::Failure, now),
            Err(l) => return l.until.unwrap().as_secs() - now.as_secs(),
        }
    }
}

#[test]
fn exponential_growth_to_cap_then_decay() {
    let mut e = LockoutEngine::new(LockoutConfig::web_cms(), [5; 16]).unwrap();
    let mut now = UnixTime::from_secs(1_000_000);
    let mut lengths = Vec::new();
    for _ in 0..9 {
        let len = fail_until_locked(&mut e, now);
        lengths.push(len / 60);
        now = now.plus_secs(len);
    }
    assert_eq!(lengths, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    // A day of quiet after the last block: forgotten.
    now = now.plus_secs(24 * 3600);
    assert_eq!(e.status(&KEY, now), LockStatus::Open { remaining: 5 });
    e.purge(now);
    assert_eq!(e.stats().tracked_keys, 0);
}

#[test]
fn keycloak_linear_growth() {
    let mut cfg = LockoutConfig::keycloak();
    cfg.quick_failure = None;
    cfg.max_failures = 3;
    cfg.failures_per_block = 3;
    cfg.max_block_secs = 150;
    let mut e = LockoutEngine::new(cfg, [5; 16]).unwrap();
    let mut now = UnixTime::from_secs(1_000_000);
    let mut lengths = Vec::new();
    for _ in 0..4 {
        let len = fail_until_locked(&mut e, now);
        lengths.push(len);
        now = now.plus_secs(len);
    }
    assert_eq!(lengths, [60, 120, 150, 150]);
}

#[test]
fn jitter_stays_within_bound() {
    let mut cfg = LockoutConfig::web_cms();
    cfg.jitter_percent = 20;
    for seed in 0..20u8 {
        let mut e = LockoutEngine::new(cfg.clone(), [seed; 16]).unwrap();
        let len = fail_until_locked(&mut e, UnixTime::from_secs(10_000));
        assert!((60..=72).contains(&len), "{len}");
    }
    let _ = BlockGrowth::Linear;
}

proptest! {
    /// Whatever the history, a locked key is never counted, the streak never exceeds the hard
    /// limit, and a success always reopens the key.
    #[test]
    fn arbitrary_histories(steps in proptest::collection::vec((0u64..4000, any::<bool>(), any::<bool>()), 1..200)) {
        let mut cfg = LockoutConfig::web_cms();
        cfg.max_keys = 16;
        let mut e = LockoutEngine::new(cfg, [6; 16]).unwrap();
        let mut now = 1_000_000u64;
        for (dt, success, step_back) in steps {
            now = if step_back { now.saturating_sub(dt) } else { now + dt };
            let t = UnixTime::from_secs(now);
            match e.begin_attempt(&KEY, t) {
                Ok(ticket) => {
                    prop_assert!(ticket.failures <= 100);
                    if success {
                        e.finish(ticket, Outcome::Success, t);
                        prop_assert_eq!(e.status(&KEY, t), LockStatus::Open { remaining: 5 });
                    } else {
                        e.finish(ticket, Outcome::Failure, t);
                    }
                }
                Err(locked) => {
                    let before = e.clone();
                    prop_assert!(e.begin_attempt(&KEY, t).is_err());
                    prop_assert_eq!(&before, &e, "a refusal changes nothing");
                    if let Some(until) = locked.until {
                        // Never longer than the cap, even after the clock stepped back.
                        prop_assert!(until.as_secs() <= now + 3600);
                    }
                }
            }
        }
    }
}
