//! # fleetwire-auth
//!
//! Account security for the fleetwire device cloud, as sans-IO building blocks: no clock, no
//! randomness source, no storage of its own. Time comes in as [`UnixTime`] (wall-clock
//! milliseconds from the caller; the suite's one wall-clock type, `fleetwire_core::UnixTime`,
//! re-exported here and shared with `fleetwire-codes`), rate limits are the suite's one GCRA
//! ([`throttle::Rate`] is `fleetwire_core::Rate`), randomness comes as `&mut impl
//! CryptoRngCore` or explicit bytes, and every engine's state is serde-serializable so it
//! survives restarts and can live in any store.
//! Plain data goes in and out: no callbacks, no async, no traits to implement, so the same API
//! crosses to Python and Kotlin unchanged.
//!
//! | module | what |
//! | --- | --- |
//! | [`policy`] | password rules, `seed` and `nist` presets, structured violations |
//! | [`hash`] | Argon2id PHC hashing, pepper, `needs_rehash`, dummy verification |
//! | [`lockout`] | consecutive-failure lockout, reserve-before-verify, device-cookie lanes |
//! | [`login_flow`] | the ordered sign-in flow (throttle → lockout/CAPTCHA → verify → MFA → session → audit) as a machine |
//! | [`throttle`] | GCRA throttles per source and global |
//! | [`session`] | idle and absolute session expiry |
//! | [`reset`] | password-reset tokens |
//! | [`totp`] | RFC 6238 one-time passwords |
//! | [`recovery`] | single-use recovery codes |
//! | [`captcha`] | digit CAPTCHA rendered as SVG |
//! | [`roles`] | groups, rights and the one permission check |
//! | [`audit`] | hash-chained append-only audit log, new-origin flag |
//!
//! A login, end to end:
//!
//! ```
//! use fleetwire_auth::hash::{HashParams, PasswordHasher};
//! use fleetwire_auth::lockout::{LockoutConfig, LockoutEngine, LockoutKey, Outcome};
//! use fleetwire_auth::policy::{PasswordPolicy, PolicyContext};
//! use fleetwire_auth::UnixTime;
//!
//! let ctx = PolicyContext { words: vec!["alice".into()], has_mfa: false };
//! let password = PasswordPolicy::seed().accept("Tulip-Harbour-7", &ctx).expect("acceptable");
//! // Tests use cheap parameters; production uses HashParams::owasp().
//! let hasher = PasswordHasher::new(HashParams::danger_insecure_for_tests())?;
//! let stored = hasher.hash_with_salt(password.as_str(), &[42; 16])?;
//!
//! let mut lockout = LockoutEngine::new(LockoutConfig::web_cms(), [7; 16])?;
//! let now = UnixTime::from_millis(1_700_000_000_000);
//! let key = LockoutKey::untrusted("player-login", b"alice");
//! // Reserve first (counted as a failure), verify, then report the outcome.
//! let ticket = lockout.begin_attempt(&key, now).expect("not locked");
//! let ok = hasher.verify("Tulip-Harbour-7", &stored).is_ok();
//! lockout.finish(ticket, if ok { Outcome::Success } else { Outcome::Failure }, now);
//! assert!(ok);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod audit;
pub mod captcha;
pub mod hash;
mod keys;
pub mod lockout;
pub mod login_flow;
pub mod policy;
pub mod recovery;
pub mod reset;
pub mod roles;
pub mod session;
mod table;
pub mod throttle;
mod time;
pub mod totp;

/// The `rand_core` version whose `CryptoRngCore` the API takes.
pub use rand_core;
pub use time::UnixTime;
