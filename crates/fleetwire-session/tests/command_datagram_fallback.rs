//! The UDP fallback for fleetwire-command: after login, a `CommandDatagram` (type 0x08) carries
//! an opaque sealed datagram either way; before login it is a protocol violation. Both sides
//! expose the same login nonce and channel binding (the inputs of the per-login command key).
#![allow(clippy::disallowed_methods)] // tests take a real origin for virtual time
mod common;
use common::*;
use fleetwire_session::*;

#[test]
fn command_datagrams_cross_the_session_both_ways_after_login() {
    let mut pair = standard();
    assert_eq!(pair.a.client.login_nonce(), None);
    assert_eq!(pair.b.server.login_nonce(), None);
    assert_eq!(
        pair.a.client.send_command_datagram(pair.now(), b"x"),
        Err(ApiMisuse::NotOnline)
    );
    pair.settle();
    assert_eq!(pair.a.client.state(), ClientState::Online);
    assert_eq!(pair.a.client.login_nonce(), Some([0x42; 32]));
    assert_eq!(pair.b.server.login_nonce(), Some([0x42; 32]));
    assert_eq!(
        pair.a.client.channel_binding(),
        pair.b.server.channel_binding()
    );

    pair.b
        .server
        .send_command_datagram(pair.now(), b"sealed to player")
        .unwrap();
    pair.a
        .client
        .send_command_datagram(pair.now(), b"sealed to server")
        .unwrap();
    pair.settle();
    assert!(pair.a.events.contains(&ClientEvent::CommandDatagram {
        datagram: b"sealed to player".to_vec()
    }));
    assert!(pair.b.events.contains(&ServerEvent::CommandDatagram {
        player_id: player(1),
        datagram: b"sealed to server".to_vec()
    }));
    assert_eq!(pair.a.client.state(), ClientState::Online);

    let too_long = vec![0; MAX_COMMAND_DATAGRAM_LEN + 1];
    assert!(matches!(
        pair.a.client.send_command_datagram(pair.now(), &too_long),
        Err(ApiMisuse::TooLong { .. })
    ));
}

#[test]
fn a_command_datagram_before_login_closes_the_connection() {
    let mut pair = standard();
    let mut frame = Vec::new();
    Message::Hello {
        player_id: player(1),
        software: String::new(),
    }
    .encode_frame(&mut frame);
    Message::CommandDatagram {
        datagram: vec![1, 2, 3],
    }
    .encode_frame(&mut frame);
    let err = pair.b.server.handle_input(pair.now(), &frame).unwrap_err();
    assert!(matches!(err, SessionError::Unexpected(_)), "{err}");
}

#[test]
fn the_frame_is_type_8_with_the_datagram_as_its_body() {
    let mut frame = Vec::new();
    Message::CommandDatagram {
        datagram: vec![0xaa, 0xbb],
    }
    .encode_frame(&mut frame);
    assert_eq!(frame, [0x01, 0x08, 0, 0, 0, 2, 0xaa, 0xbb]);
    let long = vec![0; MAX_COMMAND_DATAGRAM_LEN + 1];
    assert!(Message::decode(0x08, &long).is_err());
}
