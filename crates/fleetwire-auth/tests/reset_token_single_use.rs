//! A reset token works once; the completed reset clears the lockout and ends sessions.

use fleetwire_auth::UnixTime;
use fleetwire_auth::lockout::{LockoutConfig, LockoutEngine, LockoutKey, Outcome};
use fleetwire_auth::reset::{ResetConfig, ResetError, ResetTokens};
use fleetwire_auth::session::{Activity, SessionConfig, SessionStore};
use rand_core::SeedableRng;

#[test]
fn single_use_reset_clears_lockout() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(11);
    let now = UnixTime::from_secs(1_000_000);
    let mut lockout = LockoutEngine::generate(LockoutConfig::web_cms(), &mut rng).unwrap();
    let mut sessions = SessionStore::new(SessionConfig::default());
    let mut resets = ResetTokens::new(ResetConfig::default());
    let key = LockoutKey::untrusted("login", b"eve");
    let (old_session, _) = sessions.create("eve", now, &mut rng);
    while let Ok(t) = lockout.begin_attempt(&key, now) {
        lockout.finish(t, Outcome::Failure, now);
    }

    let token = resets.issue("eve", 3, now, &mut rng);
    let user = resets.user_of(&token, now).unwrap().to_owned();
    assert_eq!(resets.redeem(&token, 3, now).unwrap(), user);
    // The server now stores the new password (version 4), then:
    resets.password_changed(&user);
    sessions.end_all(&user);
    lockout.clear(&key);

    assert_eq!(
        resets.redeem(&token, 4, now),
        Err(ResetError::Invalid),
        "single use"
    );
    assert!(lockout.begin_attempt(&key, now).is_ok(), "lockout cleared");
    assert!(sessions.check(&old_session, now, Activity::User).is_err());
}
