//! The lockout engine: consecutive-failure counting with growing blocks, reserve-before-verify,
//! device-cookie lanes, the NIST ceiling and bounded memory.
//!
//! - **Reserve before verify.** [`LockoutEngine::begin_attempt`] counts the attempt as a failure
//!   *before* the password is checked and hands out an [`AttemptTicket`];
//!   [`LockoutEngine::finish`] with [`Outcome::Success`] refunds it (and ends the streak). Parallel
//!   attempts beyond the remaining budget are refused before any verification, so a burst of
//!   concurrent requests cannot slip past the counter (the race behind ASP.NET Identity's
//!   CVE-2023-33170 and django-axes #592). A ticket that is never finished stays a failure.
//! - **While locked** nothing is verified and nothing is counted: `begin_attempt` returns
//!   [`Locked`], which the server turns into one generic error.
//! - **Growth.** After `max_failures` consecutive failures the key is blocked for
//!   `base_block_secs`; every `failures_per_block` further failures block it again, for longer
//!   (doubling or linear, capped at `max_block_secs`, optional deterministic jitter). After
//!   `failure_reset_secs` without failure (counted from the end of the last block) the streak is
//!   forgotten. Keycloak's brute-force detector parameters map onto [`LockoutConfig`]
//!   ([`LockoutConfig::keycloak`]).
//! - **Ceiling.** `hard_limit` (at most 100, NIST SP 800-63B) consecutive failures lock the key
//!   until [`LockoutEngine::clear`] (password reset or an administrator).
//! - **Lanes.** A [`LockoutKey`] names a namespace (player login, thing code, …), a subject and a
//!   [`Lane`]: attempts carrying a valid [`DeviceCookie`] count in that device's own lane, so an
//!   attacker hammering the account from elsewhere cannot lock out the owner's known device
//!   (OWASP "device cookies").
//! - **Memory.** A keyed 64-bit tag and an 8-byte state per key in an open-addressing table:
//!   about 21 bytes per tracked key, at most `max_keys` keys; when full, the least valuable
//!   entries (forgotten or unblocked ones first) are evicted.
//! - **Batches.** With a million keys every decision is a cache miss on a random slot.
//!   [`LockoutEngine::begin_attempts`] and [`LockoutEngine::statuses`] decide many keys with
//!   the same results as one call each, but start the table loads of [`BATCH_LOOKAHEAD`] keys
//!   together so the misses overlap (about twice the throughput, see docs/BENCHMARKS.md).
//! - **Clock.** Times are [`UnixTime`]s kept at one-second resolution. If the clock steps back
//!   behind the last failure, the block is re-anchored at the new time: a block then lasts its
//!   full length from the step, never less and never forever.

use data_encoding::BASE64URL_NOPAD;
use rand_core::CryptoRngCore;
use ring::hmac;
use serde::{Deserialize, Serialize};

use crate::keys::TagKey;
use crate::table::KeyTable;
use crate::time::{UnixTime, secs_u32};

/// How many keys [`LockoutEngine::begin_attempts`] and [`LockoutEngine::statuses`] look up
/// ahead of deciding them.
pub const BATCH_LOOKAHEAD: usize = 32;

/// NIST SP 800-63B: no more than 100 consecutive failed attempts.
pub const NIST_MAX_CONSECUTIVE_FAILURES: u16 = 100;

/// How blocks grow as failures continue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum BlockGrowth {
    /// base, 2·base, 4·base, … up to the cap.
    Exponential,
    /// base, 2·base, 3·base, … up to the cap (Keycloak's `waitIncrementSeconds`).
    Linear,
}

/// Keycloak's "quick login check": two failures closer than `window_ms` block for `block_secs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuickFailureCheck {
    /// Keycloak `quickLoginCheckMilliSeconds` (rounded to whole seconds, at least 1).
    pub window_ms: u32,
    /// Keycloak `minimumQuickLoginWaitSeconds`.
    pub block_secs: u32,
}

