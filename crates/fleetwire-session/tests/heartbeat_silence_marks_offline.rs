//! Heartbeats keep a player online; silence takes it offline within the bound.
#![allow(clippy::disallowed_methods)] // tests take a real origin for virtual time
mod common;
use std::time::Duration;

use common::*;
use fleetwire_session::*;

#[test]
fn heartbeats_keep_the_player_online_and_silence_closes_within_the_bound() {
    let mut pair = standard();
    pair.settle();
    let config = ServerConfig::default();
    let mut presence = Presence::new(PresenceConfig::new(config.silence_limit()), pair.now());
    presence.seen(pair.now(), player(1));

    // Ten minutes of heartbeats: every one acknowledged, presence stays online.
    let start = pair.now();
    while pair.now() < start + Duration::from_secs(600) {
        pair.advance();
        let now = pair.now();
        for e in pair.b.events.drain(..) {
            if let ServerEvent::Heartbeat { player_id, .. } = e {
                presence.seen(now, player_id);
            }
        }
        presence.handle_timeout(pair.now());
    }
    let acks = pair
        .a
        .events
        .iter()
        .filter(|e| matches!(e, ClientEvent::HeartbeatAcked { .. }))
        .count();
    assert_eq!(acks, 20, "one heartbeat every 30 s");
    assert!(presence.is_online(&player(1)));
    assert_eq!(pair.a.client.stats().heartbeats, 20);

    // The network dies. The server closes at 1.5 × 30 s + 5 s = 50 s after the last message.
    pair.set_link_up(false);
    let silent_since = pair.now();
    let mut offline_at = None;
    while pair.b.server.state() != ServerState::Closed {
        pair.advance();
        presence.handle_timeout(pair.now());
        if offline_at.is_none() && !presence.is_online(&player(1)) {
            offline_at = Some(pair.now());
        }
    }
    assert_eq!(
        pair.server_closed(),
        vec![&SessionError::PeerSilent(50_000)]
    );
    let closed_after = pair.now() - silent_since;
    assert!(closed_after <= Duration::from_secs(50), "{closed_after:?}");
    let mut t = pair.now();
    while presence.is_online(&player(1)) {
        t += Duration::from_millis(250);
        presence.handle_timeout(t);
    }
    let offline_after = offline_at.unwrap_or(t) - silent_since;
    assert!(
        offline_after <= Duration::from_millis(50_250),
        "{offline_after:?}"
    );
    // The client also notices the silent server, exactly once.
    pair.run_for(Duration::from_secs(120));
    assert_eq!(
        pair.client_closed(),
        vec![&SessionError::PeerSilent(50_000)]
    );
}

#[test]
fn a_partial_frame_trickled_byte_by_byte_is_silence() {
    let mut pair = standard();
    pair.settle();
    assert_eq!(pair.b.server.state(), ServerState::Online);
    // A heartbeat frame announcing 4,000 bytes, one byte a second: never a whole message.
    let frame = [1u8, 0x06, 0, 0, 0x0f, 0xa0];
    let start = pair.now();
    let mut sent = 0usize;
    while pair.b.server.state() != ServerState::Closed
        && pair.now() < start + Duration::from_secs(300)
    {
        pair.clock.advance(Duration::from_secs(1));
        let byte = frame.get(sent).copied().unwrap_or(0);
        let _ = pair.b.server.handle_input(pair.now(), &[byte]);
        sent += 1;
        pair.b.server.handle_timeout(pair.now());
        while pair.b.server.poll_event().is_some() {}
    }
    assert_eq!(pair.b.server.state(), ServerState::Closed);
    // Closed at the silence limit after login, not kept alive by the trickle.
    assert!(
        pair.now() - start <= Duration::from_secs(51),
        "{:?}",
        pair.now() - start
    );
}
