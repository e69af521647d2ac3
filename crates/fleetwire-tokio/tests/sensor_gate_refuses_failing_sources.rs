//! Issue 10, hole 9: a source that keeps failing sensor uploads (here: an unknown logger id,
//! no credentials at all) is refused at accept once past the gate's threshold — no handshake,
//! no key lookup, no reject frame, nothing for the server to log per connection — while another
//! source still uploads, and an authenticated upload ends a source's streak.
#![cfg(feature = "login-gate")]
#![allow(clippy::disallowed_methods)]

mod sensor_common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleetwire_sensor::logger::{self, LoggerSession};
use fleetwire_sensor::{CloseReason, LoggerId, Mark, RejectReason, SensorError};
use fleetwire_tokio::sensor::lockout::LockoutUploadGate;
use fleetwire_tokio::sensor::{Limits, Notice, UploadGate};
use sensor_common::{batch, config, key, start_with};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

/// One plaintext wake of logger `id` from local address `from`; returns how it ended, what was
/// acknowledged, and the bytes the server sent.
async fn wake_from(
    from: &str,
    server: SocketAddr,
    id: u64,
    first_seq: u64,
) -> (CloseReason, Vec<Mark>, usize) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let mut tcp = socket.connect(server).await.unwrap();
    let mut lg = LoggerSession::new(
        config(id, key(id)),
        Instant::now(),
        vec![batch(id, first_seq, 10)],
    )
    .unwrap();
    let mut out = Vec::new();
    while lg.poll_transmit(&mut out).is_some() {}
    let _ = tcp.write_all(&out).await;
    let mut buf = [0u8; 4096];
    let mut received = 0;
    loop {
        while let Some(ev) = lg.poll_event() {
            if let logger::Event::Closed { reason } = ev {
                return (reason, lg.stored().to_vec(), received);
            }
        }
        let read = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf))
            .await
            .expect("the server answers or closes within 10 s");
        match read {
            Ok(0) | Err(_) => lg.handle_close(Instant::now()),
            Ok(n) => {
                received += n;
                let _ = lg.handle_input(Instant::now(), &buf[..n]);
            }
        }
    }
}

#[tokio::test]
async fn a_failing_source_is_refused_at_accept_while_another_uploads() {
    let gate = Arc::new(LockoutUploadGate::for_uploads(3, 1000, [9; 16]).unwrap());
    let server = start_with(
        &[1],
        None,
        Limits::default(),
        Some(gate.clone() as Arc<dyn UploadGate>),
        true,
    )
    .await;
    let mut notices = server.handle.subscribe();

    // Two failures, then a good upload from the same source: the streak ends.
    for _ in 0..2 {
        let (reason, stored, _) = wake_from("127.0.0.1", server.addr, 666, 0).await;
        assert_eq!(
            reason,
            CloseReason::Error(SensorError::Rejected {
                reason: RejectReason::UnknownLogger
            })
        );
        assert!(stored.is_empty());
    }
    let (reason, stored, _) = wake_from("127.0.0.1", server.addr, 1, 0).await;
    assert_eq!(reason, CloseReason::Finished);
    assert_eq!(stored, [Mark { epoch: 0, seq: 9 }]);
    // Three consecutive failures block the source.
    for _ in 0..3 {
        let (reason, _, received) = wake_from("127.0.0.1", server.addr, 666, 0).await;
        assert!(matches!(reason, CloseReason::Error(_)), "{reason:?}");
        assert!(received > 0, "still answered with a reject");
    }
    // Now even the good logger from that source gets nothing: closed at accept, no byte.
    let (reason, stored, received) = wake_from("127.0.0.1", server.addr, 1, 10).await;
    assert_eq!(reason, CloseReason::Error(SensorError::PeerClosed));
    assert_eq!((stored, received), (vec![], 0));
    let why = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Ok(Notice::Refused { why, .. }) = notices.recv().await {
                return why;
            }
        }
    })
    .await
    .expect("a Refused notice");
    assert!(
        why.contains("too many failed uploads from 127.0.0.1"),
        "{why}"
    );

    // Another source is served.
    let (reason, stored, _) = wake_from("127.0.0.2", server.addr, 1, 10).await;
    assert_eq!(reason, CloseReason::Finished);
    assert_eq!(stored, [Mark { epoch: 0, seq: 19 }]);
    assert_eq!(
        server.store.data.lock().unwrap()[&LoggerId(1)]
            .readings
            .len(),
        20
    );
}

#[tokio::test]
async fn health_checks_never_block_a_source_but_garbage_handshakes_do() {
    let gate = Arc::new(LockoutUploadGate::for_uploads(3, 1000, [9; 16]).unwrap());
    let server = start_with(
        &[1],
        None,
        Limits::default(),
        Some(gate.clone() as Arc<dyn UploadGate>),
        false,
    )
    .await;
    let mut notices = server.handle.subscribe();
    let handshake_failed = |n: &Notice| matches!(n, Notice::HandshakeFailed { .. });
    // Ten TCP health checks: connect, close.
    for _ in 0..10 {
        drop(tokio::net::TcpStream::connect(server.addr).await.unwrap());
        let n = next_notice(&mut notices, handshake_failed).await;
        assert!(
            matches!(n, Notice::HandshakeFailed { counted: false, .. }),
            "{n:?}"
        );
    }
    assert!(
        gate.admit(fleetwire_tokio::source::Source::of_peer(server.addr))
            .is_ok()
    );
    // Three garbage handshakes block the source.
    for _ in 0..3 {
        let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        tcp.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let n = next_notice(&mut notices, handshake_failed).await;
        assert!(
            matches!(n, Notice::HandshakeFailed { counted: true, .. }),
            "{n:?}"
        );
    }
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut got)).await;
    assert!(got.is_empty(), "closed at accept, before any TLS byte");
    let n = next_notice(&mut notices, |n| matches!(n, Notice::Refused { .. })).await;
    assert!(
        matches!(&n, Notice::Refused { why, .. } if why.contains("too many failed uploads")),
        "{n:?}"
    );
}

async fn next_notice(
    notices: &mut tokio::sync::broadcast::Receiver<Notice>,
    want: impl Fn(&Notice) -> bool,
) -> Notice {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(n) = notices.recv().await {
                if want(&n) {
                    return n;
                }
            }
        }
    })
    .await
    .expect("the notice arrives")
}
