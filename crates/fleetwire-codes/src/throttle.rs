//! Throttling code guesses per source.

use std::collections::HashMap;

use fleetwire_core::{Rate, gcra};
use thiserror::Error;

use crate::UnixTime;

/// A source may not try a code now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Throttled {
    /// This source failed too often; it may try again after `retry_after_ms`.
    #[error("too many wrong codes: try again in {} s", retry_after_ms.div_ceil(1000))]
    TooManyAttempts {
        /// Milliseconds until the next attempt is allowed.
        retry_after_ms: u64,
    },
    /// This source failed so often that it stays locked out until an operator clears it.
    #[error("too many wrong codes: this source is locked out until an administrator clears it")]
    LockedOut,
    /// The guard tracks as many sources as it may and none is idle: new sources are refused
    /// until some go idle (fail closed, so that spraying sources cannot buy guesses).
    #[error("too many sources are guessing codes right now: try again in {} s", retry_after_ms.div_ceil(1000))]
    Saturated {
        /// Milliseconds until the guard next looks for idle sources.
        retry_after_ms: u64,
    },
}

/// Decides whether a source (an IP address, an account, a device: the host picks the key) may
/// try a code, reserve-before-verify: [`begin`](Self::begin) counts the attempt as a wrong code
/// up front, and [`finish`](Self::finish) refunds it if the code matched a thing. So attempts
/// running in parallel cannot overrun the budget, and a crash between the two calls errs on the
/// side of counting.
///
/// The order for one attempt: [`CodeSpec::parse`](crate::CodeSpec::parse) first (a typo costs
/// nothing), then `begin`, then the lookup, then `finish`. [`GcraGuard`] implements it in this
/// crate; [`LockoutGuard`] (feature `lockout`, on by default) puts the accounts crate's lockout
/// engine (growing blocks, hard limit) behind it.
pub trait AttemptGuard {
    /// Proof of a reserved attempt, handed back to [`finish`](Self::finish).
    type Ticket;
    /// Reserves an attempt for `source` at `now`, or refuses it (then nothing is counted).
    fn begin(&mut self, source: &str, now: UnixTime) -> Result<Self::Ticket, Throttled>;
    /// Finishes a reserved attempt: `found` if the code matched a thing (the reservation is
    /// refunded), otherwise it stays counted.
    fn finish(&mut self, ticket: Self::Ticket, found: bool, now: UnixTime);
}

/// A Generic Cell Rate Algorithm limit on wrong codes per source: a burst of `burst`, then one
/// per `period_ms`. Memory is bounded by `max_sources`; when full, idle sources are forgotten
/// (they are indistinguishable from new ones), and if none is idle new sources are refused
/// ([`Throttled::Saturated`]).
///
/// Each source keeps one number, its theoretical arrival time `tat`: an attempt is allowed while
/// `tat − now ≤ (burst − 1)·period`, and reserving it sets `tat = max(tat, now) + period`; a found
/// code takes its own period back, but not those of earlier wrong codes. The step is the suite's
/// one GCRA ([`fleetwire_core::gcra`], the same as the accounts crate's throttle): a clock
/// stepping backwards only delays the next allowed attempt, and never by more than one burst's
/// refill time.
#[derive(Debug, Clone)]
pub struct GcraGuard {
    rate: Rate,
    period_ms: u64,
    max_sources: usize,
    /// Per source, the theoretical arrival time in microseconds (the unit of [`gcra`]).
    tat: HashMap<String, u64>,
    /// No sweep for idle sources before this time (ms) after a sweep found none.
    next_sweep: u64,
}

/// A reserved attempt of a [`GcraGuard`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcraTicket {
    source: String,
}

impl GcraGuard {
    /// Allows `burst` wrong codes at once (at least 1), then one per `period_ms` (at least 1),
    /// for up to `max_sources` sources (at least 1).
    pub fn new(burst: u32, period_ms: u64, max_sources: usize) -> Self {
        let period_ms = period_ms.max(1);
        Self {
            rate: Rate {
                burst: burst.max(1),
                per_period: 1,
                period_ms,
            },
            period_ms,
            max_sources: max_sources.max(1),
            tat: HashMap::new(),
            next_sweep: 0,
        }
    }

    /// Sources currently tracked.
    pub fn tracked_sources(&self) -> usize {
        self.tat.len()
    }

