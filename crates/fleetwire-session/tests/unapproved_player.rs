//! Players waiting for approval are not served.
#![allow(clippy::disallowed_methods)] // tests take a real origin for virtual time
mod common;
use common::*;
use fleetwire_session::*;

#[test]
fn a_player_waiting_for_approval_is_told_so_and_not_served() {
    let mut pair = pair(
        ClientConfig::new(player(1), secret(1)),
        ServerConfig::default(),
        known(&secret(1), false),
    );
    pair.settle();
    let expected = SessionError::NotApproved(player(1).to_string());
    assert_eq!(pair.server_closed(), vec![&expected]);
    assert_eq!(pair.client_closed(), vec![&expected]);
    assert!(
        expected
            .to_string()
            .contains("fleetwire-server player approve")
    );
    assert!(
        !pair
            .b
            .events
            .iter()
            .any(|e| matches!(e, ServerEvent::LoggedIn { .. }))
    );
}

#[test]
fn a_wrong_secret_for_an_unapproved_player_does_not_reveal_the_pending_state() {
    let mut pair = pair(
        ClientConfig::new(player(1), secret(9)),
        ServerConfig::default(),
        known(&secret(1), false),
    );
    pair.settle();
    assert_eq!(pair.client_closed(), vec![&SessionError::AuthFailed]);
}
