//! A provisioned, approved player logs in.
#![allow(clippy::disallowed_methods)] // tests take a real origin for virtual time
mod common;
use common::*;
use fleetwire_session::*;

#[test]
fn approved_player_logs_in_and_the_secret_never_crosses_the_wire() {
    let mut pair = standard();
    pair.settle();
    assert_eq!(pair.a.client.state(), ClientState::Online);
    assert_eq!(pair.b.server.state(), ServerState::Online);
    assert!(
        matches!(pair.b.events[1], ServerEvent::LoggedIn { player_id } if player_id == player(1))
    );
    let secret = secret(1);
    let wire = &pair.a.bytes;
    assert!(!wire.windows(32).any(|w| w == secret.as_bytes()));
    assert!(!wire.windows(32).any(|w| w == secret.verifier().as_bytes()));
    // Hello + Proof only.
    assert_eq!(pair.a.client.stats().messages_out, 2);
}
