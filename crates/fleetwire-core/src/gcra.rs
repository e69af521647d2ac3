use serde::{Deserialize, Serialize};

/// A rate: `burst` requests at once, refilled at `per_period` requests per `period_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rate {
    /// Requests allowed back to back (at least 1 is used).
    pub burst: u32,
    /// Requests refilled per period (at least 1 is used).
    pub per_period: u32,
    /// The period in milliseconds.
    pub period_ms: u64,
}

impl Rate {
    /// Microseconds between two requests at the sustained rate.
    pub fn interval_us(self) -> u64 {
        self.period_ms.saturating_mul(1000) / u64::from(self.per_period.max(1))
    }

    /// How far ahead of `now` the theoretical arrival time may run: the burst, in microseconds.
    pub fn tolerance_us(self) -> u64 {
        self.interval_us()
            .saturating_mul(u64::from(self.burst.max(1) - 1))
    }
}

/// One step of the generic cell rate algorithm (GCRA) for one key.
///
/// `tat` is the key's theoretical arrival time in microseconds (0 for a key never seen), `now`
/// the current time in microseconds. Returns the new TAT if the request passes (store it), or
/// how many microseconds to wait if it is refused (store nothing: a refusal costs nothing).
///
/// A TAT further ahead of `now` than one burst plus one interval can only come from a clock that
/// stepped back. It is clamped before the decision, which caps the wait a refusal *reports* at
/// one interval. The decision itself is unchanged by the clamp: since a refusal stores nothing,
/// a key that had spent its burst stays refused until the clock is back where its TAT allows
/// it. A step back never buys requests; it can hold a saturated key for as long as the step.
pub fn gcra(rate: Rate, tat: u64, now: u64) -> Result<u64, u64> {
    let t = rate.interval_us();
    let tau = rate.tolerance_us();
    let tat = tat.min(now.saturating_add(tau).saturating_add(t)).max(now);
    let allowed_at = tat.saturating_sub(tau);
    if now < allowed_at {
        Err(allowed_at - now)
    } else {
        Ok(tat.saturating_add(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TEN_PER_MINUTE: Rate = Rate {
        burst: 10,
        per_period: 10,
        period_ms: 60_000,
    };

    #[test]
    fn a_burst_passes_then_one_per_interval() {
        let mut tat = 0;
        let now = 1_000_000_000;
        for _ in 0..10 {
            tat = gcra(TEN_PER_MINUTE, tat, now).unwrap();
        }
        let wait = gcra(TEN_PER_MINUTE, tat, now).unwrap_err();
        assert_eq!(wait, 6_000_000);
        assert!(gcra(TEN_PER_MINUTE, tat, now + wait - 1).is_err());
        assert!(gcra(TEN_PER_MINUTE, tat, now + wait).is_ok());
    }

    proptest! {
        #[test]
        fn a_clock_stepping_back_never_refuses_longer_than_a_burst_refill(
            tat in any::<u64>(), now in 0u64..u64::MAX / 2,
        ) {
            if let Err(wait) = gcra(TEN_PER_MINUTE, tat, now) {
                prop_assert!(wait <= TEN_PER_MINUTE.tolerance_us() + TEN_PER_MINUTE.interval_us());
            }
        }
    }
}
