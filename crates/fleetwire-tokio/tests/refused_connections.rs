//! What the TLS port refuses: TLS 1.1, plaintext, oversized frames, connections over the limit,
//! and peers too slow to log in — without holding up anyone else.
#![allow(clippy::disallowed_methods)]
mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use fleetwire_session::*;
use fleetwire_tokio::session::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// Reads until the peer closes or 5 s pass; returns what arrived.
async fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut got)).await;
    got
}

/// A TLS 1.1 `ClientHello`: `legacy_version` 0x0302, two TLS 1.1 cipher suites, no extensions.
fn tls11_client_hello() -> Vec<u8> {
    let mut hello = vec![0x03, 0x02];
    hello.extend_from_slice(&[0x5a; 32]); // random
    hello.push(0); // session id
    hello.extend_from_slice(&[0x00, 0x04, 0x00, 0x2f, 0xc0, 0x13]); // suites
    hello.extend_from_slice(&[0x01, 0x00]); // null compression
    let mut handshake = vec![0x01, 0x00, 0x00, hello.len() as u8];
    handshake.extend_from_slice(&hello);
    let mut record = vec![0x16, 0x03, 0x02, 0x00, handshake.len() as u8];
    record.extend_from_slice(&handshake);
    record
}

#[tokio::test]
async fn tls_1_1_client_gets_an_alert_and_is_closed() {
    let server = start(true, fast_config(), Limits::default(), &[1]).await;
    let mut notices = server.handle.subscribe();
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(&tls11_client_hello()).await.unwrap();
    let reply = read_to_close(&mut tcp).await;
    assert_eq!(
        reply.first(),
        Some(&0x15),
        "an alert record, got {reply:02x?}"
    );
    assert_eq!(reply[reply.len() - 2], 2, "fatal");
    // protocol_version or handshake_failure: rustls has nothing in common with a TLS 1.1 client.
    assert!([40, 70].contains(&reply[reply.len() - 1]), "{reply:02x?}");
    let notice = tokio::time::timeout(Duration::from_secs(2), notices.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(notice, Notice::Refused { ref why, .. } if why.contains("TLS handshake failed")),
        "{notice:?}"
    );
}

#[tokio::test]
async fn plaintext_client_on_the_tls_port_gets_nothing_of_the_protocol() {
    let server = start(true, fast_config(), Limits::default(), &[1]).await;
    let (id, _) = player(1);
    let mut hello = Vec::new();
    Message::Hello {
        player_id: id,
        software: "plain".into(),
    }
    .encode_frame(&mut hello);
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(&hello).await.unwrap();
    let reply = read_to_close(&mut tcp).await;
    // No Challenge frame (01 02 ...) ever comes back; at most a TLS alert.
    assert!(reply.is_empty() || reply[0] == 0x15, "{reply:02x?}");
    assert!(!server.handle.is_online(&id));
}

#[tokio::test]
async fn four_gib_length_prefix_closes_the_connection_with_a_reason() {
    let server = start(false, fast_config(), Limits::default(), &[1]).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(&[1, 1, 0xff, 0xff, 0xff, 0xff, 1, 2, 3])
        .await
        .unwrap();
    let reply = read_to_close(&mut tcp).await;
    let msg = Message::decode(reply[1], &reply[6..]).unwrap();
    assert_eq!(
        msg,
        Message::Close {
            code: CloseCode::ProtocolViolation,
            message: "bad frame from peer: frame length 4294967295 exceeds the limit 256".into()
        }
    );
}

#[tokio::test]
async fn connections_over_the_limit_are_dropped_and_slow_peers_do_not_block_others() {
    let limits = Limits {
        max_connections: 3,
        ..Limits::default()
    };
    let server = start(true, fast_config(), limits, &[1]).await;
    // Two slowloris peers: connect, send one byte, stall.
    let mut slow = Vec::new();
    for _ in 0..2 {
        let mut tcp = TcpStream::connect(server.addr).await.unwrap();
        tcp.write_all(&[0x16]).await.unwrap();
        slow.push(tcp);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(server.handle.connections(), 2);
    // A real player still logs in on the third slot.
    let (id, secret) = player(1);
    let (_tx, rx) = watch::channel(PlayerStatus::default());
    let transport = player_tls(server.fingerprint);
    let config = Arc::new(ClientConfig::new(id, secret));
    let player = tokio::spawn(async move {
        run_player(
            server.addr,
            &transport,
            config,
            rx,
            |_| {},
            std::future::pending(),
        )
        .await
    });
    tokio::time::timeout(Duration::from_secs(5), async {
        while !server.handle.is_online(&id) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("player online despite two stalled peers");
    // A fourth connection is over the limit: closed at once.
    let mut extra = TcpStream::connect(server.addr).await.unwrap();
    let mut byte = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(2), extra.read(&mut byte))
        .await
        .unwrap();
    assert!(matches!(n, Ok(0) | Err(_)));
    // The stalled peers are cut at the login deadline (2 s), freeing their slots.
    for mut tcp in slow {
        let got = read_to_close(&mut tcp).await;
        assert!(got.is_empty() || got[0] == 0x15);
    }
    assert_eq!(server.handle.connections(), 1);
    player.abort();
}
