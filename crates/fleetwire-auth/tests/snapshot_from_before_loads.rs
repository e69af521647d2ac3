//! Engine snapshots persisted by an earlier build still load, unchanged, and keep working.
//!
//! `tests/data/engine_snapshot_v1.json` was written by the build that still had
//! `fleetwire-auth`'s own `UnixTime` (before the suite moved to `fleetwire_core::UnixTime`).
//! Both serialize as a bare integer of milliseconds (`#[serde(transparent)]`), so a server's
//! state files must load as they are and serialize back to the same JSON.
//! `FLEETWIRE_REGEN=1` rewrites the file (only ever do that on purpose: the file is a pin).

use fleetwire_auth::UnixTime;
use fleetwire_auth::captcha::{CaptchaConfig, CaptchaStore};
use fleetwire_auth::lockout::{LockoutConfig, LockoutEngine, LockoutKey, Outcome};
use fleetwire_auth::reset::{ResetConfig, ResetTokens};
use fleetwire_auth::session::{Activity, SessionConfig, SessionStore};
use fleetwire_auth::throttle::{Throttle, ThrottleConfig};
use rand_chacha::rand_core::SeedableRng;
use serde_json::{Value, json};

const NOW_MS: u64 = 1_700_000_000_123;

struct Engines {
    lockout: LockoutEngine,
    throttle: Throttle,
    sessions: SessionStore,
    session_token: String,
    reset: ResetTokens,
    reset_token: String,
    captcha: CaptchaStore,
}

/// The same operations the pinned file recorded.
fn build() -> Engines {
    let now = UnixTime::from_millis(NOW_MS);
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(11);
    let mut lockout = LockoutEngine::new(LockoutConfig::web_cms(), [3; 16]).unwrap();
    let key = LockoutKey::untrusted("login", b"dave");
    while let Ok(t) = lockout.begin_attempt(&key, now) {
        lockout.finish(t, Outcome::Failure, now);
    }
    let mut throttle = Throttle::new(ThrottleConfig::default(), [4; 16]);
    for _ in 0..3 {
        throttle.check("login", b"10.0.0.1", now).unwrap();
    }
    let mut sessions = SessionStore::new(SessionConfig::default());
    let (session_token, _) = sessions.create("erin", now, &mut rng);
    let mut reset = ResetTokens::new(ResetConfig::default());
    let reset_token = reset.issue("frank", 2, now, &mut rng);
    let mut captcha = CaptchaStore::new(CaptchaConfig::default());
    let _ = captcha.issue_unrendered(now, &mut rng);
    Engines {
        lockout,
        throttle,
        sessions,
        session_token,
        reset,
        reset_token,
        captcha,
    }
}

fn to_json(e: &Engines) -> Value {
    json!({
        "now_ms": NOW_MS,
        "lockout": serde_json::to_value(&e.lockout).unwrap(),
        "throttle": serde_json::to_value(&e.throttle).unwrap(),
        "sessions": serde_json::to_value(&e.sessions).unwrap(),
        "session_token": e.session_token,
        "reset": serde_json::to_value(&e.reset).unwrap(),
        "reset_token": e.reset_token,
        "captcha": serde_json::to_value(&e.captcha).unwrap(),
    })
}

#[test]
fn engine_snapshots_written_before_load_and_serialize_back_identically() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/engine_snapshot_v1.json"
    );
    if std::env::var_os("FLEETWIRE_REGEN").is_some() {
        let text = serde_json::to_string_pretty(&to_json(&build())).unwrap() + "\n";
        std::fs::write(path, text).unwrap();
    }
    let stored: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();

    // Every engine loads from the old file and writes the very same JSON back.
    let mut lockout: LockoutEngine = serde_json::from_value(stored["lockout"].clone()).unwrap();
    let mut throttle: Throttle = serde_json::from_value(stored["throttle"].clone()).unwrap();
    let mut sessions: SessionStore = serde_json::from_value(stored["sessions"].clone()).unwrap();
    let mut reset: ResetTokens = serde_json::from_value(stored["reset"].clone()).unwrap();
    let captcha: CaptchaStore = serde_json::from_value(stored["captcha"].clone()).unwrap();
    let loaded = Engines {
        lockout: lockout.clone(),
        throttle: throttle.clone(),
        sessions: sessions.clone(),
        session_token: stored["session_token"].as_str().unwrap().to_owned(),
        reset: reset.clone(),
        reset_token: stored["reset_token"].as_str().unwrap().to_owned(),
        captcha,
    };
    assert_eq!(
        to_json(&loaded),
        stored,
        "a reloaded snapshot serializes differently"
    );
    // And this build, doing the same, writes the same file.
    assert_eq!(
        to_json(&build()),
        stored,
        "this build writes another snapshot"
    );

    // The loaded engines keep their times: the lock, the throttle, the session and the token
    // all still hold at the instants the old build recorded.
    let now = UnixTime::from_millis(stored["now_ms"].as_u64().unwrap());
    let key = LockoutKey::untrusted("login", b"dave");
    assert!(lockout.begin_attempt(&key, now.plus_secs(30)).is_err());
    assert!(lockout.begin_attempt(&key, now.plus_secs(61)).is_ok());
    for _ in 0..7 {
        throttle.check("login", b"10.0.0.1", now).unwrap();
    }
    assert!(throttle.check("login", b"10.0.0.1", now).is_err());
    let info = sessions
        .check(&loaded.session_token, now.plus_secs(1), Activity::User)
        .unwrap();
    assert_eq!(info.user, "erin");
    assert_eq!(info.created_at, now);
    assert_eq!(
        reset.redeem(&loaded.reset_token, 2, now.plus_secs(1)),
        Ok("frank".into())
    );
}
