//! A new login rotates the key: datagrams under the old key are refused by both sides from the
//! moment each side learns of the new login, delivery continues under the new key, and a
//! command delivered before the re-login does not run again.
mod common;
use std::time::Duration;

use common::*;
use fleetwire_command::*;
use fleetwire_testkit::LinkConfig;

#[test]
fn relogin_rotates_the_key_and_keeps_exactly_once() {
    let mut w = World::new(1, &LinkConfig::perfect(), ServerConfig::default(), 9);
    w.run_for(Duration::from_secs(1));
    // Delivered, not reported yet, when the player logs in again.
    w.nodes[0].auto_report = None;
    let id = w.send(0, Action::CollectNow, Duration::from_secs(600));
    assert!(w.run_until(Duration::from_secs(5), |w| w.final_state(id)
        == Some(CommandState::Delivered)));
    let old_down = w.captured_down.last().unwrap().1.clone();
    let k0 = key(0, 0);
    let k1 = key(0, 1);
    assert_ne!(k0.id(), k1.id());
    w.relogin(0);
    // The old server datagram no longer opens on the player.
    assert_eq!(
        w.deliver_to_player(0, server_addr(), &old_down),
        Err(CommandError::UnknownKey)
    );
    // The result, reported after the re-login, travels under the new key and is accepted.
    let now = w.now();
    w.nodes[0]
        .machine
        .report(
            now,
            id,
            Outcome::Failed {
                message: "disk full".into(),
            },
        )
        .unwrap();
    assert!(w.run_until(Duration::from_secs(5), |w| {
        w.final_state(id).is_some_and(|s| s.is_terminal())
    }));
    assert_eq!(
        w.final_state(id),
        Some(CommandState::Failed(Failure::Player {
            message: "disk full".into()
        }))
    );
    // Every datagram the player sent after the re-login names the new key.
    let last_up = &w.captured_up.last().unwrap().1;
    assert_eq!(&last_up[2..10], &k1.id().0);
    // A new command under the new key runs; the old one never ran twice.
    let id2 = w.send(0, Action::Reboot, Duration::from_secs(60));
    w.nodes[0].auto_report = Some(Outcome::Succeeded);
    assert!(w.run_until(Duration::from_secs(5), |w| w.final_state(id2)
        == Some(CommandState::Succeeded)));
    assert_eq!(w.runs(0, id), 1);
}

#[test]
fn the_key_is_derived_identically_from_a_real_session_login() {
    use fleetwire_session::*;
    use std::sync::Arc;
    #[allow(clippy::disallowed_methods)]
    let t0 = std::time::Instant::now();
    let id = PlayerId::from_bytes([3; 16]);
    let secret = PlayerSecret::from_bytes([4; 32]);
    let binding = ChannelBinding([6; 32]);
    let mut c = Client::new(Arc::new(ClientConfig::new(id, secret.clone())), t0, binding);
    let mut s = ServerConnection::new(
        Arc::new(fleetwire_session::ServerConfig::default()),
        t0,
        [8; 32],
        binding,
    );
    for _ in 0..4 {
        let mut b = Vec::new();
        while c.poll_transmit(&mut b).is_some() {}
        let _ = s.handle_input(t0, &b);
        while let Some(e) = s.poll_event() {
            if let fleetwire_session::ServerEvent::LookupPlayer { .. } = e {
                s.resolve_player(
                    t0,
                    PlayerLookup::Known {
                        verifier: secret.verifier(),
                        approved: true,
                        config_hash: None,
                    },
                )
                .unwrap();
            }
        }
        let mut b = Vec::new();
        while s.poll_transmit(&mut b).is_some() {}
        let _ = c.handle_input(t0, &b);
    }
    let player_key = CommandKey::derive(&c.channel_binding(), &c.login_nonce().unwrap(), &id);
    let server_key = CommandKey::derive(&s.channel_binding(), &s.login_nonce().unwrap(), &id);
    assert_eq!(player_key, server_key);
    assert_eq!(player_key, CommandKey::derive(&binding, &[8; 32], &id));
}