    fn admit_new_source(&mut self, now_ms: u64) -> Result<(), Throttled> {
        if self.tat.len() < self.max_sources {
            return Ok(());
        }
        if now_ms >= self.next_sweep {
            let now_us = micros(now_ms);
            self.tat.retain(|_, &mut tat| tat > now_us);
            if self.tat.len() < self.max_sources {
                return Ok(());
            }
            self.next_sweep = now_ms.saturating_add(self.period_ms);
        }
        Err(Throttled::Saturated {
            retry_after_ms: self.next_sweep.saturating_sub(now_ms).max(1),
        })
    }
}

fn micros(ms: u64) -> u64 {
    ms.saturating_mul(1000)
}

impl AttemptGuard for GcraGuard {
    type Ticket = GcraTicket;

    fn begin(&mut self, source: &str, now: UnixTime) -> Result<GcraTicket, Throttled> {
        let now_ms = now.as_millis();
        let now_us = micros(now_ms);
        let known = self.tat.get(source).copied();
        if known.is_none() {
            self.admit_new_source(now_ms)?;
        }
        let tat = gcra(self.rate, known.unwrap_or(0), now_us).map_err(|wait_us| {
            Throttled::TooManyAttempts {
                retry_after_ms: wait_us.div_ceil(1000),
            }
        })?;
        match self.tat.get_mut(source) {
            Some(t) => *t = tat,
            None => {
                self.tat.insert(source.to_owned(), tat);
            }
        }
        Ok(GcraTicket {
            source: source.to_owned(),
        })
    }

    fn finish(&mut self, ticket: GcraTicket, found: bool, _now: UnixTime) {
        if found {
            if let Some(tat) = self.tat.get_mut(&ticket.source) {
                *tat = tat.saturating_sub(self.rate.interval_us());
            }
        }
    }
}

/// The accounts crate's lockout engine as an [`AttemptGuard`]: each source is a key
/// `(namespace, source)` on the engine's untrusted lane, so wrong codes block a source for
/// growing periods up to a hard limit that locks it until cleared
/// ([`fleetwire_auth::lockout::LockoutEngine::clear`]). A found code ends the source's streak
/// (the engine's success rule); finding a code at all is what the throttle makes rare.
#[cfg(feature = "lockout")]
#[derive(Debug, Clone)]
pub struct LockoutGuard {
    engine: fleetwire_auth::lockout::LockoutEngine,
    namespace: String,
}

#[cfg(feature = "lockout")]
impl LockoutGuard {
    /// Guards code attempts with `engine`, under `namespace` (e.g. `"thing-code"`), which keeps
    /// them apart from other uses of the same engine.
    pub fn new(engine: fleetwire_auth::lockout::LockoutEngine, namespace: &str) -> Self {
        Self {
            engine,
            namespace: namespace.to_owned(),
        }
    }

    /// The engine (to persist it, read its stats or clear a source).
    pub fn engine_mut(&mut self) -> &mut fleetwire_auth::lockout::LockoutEngine {
        &mut self.engine
    }

    /// Gives the engine back.
    pub fn into_engine(self) -> fleetwire_auth::lockout::LockoutEngine {
        self.engine
    }
}

#[cfg(feature = "lockout")]
impl AttemptGuard for LockoutGuard {
    type Ticket = fleetwire_auth::lockout::AttemptTicket;

    fn begin(&mut self, source: &str, now: UnixTime) -> Result<Self::Ticket, Throttled> {
        use fleetwire_auth::lockout::LockoutKey;
        let key = LockoutKey::untrusted(&self.namespace, source.as_bytes());
        self.engine
            .begin_attempt(&key, now)
            .map_err(|locked| match locked.until {
                Some(until) => Throttled::TooManyAttempts {
                    retry_after_ms: until.as_millis().saturating_sub(now.as_millis()).max(1),
                },
                None => Throttled::LockedOut,
            })
    }

