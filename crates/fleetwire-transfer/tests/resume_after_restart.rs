//! A download killed at random points and restarted (both machines new, the link's contents
//! lost) resumes from the saved partial and re-sends at most one window of chunks that had
//! already arrived.
#![allow(clippy::wildcard_imports)]
mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use fleetwire_testkit::{LinkConfig, Rng, VirtualClock};
use fleetwire_transfer::{FileKind, Partial, TransferId};

#[test]
fn killed_downloads_resume_without_resending_what_arrived() {
    for seed in 0..100u64 {
        let mut rng = Rng::new(seed);
        let window = [1u32, 8, 32][rng.below(3) as usize];
        let data = file_bytes(128 * 1024 + rng.below(64 * 1024) as usize, seed);
        let manifest = signed(FileKind::Media, 5, 2, 2048, &data);
        let link = LinkConfig {
            bandwidth: Some(2_000_000),
            delay: Duration::from_millis(10),
            loss: 0.05,
            reorder: 0.05,
            reorder_delay: Duration::from_millis(5),
            ..LinkConfig::perfect()
        };
        let mut saved: Option<(Vec<u8>, Vec<u8>)> = None; // (partial record, partial file)
        let mut arrived: BTreeSet<u32> = BTreeSet::new();
        let mut clock = VirtualClock::new();
        let mut restarts = 0;
        loop {
            let mut sender = SenderApp::new(sender_config(window), clock.now());
            sender.offer(clock.now(), manifest.clone(), data.clone(), None);
            let mut receiver = ReceiverApp::trusting_test_key(clock.now());
            let mut expected_held = 0;
            if let Some((record, file)) = &saved {
                let keys = [signer().public_key()];
                let partial = Partial::decode(record, &keys, 1 << 16).unwrap();
                expected_held = partial.stored().count();
                receiver.receiver.add_partial(partial);
                receiver.resume_disk = Some(file.clone());
            }
            let mut p = pair(sender, receiver, link.clone(), seed + restarts, clock);
            let kill = restarts < 4 && rng.chance(0.8);
            let kill_after = 5 + rng.below(200);
            let finished = p.run_until(
                Duration::from_secs(600),
                if kill { kill_after } else { u64::MAX },
                |p| !p.b.completed.is_empty(),
            );
            if let Some(&(_, held)) = p.a.accepted.first() {
                assert_eq!(
                    held, expected_held,
                    "seed {seed}: resume did not count saved chunks"
                );
            }
            // Chunks sent in this run that had arrived in an earlier one.
            let resent =
                p.a.sent_chunks
                    .iter()
                    .filter(|(_, i)| arrived.contains(i))
                    .count();
            assert!(
                resent <= window as usize,
                "seed {seed}: re-sent {resent} arrived chunks, window {window}"
            );
            arrived.extend(p.b.arrived.iter().map(|&(_, i)| i));
            if finished {
                assert_eq!(p.b.completed[0].1, data, "seed {seed}");
                break;
            }
            // Kill: save what a player would have persisted, drop everything else.
            let t = TransferId(1);
            if let Some(partial) = p.b.receiver.partial(t) {
                saved = Some((partial.encode(), p.b.disk[&t].clone()));
            }
            clock = p.clock;
            clock.advance(Duration::from_secs(1));
            restarts += 1;
        }
    }
}
