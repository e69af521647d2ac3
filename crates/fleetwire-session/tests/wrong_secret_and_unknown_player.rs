//! Unknown players and wrong secrets are refused alike.
#![allow(clippy::disallowed_methods)] // tests take a real origin for virtual time
mod common;
use common::*;
use fleetwire_session::*;

fn attempt(lookup: PlayerLookup, client_secret: PlayerSecret) -> Pair {
    let mut pair = pair(
        ClientConfig::new(player(1), client_secret),
        ServerConfig::default(),
        lookup,
    );
    pair.settle();
    pair
}

#[test]
fn unknown_player_and_wrong_secret_get_the_same_answer() {
    let wrong = attempt(known(&secret(1), true), secret(2));
    let unknown = attempt(PlayerLookup::Unknown, secret(1));
    for pair in [&wrong, &unknown] {
        assert_eq!(pair.server_closed(), vec![&SessionError::AuthFailed]);
        assert_eq!(pair.client_closed(), vec![&SessionError::AuthFailed]);
        assert_eq!(pair.b.server.state(), ServerState::Closed);
    }
    // Byte-identical replies from the server.
    let reply = |p: &Pair| p.a.client.stats().bytes_in;
    assert_eq!(reply(&wrong), reply(&unknown));
    assert_eq!(
        SessionError::AuthFailed.to_string(),
        "authentication failed: unknown player id or wrong secret"
    );
}

#[test]
fn input_after_close_is_ignored() {
    let mut pair = attempt(PlayerLookup::Unknown, secret(1));
    let before = pair.b.events.len();
    assert!(
        pair.b
            .server
            .handle_input(pair.now(), &[1, 6, 0, 0, 0, 0])
            .is_ok()
    );
    pair.settle();
    assert_eq!(pair.b.events.len(), before);
    assert_eq!(pair.server_closed().len(), 1);
}
