//! An offline player receives, when its session comes back, every command still within its
//! time-to-live, highest priority first, each exactly once, under its new login's key.
mod common;
use std::time::Duration;

use common::*;
use fleetwire_command::*;
use fleetwire_testkit::LinkConfig;

#[test]
fn commands_queued_while_offline_arrive_on_return_in_priority_order() {
    let link = LinkConfig {
        delay: Duration::from_millis(15),
        ..LinkConfig::perfect()
    };
    let mut w = World::new(1, &link, ServerConfig::default(), 8);
    w.run_for(Duration::from_secs(1));
    w.logout(0);
    let now = w.now();
    let p = w.nodes[0].id;
    let low = w
        .server
        .send(
            now,
            p,
            CommandSpec {
                action: Action::PurgeCache,
                ttl: Duration::from_secs(7200),
                priority: Priority::LOW,
            },
        )
        .unwrap();
    let urgent = w
        .server
        .send(
            now,
            p,
            CommandSpec {
                action: Action::Display(false),
                ttl: Duration::from_secs(7200),
                priority: Priority::URGENT,
            },
        )
        .unwrap();
    let normal = w
        .server
        .send(
            now,
            p,
            CommandSpec::new(Action::SetVolume(5), Duration::from_secs(7200)),
        )
        .unwrap();
    w.flush();
    // An hour offline: nothing is sent (not even to the old address).
    let sent_before = w.server.stats().datagrams_out;
    w.run_for(Duration::from_secs(3600));
    assert_eq!(w.server.stats().datagrams_out, sent_before);
    assert_eq!(w.server.commands(p).len(), 3);
    // Back, with a new login.
    w.relogin(0);
    assert!(w.run_until(Duration::from_secs(30), |w| {
        [low, urgent, normal]
            .iter()
            .all(|&id| w.final_state(id) == Some(CommandState::Succeeded))
    }));
    let order: Vec<CommandId> = w.nodes[0].executed.iter().map(|(c, _)| c.id).collect();
    assert_eq!(order, vec![urgent, normal, low]);
    // They travelled together and their remaining TTL was counted from creation.
    let (c, _) = &w.nodes[0].executed[0];
    assert!(c.ttl_remaining <= Duration::from_secs(3600));
    assert_eq!(c.created, UnixTime::from_millis(T0 + 1000));
}
