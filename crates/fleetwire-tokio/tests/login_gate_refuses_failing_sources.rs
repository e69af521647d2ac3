//! A source that keeps failing player logins is refused at accept, before any TLS handshake —
//! even for a player that would log in — while a player's good login ends the streak.
#![cfg(feature = "login-gate")]
#![allow(clippy::disallowed_methods)]
mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use fleetwire_session::*;
use fleetwire_tokio::login_gate::LockoutGate;
use fleetwire_tokio::session::*;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::watch;

/// One login attempt that ends as soon as the session is online or closed.
async fn attempt(server: &TestServer, id: PlayerId, secret: PlayerSecret) -> SessionError {
    let transport = player_tls(server.fingerprint);
    let (_tx, status) = watch::channel(PlayerStatus::default());
    let (online_tx, online_rx) = tokio::sync::oneshot::channel::<()>();
    let mut online_tx = Some(online_tx);
    let run = run_player(
        server.addr,
        &transport,
        Arc::new(ClientConfig::new(id, secret)),
        status,
        move |e| {
            if matches!(e, ClientEvent::LoggedIn { .. }) {
                if let Some(tx) = online_tx.take() {
                    let _ = tx.send(());
                }
            }
        },
        async move {
            let _ = online_rx.await;
        },
    );
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("the attempt ends within 10 s")
        .expect("connected")
}

#[tokio::test]
async fn failing_source_is_refused_before_the_handshake() {
    let gate = Arc::new(LockoutGate::for_player_logins(3, 1000, [4; 16]).unwrap());
    let server = start_gated(true, fast_config(), Limits::default(), &[1], gate.clone()).await;
    let mut notices = server.handle.subscribe();
    let (id, secret) = player(1);
    let (_, wrong) = player(2);

    // Two failures, then a good login: the streak ends, the next two failures do not block.
    for _ in 0..2 {
        let r = attempt(&server, id, wrong.clone()).await;
        assert_eq!(r, SessionError::AuthFailed);
    }
    let r = attempt(&server, id, secret.clone()).await;
    assert!(
        matches!(r, SessionError::LocalClose { .. }),
        "logged in: {r:?}"
    );
    for _ in 0..2 {
        attempt(&server, id, wrong.clone()).await;
    }
    // The third consecutive failure blocks the source.
    attempt(&server, id, wrong.clone()).await;

    // Now even the right secret gets nothing: the connection is closed at accept, no TLS byte.
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut got)).await;
    assert!(got.is_empty(), "{got:02x?}");
    let refused = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Ok(Notice::Refused { why, .. }) = notices.recv().await {
                if why.contains("too many failed logins") {
                    return why;
                }
            }
        }
    })
    .await
    .expect("a Refused notice with the reason");
    assert!(refused.contains("refused for"), "{refused}");
    assert!(!server.handle.is_online(&id));

    // An operator clears the source; the player logs in again.
    gate.clear("127.0.0.1".parse().unwrap());
    let r = attempt(&server, id, secret).await;
    assert!(
        matches!(r, SessionError::LocalClose { .. }),
        "logged in: {r:?}"
    );
}
