//! A recorded login cannot be replayed.
#![allow(clippy::disallowed_methods)] // tests take a real origin for virtual time
mod common;
use common::*;
use fleetwire_session::*;

#[test]
fn a_recorded_login_replayed_to_a_new_connection_fails() {
    let mut original = standard();
    original.settle();
    assert_eq!(original.b.server.state(), ServerState::Online);
    let recorded = original.a.bytes.clone();

    // The attacker replays the player's bytes; the new connection has a fresh nonce.
    let mut replay = pair_with_nonce(
        ClientConfig::new(player(1), secret(1)),
        ServerConfig::default(),
        known(&secret(1), true),
        [0x43; 32],
    );
    let now = replay.now();
    let server = &mut replay.b.server;
    let err = server.handle_input(now, &recorded);
    while let Some(event) = server.poll_event() {
        if let ServerEvent::LookupPlayer { .. } = event {
            server.resolve_player(now, known(&secret(1), true)).unwrap();
        }
        replay.b.events.push(event);
    }
    assert!(err.is_ok(), "the bytes are well-formed: {err:?}");
    assert_eq!(replay.server_closed(), vec![&SessionError::AuthFailed]);
    assert!(
        !replay
            .b
            .events
            .iter()
            .any(|e| matches!(e, ServerEvent::LoggedIn { .. }))
    );
}
