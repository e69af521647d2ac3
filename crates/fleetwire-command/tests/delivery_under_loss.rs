//! Loss: at 30 % datagram loss each way (plus reordering), every command is delivered and
//! succeeds, each runs exactly once on the player, within its time-to-live; across many seeds.
mod common;
use std::time::Duration;

use common::*;
use fleetwire_command::*;
use fleetwire_testkit::LinkConfig;

fn lossy(loss: f64) -> LinkConfig {
    LinkConfig {
        delay: Duration::from_millis(30),
        loss,
        reorder: 0.1,
        reorder_delay: Duration::from_millis(50),
        ..LinkConfig::perfect()
    }
}

#[test]
fn every_command_succeeds_once_at_30_percent_loss() {
    let (mut retransmissions, mut duplicates, mut lost) = (0, 0, 0);
    for seed in 0..40 {
        let mut w = World::new(3, &lossy(0.3), ServerConfig::default(), seed);
        let mut ids = Vec::new();
        for round in 0..4u8 {
            for i in 0..3 {
                ids.push((
                    i,
                    w.send(i, Action::SetVolume(round * 10), Duration::from_secs(300)),
                ));
            }
            w.run_for(Duration::from_millis(300));
        }
        let done = w.run_until(Duration::from_secs(300), |w| {
            ids.iter()
                .all(|&(_, id)| w.final_state(id) == Some(CommandState::Succeeded))
        });
        assert!(
            done,
            "seed {seed}: not all succeeded: {:?}",
            ids.iter()
                .map(|&(_, id)| w.final_state(id))
                .collect::<Vec<_>>()
        );
        for &(i, id) in &ids {
            assert_eq!(
                w.runs(i, id),
                1,
                "seed {seed}: {id} ran {} times",
                w.runs(i, id)
            );
            let states = w.states(id);
            assert_eq!(states.first(), Some(&CommandState::Sent), "seed {seed}");
            assert!(!states.contains(&CommandState::Expired));
        }
        w.assert_no_amplification();
        // Nothing unfinished is left on the server.
        for i in 0..3 {
            assert!(w.server.commands(w.nodes[i].id).is_empty());
            duplicates += w.nodes[i].machine.stats().duplicates;
            lost += w.nodes[i].down.stats().lost + w.nodes[i].up.stats().lost;
        }
        retransmissions += w.server.stats().retransmissions;
    }
    // The links really were lossy, and the machines really did recover.
    assert!(lost > 500, "{lost}");
    assert!(retransmissions > 100, "{retransmissions}");
    assert!(duplicates > 10, "{duplicates}");
}

#[test]
fn a_perfect_link_needs_one_datagram_each_way_per_command() {
    let mut w = World::new(1, &lossy(0.0), ServerConfig::default(), 1);
    // Let the Hello teach the server the player's port first.
    w.run_for(Duration::from_secs(1));
    let before = w.server.stats().datagrams_out;
    let id = w.send(0, Action::Reboot, Duration::from_secs(60));
    assert!(w.run_until(Duration::from_secs(10), |w| w.final_state(id)
        == Some(CommandState::Succeeded)));
    // The command, then the result acknowledgement.
    assert_eq!(w.server.stats().datagrams_out - before, 2);
    assert_eq!(w.server.stats().retransmissions, 0);
    assert_eq!(
        w.states(id),
        vec![
            CommandState::Sent,
            CommandState::Delivered,
            CommandState::Succeeded
        ]
    );
}
