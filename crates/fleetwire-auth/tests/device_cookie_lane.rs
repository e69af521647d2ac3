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
    let t = e
        .begin_attempt(&lane_for(&secret, b"alice", &cookie), now)
        .expect("known device is not locked out");
    e.finish(t, Outcome::Success, now);

    // A forged or foreign cookie falls back to the locked untrusted lane.
    let (nonce, tag) = cookie
        .strip_prefix("dc1.")
        .and_then(|rest| rest.split_once('.'))
        .expect("dc1.<nonce>.<tag>");
    let flip_first = |s: &str| {
        let c = if s.starts_with('A') { 'B' } else { 'A' };
        format!("{c}{}", &s[1..])
    };
    let forged = [
        // Issued by another server (another secret) for the same user.
        DeviceCookie::issue(&[9u8; 32], b"alice", &mut rng),
        // Issued by this server for another user.
        DeviceCookie::issue(&secret, b"mallory", &mut rng),
        // Alice's cookie with another nonce (another device id) under her tag.
        format!("dc1.{}.{tag}", flip_first(nonce)),
        // Alice's cookie with a changed tag, and with a truncated one.
        format!("dc1.{nonce}.{}", flip_first(tag)),
        format!("dc1.{nonce}.{}", &tag[..tag.len() - 4]),
        // A new format version, and garbage.
        format!("dc2.{nonce}.{tag}"),
        "dc1.AAAAAAAAAAAAAAAAAAAAAA.AAAA".to_owned(),
    ];
    for f in &forged {
        assert_eq!(
            DeviceCookie::verify(&secret, b"alice", f),
            None,
            "{f} accepted"
        );
        assert!(
            e.begin_attempt(&lane_for(&secret, b"alice", f), now)
                .is_err(),
            "{f} opened a lane past the lockout"
        );
    }
    // And the real cookie still works after all that.
    assert!(
        e.begin_attempt(&lane_for(&secret, b"alice", &cookie), now)
            .is_ok()
    );
}

/// The lane a login attempt counts in, as a server picks it: the device's own lane for a valid
/// cookie, the untrusted lane otherwise.
fn lane_for<'a>(secret: &[u8], user: &'a [u8], cookie: &str) -> LockoutKey<'a> {
    match DeviceCookie::verify(secret, user, cookie) {
        Some(device) => LockoutKey::device("login", user, device),
        None => LockoutKey::untrusted("login", user),
    }
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
