//! UDP blocked → TCP: with UDP 4700 dropped both ways, a command goes unanswered three times,
//! the server moves the player to its session, and the same sealed datagram arrives inside
//! the session; the player answers by the session too. An operator can pin a player to the
//! session from the start; after the fallback hold, UDP is tried again.
mod common;
use std::time::Duration;

use common::*;
use fleetwire_command::*;
use fleetwire_testkit::LinkConfig;

fn blocked() -> LinkConfig {
    LinkConfig {
        loss: 1.0,
        ..LinkConfig::perfect()
    }
}

#[test]
fn three_unanswered_udp_tries_move_the_player_to_its_session() {
    let mut w = World::new(1, &blocked(), ServerConfig::default(), 11);
    let p = w.nodes[0].id;
    let id = w.send(0, Action::Reboot, Duration::from_secs(600));
    assert!(w.run_until(Duration::from_secs(60), |w| w.final_state(id)
        == Some(CommandState::Succeeded)));
    assert!(w.server_events.iter().any(|(e, _)| *e
        == ServerEvent::RouteChanged {
            player: p,
            route: Route::Session
        }));
    assert_eq!(w.server.route_to(p), Some(Route::Session));
    assert_eq!(w.nodes[0].machine.route(), Route::Session);
    assert_eq!(w.runs(0, id), 1);
    // Three UDP tries (1 s, 2 s, 4 s apart, ±20 %), then the session.
    let udp_tries = w.captured_down.len();
    assert_eq!(
        udp_tries, 0,
        "the player's NAT port was never learned, so UDP went nowhere"
    );
    assert!(
        w.server.stats().session_out >= 2,
        "command and result ack by session"
    );
    let (_, delivered_at) = w
        .server_events
        .iter()
        .find(|(e, _)| {
            matches!(
                e,
                ServerEvent::StateChanged {
                    state: CommandState::Delivered,
                    ..
                }
            )
        })
        .unwrap();
    let secs = delivered_at.millis_since(UnixTime::from_millis(T0)) as f64 / 1000.0;
    assert!(
        (4.0..12.0).contains(&secs),
        "delivered by session after {secs} s"
    );
    // Later commands go straight to the session while the fallback holds.
    let before = w.server.stats().session_out;
    let id2 = w.send(0, Action::SetVolume(1), Duration::from_secs(600));
    assert_eq!(w.server.stats().session_out, before + 1);
    assert!(w.run_until(Duration::from_secs(5), |w| w.final_state(id2)
        == Some(CommandState::Succeeded)));
    // After the hold (10 min), UDP is tried again.
    w.run_for(Duration::from_secs(600));
    assert_eq!(w.server.route_to(p), Some(Route::Udp));
}

#[test]
fn an_operator_can_pin_a_player_to_its_session() {
    let mut w = World::new(1, &blocked(), ServerConfig::default(), 12);
    let p = w.nodes[0].id;
    let now = w.now();
    w.server
        .set_route_policy(now, p, RoutePolicy::SessionOnly)
        .unwrap();
    let id = w.send(0, Action::Screenshot, Duration::from_secs(60));
    assert!(w.run_until(Duration::from_secs(2), |w| w.final_state(id)
        == Some(CommandState::Succeeded)));
    assert_eq!(w.server.stats().retransmissions, 0);
}

#[test]
fn udp_only_never_uses_the_session() {
    let mut w = World::new(1, &blocked(), ServerConfig::default(), 13);
    let p = w.nodes[0].id;
    let now = w.now();
    w.server
        .set_route_policy(now, p, RoutePolicy::UdpOnly)
        .unwrap();
    let id = w.send(0, Action::Screenshot, Duration::from_secs(60));
    w.run_for(Duration::from_secs(120));
    assert_eq!(w.final_state(id), Some(CommandState::Expired));
    assert_eq!(w.server.stats().session_out, 0);
}
