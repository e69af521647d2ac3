//! Slow and partial input on the player port (4701), before and after login: a peer that
//! trickles its TLS handshake, and a logged-in player that trickles a heartbeat frame one byte
//! at a time, are both cut — by the login deadline and by the silence limit — however steady
//! the trickle. (A logged-in player that stops *reading* cannot make the server queue more than
//! its heartbeat limit allows: acks are the only thing it can ask for, see
//! fleetwire-session's `heartbeat_flood_closes`.)
#![allow(clippy::disallowed_methods)]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use fleetwire_session::*;
use fleetwire_tokio::framed::{login_player, tls_binding};
use fleetwire_tokio::session::*;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Sends `bytes` one at a time every 100 ms until the server closes; returns when it did.
async fn trickle<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    stream: &mut S,
    bytes: &[u8],
) -> Instant {
    let mut scratch = [0u8; 512];
    for b in bytes.iter().cycle().take(400) {
        if stream.write_all(&[*b]).await.is_err() || stream.flush().await.is_err() {
            return Instant::now();
        }
        // Anything the server says (an alert, a close) and then EOF ends the trickle.
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(100), stream.read(&mut scratch)).await
        {
            return Instant::now();
        }
    }
    panic!("the server kept a trickling peer for 40 s");
}

#[tokio::test]
async fn a_handshake_trickled_byte_by_byte_is_cut_at_the_login_deadline() {
    let server = start(true, fast_config(), Limits::default(), &[1]).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let start = Instant::now();
    // The start of a TLS ClientHello record, then more bytes, never completing it.
    let closed = trickle(
        &mut tcp,
        &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc],
    )
    .await;
    // fast_config's login deadline is 2 s; the bound here only has to be finite.
    assert!(closed - start < Duration::from_secs(20));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(server.handle.connections(), 0);
}

#[tokio::test]
async fn a_logged_in_player_trickling_a_frame_is_cut_at_the_silence_limit() {
    let server = start(true, fast_config(), Limits::default(), &[1]).await;
    let (id, secret) = player(1);
    let connector =
        TlsConnector::from(fleetwire_tokio::tls::pinned_client_config(server.fingerprint).unwrap());
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let mut tls = connector
        .connect(ServerName::try_from("fleetwire.local").unwrap(), tcp)
        .await
        .unwrap();
    let binding = tls_binding(tls.get_ref().1).unwrap();
    login_player(&mut tls, binding, Arc::new(ClientConfig::new(id, secret)))
        .await
        .unwrap();
    assert!(
        server.handle.is_online(&id) || {
            tokio::time::sleep(Duration::from_millis(100)).await;
            server.handle.is_online(&id)
        }
    );
    // A heartbeat frame announcing 4,000 bytes, trickled: never a whole message.
    let mut frame = vec![1, 0x06, 0, 0, 0x0f, 0xa0];
    frame.extend(std::iter::repeat_n(0u8, 64));
    let start = Instant::now();
    let closed = trickle(&mut tls, &frame).await;
    // Silence limit with fast_config: 1.5 × 200 ms + 200 ms.
    assert!(closed - start < Duration::from_secs(20));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!server.handle.is_online(&id));
    assert_eq!(server.handle.connections(), 0);
}

/// Connects from `local` (a loopback address of the test's choosing).
async fn connect_from(local: &str, server: std::net::SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{local}:0").parse().unwrap()).unwrap();
    socket.connect(server).await.unwrap()
}

#[tokio::test]
async fn one_address_at_its_login_cap_does_not_starve_another() {
    let limits = Limits {
        max_logins_per_source: 3,
        ..Limits::default()
    };
    let server = start(true, fast_config(), limits, &[1]).await;
    let mut notices = server.handle.subscribe();
    // Three stalled handshakes from 127.0.0.1: its cap.
    let mut stalled = Vec::new();
    for _ in 0..3 {
        let mut tcp = connect_from("127.0.0.1", server.addr).await;
        tcp.write_all(&[0x16]).await.unwrap();
        stalled.push(tcp);
    }
    // The fourth from that address is dropped at accept, with a reason.
    let mut fourth = connect_from("127.0.0.1", server.addr).await;
    let mut byte = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(5), fourth.read(&mut byte))
        .await
        .unwrap();
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    let why = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Ok(Notice::Refused { why, .. }) = notices.recv().await {
                return why;
            }
        }
    })
    .await
    .unwrap();
    assert!(why.contains("already logging in"), "{why}");
    // Another address logs in meanwhile.
    let (id, secret) = player(1);
    let connector =
        TlsConnector::from(fleetwire_tokio::tls::pinned_client_config(server.fingerprint).unwrap());
    let tcp = connect_from("127.0.0.2", server.addr).await;
    let mut tls = connector
        .connect(ServerName::try_from("fleetwire.local").unwrap(), tcp)
        .await
        .unwrap();
    let binding = tls_binding(tls.get_ref().1).unwrap();
    login_player(
        &mut tls,
        binding,
        Arc::new(ClientConfig::new(id, secret.clone())),
    )
    .await
    .expect("a second address is not starved");
    drop(tls);
    // The stalled ones are cut at the login deadline; then 127.0.0.1 may log in again, and a
    // logged-in player does not hold one of its address's login slots.
    for mut tcp in stalled {
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut rest)).await;
    }
    let mut held = Vec::new();
    for _ in 0..4 {
        let tcp = connect_from("127.0.0.1", server.addr).await;
        let mut tls = connector
            .connect(ServerName::try_from("fleetwire.local").unwrap(), tcp)
            .await
            .unwrap();
        let binding = tls_binding(tls.get_ref().1).unwrap();
        login_player(
            &mut tls,
            binding,
            Arc::new(ClientConfig::new(id, secret.clone())),
        )
        .await
        .expect("logged-in connections do not count against the login cap");
        held.push(tls);
    }
}
