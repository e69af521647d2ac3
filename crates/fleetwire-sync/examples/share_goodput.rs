//! Benchmark: LAN-share goodput in the simulator (fleetwire-testkit links, virtual time): one
//! peer serves a file to one fetcher over a 100 Mbit/s or 1 Gbit/s link with 0.3 ms of delay
//! each way, a 1 MiB drop-tail queue and 0 %, 1 % or 5 % loss both ways. Goodput as a fraction
//! of the link, and bytes the seeder sent per file byte.
//!
//! `cargo run --release -p fleetwire-sync --example share_goodput [-- MiB]`
#![allow(
    missing_docs,
    clippy::wildcard_imports,
    clippy::disallowed_methods,
    clippy::cast_precision_loss
)]

#[path = "../tests/share_common/mod.rs"]
mod share_common;

use std::time::{Duration, Instant};

use fleetwire_testkit::LinkConfig;
use share_common::*;

fn main() {
    let mib: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(32);
    let data = file(mib << 20, 1);
    let m = signed(&data, 256 * 1024);
    println!(
        "file {mib} MiB in 256 KiB chunks, 1 KiB pieces, window 256 pieces, delay 0.3 ms each way, 1 MiB queue"
    );
    println!(
        "{:>9} {:>5} {:>9} {:>12} {:>9} {:>10}",
        "link", "loss", "seconds", "goodput", "of link", "sent/file"
    );
    let wall = Instant::now();
    for mbit in [100u64, 1000] {
        for loss in [0.0, 0.01, 0.05] {
            let link = LinkConfig {
                bandwidth: Some(mbit * 1_000_000 / 8),
                delay: Duration::from_micros(300),
                queue_limit: 1 << 20,
                loss,
                ..LinkConfig::perfect()
            };
            let mut lan = ShareLan::new(2, &link, 3);
            lan.give(0, &m, &data);
            let t0 = lan.now();
            lan.fetch(1, &m, &[0]);
            assert!(lan.run_until(Duration::from_secs(3600), |l| l.completed(1)));
            assert_eq!(lan.nodes[1].written, data);
            let secs = (lan.now() - t0).as_secs_f64();
            let goodput = data.len() as f64 / secs;
            let capacity = (mbit * 1_000_000 / 8) as f64;
            println!(
                "{:>5} Mb/s {:>4.0}% {:>9.2} {:>7.1} MB/s {:>8.1}% {:>10.3}",
                mbit,
                loss * 100.0,
                secs,
                goodput / 1e6,
                100.0 * goodput / capacity,
                lan.nodes[0].share.stats().bytes_out as f64 / data.len() as f64
            );
        }
    }
    println!(
        "(simulated; wall-clock time for the whole run {:.1} s)",
        wall.elapsed().as_secs_f64()
    );
}
