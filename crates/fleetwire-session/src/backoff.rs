//! Reconnect delays: exponential backoff with full jitter, so a fleet that lost its server does
//! not come back all at once.

use std::time::Duration;

/// Exponential backoff with full jitter: the n-th delay is uniform in
/// `[0, min(cap, base × 2^n)]`. Randomness comes from the caller, one `u64` per delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    /// A backoff starting at `base` and never exceeding `cap`.
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self {
            base,
            cap,
            attempt: 0,
        }
    }

    /// The delay before the next attempt, given 64 random bits.
    pub fn next_delay(&mut self, random: u64) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        // Uniform in [0, nanos] by 128-bit multiply-shift (no modulo bias worth the name).
        let jittered = ((u128::from(random) * (u128::from(nanos) + 1)) >> 64) as u64;
        Duration::from_nanos(jittered)
    }

    /// The upper bound of the next delay.
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// Attempts since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Call after a session reached `Online`: the next failure starts from `base` again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

impl Default for Backoff {
    /// 1 s doubling up to 5 minutes.
    fn default() -> Self {
        Self::new(Duration::from_secs(1), Duration::from_secs(300))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_double_to_the_cap_and_delays_stay_below() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let ceilings: Vec<u64> = (0..9)
            .map(|_| {
                let c = b.ceiling();
                assert!(b.next_delay(u64::MAX) <= c);
                c.as_secs()
            })
            .collect();
        assert_eq!(ceilings, vec![1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(b.next_delay(0), Duration::ZERO);
        b.reset();
        assert_eq!(b.ceiling(), Duration::from_secs(1));
    }

    #[test]
    fn full_jitter_spreads_a_fleet() {
        // 10,000 players that failed 5 times spread evenly over [0, 32 s]: every second gets
        // 3.1% ± a third, none gets a crowd.
        let mut buckets = [0u32; 33];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..10_000 {
            let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));
            for _ in 0..5 {
                b.next_delay(0);
            }
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buckets[b.next_delay(x).as_secs() as usize] += 1;
        }
        assert!(
            buckets[..32].iter().all(|&n| (210..=420).contains(&n)),
            "{buckets:?}"
        );
    }
}
