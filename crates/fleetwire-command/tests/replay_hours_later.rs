//! Replay: every datagram recorded during a session, re-sent hours later, is dropped before
//! decryption (already seen, or under a rotated key), counted, never answered, and runs
//! nothing.
mod common;
use std::time::Duration;

use common::*;
use fleetwire_command::*;
use fleetwire_testkit::LinkConfig;

#[test]
fn recorded_datagrams_replayed_hours_later_do_nothing() {
    let mut w = World::new(1, &LinkConfig::perfect(), ServerConfig::default(), 3);
    w.run_for(Duration::from_secs(1));
    let id = w.send(0, Action::Reboot, Duration::from_secs(3600));
    assert!(w.run_until(Duration::from_secs(10), |w| w.final_state(id)
        == Some(CommandState::Succeeded)));
    let down = w.captured_down.clone();
    let up = w.captured_up.clone();
    assert!(down.len() >= 2 && up.len() >= 3);

    // Three hours later, same login.
    w.run_for(Duration::from_secs(3 * 3600));
    let replies = w.replies.len();
    let events = w.server_events.len();
    for (_, d) in &down {
        assert!(matches!(
            w.deliver_to_player(0, server_addr(), d),
            Err(CommandError::Replay { .. })
        ));
    }
    let from = w.nodes[0].udp_addr;
    for (_, d) in &up {
        assert!(matches!(
            w.deliver_to_server(from, d),
            Err(CommandError::Replay { .. })
        ));
    }
    assert_eq!(w.replies.len(), replies, "a replay was answered");
    w.flush();
    assert_eq!(w.runs(0, id), 1);
    assert_eq!(w.server_events.len(), events);

    // After a new login the old datagrams belong to no key at all.
    w.relogin(0);
    w.run_for(Duration::from_secs(1));
    for (_, d) in &down {
        assert_eq!(
            w.deliver_to_player(0, server_addr(), d),
            Err(CommandError::UnknownKey)
        );
    }
    for (_, d) in &up {
        assert_eq!(w.deliver_to_server(from, d), Err(CommandError::UnknownKey));
    }
    assert_eq!(w.runs(0, id), 1);
    assert!(w.nodes[0].machine.stats().dropped_replay >= down.len() as u64);
    assert!(w.server.stats().dropped_unknown_key >= up.len() as u64);
}
