//! Every fatal condition ends in exactly one Closed event with a reason.
#![allow(clippy::disallowed_methods)] // tests take a real origin for virtual time
mod common;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use fleetwire_session::*;
use fleetwire_wire::DecodeError;

fn server() -> (ServerConnection, Instant) {
    let now = Instant::now();
    let s = ServerConnection::new(
        Arc::new(ServerConfig::default()),
        now,
        [1; 32],
        ChannelBinding::NONE,
    );
    (s, now)
}

fn closes(input: &[u8]) -> (SessionError, Vec<u8>) {
    let (mut s, now) = server();
    let err = s.handle_input(now, input).unwrap_err();
    let events: Vec<_> = std::iter::from_fn(|| s.poll_event()).collect();
    let closed: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, ServerEvent::Closed { .. }))
        .collect();
    assert_eq!(closed.len(), 1, "{events:?}");
    assert_eq!(
        closed[0],
        &ServerEvent::Closed {
            reason: err.clone()
        }
    );
    // Later input changes nothing.
    assert!(s.handle_input(now, input).is_ok());
    assert!(s.poll_event().is_none());
    let mut out = Vec::new();
    while s.poll_transmit(&mut out).is_some() {}
    (err, out)
}

#[test]
fn version_mismatch() {
    let (err, reply) = closes(&[2, 1, 0, 0, 0, 0]);
    assert_eq!(err, SessionError::VersionMismatch { theirs: 2, ours: 1 });
    assert!(err.to_string().contains("upgrade the older side"));
    // The peer is told why, in a version-1 Close frame.
    assert_eq!(&reply[..2], &[1, 0x05]);
    assert_eq!(reply[6], CloseCode::UnsupportedVersion.to_byte());
}

#[test]
fn unknown_message_type() {
    let (err, _) = closes(&[1, 0x7f, 0, 0, 0, 0]);
    assert_eq!(
        err,
        SessionError::Decode(DecodeError::UnknownMessageType { msg_type: 0x7f })
    );
}

#[test]
fn oversized_frame_before_login_is_refused_without_buffering() {
    let (err, _) = closes(&[1, 0x01, 0xff, 0xff, 0xff, 0xff, 0, 0]);
    assert_eq!(
        err.to_string(),
        "bad frame from peer: frame length 4294967295 exceeds the limit 256"
    );
}

#[test]
fn heartbeat_before_login() {
    let mut body = Vec::new();
    Message::Heartbeat {
        seq: 1,
        status: PlayerStatus::default(),
    }
    .encode_frame(&mut body);
    let (err, _) = closes(&body);
    assert_eq!(
        err,
        SessionError::Unexpected("expected a hello before anything else")
    );
}

#[test]
fn slowloris_login_timeout() {
    let (mut s, now) = server();
    // One byte of a Hello, then nothing.
    s.handle_input(now, &[1]).unwrap();
    s.handle_timeout(now + Duration::from_secs(9));
    assert_eq!(s.state(), ServerState::AwaitingHello);
    assert_eq!(s.poll_timeout(), Some(now + Duration::from_secs(10)));
    s.handle_timeout(now + Duration::from_secs(10));
    assert_eq!(
        s.poll_event(),
        Some(ServerEvent::Closed {
            reason: SessionError::LoginTimeout(10_000)
        })
    );
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn orderly_close_by_the_player() {
    let mut pair = standard();
    pair.settle();
    pair.a
        .client
        .close(pair.now(), "shutting down for the night")
        .unwrap();
    pair.settle();
    assert_eq!(
        pair.server_closed(),
        vec![&SessionError::PeerClosed {
            code: CloseCode::Normal,
            message: "shutting down for the night".into()
        }]
    );
    assert_eq!(
        pair.a.client.close(pair.now(), "again"),
        Err(ApiMisuse::Closed)
    );
}
