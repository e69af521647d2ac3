//! Clock offset to the group leader: NTP's four timestamps, minimum-delay filtering over a
//! sliding window, a drift estimate, and a disciplined clock that slews at a bounded rate.
//!
//! Offsets are `group − local` in nanoseconds. A sample from one exchange is
//! `θ = ((t2 − t1) + (t3 − t4)) / 2` with delay `δ = (t4 − t1) − (t3 − t2)`; its error is at
//! most `δ / 2` (the whole path asymmetry). Queueing only ever adds delay, so the samples with
//! the least delay are the truest (NTP's clock filter). Between exchanges the two clocks drift
//! apart (±100 ppm crystals give up to 200 ppm between two screens, 0.2 ms per second), so the
//! estimate is a line, offset = a + b·t, fitted through the least-delayed third of a window of
//! samples; `b` is the drift.

use std::collections::VecDeque;

/// One exchange.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Sample {
    /// Local time of the exchange's midpoint, nanoseconds.
    pub(crate) at: u64,
    /// `group − local`, nanoseconds.
    pub(crate) offset: f64,
    /// Round-trip delay, nanoseconds.
    pub(crate) delay: u64,
}

impl Sample {
    /// The sample of one ping/pong: t1, t4 local; t2, t3 group. `None` if the timestamps are
    /// inconsistent (negative delay: a forged or corrupted pong).
    pub(crate) fn from_exchange(t1: u64, t2: u64, t3: u64, t4: u64) -> Option<Self> {
        if t4 < t1 || t3 < t2 {
            return None;
        }
        let delay = (t4 - t1).checked_sub(t3 - t2)?;
        let offset =
            ((i128::from(t2) - i128::from(t1)) + (i128::from(t3) - i128::from(t4))) as f64 / 2.0;
        Some(Self {
            at: t1 + (t4 - t1) / 2,
            offset,
            delay,
        })
    }
}

/// The offset (`group − local`, rounded toward zero) and round-trip delay of one exchange,
/// in nanoseconds: `t1`, `t4` on the follower's clock, `t2`, `t3` on the group clock. `None`
/// if the timestamps are inconsistent (a negative delay).
#[allow(clippy::cast_possible_truncation)]
pub fn offset_and_delay(t1: u64, t2: u64, t3: u64, t4: u64) -> Option<(i64, u64)> {
    Sample::from_exchange(t1, t2, t3, t4).map(|s| (s.offset as i64, s.delay))
}

/// A linear clock: `offset(local) = off_ref + rate × (local − local_ref)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Model {
    pub(crate) local_ref: u64,
    pub(crate) off_ref: f64,
    pub(crate) rate: f64,
}

impl Model {
    pub(crate) fn identity(now: u64) -> Self {
        Self {
            local_ref: now,
            off_ref: 0.0,
            rate: 0.0,
        }
    }

    pub(crate) fn offset_at(&self, local: u64) -> f64 {
        self.off_ref + self.rate * (local as f64 - self.local_ref as f64)
    }

    /// Group time at local time `local` (never below zero).
    #[allow(clippy::cast_sign_loss)] // clamped at zero first
    pub(crate) fn group_at(&self, local: u64) -> u64 {
        (local as f64 + self.offset_at(local)).max(0.0) as u64
    }

    /// The local time at which the group clock reads `group`.
    #[allow(clippy::cast_sign_loss)] // clamped at zero first
    pub(crate) fn local_for(&self, group: u64) -> u64 {
        // group = local + off_ref + rate (local − local_ref)
        let local =
            (group as f64 - self.off_ref + self.rate * self.local_ref as f64) / (1.0 + self.rate);
        local.max(0.0) as u64
    }
}

/// What the window says about the offset now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Estimate {
    /// `group − local` at the time asked for, nanoseconds.
    pub(crate) offset: f64,
    /// Drift, `d offset / d local` (dimensionless; 1e-6 is 1 ppm).
    pub(crate) rate: f64,
    /// Error bound: half the least delay in the window, nanoseconds.
    pub(crate) error: u64,
}

/// The sliding window of samples.
#[derive(Debug, Clone)]
pub(crate) struct Estimator {
    samples: VecDeque<Sample>,
    capacity: usize,
    /// The last drift estimate, kept across a change of leader.
    rate: f64,
    max_rate: f64,
}

