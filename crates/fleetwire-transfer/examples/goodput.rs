//! Benchmark (a): goodput as a fraction of link capacity, in the simulator (virtual time, so it
//! runs in seconds): a 100 Mbit/s link with 40 ms round trip, 0% and 1% loss each way,
//! lock-step (window 1, the seed protocol) against the negotiated window.
//!
//! `cargo run --release -p fleetwire-transfer --example goodput [-- MiB [chunk KiB]]`
#![allow(clippy::wildcard_imports, missing_docs, clippy::cast_precision_loss)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Duration;

use common::*;
use fleetwire_testkit::{LinkConfig, VirtualClock};
use fleetwire_transfer::FileKind;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mib: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(64);
    let chunk_kib: u32 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(16);
    let capacity = 100_000_000 / 8; // bytes per second
    let data = file_bytes(mib << 20, 1);
    let manifest = signed(FileKind::Media, 1, 1, chunk_kib * 1024, &data);
    println!("file {mib} MiB, chunk {chunk_kib} KiB, link 100 Mbit/s, RTT 40 ms, queue 2 MiB");
    println!(
        "{:>6} {:>6} {:>10} {:>10} {:>10} {:>8}",
        "loss", "window", "seconds", "goodput", "of link", "sent/file"
    );
    for loss in [0.0, 0.01] {
        for window in [1u32, 64] {
            let link = LinkConfig {
                bandwidth: Some(capacity),
                delay: Duration::from_millis(20),
                queue_limit: 2 << 20,
                loss,
                ..LinkConfig::perfect()
            };
            let clock = VirtualClock::new();
            let start = clock.now();
            let mut sender = SenderApp::new(sender_config(window), clock.now());
            sender.offer(clock.now(), manifest.clone(), data.clone(), None);
            let receiver = ReceiverApp::trusting_test_key(clock.now());
            let mut p = pair(sender, receiver, link, 7, clock);
            assert!(run(&mut p), "simulation did not settle");
            assert_eq!(p.b.completed[0].1, data, "file differs");
            let secs = (p.b.completion_times[0].1 - start).as_secs_f64();
            let goodput = data.len() as f64 / secs;
            let sent = p.a.sender.stats().bytes_sent as f64 / data.len() as f64;
            println!(
                "{:>5.0}% {:>6} {:>10.2} {:>7.2} MB/s {:>9.1}% {:>8.3}",
                loss * 100.0,
                window,
                secs,
                goodput / 1e6,
                100.0 * goodput / capacity as f64,
                sent
            );
        }
    }
}
