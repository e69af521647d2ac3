//! A recorded login cannot be replayed.
#![allow(clippy::disallowed_methods)] // tests take a real origin for virtual time
mod common;
use common::*;
use fleetwire_session::*;

#[test]
fn a_recorded_login_replayed_to_a_new_connection_fails() {
    let mut original = Pair::standard();
    original.drive();
    assert_eq!(original.server.state(), ServerState::Online);
    let recorded = original.client_bytes.clone();

    // The attacker replays the player's bytes; the new connection has a fresh nonce.
    let mut replay = Pair::with_nonce(
        ClientConfig::new(player(1), secret(1)),
        ServerConfig::default(),
        known(&secret(1), true),
        [0x43; 32],
    );
    let server = &mut replay.server;
    let err = server.handle_input(replay.now, &recorded);
    while let Some(event) = server.poll_event() {
        if let ServerEvent::LookupPlayer { .. } = event {
            server
                .resolve_player(replay.now, known(&secret(1), true))
                .unwrap();
        }
        replay.server_events.push(event);
    }
    assert!(err.is_ok(), "the bytes are well-formed: {err:?}");
    assert_eq!(replay.server_closed(), vec![&SessionError::AuthFailed]);
    assert!(
        !replay
            .server_events
            .iter()
            .any(|e| matches!(e, ServerEvent::LoggedIn { .. }))
    );
}
