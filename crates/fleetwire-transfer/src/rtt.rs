//! Retransmission timeout from measured round-trip times (RFC 6298), with exponential backoff.

use std::time::Duration;

/// RFC 6298 estimator: `SRTT`, `RTTVAR`, `RTO = SRTT + max(G, 4·RTTVAR)` bounded to
/// `[min, max]`, doubled on each timeout and reset by the next fresh sample.
#[derive(Debug, Clone)]
pub(crate) struct RttEstimator {
    srtt: Option<Duration>,
    rttvar: Duration,
    initial: Duration,
    min: Duration,
    max: Duration,
    backoff: u32,
}

/// Clock granularity G: the machine sees exact `Instant`s, so 1 ms is a safe floor.
const GRANULARITY: Duration = Duration::from_millis(1);

impl RttEstimator {
    pub(crate) fn new(initial: Duration, min: Duration, max: Duration) -> Self {
        Self {
            srtt: None,
            rttvar: Duration::ZERO,
            initial,
            min,
            max,
            backoff: 0,
        }
    }

    /// A round-trip sample. Each transmission has its own sequence number, so samples from
    /// retransmissions are unambiguous (no need for Karn's rule).
    pub(crate) fn sample(&mut self, rtt: Duration) {
        match self.srtt {
            None => {
                self.srtt = Some(rtt);
                self.rttvar = rtt / 2;
            }
            Some(srtt) => {
                let diff = srtt.abs_diff(rtt);
                self.rttvar = self.rttvar * 3 / 4 + diff / 4;
                self.srtt = Some(srtt * 7 / 8 + rtt / 8);
            }
        }
        self.backoff = 0;
    }

    pub(crate) fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// The current timeout, including backoff.
    pub(crate) fn rto(&self) -> Duration {
        let base = match self.srtt {
            None => self.initial,
            Some(srtt) => srtt + (self.rttvar * 4).max(GRANULARITY),
        };
        let backed = base.saturating_mul(1 << self.backoff.min(16));
        backed.clamp(self.min, self.max)
    }

    /// A timeout fired: double the timeout (bounded).
    pub(crate) fn back_off(&mut self) {
        if self.rto() < self.max {
            self.backoff += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6298_first_sample_and_backoff() {
        let mut e = RttEstimator::new(
            Duration::from_secs(1),
            Duration::from_millis(200),
            Duration::from_secs(60),
        );
        assert_eq!(e.rto(), Duration::from_secs(1));
        e.sample(Duration::from_millis(100));
        // SRTT = 100, RTTVAR = 50, RTO = 100 + 200 = 300.
        assert_eq!(e.rto(), Duration::from_millis(300));
        e.back_off();
        assert_eq!(e.rto(), Duration::from_millis(600));
        for _ in 0..30 {
            e.back_off();
        }
        assert_eq!(e.rto(), Duration::from_secs(60));
        e.sample(Duration::from_millis(100));
        assert!(e.rto() < Duration::from_millis(400));
    }
}