/// Lockout parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockoutConfig {
    /// Consecutive failures before the first block (Keycloak `failureFactor`).
    pub max_failures: u16,
    /// Further failures between blocks once the first block has passed (1: every failure blocks
    /// again; Keycloak behaves like `max_failures`).
    pub failures_per_block: u16,
    /// Length of the first block (Keycloak `waitIncrementSeconds`).
    pub base_block_secs: u32,
    /// How later blocks grow.
    pub growth: BlockGrowth,
    /// Longest block (Keycloak `maxFailureWaitSeconds`).
    pub max_block_secs: u32,
    /// Adds up to this percentage (0 to 100) to each block, derived from the key so it is stable.
    pub jitter_percent: u8,
    /// Quiet time after which the failure streak is forgotten (Keycloak `maxDeltaTimeSeconds`).
    pub failure_reset_secs: u32,
    /// Keycloak's quick-login check, if wanted.
    pub quick_failure: Option<QuickFailureCheck>,
    /// Lock until cleared after this many temporary blocks (Keycloak `permanentLockout` with
    /// `maxTemporaryLockouts`; `Some(0)` locks permanently at the first block).
    pub permanent_after_blocks: Option<u16>,
    /// Consecutive failures that lock until cleared; at most
    /// [`NIST_MAX_CONSECUTIVE_FAILURES`].
    pub hard_limit: u16,
    /// Most keys tracked at once; the table takes about 21 bytes per key.
    pub max_keys: u32,
}

impl LockoutConfig {
    /// The web CMS seed (003, W2): 5 failures block for 1 minute; each further failure blocks
    /// again for 2, 4, 8 … up to 60 minutes; forgotten after 24 quiet hours; locked until
    /// cleared at 100 consecutive failures.
    pub fn web_cms() -> Self {
        Self {
            max_failures: 5,
            failures_per_block: 1,
            base_block_secs: 60,
            growth: BlockGrowth::Exponential,
            max_block_secs: 3600,
            jitter_percent: 0,
            failure_reset_secs: 24 * 3600,
            quick_failure: None,
            permanent_after_blocks: None,
            hard_limit: NIST_MAX_CONSECUTIVE_FAILURES,
            max_keys: 1_000_000,
        }
    }

    /// Keycloak's brute-force detector defaults: failureFactor 30, waitIncrement 60 s,
    /// maxFailureWait 900 s, maxDeltaTime 12 h, quick check 1000 ms / 60 s, linear growth.
    /// The hard limit is 100 (NIST), which Keycloak lacks.
    pub fn keycloak() -> Self {
        Self {
            max_failures: 30,
            failures_per_block: 30,
            base_block_secs: 60,
            growth: BlockGrowth::Linear,
            max_block_secs: 900,
            jitter_percent: 0,
            failure_reset_secs: 12 * 3600,
            quick_failure: Some(QuickFailureCheck {
                window_ms: 1000,
                block_secs: 60,
            }),
            permanent_after_blocks: None,
            hard_limit: NIST_MAX_CONSECUTIVE_FAILURES,
            max_keys: 1_000_000,
        }
    }

    /// Checks the parameters.
    pub fn validate(&self) -> Result<(), LockoutConfigError> {
        if self.max_failures == 0 || self.failures_per_block == 0 {
            return Err(LockoutConfigError::ZeroFailures);
        }
        if self.hard_limit == 0 || self.hard_limit > NIST_MAX_CONSECUTIVE_FAILURES {
            return Err(LockoutConfigError::HardLimit(self.hard_limit));
        }
        if self.jitter_percent > 100 {
            return Err(LockoutConfigError::Jitter(self.jitter_percent));
        }
        if self.max_keys == 0 {
            return Err(LockoutConfigError::ZeroKeys);
        }
        if self.base_block_secs > self.max_block_secs {
            return Err(LockoutConfigError::BaseAboveMax);
        }
        Ok(())
    }
}

/// A [`LockoutConfig`] that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LockoutConfigError {
    /// `max_failures` or `failures_per_block` is zero.
    #[error("max_failures and failures_per_block must be at least 1")]
    ZeroFailures,
    /// `hard_limit` is 0 or above 100.
    #[error("hard_limit {0} must be between 1 and 100 (NIST SP 800-63B)")]
    HardLimit(u16),
    /// `jitter_percent` is above 100.
    #[error("jitter_percent {0} must be at most 100")]
    Jitter(u8),
    /// `max_keys` is zero.
    #[error("max_keys must be at least 1")]
    ZeroKeys,
    /// `base_block_secs` exceeds `max_block_secs`.
    #[error("base_block_secs must not exceed max_block_secs")]
    BaseAboveMax,
}

/// Which counter an attempt belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Lane {
    /// Attempts without a valid device cookie: the account's shared lane.
    Untrusted,
    /// Attempts carrying a valid device cookie for this subject.
    Device(DeviceId),
}

