//! # fleetwire-codes
//!
//! Unique thing codes and who may use a thing. An end user finds a connected thing by a short random
//! code (6 to 10 symbols, `0-9A-Z` by default) and gains access in one of three modes. A code of
//! 31–52 bits is an identifier, not a secret: its safety rests on unbiased generation, typo
//! detection and throttled guessing, and this crate provides all three plus the access machine.
//!
//! ## Contract
//!
//! Sans-IO like every fleetwire core crate: no sockets, files, threads, clock or global random
//! generator. Randomness is injected (any `rand_core::CryptoRngCore`), time is a parameter
//! ([`UnixTime`], wall-clock milliseconds: the suite's one wall-clock type from
//! `fleetwire-core`, the same as `fleetwire_auth::UnixTime`), guessing is throttled by the
//! suite's one GCRA ([`GcraGuard`]), and every outcome is a return value or an event to
//! drain. The access machine takes and returns plain data only (integers, enums, strings), so the
//! Python (pyo3) and Kotlin (uniffi) bindings can expose it unchanged.
//!
//! - [`CodeSpec`]: alphabet, length, check character. [`CodeSpec::parse`] reads what a person
//!   typed; `Display` on [`Code`] prints it grouped (`ABCDE-FGHIJ`).
//! - [`CodeGenerator`]: unbiased codes from a CSPRNG, unique against a [`CodeRegistry`].
//! - [`combinations`], [`guess_probability`], [`guesses_for_probability`]: the code-space math.
//! - [`ThingAccess`]: modes, the first administrator, invites, requests, revocation, rotation,
//!   expiry; every change (and every refusal) an [`AuditEvent`] drained with
//!   [`ThingAccess::poll_event`].
//! - [`AttemptGuard`]: may this source try a code now; [`GcraGuard`] implements it.
//!
//! ```
//! use std::collections::HashSet;
//! use fleetwire_codes::{
//!     AccessMode, AttemptGuard, CodeGenerator, CodeSpec, Connected, GcraGuard, ParseError,
//!     ThingAccess, UnixTime, UserId, DEFAULT_UNIQUE_ATTEMPTS,
//! };
//! use rand_chacha::ChaCha12Rng;
//! use rand_core::SeedableRng;
//!
//! // Production: seed from the OS, e.g. `ring::rand::SystemRandom::new().fill(&mut seed)`.
//! let seed = [7u8; 32];
//! let spec = CodeSpec::default(); // 10 random symbols of 0-9A-Z, then a check character
//! let mut generator = CodeGenerator::new(spec.clone(), ChaCha12Rng::from_seed(seed));
//! let mut registry = HashSet::new(); // a table with a unique index in production
//! let code = generator.generate_unique(&mut registry, DEFAULT_UNIQUE_ATTEMPTS)?;
//! let printed = code.to_string(); // "XXXX-XXXX-XXX"
//! assert_eq!(printed.len(), 13);
//!
//! let now = UnixTime::from_millis(1_700_000_000_000);
//! let mut thing = ThingAccess::new(code, AccessMode::AdminConfirm);
//! let mut guard = GcraGuard::new(5, 600_000, 100_000); // 5 wrong codes, then one per 10 min
//!
//! // A user types the code sloppily: case, spaces and dashes do not matter.
//! let typed = printed.to_lowercase().replace('-', " ");
//! let presented = spec.parse(&typed)?; // a typo fails here, before it costs a token
//! let ticket = guard.begin("203.0.113.7", now)?; // counted as wrong until shown otherwise
//! let found = registry.contains(&presented); // the lookup
//! guard.finish(ticket, found, now);
//! assert_eq!(thing.connect(now, UserId(1), &presented)?, Connected::BecameAdministrator);
//! assert_eq!(thing.connect(now, UserId(2), &presented)?, Connected::RequestPending);
//! thing.approve(now, UserId(1), UserId(2))?;
//! assert!(thing.has_access(UserId(2)));
//! while let Some(event) = thing.poll_event() {
//!     println!("audit: {event:?}"); // store it in the audit log
//! }
//!
//! // One wrong character or two swapped neighbours never pass the parser.
//! let mut swapped: Vec<char> = code.as_str().chars().collect();
//! let i = (0..swapped.len() - 1).find(|&i| swapped[i] != swapped[i + 1]).unwrap();
//! swapped.swap(i, i + 1);
//! let swapped: String = swapped.into_iter().collect();
//! assert_eq!(spec.parse(&swapped), Err(ParseError::CheckMismatch));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Alphabets, length and parsing
//!
//! Symbols are ASCII digits and upper-case letters, 2 to 36 of them ([`Alphabet`]). Codes are
//! case-insensitive, so a mixed-case alphabet is not offered (`a` and `A` being different codes
//! is a typo trap). [`Alphabet::alphanumeric`] (`0-9A-Z`, the default, 36^10 ≈ 3.66e15 codes) and
//! [`Alphabet::crockford`] (Crockford base 32: no `I L O U`, 32^10 ≈ 1.13e15) are built in.
//!
//! [`CodeSpec::parse`] ignores case; skips `-`, `_`, `.`, spaces, tabs, Unicode dashes and
//! no-break spaces anywhere; reads full-width forms (`ＡＢＣ１`) as ASCII; and reads a
//! confusable that is not a symbol as the symbol it looks like: `O`→`0`, `I`/`L`→`1` (or
//! `0`→`O`, `1`→`I` for a letters-only alphabet). With `0-9A-Z` every one of those characters is
//! a symbol of its own, so nothing is folded; the Crockford alphabet is the option for codes that
//! are read aloud or copied by hand. Input over [`MAX_INPUT_CHARS`] characters is refused
//! unread. Errors come in a fixed order: invalid character (with its position), wrong length,
//! check mismatch.
//!
//! `length` (6..=10, default 10) counts the random symbols. The optional check character comes
//! after them, so a code is `length + 1` characters long: the default shows as `ABCD-EFGH-IJK`
//! (groups of at most [`GROUP_SIZE`], as even as possible). The product requirement's "code of 6
//! to 10 characters" is met by the random part; `CodeSpec::new(alphabet, 10, false)` gives bare
//! 10-character codes (`ABCDE-FGHIJ`) for systems that need exactly that. The check character
//! adds no entropy and no combinations.
//!
//! ## The check character
//!
//! A Damm check over a totally anti-symmetric quasigroup `(Q, *)` of order `n` = alphabet size:
//! the interim state starts at 0, each symbol `x` moves it to `s * x`, and the check symbol is the
//! one that brings the final state to 0. A string is valid when its fold is 0.
//!
//! The quasigroup is built for every `n = 2^k · m` (`m` odd, `k ≠ 1`) as the direct product of
//! GF(2^k) with `s * x = α·s + x` (α the field generator: α ∉ {0, 1}) and `Z_m` with
//! `s * x = 2s + x` (2 and 2 − 1 = 1 are units for odd `m`). Symbol `i` is the pair
//! `(i mod 2^k, i mod m)`. For each factor:
//!
//! - *Latin square*: `s * x` is injective in `x` (add a constant) and in `s` (multiply by a unit,
//!   add a constant). So a single substitution changes the state right after it, and distinct
//!   states stay distinct under any later symbols: the final state is not 0. This covers a
//!   substituted check character too.
//! - *Total anti-symmetry*: `(c * x) * y = (c * y) * x` means `a²c + a·x + y = a²c + a·y + x`,
//!   i.e. `(a − 1)(x − y) = 0`, so `x = y` because `a − 1` is a unit. So swapping two adjacent
//!   different symbols (including the last one and the check character) changes the state after
//!   the pair, and by the Latin property the final state.
//!
//! A product of such quasigroups has both properties componentwise. No such quasigroup exists
//! for order 2, and order 6 has none either; this crate builds none for sizes `4k + 2` (a
//! construction exists for 10, 14, …, but it is not a simple product), so
//! [`CodeSpec::new`] refuses a check character for those sizes. The unit tests verify the Latin
//! and anti-symmetry properties exhaustively (every state and symbol pair) for all 26 supported
//! sizes from 3 to 36, and a property test applies every substitution and adjacent swap to
//! generated codes. Unlike Luhn mod N (which misses one swap pair) or ISO 7064 MOD 37-2 (whose
//! check alphabet needs a 37th symbol, `*`), the check character is always a symbol of the code's
//! own alphabet.
//!
//! ## Generation
//!
//! A whole code is one number below `C = n^length` (at most 36^10 < 2^52). A 64-bit random word
//! is masked to the bit length of `C − 1` and rejected if it is `≥ C` (mask and reject: at least
//! half of the draws are kept, 81 % for 36^10, all for Crockford's 32^10); the accepted number's
//! base-`n` digits are the symbols. A uniform number below `n^length` has independent uniform
//! digits, so every symbol is exactly uniform: no modulo bias, nothing sequential, no timestamp
//! or counter. Per-symbol rejection would be just as unbiased but needs about a third more random
//! bytes and a branch per symbol. Randomness is read 256 bytes at a time ([`BATCH_BYTES`]) with
//! `try_fill_bytes`, so an OS source is asked rarely and its failure is an error. The digits come
//! from two independent chains of 32-bit divisions by a constant (split at `n^5`). A chi-square
//! test over 1,000,000 codes per position (and over adjacent pairs) runs in the test suite, with
//! a control that shows the same test flags `byte % 36`. About 24 ns per 10-symbol code with
//! `ChaCha12Rng` on the project machine (`docs/BENCHMARKS.md`).
//!
//! The generator owns a CSPRNG: seed a `rand_chacha::ChaCha12Rng` (or `ChaCha8Rng`) from the OS
//! (ring's `SystemRandom`) once per process. Whoever reads the generator's memory can predict
//! its next codes, so keep it in the server process and never log it (its `Debug` hides the
//! buffer). [`CodeGenerator::generate_unique`] retries against a [`CodeRegistry`] whose
//! `try_claim` must be atomic (an insert on a unique index).
//!
//! ## Guessing
//!
//! With `C` combinations, `N` live codes and `A` distinct guesses, all guesses miss with the
//! hypergeometric probability `Π_{i<A} (1 − N/(C − i)) = Π_{j<N} (1 − A/(C − j))`, so an attacker
//! hits some thing with probability `P = 1 − Π …`, about `1 − exp(−A·N/C)`, about `A·N/C` when
//! small. [`guess_probability`] computes it (exactly over the smaller count up to
//! [`EXACT_TERMS_LIMIT`] terms, with a tight upper bound beyond); [`guesses_for_probability`]
//! inverts it. For one million things:
//!
//! | codes | `C` | 1 source, 10 guesses/min, 1 year | 1,000 sources, same |
//! |---|---|---|---|
//! | 8 × `0-9A-Z` | 2.8e12 | 0.85 | 1 |
//! | 10 × `0-9A-Z` | 3.7e15 | 0.0014 | 0.76 |
//! | 10 × Crockford | 1.1e15 | 0.0047 | 0.99 |
//!
//! A determined attacker with many sources finds *some* thing, so a found code must not be
//! enough for a valuable thing: use [`AccessMode::AdminConfirm`] or [`AccessMode::InviteOnly`],
//! throttle hard per source (e.g. 5 failures then one per 10 minutes: 52,560 a year) and cap the
//! total failure rate across all sources (a [`GcraGuard`] keyed by a constant).
//!
//! ## The access machine
//!
//! [`ThingAccess`] is one thing's state. The first user to [`connect`](ThingAccess::connect) with
//! the code becomes its administrator, in every mode (the code ships with the thing; an
//! invite-only thing has nobody to invite before then). Afterwards: [`AccessMode::Open`] admits
//! anyone with the code, [`AccessMode::AdminConfirm`] files a request for an administrator to
//! [`approve`](ThingAccess::approve) or [`reject`](ThingAccess::reject), and
//! [`AccessMode::InviteOnly`] admits only users an administrator
//! [`invite`](ThingAccess::invite)d (invites are bound to a user id, optionally expire, and also
//! skip confirmation). Administrators grant and revoke administrator rights; the last
//! administrator cannot be demoted, removed or leave. [`remove`](ThingAccess::remove) ends
//! access, request and invite at once and blocks the user (otherwise an open code would let them
//! straight back); an invite or [`unblock`](ThingAccess::unblock) lifts the block.
//! [`rotate_code`](ThingAccess::rotate_code) invalidates the old code at once; a code may expire.
//!
//! "Atomic first administrator": the machine is a single-owner value mutated through `&mut self`,
//! so two racing first users are two calls, one after the other, and only the first finds the
//! thing unclaimed (tested with two threads behind a `Mutex`). A server must serialize the calls
//! for one thing the same way: a row lock or serializable transaction around load → call →
//! store, or one task per thing. The state serializes with serde; loading re-checks the
//! invariants ([`ThingAccess::check_invariants`]).
//!
//! ## Throttling
//!
//! [`AttemptGuard`] is reserve-before-verify: parse first — a malformed or mistyped code costs
//! nothing — then [`AttemptGuard::begin`] (the attempt counts as a wrong code from here, so
//! parallel attempts cannot overrun the budget), then the lookup, then
//! [`AttemptGuard::finish`] with whether a thing matched. Two implementations: [`GcraGuard`], a
//! GCRA per source with bounded memory that fails closed when full (a found code refunds only
//! itself), and `LockoutGuard` (feature `lockout`, on by default), which puts the accounts
//! crate's `fleetwire_auth::lockout::LockoutEngine` behind the trait: blocks that grow with
//! further wrong codes and a hard limit that locks a source until an operator clears it.

mod access;
mod alphabet;
mod code;
mod error;
mod generate;
pub mod math;
pub mod throttle;
mod time;

pub use access::{
    AccessError, AccessMode, AuditEvent, AuditKind, Connected, Forgotten, MAX_QUEUED_EVENTS, Role,
    ThingAccess, UserId,
};
pub use alphabet::{Alphabet, MAX_ALPHABET_SIZE};
pub use code::{
    Code, CodeSpec, DEFAULT_LENGTH, GROUP_SIZE, MAX_INPUT_CHARS, MAX_LENGTH, MIN_LENGTH,
};
pub use error::{GenerateError, ParseError, SpecError};
pub use generate::{BATCH_BYTES, CodeGenerator, CodeRegistry, DEFAULT_UNIQUE_ATTEMPTS};
pub use math::{EXACT_TERMS_LIMIT, combinations, guess_probability, guesses_for_probability};
#[cfg(feature = "lockout")]
pub use throttle::LockoutGuard;
pub use throttle::{AttemptGuard, GcraGuard, GcraTicket, Throttled};
pub use time::UnixTime;
