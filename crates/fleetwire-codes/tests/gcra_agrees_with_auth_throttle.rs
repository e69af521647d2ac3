//! The code-guess guard and the accounts throttle are the same GCRA: fed the same attempts at
//! the same times, they admit and refuse alike and name the same wait.
//!
//! Written when each crate still had its own implementation (they agreed on a clock that only
//! moves forward); both now call `fleetwire_core::gcra`, and must still agree.
#![cfg(feature = "lockout")]

use fleetwire_auth::throttle::{Rate, Throttle, ThrottleConfig};
use fleetwire_codes::{AttemptGuard, GcraGuard, Throttled, UnixTime};

/// A tiny deterministic generator (no RNG dependency for the schedule).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

fn agree(burst: u32, period_ms: u64, seed: u64) -> usize {
    let mut guard = GcraGuard::new(burst, period_ms, 1000);
    let unlimited = Rate {
        burst: u32::MAX,
        per_period: u32::MAX,
        period_ms: 1,
    };
    let config = ThrottleConfig {
        per_source: Rate {
            burst,
            per_period: 1,
            period_ms,
        },
        global: unlimited,
        max_sources: 1000,
    };
    let mut throttle = Throttle::new(config, [9; 16]);
    let mut rng = Lcg(seed);
    let mut now = 1_700_000_000_000u64;
    let mut refused = 0;
    for i in 0..4000 {
        // Mostly bursts (steps of 0), sometimes pauses of up to a few periods.
        now += match rng.next(4) {
            0 => rng.next(period_ms * 4 + 1),
            _ => 0,
        };
        let source = ["198.51.100.1", "198.51.100.2", "203.0.113.7"][rng.next(3) as usize];
        let t = UnixTime::from_millis(now);
        let codes = guard.begin(source, t).map(|ticket| {
            guard.finish(ticket, false, t);
        });
        let auth = throttle.check(
            "thing-code",
            source.as_bytes(),
            fleetwire_auth::UnixTime::from_millis(now),
        );
        match (codes, auth) {
            (Ok(()), Ok(())) => {}
            (Err(Throttled::TooManyAttempts { retry_after_ms }), Err(th)) => {
                assert_eq!(retry_after_ms, th.retry_after_ms, "attempt {i} at {now}");
                refused += 1;
            }
            (codes, auth) => panic!("attempt {i} at {now}: codes {codes:?}, auth {auth:?}"),
        }
    }
    refused
}

#[test]
fn the_guard_and_the_throttle_admit_and_refuse_alike() {
    for (burst, period_ms, seed) in [(1, 1000, 1), (3, 1000, 2), (5, 250, 3), (10, 6000, 4)] {
        let refused = agree(burst, period_ms, seed);
        // The schedule really exercises both answers.
        assert!(
            refused > 20 && refused < 3900,
            "{burst} {period_ms}: {refused}"
        );
    }
}

/// Before the move the two disagreed here: the guard reported the whole wait after a clock step
/// back, the throttle one interval. Now both are the one GCRA and agree on that too.
#[test]
fn they_also_agree_when_the_clock_steps_back() {
    let burst = 3;
    let period_ms = 1000;
    let mut guard = GcraGuard::new(burst, period_ms, 1000);
    let mut throttle = Throttle::new(
        ThrottleConfig {
            per_source: Rate {
                burst,
                per_period: 1,
                period_ms,
            },
            global: Rate {
                burst: u32::MAX,
                per_period: u32::MAX,
                period_ms: 1,
            },
            max_sources: 1000,
        },
        [9; 16],
    );
    let mut rng = Lcg(77);
    let mut now = 1_700_000_000_000u64;
    let mut refused = 0;
    for i in 0..4000 {
        now = match rng.next(10) {
            0 => now - rng.next(10_000),
            1 | 2 => now + rng.next(8_000),
            _ => now,
        };
        let t = UnixTime::from_millis(now);
        let codes = guard.begin("198.51.100.1", t).map(|ticket| {
            guard.finish(ticket, false, t);
        });
        let auth = throttle.check("thing-code", b"198.51.100.1", t);
        match (codes, auth) {
            (Ok(()), Ok(())) => {}
            (Err(Throttled::TooManyAttempts { retry_after_ms }), Err(th)) => {
                assert_eq!(retry_after_ms, th.retry_after_ms, "attempt {i} at {now}");
                refused += 1;
            }
            (codes, auth) => panic!("attempt {i} at {now}: codes {codes:?}, auth {auth:?}"),
        }
    }
    assert!(refused > 20 && refused < 3900, "{refused}");
}