/// What is being guarded: a namespace (such as `"player-login"` or `"thing-code"`), the subject
/// (user name as typed, thing code, …) and the lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LockoutKey<'a> {
    /// Separates independent uses of one engine.
    pub namespace: &'a str,
    /// The account or code, as submitted (unknown accounts are tracked like known ones).
    pub subject: &'a [u8],
    /// The lane.
    pub lane: Lane,
}

impl<'a> LockoutKey<'a> {
    /// The untrusted lane of `subject` in `namespace`.
    pub fn untrusted(namespace: &'a str, subject: &'a [u8]) -> Self {
        Self {
            namespace,
            subject,
            lane: Lane::Untrusted,
        }
    }

    /// The lane of a known device of `subject`.
    pub fn device(namespace: &'a str, subject: &'a [u8], device: DeviceId) -> Self {
        Self {
            namespace,
            subject,
            lane: Lane::Device(device),
        }
    }
}

/// Refusal: the key is blocked (or its budget is taken by attempts in flight). Show the user one
/// generic message; `until` is for logs and for a UI countdown where policy allows one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("too many failed attempts; try again later")]
pub struct Locked {
    /// When attempts will be accepted again; `None` means until cleared.
    pub until: Option<UnixTime>,
}

/// Proof that an attempt was reserved; hand it back to [`LockoutEngine::finish`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptTicket {
    tag: u64,
    /// Consecutive failures counted, including this reserved attempt.
    pub failures: u16,
}

/// How a verified attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The credential was right: refund the reservation and end the streak.
    Success,
    /// The credential was wrong: the reservation stays a failure.
    Failure,
}

/// The state of a key, for display and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LockStatus {
    /// Attempts are accepted; `remaining` more failures before the next block.
    Open {
        /// Failures left before a block.
        remaining: u16,
    },
    /// Attempts are refused.
    Locked(Locked),
}

/// Counters for monitoring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockoutStats {
    /// Keys tracked now.
    pub tracked_keys: u64,
    /// Keys evicted because the table was full.
    pub evictions: u64,
    /// Bytes used by the table.
    pub memory_bytes: u64,
}

/// One key's lockout state. A [`LockoutEngine`] keeps one per key in its table; a caller that
/// keeps each key's state itself instead — a row per key in a database shared by several
/// servers, changed under a row lock, so that parallel attempts on different servers still
/// reserve one after another — applies the same transitions with [`LockoutConfig::reserve`],
/// [`LockoutConfig::settle`], [`LockoutConfig::state_status`] and
/// [`LockoutConfig::state_failures`]. The engine uses exactly those functions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyState {
    /// Seconds since the epoch of the last counted failure (start of the current block).
    last: u32,
    /// Consecutive failures, including reservations in flight.
    failures: u16,
    /// Bit 0: the last failure came within the quick-failure window.
    flags: u8,
}

const QUICK: u8 = 1;

impl KeyState {
    /// A state from its stored parts (any values are safe: every transition normalizes).
    pub fn from_parts(last_secs: u32, failures: u16, flags: u8) -> Self {
        Self {
            last: last_secs,
            failures,
            flags,
        }
    }

    /// Seconds since the epoch of the last counted failure (start of the current block).
    pub fn last_secs(&self) -> u32 {
        self.last
    }

    /// Consecutive failures, including reservations in flight.
    pub fn failures(&self) -> u16 {
        self.failures
    }

    /// Internal flags (the quick-failure bit); store them with the state.
    pub fn flags(&self) -> u8 {
        self.flags
    }
}

impl LockoutConfig {
    /// Reserves an attempt on one key's state: refuses with [`Locked`] while the key is blocked
    /// (nothing counted) or counts a failure up front and returns the consecutive failures,
    /// this attempt included. `seed` is any stable 64-bit value of the key (the block jitter is
    /// derived from it; the engine passes its tag). The state is normalized in place either way
    /// (a forgotten streak is cleared, a backward clock step re-anchored): store it back.
    pub fn reserve(&self, state: &mut KeyState, seed: u64, now: UnixTime) -> Result<u16, Locked> {
        let now_s = secs_u32(now);
        normalize(self, state, now_s);
        if let Some(locked) = blocked(self, *state, seed, now_s) {
            return Err(locked);
        }
        let prev = *state;
        state.failures = state.failures.saturating_add(1);
        state.last = now_s;
        state.flags &= !QUICK;
        if let Some(q) = self.quick_failure {
            let window = q.window_ms.div_ceil(1000).max(1);
            if prev.failures > 0 && now_s.saturating_sub(prev.last) < window {
                state.flags |= QUICK;
            }
        }
        Ok(state.failures)
    }