impl Estimator {
    pub(crate) fn new(capacity: usize, max_rate: f64) -> Self {
        Self {
            samples: VecDeque::with_capacity(capacity),
            capacity: capacity.max(4),
            rate: 0.0,
            max_rate,
        }
    }

    pub(crate) fn add(&mut self, s: Sample) {
        if self.samples.len() == self.capacity {
            self.samples.pop_front();
        }
        self.samples.push_back(s);
    }

    pub(crate) fn len(&self) -> usize {
        self.samples.len()
    }

    /// Forgets the samples (they were against another leader's clock); keeps the drift.
    pub(crate) fn clear(&mut self) {
        self.samples.clear();
    }

    /// The estimate at local time `now`, or `None` without samples.
    pub(crate) fn estimate(&mut self, now: u64) -> Option<Estimate> {
        let min_delay = self.samples.iter().map(|s| s.delay).min()?;
        // The least-delayed third (at least 3) of the window.
        let mut best: Vec<Sample> = self.samples.iter().copied().collect();
        best.sort_by_key(|s| s.delay);
        best.truncate((best.len() / 3).max(3).min(best.len()));
        let first = best.iter().map(|s| s.at).min()?;
        let last = best.iter().map(|s| s.at).max()?;
        if best.len() >= 4 && last - first >= 1_000_000_000 {
            // Least squares through the best samples.
            let n = best.len() as f64;
            let mean_t = best.iter().map(|s| s.at as f64).sum::<f64>() / n;
            let mean_o = best.iter().map(|s| s.offset).sum::<f64>() / n;
            let (mut sxx, mut sxy) = (0.0, 0.0);
            for s in &best {
                let dt = s.at as f64 - mean_t;
                sxx += dt * dt;
                sxy += dt * (s.offset - mean_o);
            }
            if sxx > 0.0 {
                self.rate = (sxy / sxx).clamp(-self.max_rate, self.max_rate);
            }
            return Some(Estimate {
                offset: mean_o + self.rate * (now as f64 - mean_t),
                rate: self.rate,
                error: min_delay / 2,
            });
        }
        // Too little history for a line: the least-delayed sample, moved along the last known
        // drift.
        let s = best[0];
        Some(Estimate {
            offset: s.offset + self.rate * (now as f64 - s.at as f64),
            rate: self.rate,
            error: min_delay / 2,
        })
    }
}

#[cfg(test)]
#[allow(clippy::float_cmp, clippy::cast_sign_loss)]
mod tests {
    use super::*;

    #[test]
    fn exchange_arithmetic() {
        // Group is 1000 ahead; 100 each way.
        let s = Sample::from_exchange(0, 1100, 1100, 200).unwrap();
        assert_eq!(s.offset, 1000.0);
        assert_eq!(s.delay, 200);
        assert!(Sample::from_exchange(10, 0, 0, 5).is_none());
    }

    #[test]
    fn model_inverts() {
        let m = Model {
            local_ref: 1_000_000,
            off_ref: 5_000.0,
            rate: 1e-4,
        };
        let g = m.group_at(3_000_000_000);
        let back = m.local_for(g);
        assert!(back.abs_diff(3_000_000_000) <= 2, "{back}");
    }

    #[test]
    fn the_line_recovers_drift_through_jitter() {
        // True offset 2 ms + 150 ppm drift; one-way delays 100 µs + jitter up to 2 ms.
        let mut est = Estimator::new(64, 1e-3);
        let mut rng = 12345u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng % 2_000_000) as f64
        };
        for k in 0..64u64 {
            let t1 = k * 250_000_000;
            let true_off = |t: f64| 2_000_000.0 + 150e-6 * t;
            let d1 = 100_000.0 + next();
            let d2 = 100_000.0 + next();
            let t2 = t1 as f64 + d1 + true_off(t1 as f64 + d1);
            let t4 = t1 as f64 + d1 + d2;
            let s = Sample::from_exchange(t1, t2 as u64, t2 as u64, t4 as u64).unwrap();
            est.add(s);
        }
        let now = 16_000_000_000u64;
        let e = est.estimate(now).unwrap();
        let truth = 2_000_000.0 + 150e-6 * now as f64;
        assert!(
            (e.offset - truth).abs() < 300_000.0,
            "{} vs {truth}",
            e.offset
        );
        assert!((e.rate - 150e-6).abs() < 30e-6, "{}", e.rate);
    }
}
