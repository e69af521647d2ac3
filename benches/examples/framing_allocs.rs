//! Allocations per frame of each side of the framing benchmark (steady state, after a warm-up
//! round), counted by a counting global allocator:
//! `cargo run --release -p fleetwire-benches --example framing_allocs`.
#![allow(missing_docs)]

use fleetwire_benches::framing::{BODY, FRAMES, Fleetwire, PeerReuse, PeerUsual};
use fleetwire_benches::{Counting, allocations};

#[global_allocator]
static ALLOC: Counting = Counting;

fn per_frame(mut round: impl FnMut() -> u64) -> f64 {
    const ROUNDS: usize = 100;
    round();
    let before = allocations();
    for _ in 0..ROUNDS {
        std::hint::black_box(round());
    }
    (allocations() - before) as f64 / (ROUNDS * FRAMES) as f64
}

fn main() {
    let body: Vec<u8> = (0..BODY).map(|i| i as u8).collect();
    let mut fw = Fleetwire::default();
    let mut usual = PeerUsual::default();
    let mut reuse = PeerReuse::default();
    println!("allocations per 1 KiB frame (encode + decode), steady state:");
    println!(
        "  fleetwire-wire                                : {:.2}",
        per_frame(|| fw.round(&body))
    );
    println!(
        "  LengthDelimitedCodec + postcard to_allocvec   : {:.2}",
        per_frame(|| usual.round(&body))
    );
    println!(
        "  LengthDelimitedCodec + postcard, reused buffer: {:.2}",
        per_frame(|| reuse.round(&body))
    );
}
