//! Expired time-to-live: a command whose player stays unreachable past its time-to-live ends
//! `Expired` and is never delivered, even when the player comes back; the TTL is wall-clock
//! (`UnixTime`), so it is measured from creation, not from the last attempt.
mod common;
use std::time::Duration;

use common::*;
use fleetwire_command::*;
use fleetwire_testkit::LinkConfig;

#[test]
fn a_command_outliving_its_ttl_expires_and_never_runs() {
    let mut w = World::new(1, &LinkConfig::perfect(), ServerConfig::default(), 2);
    w.run_for(Duration::from_secs(1));
    w.logout(0);
    let short = w.send(0, Action::Reboot, Duration::from_secs(30));
    let long = w.send(0, Action::RefreshContent, Duration::from_secs(3600));
    assert_eq!(
        w.server.command(w.nodes[0].id, short).unwrap().state,
        CommandState::Pending
    );
    w.run_for(Duration::from_secs(31));
    assert_eq!(w.states(short), vec![CommandState::Expired]);
    assert!(w.server.command(w.nodes[0].id, short).is_none());
    assert_eq!(w.final_state(long), None, "still pending, no event yet");
    w.login(0);
    assert!(w.run_until(Duration::from_secs(10), |w| w.final_state(long)
        == Some(CommandState::Succeeded)));
    assert_eq!(w.runs(0, short), 0);
    assert_eq!(w.runs(0, long), 1);
}

#[test]
fn unanswered_retransmissions_stop_at_the_ttl() {
    let blocked = LinkConfig {
        loss: 1.0,
        ..LinkConfig::perfect()
    };
    let config = ServerConfig {
        fallback_after: u32::MAX,
        ..ServerConfig::default()
    };
    let mut w = World::new(1, &blocked, config, 4);
    let id = w.send(0, Action::Screenshot, Duration::from_secs(120));
    w.run_for(Duration::from_secs(600));
    assert_eq!(
        w.states(id),
        vec![CommandState::Sent, CommandState::Expired]
    );
    let info_attempts = w.server.stats().datagrams_out;
    // Exponential backoff: 1 + 2 + 4 + 8 + 16 + 30 + 30 + … s stays within a handful of tries.
    assert!((4..=10).contains(&info_attempts), "{info_attempts}");
    assert_eq!(w.server.poll_timeout(), None, "nothing left to do");
}
