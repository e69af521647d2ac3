//! A datagram from an address that is not the player's session address is ignored, however
//! authentic; on the player, anything not from the server's address is ignored. Within the
//! session's IP address, an authentic datagram from a new port (NAT rebinding) moves the
//! player's UDP address there.
mod common;
use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use fleetwire_command::*;
use fleetwire_testkit::LinkConfig;

#[test]
fn authentic_datagrams_from_elsewhere_are_ignored() {
    let mut w = World::new(1, &LinkConfig::perfect(), ServerConfig::default(), 21);
    w.nodes[0].auto_report = None;
    w.run_for(Duration::from_secs(1));
    let id = w.send(0, Action::Reboot, Duration::from_secs(600));
    assert!(w.run_until(Duration::from_secs(5), |w| w.final_state(id)
        == Some(CommandState::Delivered)));
    // The player reports; capture its result datagram instead of delivering it.
    let now = w.now();
    w.nodes[0]
        .machine
        .report(now, id, Outcome::Succeeded)
        .unwrap();
    let mut buf = Vec::new();
    let t = w.nodes[0].machine.poll_transmit(&mut buf).unwrap();
    assert_eq!(t.to, Some(server_addr()));
    let elsewhere: SocketAddr = "203.0.113.9:40000".parse().unwrap();
    let replies = w.replies.len();
    assert_eq!(
        w.deliver_to_server(elsewhere, &buf),
        Err(CommandError::WrongAddress {
            from: elsewhere,
            expected: w.nodes[0].session_addr.ip()
        })
    );
    assert_eq!(w.replies.len(), replies);
    assert_eq!(w.server.stats().dropped_wrong_address, 1);
    // The same bytes from the right address count (the rejected copy did not burn the sequence number).
    let from = w.nodes[0].udp_addr;
    w.deliver_to_server(from, &buf).unwrap();
    w.flush();
    assert_eq!(w.final_state(id), Some(CommandState::Succeeded));

    // Player side: a server datagram that comes from another address.
    let (_, down) = w.captured_down.last().unwrap().clone();
    let fake_server: SocketAddr = "192.0.2.99:4700".parse().unwrap();
    assert!(matches!(
        w.deliver_to_player(0, fake_server, &down),
        Err(CommandError::WrongAddress { .. })
    ));
}

#[test]
fn a_new_port_on_the_session_ip_is_learned_from_an_authentic_datagram() {
    let mut w = World::new(1, &LinkConfig::perfect(), ServerConfig::default(), 22);
    w.run_for(Duration::from_secs(1));
    // The NAT rebinds the player to a new port; its next keepalive shows it.
    w.nodes[0].udp_addr = "10.0.0.2:40001".parse().unwrap();
    w.run_for(Duration::from_secs(26));
    let id = w.send(0, Action::Reboot, Duration::from_secs(60));
    assert!(w.run_until(Duration::from_secs(5), |w| w.final_state(id)
        == Some(CommandState::Succeeded)));
    assert_eq!(
        w.server.stats().retransmissions,
        0,
        "sent to the new port at once"
    );
}
