//! GCRA throttles: one per source (IP address, network, API key) and one global, against
//! credential stuffing and code scanning that spread over many accounts.
//!
//! The generic cell rate algorithm keeps one "theoretical arrival time" (TAT) per key: 16 bytes
//! per source in the same compact table as the lockout engine. A source is refused while its TAT
//! is more than the burst tolerance ahead of `now`. A clock that steps back never buys requests;
//! the wait a refusal reports is capped at one interval, but a source that had spent its burst
//! stays refused until the clock is back where its TAT allows it (see [`fleetwire_core::gcra`]).
//!
//! The step itself is the suite's one GCRA, [`fleetwire_core::gcra`]; [`Rate`] is
//! `fleetwire_core::Rate`, re-exported here (same fields, same serde form as before).

pub use fleetwire_core::Rate;
use fleetwire_core::gcra;
use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};

use crate::keys::TagKey;
use crate::table::KeyTable;
use crate::time::UnixTime;

/// Throttle parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThrottleConfig {
    /// Limit per source.
    pub per_source: Rate,
    /// Limit over all sources together.
    pub global: Rate,
    /// Most sources tracked at once (about 21 bytes each).
    pub max_sources: u32,
}

impl Default for ThrottleConfig {
    /// 10 attempts at once then 1 per 6 s per source; 1000 at once then 100 per second overall.
    fn default() -> Self {
        Self {
            per_source: Rate {
                burst: 10,
                per_period: 10,
                period_ms: 60_000,
            },
            global: Rate {
                burst: 1000,
                per_period: 100,
                period_ms: 1000,
            },
            max_sources: 1_000_000,
        }
    }
}

impl ThrottleConfig {
    /// One decision on state kept elsewhere (rows in a database shared by several servers,
    /// changed under a row lock): the source's and the global theoretical arrival times in
    /// microseconds (0 for a source not seen yet) become the returned pair, or the request is
    /// refused and nothing changes. [`Throttle::check`] decides with exactly this.
    pub fn admit(
        &self,
        source_tat_us: u64,
        global_tat_us: u64,
        now: UnixTime,
    ) -> Result<(u64, u64), Throttled> {
        let now_us = now.as_millis().saturating_mul(1000);
        let source = gcra(self.per_source, source_tat_us, now_us).map_err(|wait| Throttled {
            scope: ThrottleScope::Source,
            retry_after_ms: wait.div_ceil(1000),
        })?;
        let global = gcra(self.global, global_tat_us, now_us).map_err(|wait| Throttled {
            scope: ThrottleScope::Global,
            retry_after_ms: wait.div_ceil(1000),
        })?;
        Ok((source, global))
    }
}

/// Which limit refused the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ThrottleScope {
    /// The source's own limit.
    Source,
    /// The limit over all sources.
    Global,
}

/// A refused request: retry after `retry_after_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("too many requests; retry in {retry_after_ms} ms")]
pub struct Throttled {
    /// The limit that refused.
    pub scope: ThrottleScope,
    /// Milliseconds until a request from this source can pass.
    pub retry_after_ms: u64,
}

/// A per-source and a global GCRA throttle. Serializable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Throttle {
    config: ThrottleConfig,
    key: TagKey,
    sources: KeyTable<u64>,
    global_tat_us: u64,
}

impl Throttle {
    /// A new throttle; `secret` keys the hash of source keys.
    pub fn new(config: ThrottleConfig, secret: [u8; 16]) -> Self {
        Self {
            config,
            key: TagKey(secret),
            sources: KeyTable::new(config.max_sources),
            global_tat_us: 0,
        }
    }

    /// A new throttle with a secret drawn from `rng`.
    pub fn generate(config: ThrottleConfig, rng: &mut impl CryptoRngCore) -> Self {
        let mut secret = [0u8; 16];
        rng.fill_bytes(&mut secret);
        Self::new(config, secret)
    }

    /// Admits or refuses one request from `source` in `namespace`. A refusal consumes nothing.
    pub fn check(
        &mut self,
        namespace: &str,
        source: &[u8],
        now: UnixTime,
    ) -> Result<(), Throttled> {
        let tag = self.key.tag(&[namespace.as_bytes(), source]);
        let idx = self.sources.find(tag);
        let src_tat = idx.map_or(0, |i| self.sources.get(i));
        let (new_src, new_global) = self.config.admit(src_tat, self.global_tat_us, now)?;
        self.global_tat_us = new_global;
        match idx {
            Some(i) => self.sources.set(i, new_src),
            None => {
                self.sources.insert(tag, new_src, |tat| *tat);
            }
        }
        Ok(())
    }

    /// Drops sources whose limit has fully refilled by `now`.
    pub fn purge(&mut self, now: UnixTime) {
        let now_us = now.as_millis().saturating_mul(1000);
        self.sources.retain(|tat| *tat > now_us);
    }

    /// Sources tracked now.
    pub fn tracked_sources(&self) -> usize {
        self.sources.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(burst: u32, global_burst: u32) -> ThrottleConfig {
        ThrottleConfig {
            per_source: Rate {
                burst,
                per_period: 1,
                period_ms: 1000,
            },
            global: Rate {
                burst: global_burst,
                per_period: 1,
                period_ms: 100,
            },
            max_sources: 100,
        }
    }

    #[test]
    fn burst_then_refill() {
        let mut th = Throttle::new(cfg(3, 1000), [1; 16]);
        let t = UnixTime::from_secs(1000);
        for _ in 0..3 {
            th.check("login", b"1.2.3.4", t).unwrap();
        }
        let e = th.check("login", b"1.2.3.4", t).unwrap_err();
        assert_eq!(e.scope, ThrottleScope::Source);
        assert_eq!(e.retry_after_ms, 1000);
        th.check("login", b"5.6.7.8", t).unwrap();
        th.check("login", b"1.2.3.4", t.plus_millis(1000)).unwrap();
    }

    #[test]
    fn global_limit_spans_sources() {
        let mut th = Throttle::new(cfg(100, 5), [1; 16]);
        let t = UnixTime::from_secs(1000);
        for i in 0..5u8 {
            th.check("code", &[i], t).unwrap();
        }
        assert_eq!(
            th.check("code", &[99], t).unwrap_err().scope,
            ThrottleScope::Global
        );
    }

    #[test]
    fn admit_on_state_kept_elsewhere_decides_as_the_throttle() {
        let config = cfg(3, 5);
        let mut th = Throttle::new(config, [1; 16]);
        let (mut src, mut global) = (0, 0);
        let t = UnixTime::from_secs(1000);
        for i in 0..8u64 {
            let now = t.plus_millis(i * 300);
            let outside = config.admit(src, global, now);
            assert_eq!(th.check("n", b"s", now), outside.map(|_| ()), "request {i}");
            if let Ok((s, g)) = outside {
                (src, global) = (s, g);
            }
        }
    }

    #[test]
    fn clock_step_back_bounded() {
        let mut th = Throttle::new(cfg(2, 1000), [1; 16]);
        let t = UnixTime::from_secs(1_000_000);
        th.check("x", b"s", t).unwrap();
        th.check("x", b"s", t).unwrap();
        let back = UnixTime::from_secs(1_000_000 - 86_400);
        let e = th.check("x", b"s", back).unwrap_err();
        assert!(e.retry_after_ms <= 2000, "{e:?}");
    }
}
