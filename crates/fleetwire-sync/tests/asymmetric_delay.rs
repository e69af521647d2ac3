//! Asymmetric delay: a constant path asymmetry is invisible to any two-way exchange (NTP's
//! known limit), so it biases the offset by half the asymmetry; the member's reported error
//! bound (half the least round trip) always covers it. Jitter on top does not add to it.
mod common;
use std::time::Duration;

use common::*;
use fleetwire_testkit::LinkConfig;

#[test]
fn the_error_bound_covers_a_constant_asymmetry() {
    let mut lan = Lan::new(2, LinkConfig::perfect(), 3);
    lan.add(1, 50e-6, Duration::ZERO);
    lan.add(2, -50e-6, Duration::from_secs(2));
    // Leader → follower 1.6 ms, follower → leader 0.2 ms (plus up to 0.5 ms jitter each way).
    lan.set_link(
        0,
        1,
        jittery(Duration::from_micros(1600), Duration::from_micros(500)),
    );
    lan.set_link(
        1,
        0,
        jittery(Duration::from_micros(200), Duration::from_micros(500)),
    );
    lan.run_for(Duration::from_secs(120));
    let spreads = lan.spreads(&[0, 1], 30e9);
    assert!(spreads.len() >= 20);
    let median = percentile(&spreads, 0.5);
    let c = lan.screens[1].member.clock(lan.now_of(1)).unwrap();
    eprintln!(
        "asymmetry 1.4 ms: spread median {:.0} µs, error bound {:?}",
        median / 1e3,
        c.error
    );
    // Half the asymmetry: 0.7 ms, within the bound the member reports.
    assert!((median - 0.7e6).abs() < 0.25e6, "{median}");
    assert!(
        c.error.as_nanos() as f64 >= median,
        "bound {:?} < error {median}",
        c.error
    );
}
