//! A logged-in player that floods heartbeats is cut: each heartbeat costs the server an ack, an
//! event and a presence write, so their rate is bounded (`max_heartbeats_per_interval`, the one
//! GCRA of the suite). A player at the normal rate, or sending one per status change, is not.
#![allow(clippy::disallowed_methods)] // tests take a real origin for virtual time
mod common;
use std::time::Duration;

use common::*;
use fleetwire_session::*;

fn heartbeats_acked(pair: &Pair) -> usize {
    pair.a
        .events
        .iter()
        .filter(|e| matches!(e, ClientEvent::HeartbeatAcked { .. }))
        .count()
}

#[test]
fn heartbeats_faster_than_the_limit_close_the_session() {
    let mut pair = standard();
    pair.settle();
    assert_eq!(pair.a.client.state(), ClientState::Online);
    // The burst is allowed: 20 heartbeats at once.
    for _ in 0..20 {
        pair.a.client.heartbeat_now(pair.now()).unwrap();
        pair.settle();
    }
    assert_eq!(heartbeats_acked(&pair), 20);
    assert!(pair.server_closed().is_empty());
    // The 21st within the same instant is over the limit.
    pair.a.client.heartbeat_now(pair.now()).unwrap();
    pair.settle();
    assert_eq!(
        pair.server_closed(),
        vec![&SessionError::HeartbeatFlood { max: 20 }]
    );
    assert!(matches!(
        pair.client_closed()[..],
        [SessionError::PeerClosed {
            code: CloseCode::ProtocolViolation,
            ..
        }]
    ));
}

#[test]
fn a_status_change_every_two_seconds_for_an_hour_is_within_the_limit() {
    let mut pair = standard();
    pair.settle();
    let start = pair.now();
    while pair.now() < start + Duration::from_secs(3600) {
        pair.run_for(Duration::from_secs(2));
        pair.a.client.heartbeat_now(pair.now()).unwrap();
        pair.settle();
    }
    assert!(
        pair.server_closed().is_empty(),
        "{:?}",
        pair.server_closed()
    );
    assert!(heartbeats_acked(&pair) >= 1800);
}