    /// Finishes a reserved attempt on one key's state: `None` means the key's entry goes (a
    /// success ends the streak), `Some` is the state to store (a failure keeps its count).
    pub fn settle(&self, state: KeyState, outcome: Outcome, now: UnixTime) -> Option<KeyState> {
        match outcome {
            Outcome::Success => None,
            Outcome::Failure => Some(KeyState {
                last: state.last.max(secs_u32(now)),
                ..state
            }),
        }
    }

    /// The status of one key's state, without counting anything (`seed` as for
    /// [`Self::reserve`]).
    pub fn state_status(&self, state: KeyState, seed: u64, now: UnixTime) -> LockStatus {
        let now_s = secs_u32(now);
        let mut s = state;
        normalize(self, &mut s, now_s);
        match blocked(self, s, seed, now_s) {
            Some(l) => LockStatus::Locked(l),
            None => LockStatus::Open {
                remaining: remaining(self, s.failures),
            },
        }
    }

    /// Consecutive failures counted in one key's state at `now`.
    pub fn state_failures(&self, state: KeyState, now: UnixTime) -> u16 {
        let mut s = state;
        normalize(self, &mut s, secs_u32(now));
        s.failures
    }

    /// Whether one key's state is forgotten by `now` (its entry may be dropped).
    pub fn forgets(&self, state: KeyState, now: UnixTime) -> bool {
        forgotten(self, state, secs_u32(now))
    }
}

/// The lockout engine. Serializable: persist it and load it after a restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockoutEngine {
    config: LockoutConfig,
    key: TagKey,
    table: KeyTable<KeyState>,
}

impl LockoutEngine {
    /// A new engine; `secret` keys the hash of lockout keys (draw it from a CSPRNG and keep it
    /// with the state).
    pub fn new(config: LockoutConfig, secret: [u8; 16]) -> Result<Self, LockoutConfigError> {
        config.validate()?;
        let table = KeyTable::new(config.max_keys);
        Ok(Self {
            config,
            key: TagKey(secret),
            table,
        })
    }

