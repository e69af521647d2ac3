//! Two halves of a group that could not hear each other each elected a leader; when the
//! network heals, the lower id at the same term wins, the other half follows it and steps its
//! clock at an item boundary (never mid-item), and all screens end up in step.
mod common;
use std::time::Duration;

use common::*;
use fleetwire_sync::*;
use fleetwire_testkit::LinkConfig;

#[test]
fn a_healed_partition_converges_on_one_leader_and_one_timeline() {
    let base = jittery(Duration::from_micros(200), Duration::from_millis(1));
    let mut lan = Lan::new(4, base.clone(), 5);
    let cut = LinkConfig {
        loss: 1.0,
        ..LinkConfig::perfect()
    };
    for a in [0, 1] {
        for b in [2, 3] {
            lan.set_link(a, b, cut.clone());
            lan.set_link(b, a, cut.clone());
        }
    }
    lan.add(1, 40e-6, Duration::ZERO);
    lan.add(2, -40e-6, Duration::from_secs(1));
    // The other half starts 7 s later: its group clock is 7 s behind.
    lan.run_for(Duration::from_secs(7));
    lan.add(3, 90e-6, Duration::from_secs(2));
    lan.add(4, -90e-6, Duration::from_secs(3));
    lan.run_for(Duration::from_secs(30));
    assert_eq!(
        lan.leaders(),
        vec![Some(id(1)), Some(id(1)), Some(id(3)), Some(id(3))]
    );
    for a in [0, 1] {
        for b in [2, 3] {
            lan.set_link(a, b, base.clone());
            lan.set_link(b, a, base.clone());
        }
    }
    let healed = lan.true_ns();
    lan.run_for(Duration::from_secs(60));
    assert!(
        lan.leaders().iter().all(|l| *l == Some(id(1))),
        "{:?}",
        lan.leaders()
    );
    assert_eq!(lan.screens[2].member.role(), Role::Follower);
    // Screens 3 and 4 stepped (their group clock differed by seconds) and are in step now.
    assert!(lan.screens[2].member.stats().steps >= 1);
    assert!(lan.screens[3].member.stats().steps >= 1);
    let spreads = lan.spreads(&[0, 1, 2, 3], healed + 20e9);
    assert!(spreads.len() >= 8, "{}", spreads.len());
    assert!(percentile(&spreads, 1.0) <= 1e6, "{spreads:?}");
    // The step waited for an item boundary: the item showing when the clocks disagreed ran
    // its full length before the first item on the corrected clock started.
    for i in [2, 3] {
        let ev = &lan.screens[i].events;
        let step = ev
            .iter()
            .enumerate()
            .skip(1)
            .find(|(k, e)| matches!(e, SyncEvent::Synchronized { .. }) && *k > 2)
            .map(|(k, _)| k)
            .unwrap();
        let before = ev[..step].iter().rev().find_map(|e| match e {
            SyncEvent::Play { at, duration, .. } => Some((*at, *duration)),
            _ => None,
        });
        let after = ev[step..].iter().find_map(|e| match e {
            SyncEvent::Play { at, .. } => Some(*at),
            _ => None,
        });
        let ((b, d), a) = (before.unwrap(), after.unwrap());
        let shown_for = lan.true_of(i, a) - lan.true_of(i, b);
        assert!(
            shown_for >= d.as_nanos() as f64 - 1e6,
            "screen {i}: item cut to {shown_for} ns"
        );
    }
}
