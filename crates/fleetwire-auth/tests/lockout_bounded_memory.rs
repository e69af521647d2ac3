//! The table never grows past `max_keys`, evicts forgotten or unblocked entries before blocked
//! ones, and reports its memory.

use fleetwire_auth::UnixTime;
use fleetwire_auth::lockout::{LockoutConfig, LockoutEngine, LockoutKey, Outcome};

#[test]
fn bounded_and_blocked_entries_survive_a_flood() {
    let mut cfg = LockoutConfig::web_cms();
    cfg.max_keys = 1000;
    let mut e = LockoutEngine::new(cfg, [9; 16]).unwrap();
    let now = UnixTime::from_secs(1_000_000);
    let victim = LockoutKey::untrusted("login", b"victim");
    while let Ok(t) = e.begin_attempt(&victim, now) {
        e.finish(t, Outcome::Failure, now);
    }
    // An attacker sprays 100,000 distinct names, one failure each.
    for i in 0..100_000u32 {
        let name = i.to_le_bytes();
        let k = LockoutKey::untrusted("login", &name);
        if let Ok(t) = e.begin_attempt(&k, now) {
            e.finish(t, Outcome::Failure, now);
        }
        assert!(e.stats().tracked_keys <= 1000);
    }
    assert!(e.stats().evictions >= 99_000);
    assert!(
        e.begin_attempt(&victim, now).is_err(),
        "the blocked entry was kept"
    );
    assert!(e.stats().memory_bytes <= 1000 * 32);
}
