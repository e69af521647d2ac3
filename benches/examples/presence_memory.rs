//! Bytes per player held by the presence registry with 1,000,000 players online.
//! `cargo run --release -p fleetwire-benches --example presence_memory`
#![allow(clippy::disallowed_methods, clippy::print_stdout)]

use std::time::{Duration, Instant};

use fleetwire_benches::{Counting, live_bytes};
use fleetwire_session::{PlayerId, Presence, PresenceConfig};

#[global_allocator]
static ALLOC: Counting = Counting;

fn main() {
    for n in [10_000usize, 100_000, 1_000_000] {
        let t0 = Instant::now();
        let before = live_bytes();
        let mut registry = Presence::new(PresenceConfig::new(Duration::from_secs(50)), t0);
        for i in 0..n as u64 {
            let mut b = [0u8; 16];
            b[..8].copy_from_slice(&i.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes());
            b[8..].copy_from_slice(&i.to_le_bytes());
            registry.seen(t0, PlayerId::from_bytes(b));
        }
        while registry.poll_event().is_some() {}
        let bytes = live_bytes() - before;
        println!(
            "{n:>9} players online: {bytes:>11} bytes = {:.1} bytes/player",
            bytes as f64 / n as f64
        );
        drop(registry);
    }
}
