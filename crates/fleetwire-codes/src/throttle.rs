//! Throttling code guesses per source.

use std::collections::HashMap;

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
    /// The guard tracks as many sources as it may and none is idle: new sources are refused
    /// until some go idle (fail closed, so that spraying sources cannot buy guesses).
    #[error("too many sources are guessing codes right now: try again in {} s", retry_after_ms.div_ceil(1000))]
    Saturated {
        /// Milliseconds until the guard next looks for idle sources.
        retry_after_ms: u64,
    },
}

/// Decides whether a source (an IP address, an account, a device: the host picks the key) may
/// try a code, and learns from failures. The accounts crate's lockout engine is meant to
/// implement this; [`GcraGuard`] is a complete in-memory implementation.
///
/// The order of calls for one attempt: [`CodeSpec::parse`](crate::CodeSpec::parse) first (a typo
/// costs nothing), then [`check`](Self::check), then the lookup, then
/// [`record_failure`](Self::record_failure) if no thing has that code or
/// [`record_success`](Self::record_success) if one does.
pub trait AttemptGuard {
    /// May `source` try a code at `now`? Does not count as an attempt.
    fn check(&mut self, source: &str, now: UnixTime) -> Result<(), Throttled>;
    /// `source` presented a well-formed code that matched no thing.
    fn record_failure(&mut self, source: &str, now: UnixTime);
    /// `source` presented a code that matched a thing.
    fn record_success(&mut self, source: &str, now: UnixTime);
}

/// A Generic Cell Rate Algorithm limit on failures per source: a burst of `burst` failures, then
/// one per `period_ms`; `check` refuses while the source is over the limit. Memory is bounded by
/// `max_sources`; when full, idle sources are forgotten (they are indistinguishable from new
/// ones), and if none is idle new sources are refused ([`Throttled::Saturated`]).
///
/// Each source keeps one number, its theoretical arrival time `tat`: a failure sets
/// `tat = max(tat, now) + period`, and an attempt is allowed while `tat − now ≤ (burst − 1)·period`.
/// A clock stepping backwards only delays the next allowed attempt. A success changes nothing:
/// finding one thing does not refund the guesses spent on others.
#[derive(Debug, Clone)]
pub struct GcraGuard {
    period_ms: u64,
    tolerance_ms: u64,
    max_sources: usize,
    tat: HashMap<String, u64>,
    /// No sweep for idle sources before this time after a sweep found none.
    next_sweep: u64,
}

impl GcraGuard {
    /// Allows `burst` failures at once (at least 1), then one per `period_ms` (at least 1), for
    /// up to `max_sources` sources (at least 1).
    pub fn new(burst: u32, period_ms: u64, max_sources: usize) -> Self {
        let period_ms = period_ms.max(1);
        Self {
            period_ms,
            tolerance_ms: period_ms.saturating_mul(u64::from(burst.max(1) - 1)),
            max_sources: max_sources.max(1),
            tat: HashMap::new(),
            next_sweep: 0,
        }
    }

    /// Sources currently tracked.
    pub fn tracked_sources(&self) -> usize {
        self.tat.len()
    }
}

impl AttemptGuard for GcraGuard {
    fn check(&mut self, source: &str, now: UnixTime) -> Result<(), Throttled> {
        let now = now.as_millis();
        match self.tat.get(source) {
            Some(&tat) => {
                let allowed_at = tat.saturating_sub(self.tolerance_ms);
                if now < allowed_at {
                    return Err(Throttled::TooManyAttempts {
                        retry_after_ms: allowed_at - now,
                    });
                }
                Ok(())
            }
            None if self.tat.len() < self.max_sources => Ok(()),
            None => {
                if now >= self.next_sweep {
                    self.tat.retain(|_, &mut tat| tat > now);
                    if self.tat.len() < self.max_sources {
                        return Ok(());
                    }
                    self.next_sweep = now.saturating_add(self.period_ms);
                }
                Err(Throttled::Saturated {
                    retry_after_ms: self.next_sweep.saturating_sub(now).max(1),
                })
            }
        }
    }

    fn record_failure(&mut self, source: &str, now: UnixTime) {
        let now = now.as_millis();
        if let Some(tat) = self.tat.get_mut(source) {
            *tat = (*tat).max(now).saturating_add(self.period_ms);
            return;
        }
        if self.tat.len() >= self.max_sources {
            self.tat.retain(|_, &mut tat| tat > now);
            if self.tat.len() >= self.max_sources {
                // `check` refused this source already; a host that skipped it gains nothing.
                return;
            }
        }
        self.tat
            .insert(source.to_owned(), now.saturating_add(self.period_ms));
    }

    fn record_success(&mut self, _source: &str, _now: UnixTime) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> UnixTime {
        UnixTime(ms)
    }

    #[test]
    fn burst_then_one_per_period() {
        let mut g = GcraGuard::new(3, 1000, 10);
        for _ in 0..3 {
            assert_eq!(g.check("ip", t(0)), Ok(()));
            g.record_failure("ip", t(0));
        }
        assert_eq!(
            g.check("ip", t(0)),
            Err(Throttled::TooManyAttempts {
                retry_after_ms: 1000
            })
        );
        assert_eq!(g.check("other", t(0)), Ok(()));
        assert!(g.check("ip", t(999)).is_err());
        assert_eq!(g.check("ip", t(1000)), Ok(()));
        g.record_failure("ip", t(1000));
        assert!(g.check("ip", t(1500)).is_err());
        // Idle long enough, the full burst is back.
        for _ in 0..3 {
            assert_eq!(g.check("ip", t(100_000)), Ok(()));
            g.record_failure("ip", t(100_000));
        }
        assert!(g.check("ip", t(100_000)).is_err());
    }

    #[test]
    fn success_refunds_nothing() {
        let mut g = GcraGuard::new(1, 1000, 10);
        g.record_failure("ip", t(0));
        g.record_success("ip", t(0));
        assert!(g.check("ip", t(10)).is_err());
    }

    #[test]
    fn clock_stepping_back_only_delays() {
        let mut g = GcraGuard::new(1, 1000, 10);
        g.record_failure("ip", t(10_000));
        assert_eq!(
            g.check("ip", t(5_000)),
            Err(Throttled::TooManyAttempts {
                retry_after_ms: 6000
            })
        );
        assert_eq!(g.check("ip", t(11_000)), Ok(()));
    }

    #[test]
    fn bounded_memory_fails_closed_then_recovers() {
        let mut g = GcraGuard::new(1, 1000, 2);
        g.record_failure("a", t(0));
        g.record_failure("b", t(0));
        assert_eq!(g.tracked_sources(), 2);
        assert_eq!(
            g.check("c", t(10)),
            Err(Throttled::Saturated {
                retry_after_ms: 1000
            })
        );
        g.record_failure("c", t(10));
        assert_eq!(g.tracked_sources(), 2);
        // Before the next sweep time, refused without scanning.
        assert!(g.check("c", t(500)).is_err());
        // Once a and b are idle they are forgotten and c gets in.
        assert_eq!(g.check("c", t(1010)), Ok(()));
        g.record_failure("c", t(1010));
        assert_eq!(g.tracked_sources(), 1);
    }
}
