//! Token bucket bandwidth caps (bytes per second).

use std::time::{Duration, Instant};

/// A bandwidth cap: `rate` bytes per second, bursts up to `burst` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained rate in bytes per second (at least 1).
    pub bytes_per_sec: u64,
    /// Largest burst in bytes; at least one message must fit or nothing is ever sent.
    pub burst: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    limit: RateLimit,
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    #[allow(clippy::cast_precision_loss)]
    pub(crate) fn new(limit: RateLimit, now: Instant) -> Self {
        Self {
            limit,
            tokens: limit.burst as f64,
            at: now,
        }
    }

    #[allow(clippy::cast_precision_loss)]
    pub(crate) fn refill(&mut self, now: Instant) {
        if now > self.at {
            let add = (now - self.at).as_secs_f64() * self.limit.bytes_per_sec.max(1) as f64;
            self.tokens = (self.tokens + add).min(self.limit.burst as f64);
            self.at = now;
        }
    }

    /// True if `bytes` may go now. A message larger than the burst may go once the bucket is
    /// full (it then runs into debt), so an oversize message never blocks forever.
    #[allow(clippy::cast_precision_loss)]
    pub(crate) fn can_send(&self, bytes: usize) -> bool {
        self.tokens >= (bytes as f64).min(self.limit.burst as f64)
    }

    #[allow(clippy::cast_precision_loss)]
    pub(crate) fn spend(&mut self, bytes: usize) {
        self.tokens -= bytes as f64;
    }

    /// When `bytes` may go.
    #[allow(clippy::cast_precision_loss)]
    pub(crate) fn ready_at(&self, bytes: usize) -> Instant {
        let need = (bytes as f64).min(self.limit.burst as f64) - self.tokens;
        if need <= 0.0 {
            return self.at;
        }
        self.at + Duration::from_secs_f64(need / self.limit.bytes_per_sec.max(1) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_is_respected() {
        let t0 = fleetwire_testkit::VirtualClock::new().now();
        let mut b = TokenBucket::new(
            RateLimit {
                bytes_per_sec: 1000,
                burst: 100,
            },
            t0,
        );
        assert!(b.can_send(100));
        b.spend(100);
        assert!(!b.can_send(100));
        let at = b.ready_at(100);
        assert_eq!(at - t0, Duration::from_millis(100));
        b.refill(at);
        assert!(b.can_send(100));
    }
}