    /// A new engine with a secret drawn from `rng`.
    pub fn generate(
        config: LockoutConfig,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Self, LockoutConfigError> {
        let mut secret = [0u8; 16];
        rng.fill_bytes(&mut secret);
        Self::new(config, secret)
    }

    /// The configuration.
    pub fn config(&self) -> &LockoutConfig {
        &self.config
    }

    /// Reserves an attempt: refuses with [`Locked`] (nothing counted) or counts a failure up
    /// front and returns the ticket to finish after verification.
    pub fn begin_attempt(
        &mut self,
        key: &LockoutKey<'_>,
        now: UnixTime,
    ) -> Result<AttemptTicket, Locked> {
        let tag = self.tag(key);
        self.begin_tag(tag, now)
    }

    /// [`Self::begin_attempt`] for each key in order, appending one result per key to `out`:
    /// exactly the results of one call per key (a key repeated in the batch counts twice).
    ///
    /// Faster on large tables: the table lookups of up to [`BATCH_LOOKAHEAD`] keys are
    /// started together, so their cache misses overlap instead of following one another. Use
    /// it where attempts queue up (a login front end draining its request queue).
    pub fn begin_attempts(
        &mut self,
        keys: &[LockoutKey<'_>],
        now: UnixTime,
        out: &mut Vec<Result<AttemptTicket, Locked>>,
    ) {
        out.reserve(keys.len());
        let mut tags = [0u64; BATCH_LOOKAHEAD];
        for group in keys.chunks(BATCH_LOOKAHEAD) {
            let tags = &mut tags[..group.len()];
            self.prefetch(group, tags);
            for &tag in &*tags {
                out.push(self.begin_tag(tag, now));
            }
        }
    }

    /// [`Self::status`] for each key in order, appending one status per key to `out`, with the
    /// overlapped lookups of [`Self::begin_attempts`].
    pub fn statuses(&self, keys: &[LockoutKey<'_>], now: UnixTime, out: &mut Vec<LockStatus>) {
        out.reserve(keys.len());
        let mut tags = [0u64; BATCH_LOOKAHEAD];
        for group in keys.chunks(BATCH_LOOKAHEAD) {
            let tags = &mut tags[..group.len()];
            self.prefetch(group, tags);
            out.extend(tags.iter().map(|&tag| self.status_tag(tag, now)));
        }
    }

    /// Computes the tags of `keys` into `tags` and starts loading their table slots.
    fn prefetch(&self, keys: &[LockoutKey<'_>], tags: &mut [u64]) {
        for (tag, key) in tags.iter_mut().zip(keys) {
            *tag = self.tag(key);
        }
        // Separately, so that all the loads fit in the out-of-order window at once.
        for &tag in &*tags {
            self.table.prefetch(tag);
        }
    }

    /// Finishes a reserved attempt. A ticket whose key was cleared or evicted meanwhile is
    /// ignored.
    pub fn finish(&mut self, ticket: AttemptTicket, outcome: Outcome, now: UnixTime) {
        let Some(idx) = self.table.find(ticket.tag) else {
            return;
        };
        match self.config.settle(self.table.get(idx), outcome, now) {
            None => self.table.remove(idx),
            Some(s) => self.table.set(idx, s),
        }
    }

    /// The status of a key, without counting anything.
    pub fn status(&self, key: &LockoutKey<'_>, now: UnixTime) -> LockStatus {
        let tag = self.tag(key);
        self.status_tag(tag, now)
    }

    /// Consecutive failures counted for a key at `now` (for example to demand a CAPTCHA).
    pub fn failures(&self, key: &LockoutKey<'_>, now: UnixTime) -> u16 {
        let tag = self.tag(key);
        match self.table.find(tag) {
            Some(i) => self.config.state_failures(self.table.get(i), now),
            None => 0,
        }
    }

    /// Forgets a key's failures and blocks (completed password reset, administrator unlock).
    pub fn clear(&mut self, key: &LockoutKey<'_>) {
        let tag = self.tag(key);
        if let Some(idx) = self.table.find(tag) {
            self.table.remove(idx);
        }
    }

    /// Drops every entry whose streak is forgotten by `now` (smaller snapshots).
    pub fn purge(&mut self, now: UnixTime) {
        let cfg = self.config.clone();
        self.table.retain(|s| !cfg.forgets(*s, now));
    }

    /// Monitoring counters.
    pub fn stats(&self) -> LockoutStats {
        LockoutStats {
            tracked_keys: self.table.len() as u64,
            evictions: self.table.evictions(),
            memory_bytes: self.table.memory_bytes() as u64,
        }
    }

    /// The seed this engine passes to [`LockoutConfig::reserve`] for `key` (its keyed tag), for
    /// comparing the engine with states kept outside it.
    pub fn key_seed(&self, key: &LockoutKey<'_>) -> u64 {
        self.tag(key)
    }

    #[doc(hidden)]
    /// The tag of a raw 8-byte subject in namespace `""`, untrusted lane (benchmarks).
    pub fn bench_tag(&self, subject: u64) -> u64 {
        self.tag(&LockoutKey::untrusted("", &subject.to_le_bytes()))
    }

    #[doc(hidden)]
    /// [`Self::begin_attempt`] by precomputed tag (benchmarks).
    pub fn begin_tag(&mut self, tag: u64, now: UnixTime) -> Result<AttemptTicket, Locked> {
        let (idx, mut s) = match self.table.find(tag) {
            Some(i) => (Some(i), self.table.get(i)),
            None => (None, KeyState::default()),
        };
        match self.config.reserve(&mut s, tag, now) {
            Err(locked) => {
                if let Some(i) = idx {
                    self.table.set(i, s);
                }
                Err(locked)
            }
            Ok(failures) => {
                if let Some(i) = idx {
                    self.table.set(i, s);
                } else {
                    let cfg = self.config.clone();
                    let now_s = secs_u32(now);
                    self.table.insert(tag, s, |e| value(&cfg, *e, now_s));
                }
                Ok(AttemptTicket { tag, failures })
            }
        }
    }

    #[doc(hidden)]
    /// [`Self::status`] by precomputed tag (benchmarks).
    pub fn status_tag(&self, tag: u64, now: UnixTime) -> LockStatus {
        let s = match self.table.find(tag) {
            Some(i) => self.table.get(i),
            None => KeyState::default(),
        };
        self.config.state_status(s, tag, now)
    }

    fn tag(&self, key: &LockoutKey<'_>) -> u64 {
        match key.lane {
            Lane::Untrusted => self.key.tag(&[key.namespace.as_bytes(), key.subject]),
            Lane::Device(d) => self.key.tag(&[key.namespace.as_bytes(), key.subject, &d.0]),
        }
    }
}

/// Re-anchors a state after a backward clock step and forgets an old streak.
fn normalize(cfg: &LockoutConfig, s: &mut KeyState, now: u32) {
    if s.failures == 0 {
        return;
    }
    if now < s.last {
        s.last = now;
    }
    if forgotten(cfg, *s, now) {
        *s = KeyState::default();
    }
}

fn forgotten(cfg: &LockoutConfig, s: KeyState, now: u32) -> bool {
    if s.failures == 0 {
        return true;
    }
    if permanent(cfg, s.failures) {
        return false;
    }
    let quiet_from = u64::from(s.last) + u64::from(block_secs_max(cfg, s.failures));
    u64::from(now) >= quiet_from + u64::from(cfg.failure_reset_secs)
}

/// Failures left before the next block.
fn remaining(cfg: &LockoutConfig, failures: u16) -> u16 {
    let to_hard = cfg.hard_limit.saturating_sub(failures);
    let to_block = if failures < cfg.max_failures {
        cfg.max_failures - failures
    } else {
        let past = failures - cfg.max_failures;
        cfg.failures_per_block - past % cfg.failures_per_block
    };
    to_block.min(to_hard)
}

/// Number of blocks a streak of `failures` has triggered.
fn blocks_reached(cfg: &LockoutConfig, failures: u16) -> u32 {
    if failures < cfg.max_failures {
        0
    } else {
        u32::from((failures - cfg.max_failures) / cfg.failures_per_block) + 1
    }
}

fn permanent(cfg: &LockoutConfig, failures: u16) -> bool {
    failures >= cfg.hard_limit
        || cfg
            .permanent_after_blocks
            .is_some_and(|k| blocks_reached(cfg, failures) > u32::from(k))
}

fn block_len(cfg: &LockoutConfig, level: u32) -> u32 {
    if level == 0 {
        return 0;
    }
    let base = u64::from(cfg.base_block_secs);
    let len = match cfg.growth {
        BlockGrowth::Exponential => base.saturating_mul(1u64 << (level - 1).min(40)),
        BlockGrowth::Linear => base.saturating_mul(u64::from(level)),
    };
    u32::try_from(len.min(u64::from(cfg.max_block_secs))).unwrap_or(u32::MAX)
}

/// The longest block the streak may be serving (for the forget rule).
fn block_secs_max(cfg: &LockoutConfig, failures: u16) -> u32 {
    let level = blocks_reached(cfg, failures);
    let jittered = u64::from(block_len(cfg, level)) * (100 + u64::from(cfg.jitter_percent)) / 100;
    let quick = cfg.quick_failure.map_or(0, |q| q.block_secs);
    u32::try_from(jittered).unwrap_or(u32::MAX).max(quick)
}

fn jitter(cfg: &LockoutConfig, tag: u64, failures: u16, len: u32) -> u32 {
    if cfg.jitter_percent == 0 || len == 0 {
        return 0;
    }
    let max = u64::from(len) * u64::from(cfg.jitter_percent) / 100;
    let mix = (tag ^ u64::from(failures).wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_mul(0xBF58_476D_1CE4_E5B9);
    u32::try_from((mix >> 32) % (max + 1)).unwrap_or(0)
}

/// Whether the state refuses attempts at `now`.
fn blocked(cfg: &LockoutConfig, s: KeyState, tag: u64, now: u32) -> Option<Locked> {
    let f = s.failures;
    if f == 0 {
        return None;
    }
    if permanent(cfg, f) {
        return Some(Locked { until: None });
    }
    let mut until = 0u64;
    if f >= cfg.max_failures && (f - cfg.max_failures) % cfg.failures_per_block == 0 {
        let len = block_len(cfg, blocks_reached(cfg, f));
        until = u64::from(s.last) + u64::from(len) + u64::from(jitter(cfg, tag, f, len));
    }
    if s.flags & QUICK != 0 {
        if let Some(q) = cfg.quick_failure {
            until = until.max(u64::from(s.last) + u64::from(q.block_secs));
        }
    }
    (u64::from(now) < until).then(|| Locked {
        until: Some(UnixTime::from_secs(until)),
    })
}

/// Eviction score: lower is evicted first.
fn value(cfg: &LockoutConfig, s: KeyState, now: u32) -> u64 {
    if forgotten(cfg, s, now) {
        0
    } else if permanent(cfg, s.failures) {
        u64::MAX
    } else if blocked(cfg, s, 0, now).is_some() {
        1 << 40 | u64::from(s.failures)
    } else {
        1 + u64::from(s.failures)
    }
}

/// Identifies a known device of one subject (the random part of its [`DeviceCookie`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DeviceId(pub [u8; 16]);

/// OWASP device cookies: after a successful login the server issues a cookie bound to the
/// subject; attempts that present it count in the device's own [`Lane`].
///
/// Format: `dc1.` + base64url(nonce, 16 bytes) + `.` + base64url(HMAC-SHA-256(secret,
/// "fleetwire-device-cookie" ‖ len(subject) ‖ subject ‖ nonce)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceCookie;

impl DeviceCookie {
    /// Issues a cookie for `subject` after a successful login.
    pub fn issue(secret: &[u8], subject: &[u8], rng: &mut impl CryptoRngCore) -> String {
        let mut nonce = [0u8; 16];
        rng.fill_bytes(&mut nonce);
        let tag = Self::mac(secret, subject, &nonce);
        format!(
            "dc1.{}.{}",
            BASE64URL_NOPAD.encode(&nonce),
            BASE64URL_NOPAD.encode(tag.as_ref())
        )
    }

    /// The device of a valid cookie for `subject`, or `None` (treat the attempt as untrusted).
    pub fn verify(secret: &[u8], subject: &[u8], cookie: &str) -> Option<DeviceId> {
        if cookie.len() > 128 {
            return None;
        }
        let rest = cookie.strip_prefix("dc1.")?;
        let (n, m) = rest.split_once('.')?;
        let nonce: [u8; 16] = BASE64URL_NOPAD.decode(n.as_bytes()).ok()?.try_into().ok()?;
        let mac = BASE64URL_NOPAD.decode(m.as_bytes()).ok()?;
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
        hmac::verify(&key, &Self::message(subject, &nonce), &mac).ok()?;
        Some(DeviceId(nonce))
    }

    fn mac(secret: &[u8], subject: &[u8], nonce: &[u8; 16]) -> hmac::Tag {
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
        hmac::sign(&key, &Self::message(subject, nonce))
    }

    fn message(subject: &[u8], nonce: &[u8; 16]) -> Vec<u8> {
        let mut m = b"fleetwire-device-cookie".to_vec();
        m.extend_from_slice(&(subject.len() as u64).to_be_bytes());
        m.extend_from_slice(subject);
        m.extend_from_slice(nonce);
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: &str = "login";

    fn engine(cfg: LockoutConfig) -> LockoutEngine {
        LockoutEngine::new(cfg, [9; 16]).unwrap()
    }

    fn fail(e: &mut LockoutEngine, who: &[u8], t: UnixTime) -> Result<u16, Locked> {
        let k = LockoutKey::untrusted(NS, who);
        let ticket = e.begin_attempt(&k, t)?;
        e.finish(ticket, Outcome::Failure, t);
        Ok(ticket.failures)
    }

    #[test]
    fn blocks_after_max_failures_then_doubles() {
        let mut e = engine(LockoutConfig::web_cms());
        let t0 = UnixTime::from_secs(1_000_000);
        for i in 1..=5 {
            assert_eq!(fail(&mut e, b"alice", t0), Ok(i));
        }
        let locked = fail(&mut e, b"alice", t0).unwrap_err();
        assert_eq!(locked.until, Some(t0.plus_secs(60)));
        // After the block, one more failure blocks for 2 minutes, then 4.
        let t1 = t0.plus_secs(60);
        assert_eq!(fail(&mut e, b"alice", t1), Ok(6));
        assert_eq!(
            fail(&mut e, b"alice", t1).unwrap_err().until,
            Some(t1.plus_secs(120))
        );
        let t2 = t1.plus_secs(120);
        assert_eq!(fail(&mut e, b"alice", t2), Ok(7));
        assert_eq!(
            fail(&mut e, b"alice", t2).unwrap_err().until,
            Some(t2.plus_secs(240))
        );
        // Other accounts are unaffected.
        assert_eq!(fail(&mut e, b"bob", t2), Ok(1));
    }

    #[test]
    fn success_refunds_and_resets() {
        let mut e = engine(LockoutConfig::web_cms());
        let t = UnixTime::from_secs(5000);
        for _ in 0..4 {
            fail(&mut e, b"a", t).unwrap();
        }
        let k = LockoutKey::untrusted(NS, b"a");
        let ticket = e.begin_attempt(&k, t).unwrap();
        e.finish(ticket, Outcome::Success, t);
        assert_eq!(e.status(&k, t), LockStatus::Open { remaining: 5 });
        assert_eq!(e.stats().tracked_keys, 0);
    }

    #[test]
    fn clock_stepping_back_never_locks_forever() {
        let mut e = engine(LockoutConfig::web_cms());
        let t0 = UnixTime::from_secs(10_000_000);
        for _ in 0..5 {
            fail(&mut e, b"a", t0).unwrap();
        }
        let k = LockoutKey::untrusted(NS, b"a");
        // The clock steps back a day: still locked, but only for one block length from now.
        let back = UnixTime::from_secs(10_000_000 - 86_400);
        let locked = e.begin_attempt(&k, back).unwrap_err();
        assert_eq!(locked.until, Some(back.plus_secs(60)));
        assert!(e.begin_attempt(&k, back.plus_secs(60)).is_ok());
    }

    #[test]
    fn hard_limit_locks_until_cleared() {
        let mut cfg = LockoutConfig::web_cms();
        cfg.hard_limit = 7;
        let mut e = engine(cfg);
        let mut t = UnixTime::from_secs(1);
        for _ in 0..7 {
            loop {
                match fail(&mut e, b"a", t) {
                    Ok(_) => break,
                    Err(l) => t = l.until.unwrap(),
                }
            }
        }
        let k = LockoutKey::untrusted(NS, b"a");
        assert_eq!(
            e.begin_attempt(&k, t.plus_secs(10_000_000)),
            Err(Locked { until: None })
        );
        e.clear(&k);
        assert!(e.begin_attempt(&k, t).is_ok());
    }

    #[test]
    fn keycloak_quick_failure() {
        let mut e = engine(LockoutConfig::keycloak());
        let t = UnixTime::from_secs(100);
        fail(&mut e, b"a", t).unwrap();
        fail(&mut e, b"a", t).unwrap();
        let l = fail(&mut e, b"a", t).unwrap_err();
        assert_eq!(l.until, Some(t.plus_secs(60)));
    }

    #[test]
    fn device_cookie_round_trip() {
        let mut rng = rand_chacha::ChaCha20Rng::from_seed_for_tests();
        let c = DeviceCookie::issue(b"secret", b"alice", &mut rng);
        let id = DeviceCookie::verify(b"secret", b"alice", &c).unwrap();
        assert_eq!(DeviceCookie::verify(b"secret", b"bob", &c), None);
        assert_eq!(DeviceCookie::verify(b"other", b"alice", &c), None);
        assert_eq!(DeviceCookie::verify(b"secret", b"alice", "dc1.x.y"), None);
        let mut e = engine(LockoutConfig::web_cms());
        let t = UnixTime::from_secs(7);
        while fail(&mut e, b"alice", t).is_ok() {}
        let device = LockoutKey::device(NS, b"alice", id);
        assert!(e.begin_attempt(&device, t).is_ok());
    }

    #[test]
    fn one_key_state_kept_elsewhere_decides_as_the_engine() {
        let mut cfg = LockoutConfig::web_cms();
        cfg.max_failures = 3;
        cfg.jitter_percent = 30;
        let mut e = engine(cfg.clone());
        let k = LockoutKey::untrusted(NS, b"alice");
        let seed = e.tag(&k);
        let mut row = KeyState::default();
        let mut t = UnixTime::from_secs(1_000_000);
        for i in 0..40u64 {
            let engine = e.begin_attempt(&k, t);
            let outside = cfg.reserve(&mut row, seed, t);
            assert_eq!(engine.map(|ticket| ticket.failures), outside, "attempt {i}");
            if let Ok(ticket) = engine {
                let outcome = if i % 11 == 10 {
                    Outcome::Success
                } else {
                    Outcome::Failure
                };
                e.finish(ticket, outcome, t);
                row = cfg.settle(row, outcome, t).unwrap_or_default();
            }
            assert_eq!(e.status(&k, t), cfg.state_status(row, seed, t));
            assert_eq!(e.failures(&k, t), cfg.state_failures(row, t));
            t = t.plus_secs(if i % 3 == 0 { 400 } else { 1 });
        }
        let (last, failures, flags) = (row.last_secs(), row.failures(), row.flags());
        assert_eq!(KeyState::from_parts(last, failures, flags), row);
        assert!(cfg.forgets(row, t.plus_secs(10 * 24 * 3600)));
    }

    trait SeedForTests {
        fn from_seed_for_tests() -> Self;
    }
    impl SeedForTests for rand_chacha::ChaCha20Rng {
        fn from_seed_for_tests() -> Self {
            use rand_core::SeedableRng;
            Self::seed_from_u64(7)
        }
    }
}
