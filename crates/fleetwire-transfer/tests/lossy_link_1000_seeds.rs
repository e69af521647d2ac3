//! 1,000 seeded simulations with loss up to 30%, duplication, reordering, corruption and cut
//! connections: each ends with a byte-identical file or a clear error, never a wrong file, and
//! the bytes sent stay within a bounded factor of the file size.
#![allow(clippy::wildcard_imports, clippy::cast_precision_loss)]
mod common;

use std::time::Duration;

use common::*;
use fleetwire_testkit::{LinkConfig, Rng, VirtualClock};
use fleetwire_transfer::FileKind;

#[test]
fn thousand_seeds_end_identical_or_with_a_clear_error() {
    let mut completed = 0;
    let mut worst_factor = 0.0f64;
    let mut errors = Vec::new();
    for seed in 0..1000u64 {
        let mut rng = Rng::new(seed);
        let len = 64 * 1024 + rng.below(192 * 1024) as usize;
        let chunk = [1024u32, 4096, 8192][rng.below(3) as usize];
        let window = [1u32, 4, 16, 64][rng.below(4) as usize];
        let mut link = LinkConfig {
            bandwidth: Some(1_000_000 + rng.below(9_000_000)),
            delay: Duration::from_millis(5 + rng.below(45)),
            queue_limit: 256 * 1024,
            loss: rng.unit() * 0.30,
            duplicate: rng.unit() * 0.10,
            reorder: rng.unit() * 0.20,
            reorder_delay: Duration::from_millis(20),
            corrupt: rng.unit() * 0.05,
            cuts: Vec::new(),
            break_after_bytes: None,
        };
        if rng.chance(0.2) {
            let from = Duration::from_millis(rng.below(2000));
            let to = from + Duration::from_millis(200 + rng.below(3000));
            link.cuts.push((from, to));
        }
        let data = file_bytes(len, seed);
        let manifest = signed(FileKind::Media, 1, 1, chunk, &data);
        let clock = VirtualClock::new();
        let mut sender = SenderApp::new(sender_config(window), clock.now());
        sender.offer(clock.now(), manifest, data.clone(), None);
        let receiver = ReceiverApp::trusting_test_key(clock.now());
        let mut p = pair(sender, receiver, link, seed, clock);
        assert!(run(&mut p), "seed {seed}: simulation did not settle");
        for (_, bytes) in &p.b.completed {
            assert_eq!(bytes, &data, "seed {seed}: completed file differs");
        }
        if p.a.completed.len() == 1 {
            assert_eq!(
                p.b.completed.len(),
                1,
                "seed {seed}: sender done, receiver not"
            );
            completed += 1;
        } else {
            let reason =
                p.a.failed
                    .first()
                    .map(|(_, r)| r.to_string())
                    .or(p.a.closed.as_ref().map(ToString::to_string))
                    .unwrap_or_default();
            assert!(!reason.is_empty(), "seed {seed}: no error and no file");
            errors.push((seed, reason));
        }
        let factor = p.a.sender.stats().chunk_bytes_sent as f64 / len as f64;
        worst_factor = worst_factor.max(factor);
        assert!(
            factor <= 4.0,
            "seed {seed}: sent {factor:.2}x the file size"
        );
    }
    println!(
        "completed {completed}/1000, worst bytes-sent factor {worst_factor:.2}, errors {errors:?}"
    );
    assert!(completed >= 990, "too many failures: {errors:?}");
}
