//! A user's known device still logs in while an attacker has locked the account's untrusted lane.

use fleetwire_auth::UnixTime;
use fleetwire_auth::lockout::{DeviceCookie, LockoutConfig, LockoutEngine, LockoutKey, Outcome};
use rand_core::SeedableRng;

#[test]
fn known_device_unaffected_by_attack() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
    let secret = [7u8; 32];
    let mut e = LockoutEngine::generate(LockoutConfig::web_cms(), &mut rng).unwrap();
    let now = UnixTime::from_secs(50_000);
    // Yesterday alice logged in and got a device cookie.
    let cookie = DeviceCookie::issue(&secret, b"alice", &mut rng);

    // The attacker hammers alice's account from elsewhere until it is locked.
    let untrusted = LockoutKey::untrusted("login", b"alice");
    while let Ok(t) = e.begin_attempt(&untrusted, now) {
        e.finish(t, Outcome::Failure, now);
    }
    assert!(e.begin_attempt(&untrusted, now).is_err());

    // Alice's browser presents the cookie: its own lane is open.
    let device = DeviceCookie::verify(&secret, b"alice", &cookie).expect("valid cookie");
    let lane = LockoutKey::device("login", b"alice", device);
    let t = e
        .begin_attempt(&lane, now)
        .expect("known device is not locked out");
    e.finish(t, Outcome::Success, now);

    // A forged or foreign cookie falls back to the locked untrusted lane.
    assert_eq!(
        DeviceCookie::verify(&secret, b"alice", "dc1.AAAAAAAAAAAAAAAAAAAAAA.AAAA"),
        None
    );
}

#[test]
fn stolen_cookie_only_locks_its_own_lane() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(4);
    let secret = [8u8; 32];
    let mut e = LockoutEngine::generate(LockoutConfig::web_cms(), &mut rng).unwrap();
    let now = UnixTime::from_secs(60_000);
    let stolen = DeviceCookie::verify(
        &secret,
        b"bob",
        &DeviceCookie::issue(&secret, b"bob", &mut rng),
    )
    .unwrap();
    let other = DeviceCookie::verify(
        &secret,
        b"bob",
        &DeviceCookie::issue(&secret, b"bob", &mut rng),
    )
    .unwrap();
    let lane = LockoutKey::device("login", b"bob", stolen);
    while let Ok(t) = e.begin_attempt(&lane, now) {
        e.finish(t, Outcome::Failure, now);
    }
    assert!(
        e.begin_attempt(&LockoutKey::device("login", b"bob", other), now)
            .is_ok()
    );
    assert!(
        e.begin_attempt(&LockoutKey::untrusted("login", b"bob"), now)
            .is_ok()
    );
}
