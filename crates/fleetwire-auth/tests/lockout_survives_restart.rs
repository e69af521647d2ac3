//! Lockout and throttle state serialize, and a reloaded engine keeps blocking.

use fleetwire_auth::UnixTime;
use fleetwire_auth::lockout::{LockoutConfig, LockoutEngine, LockoutKey, Outcome};
use fleetwire_auth::throttle::{Throttle, ThrottleConfig};

#[test]
fn snapshot_keeps_blocks() {
    let mut e = LockoutEngine::new(LockoutConfig::web_cms(), [3; 16]).unwrap();
    let now = UnixTime::from_secs(77_000);
    let key = LockoutKey::untrusted("login", b"dave");
    while let Ok(t) = e.begin_attempt(&key, now) {
        e.finish(t, Outcome::Failure, now);
    }
    let json = serde_json::to_string(&e).unwrap();
    let mut back: LockoutEngine = serde_json::from_str(&json).unwrap();
    assert_eq!(back, e);
    assert!(back.begin_attempt(&key, now.plus_secs(30)).is_err());
    assert!(back.begin_attempt(&key, now.plus_secs(61)).is_ok());

    let mut th = Throttle::new(ThrottleConfig::default(), [4; 16]);
    th.check("login", b"10.0.0.1", now).unwrap();
    let back: Throttle = serde_json::from_str(&serde_json::to_string(&th).unwrap()).unwrap();
    assert_eq!(back, th);
}
