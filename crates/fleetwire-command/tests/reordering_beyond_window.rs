//! Reordering beyond the window: a copy that arrives after more than `REPLAY_WINDOW` newer
//! datagrams is dropped even though authentic; the command it carried still runs exactly once
//! through a later retransmission, and a copy held back past its retransmissions runs nothing.
mod common;
use std::time::Duration;

use common::*;
use fleetwire_command::wire::{Frame, Header, seal};
use fleetwire_command::*;
use fleetwire_testkit::LinkConfig;

fn datagram(key: &CommandKey, seq: u64, frame: &Frame) -> Vec<u8> {
    let mut plain = Vec::new();
    frame.encode(&mut plain);
    let mut out = Vec::new();
    seal(
        key,
        Header {
            direction: Direction::ToPlayer,
            key_id: key.id(),
            seq,
        },
        &plain,
        &mut out,
    );
    out
}

fn command(id: u64) -> Frame {
    Frame::Command(Command {
        id: CommandId(id),
        action: Action::Screenshot,
        created: UnixTime::from_millis(T0),
        ttl_remaining: Duration::from_secs(60),
        priority: Priority::NORMAL,
    })
}

#[test]
fn a_copy_older_than_the_window_is_dropped_and_the_retransmission_runs_once() {
    let mut w = World::new(1, &LinkConfig::perfect(), ServerConfig::default(), 1);
    let k = key(0, 0);
    let sa = server_addr();
    // The newest datagram the player has seen is far ahead of the late copy.
    let late = datagram(&k, 10, &command(7));
    w.deliver_to_player(
        0,
        sa,
        &datagram(
            &k,
            10 + REPLAY_WINDOW,
            &Frame::ResultAck(vec![CommandId(99)]),
        ),
    )
    .unwrap();
    assert_eq!(
        w.deliver_to_player(0, sa, &late),
        Err(CommandError::Replay { seq: 10 })
    );
    // One inside the window is still fine, and carries the same command: it runs once.
    w.deliver_to_player(0, sa, &datagram(&k, 11, &command(7)))
        .unwrap();
    w.deliver_to_player(0, sa, &datagram(&k, 12, &command(7)))
        .unwrap();
    w.flush();
    assert_eq!(w.runs(0, CommandId(7)), 1);
    assert_eq!(w.nodes[0].machine.stats().duplicates, 1);
    assert_eq!(w.nodes[0].machine.stats().dropped_replay, 1);
}

#[test]
fn end_to_end_a_held_back_first_copy_arrives_after_the_command_ran() {
    // Every copy is held back by up to 20 s at random, so copies overtake each other.
    let link = LinkConfig {
        reorder: 1.0,
        reorder_delay: Duration::from_secs(20),
        ..LinkConfig::perfect()
    };
    let mut late_copies = 0;
    for seed in 0..10 {
        let mut w = World::new(1, &LinkConfig::perfect(), ServerConfig::default(), seed);
        w.run_for(Duration::from_secs(1));
        w.nodes[0].down = fleetwire_testkit::Link::new(link.clone(), seed).with_origin(w.origin);
        let id = w.send(0, Action::CollectNow, Duration::from_secs(600));
        w.run_for(Duration::from_secs(60));
        assert_eq!(
            w.final_state(id),
            Some(CommandState::Succeeded),
            "seed {seed}"
        );
        assert_eq!(w.runs(0, id), 1, "seed {seed}");
        late_copies += w.nodes[0].machine.stats().duplicates;
    }
    // Held-back copies did arrive after the command had run, and ran nothing.
    assert!(late_copies > 0);
}
