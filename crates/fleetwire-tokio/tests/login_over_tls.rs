//! A player logs in over real TLS on loopback, heartbeats, and the server sees it online, then
//! offline after an orderly close.
#![allow(clippy::disallowed_methods)]
mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use fleetwire_session::*;
use fleetwire_tokio::session::*;
use tokio::sync::{oneshot, watch};

#[tokio::test]
async fn player_logs_in_over_tls_heartbeats_and_leaves() {
    let server = start(true, fast_config(), Limits::default(), &[1]).await;
    let mut notices = server.handle.subscribe();
    let (id, secret) = player(1);
    let transport = player_tls(server.fingerprint);
    let (_status_tx, status_rx) = watch::channel(PlayerStatus::default());
    let events = Arc::new(Mutex::new(Vec::new()));
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let recorded = events.clone();
    let player = tokio::spawn(async move {
        run_player(
            server.addr,
            &transport,
            Arc::new(ClientConfig::new(id, secret)),
            status_rx,
            move |e| recorded.lock().unwrap().push(e.clone()),
            async move {
                let _ = stop_rx.await;
            },
        )
        .await
    });
    // Wait for three acknowledged heartbeats (200 ms interval).
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let acks = events
                .lock()
                .unwrap()
                .iter()
                .filter(|e| matches!(e, ClientEvent::HeartbeatAcked { .. }))
                .count();
            if acks >= 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("three heartbeats within 10 s");
    assert!(server.handle.is_online(&id));
    assert_eq!(server.handle.online(), vec![id]);
    stop_tx.send(()).unwrap();
    let reason = player.await.unwrap().unwrap();
    assert!(matches!(
        reason,
        SessionError::LocalClose {
            code: CloseCode::Normal,
            ..
        }
    ));
    // The server saw: LoggedIn, Online, heartbeats, Disconnected(Normal), Offline.
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(n) = notices.recv().await {
            let done = matches!(n, Notice::Offline { .. });
            seen.push(n);
            if done {
                break;
            }
        }
    })
    .await
    .expect("offline notice");
    assert!(matches!(seen[0], Notice::LoggedIn { player_id, .. } if player_id == id));
    assert!(seen.iter().any(|n| matches!(n, Notice::Heartbeat { .. })));
    assert!(!server.handle.is_online(&id));
}

#[tokio::test]
async fn wrong_fingerprint_is_refused_by_the_player() {
    let server = start(true, fast_config(), Limits::default(), &[1]).await;
    let (id, secret) = player(1);
    let (_tx, rx) = watch::channel(PlayerStatus::default());
    let result = run_player(
        server.addr,
        &player_tls([0; 32]),
        Arc::new(ClientConfig::new(id, secret)),
        rx,
        |_| {},
        std::future::pending(),
    )
    .await;
    let err = result.expect_err("a server with another certificate is not trusted");
    assert!(err.to_string().contains("certificate"), "{err}");
}

#[tokio::test]
async fn a_newer_login_replaces_the_older_connection() {
    let server = start(true, fast_config(), Limits::default(), &[1]).await;
    let (id, secret) = player(1);
    let config = Arc::new(ClientConfig::new(id, secret));
    let transport = player_tls(server.fingerprint);
    let (_tx, rx) = watch::channel(PlayerStatus::default());
    let first = {
        let (config, transport, rx) = (config.clone(), transport.clone(), rx.clone());
        tokio::spawn(async move {
            run_player(
                server.addr,
                &transport,
                config,
                rx,
                |_| {},
                std::future::pending(),
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (stop, stopped) = oneshot::channel::<()>();
    let second = tokio::spawn(async move {
        run_player(server.addr, &transport, config, rx, |_| {}, async move {
            let _ = stopped.await;
        })
        .await
    });
    let reason = tokio::time::timeout(Duration::from_secs(5), first)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        matches!(
            reason,
            SessionError::PeerClosed {
                code: CloseCode::Replaced,
                ..
            }
        ),
        "{reason:?}"
    );
    assert!(server.handle.is_online(&id));
    stop.send(()).unwrap();
    second.await.unwrap().unwrap();
}
