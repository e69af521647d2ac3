//! Duplication: a link that delivers half of all datagrams twice (and reorders) never makes a
//! command run twice; the duplicate copies are acknowledged again and counted.
mod common;
use std::time::Duration;

use common::*;
use fleetwire_command::*;
use fleetwire_testkit::LinkConfig;

#[test]
fn duplicated_datagrams_run_once() {
    let link = LinkConfig {
        delay: Duration::from_millis(10),
        duplicate: 0.5,
        reorder: 0.3,
        reorder_delay: Duration::from_millis(40),
        ..LinkConfig::perfect()
    };
    let mut dup_seen = 0;
    for seed in 0..20 {
        let mut w = World::new(2, &link, ServerConfig::default(), seed);
        w.run_for(Duration::from_secs(1));
        let ids: Vec<_> = (0..10)
            .map(|k| {
                (
                    k % 2,
                    w.send(
                        k % 2,
                        Action::Custom(vec![k as u8; 8]),
                        Duration::from_secs(60),
                    ),
                )
            })
            .collect();
        assert!(w.run_until(Duration::from_secs(120), |w| {
            ids.iter()
                .all(|&(_, id)| w.final_state(id) == Some(CommandState::Succeeded))
        }));
        for &(i, id) in &ids {
            assert_eq!(w.runs(i, id), 1, "seed {seed}");
        }
        // Duplicated results reach the server too; each command is reported succeeded once.
        for &(_, id) in &ids {
            let n = w
                .states(id)
                .iter()
                .filter(|s| **s == CommandState::Succeeded)
                .count();
            assert_eq!(n, 1);
        }
        // Duplicated copies of the same datagram are replays at the receiver.
        dup_seen += w
            .nodes
            .iter()
            .map(|n| n.machine.stats().dropped_replay)
            .sum::<u64>();
        dup_seen += w.server.stats().dropped_replay;
        w.assert_no_amplification();
    }
    assert!(dup_seen > 50, "{dup_seen}");
}
