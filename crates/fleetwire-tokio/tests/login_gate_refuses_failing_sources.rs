//! The player login gate on a real server: a player that keeps failing from one address is
//! refused right after its `Hello` — even with the right secret — while its neighbours behind the
//! same address still log in; an address that keeps trying new player ids is refused at
//! accept, before any TLS handshake; a good login ends a streak.
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

/// The next `Refused` notice whose reason contains `needle`.
async fn refused_notice(
    notices: &mut tokio::sync::broadcast::Receiver<Notice>,
    needle: &str,
) -> String {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Ok(Notice::Refused { why, .. }) = notices.recv().await {
                if why.contains(needle) {
                    return why;
                }
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("a Refused notice containing {needle:?}"))
}

fn logged_in(r: &SessionError) -> bool {
    // `attempt` closes the session itself once it is online.
    matches!(r, SessionError::LocalClose { .. })
}

#[tokio::test]
async fn a_failing_player_is_refused_alone_and_its_neighbour_logs_in() {
    let gate = Arc::new(LockoutGate::for_player_logins(3, 1000, [4; 16]).unwrap());
    let server = start_gated(
        true,
        fast_config(),
        Limits::default(),
        &[1, 2],
        gate.clone(),
    )
    .await;
    let mut notices = server.handle.subscribe();
    let (id, secret) = player(1);
    let (neighbour, neighbour_secret) = player(2);
    let (_, wrong) = player(9);

    // Two failures, then a good login: the streak ends, the next two failures do not block.
    for _ in 0..2 {
        assert_eq!(
            attempt(&server, id, wrong.clone()).await,
            SessionError::AuthFailed
        );
    }
    assert!(logged_in(&attempt(&server, id, secret.clone()).await));
    for _ in 0..3 {
        assert_eq!(
            attempt(&server, id, wrong.clone()).await,
            SessionError::AuthFailed
        );
    }
    // The third consecutive failure blocks this player from this address: even the right
    // secret is refused, before the signature is checked.
    let r = attempt(&server, id, secret.clone()).await;
    assert!(!logged_in(&r), "a blocked player logged in: {r:?}");
    let why = refused_notice(&mut notices, "of player").await;
    assert!(why.contains("refused for"), "{why}");
    assert!(!server.handle.is_online(&id));

    // Its neighbour behind the same address is not affected.
    assert!(
        logged_in(&attempt(&server, neighbour, neighbour_secret).await),
        "the neighbour was locked out by one misconfigured player"
    );
}

#[tokio::test]
async fn a_source_trying_new_player_ids_is_refused_before_the_handshake() {
    let gate = Arc::new(LockoutGate::for_player_logins(3, 1000, [4; 16]).unwrap());
    let server = start_gated(true, fast_config(), Limits::default(), &[1], gate.clone()).await;
    let mut notices = server.handle.subscribe();
    let (id, secret) = player(1);

    // Three unknown ids, each failing once.
    for n in 20..23 {
        let (stranger, guess) = player(n);
        assert_eq!(
            attempt(&server, stranger, guess).await,
            SessionError::AuthFailed
        );
    }
    // Now even a good player from that address gets nothing: closed at accept, no TLS byte.
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut got)).await;
    assert!(got.is_empty(), "{got:02x?}");
    let why = refused_notice(&mut notices, "from this address").await;
    assert!(why.contains("refused for"), "{why}");

    // An operator clears the source; the player logs in again.
    gate.clear("127.0.0.1".parse().unwrap());
    let r = attempt(&server, id, secret).await;
    assert!(logged_in(&r), "logged in: {r:?}");
}