    fn finish(&mut self, ticket: Self::Ticket, found: bool, now: UnixTime) {
        use fleetwire_auth::lockout::Outcome;
        let outcome = if found {
            Outcome::Success
        } else {
            Outcome::Failure
        };
        self.engine.finish(ticket, outcome, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> UnixTime {
        UnixTime::from_millis(ms)
    }

    fn fail(g: &mut impl AttemptGuard, source: &str, now: UnixTime) -> Result<(), Throttled> {
        let ticket = g.begin(source, now)?;
        g.finish(ticket, false, now);
        Ok(())
    }

    #[test]
    fn burst_then_one_per_period() {
        let mut g = GcraGuard::new(3, 1000, 10);
        for _ in 0..3 {
            assert_eq!(fail(&mut g, "ip", t(0)), Ok(()));
        }
        assert_eq!(
            g.begin("ip", t(0)),
            Err(Throttled::TooManyAttempts {
                retry_after_ms: 1000
            })
        );
        assert!(g.begin("other", t(0)).is_ok());
        assert!(g.begin("ip", t(999)).is_err());
        assert_eq!(fail(&mut g, "ip", t(1000)), Ok(()));
        assert!(g.begin("ip", t(1500)).is_err());
        // Idle long enough, the full burst is back.
        for _ in 0..3 {
            assert_eq!(fail(&mut g, "ip", t(100_000)), Ok(()));
        }
        assert!(g.begin("ip", t(100_000)).is_err());
    }

    #[test]
    fn parallel_reservations_cannot_overrun_the_budget() {
        let mut g = GcraGuard::new(2, 1000, 10);
        let a = g.begin("ip", t(0)).unwrap();
        let b = g.begin("ip", t(0)).unwrap();
        // Two lookups in flight: a third is refused before either finishes.
        assert!(g.begin("ip", t(0)).is_err());
        g.finish(a, false, t(0));
        g.finish(b, false, t(0));
        assert!(g.begin("ip", t(0)).is_err());
    }

    #[test]
    fn a_found_code_refunds_only_itself() {
        let mut g = GcraGuard::new(2, 1000, 10);
        fail(&mut g, "ip", t(0)).unwrap();
        for _ in 0..5 {
            let ticket = g.begin("ip", t(0)).unwrap();
            g.finish(ticket, true, t(0));
        }
        fail(&mut g, "ip", t(0)).unwrap();
        assert!(g.begin("ip", t(0)).is_err());
    }

    #[test]
    fn clock_stepping_back_only_delays() {
        let mut g = GcraGuard::new(1, 1000, 10);
        fail(&mut g, "ip", t(10_000)).unwrap();
        // The clock steps back 5 s: no guess is gained. The suite's GCRA caps the hint at one
        // period (before the move to `fleetwire_core::gcra` this guard said 6000 ms), but the
        // source stays refused until the clock is back where the budget allows it.
        assert_eq!(
            g.begin("ip", t(5_000)),
            Err(Throttled::TooManyAttempts {
                retry_after_ms: 1000
            })
        );
        for ms in [6_000, 8_000, 10_999] {
            assert!(g.begin("ip", t(ms)).is_err(), "{ms}");
        }
        assert!(g.begin("ip", t(11_000)).is_ok());
    }

    #[test]
    fn bounded_memory_fails_closed_then_recovers() {
        let mut g = GcraGuard::new(1, 1000, 2);
        fail(&mut g, "a", t(0)).unwrap();
        fail(&mut g, "b", t(0)).unwrap();
        assert_eq!(g.tracked_sources(), 2);
        assert_eq!(
            g.begin("c", t(10)),
            Err(Throttled::Saturated {
                retry_after_ms: 1000
            })
        );
        assert_eq!(g.tracked_sources(), 2);
        // Before the next sweep time, refused without scanning.
        assert!(g.begin("c", t(500)).is_err());
        // Once a and b are idle they are forgotten and c gets in.
        assert!(g.begin("c", t(1010)).is_ok());
        assert_eq!(g.tracked_sources(), 1);
    }

    #[cfg(feature = "lockout")]
    #[test]
    fn the_lockout_engine_blocks_with_growing_periods() {
        use fleetwire_auth::lockout::{LockoutConfig, LockoutEngine};
        // Web CMS policy: 5 failures block for a minute, each further one doubles the block.
        let engine = LockoutEngine::new(LockoutConfig::web_cms(), [7; 16]).unwrap();
        let mut g = LockoutGuard::new(engine, "thing-code");
        let t0 = t(1_700_000_000_000);
        for _ in 0..5 {
            fail(&mut g, "198.51.100.1", t0).unwrap();
        }
        let Err(Throttled::TooManyAttempts { retry_after_ms }) = g.begin("198.51.100.1", t0) else {
            panic!("not blocked after 5 wrong codes");
        };
        assert!(
            (60_000..=61_000).contains(&retry_after_ms),
            "{retry_after_ms}"
        );
        // Other sources are untouched; a found code ends a streak.
        fail(&mut g, "203.0.113.9", t0).unwrap();
        let ticket = g.begin("203.0.113.9", t0).unwrap();
        g.finish(ticket, true, t0);
        // After the block one more wrong code blocks again, for longer.
        let later = t0.plus_millis(61_000);
        fail(&mut g, "198.51.100.1", later).unwrap();
        let Err(Throttled::TooManyAttempts { retry_after_ms }) = g.begin("198.51.100.1", later)
        else {
            panic!("not blocked again");
        };
        assert!(retry_after_ms > 61_000, "{retry_after_ms}");
    }
}
