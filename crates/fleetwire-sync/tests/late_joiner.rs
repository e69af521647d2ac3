//! A late joiner (even one with the lowest id) follows the running leader, synchronizes within
//! about a second, and starts at the next item boundary: never mid-item, never out of step.
mod common;
use std::time::Duration;

use common::*;
use fleetwire_sync::*;

#[test]
fn a_late_joiner_catches_up_at_the_next_item_boundary() {
    for seed in 0..4 {
        let mut lan = Lan::new(
            3,
            jittery(Duration::from_micros(300), Duration::from_millis(2)),
            seed,
        );
        lan.add(5, 60e-6, Duration::ZERO);
        lan.add(6, -60e-6, Duration::from_secs(4));
        lan.run_for(Duration::from_secs(37));
        let joined_at = lan.true_ns();
        let j = lan.add(1, 100e-6, Duration::from_secs(1000));
        lan.run_for(Duration::from_secs(40));
        assert!(
            lan.leaders().iter().all(|l| *l == Some(id(5))),
            "seed {seed}: {:?}",
            lan.leaders()
        );
        let first = lan.screens[j].shown[0];
        // Its first item is one the others also start at that very group time: a boundary.
        let same = lan.screens[0]
            .shown
            .iter()
            .find(|s| s.group_start == first.group_start)
            .unwrap();
        assert_eq!(same.item, first.item);
        assert!((same.true_ns - first.true_ns).abs() < 1e6, "seed {seed}");
        // Synchronized before that first item, within ~1 s of joining.
        let synced = lan.screens[j]
            .events
            .iter()
            .position(|e| matches!(e, SyncEvent::Synchronized { .. }))
            .unwrap();
        let played = lan.screens[j]
            .events
            .iter()
            .position(|e| matches!(e, SyncEvent::Play { .. }))
            .unwrap();
        assert!(synced < played);
        assert!(
            first.true_ns - joined_at < 1e9 + 5e9 + 1e9,
            "first item at most one item after sync"
        );
        let spreads = lan.spreads(&[0, 1, j], joined_at);
        assert!(
            spreads.len() >= 8 && percentile(&spreads, 0.99) <= 1e6,
            "seed {seed}: {spreads:?}"
        );
    }
}
