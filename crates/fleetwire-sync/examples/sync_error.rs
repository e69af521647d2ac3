//! Benchmark: sync error between simulated screens (fleetwire-testkit links, virtual time):
//! every datagram gets 0–2 ms of uniform jitter on top of 0.2 ms of delay, every screen's
//! crystal is off by up to ±100 ppm and its clock starts at an arbitrary offset. For every item
//! boundary shown by all screens, the spread of the true instants at which they start it.
//! Deterministic per seed; several seeds.
//!
//! `cargo run --release -p fleetwire-sync --example sync_error [-- screens minutes seeds]`
#![allow(
    missing_docs,
    clippy::wildcard_imports,
    clippy::disallowed_methods,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let screens: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(5);
    let minutes: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10);
    let seeds: u64 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(5);
    println!(
        "{screens} screens, {minutes} min each, drift uniform in ±100 ppm, jitter 0–2 ms per datagram (+0.2 ms)"
    );
    let wall = Instant::now();
    for failover in [false, true] {
        let mut all = Vec::new();
        let mut bounds = Vec::new();
        for seed in 0..seeds {
            let mut rng = fleetwire_testkit::Rng::new(seed);
            let mut lan = Lan::new(
                screens,
                jittery(Duration::from_micros(200), Duration::from_millis(2)),
                seed,
            );
            for i in 0..screens {
                let drift = (rng.unit() * 2.0 - 1.0) * 100e-6;
                lan.add(i as u8 + 1, drift, Duration::from_millis(rng.below(60_000)));
            }
            let warm = 20e9;
            if failover {
                lan.run_for(Duration::from_secs(minutes * 30));
                lan.kill(0);
                lan.run_for(Duration::from_secs(minutes * 30));
            } else {
                lan.run_for(Duration::from_secs(minutes * 60));
            }
            let live: Vec<usize> = (0..screens).filter(|&i| lan.screens[i].alive).collect();
            let spreads = lan.spreads(&live, warm);
            for &i in &live[1..] {
                if let Some(c) = lan.screens[i].member.clock(lan.now_of(i)) {
                    bounds.push(c.error.as_nanos() as f64);
                }
            }
            all.extend(spreads);
        }
        println!(
            "{}: {} item starts; spread between screens p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs (goal p99 ≤ 1000 µs); reported error bound p50 {:.0} µs",
            if failover {
                "with the leader killed half way"
            } else {
                "steady leader"
            },
            all.len(),
            percentile(&all, 0.5) / 1e3,
            percentile(&all, 0.99) / 1e3,
            percentile(&all, 1.0) / 1e3,
            percentile(&bounds, 0.5) / 1e3,
        );
    }
    println!(
        "(simulated; wall-clock time for the whole run {:.1} s)",
        wall.elapsed().as_secs_f64()
    );
}
