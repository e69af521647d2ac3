//! Remote commands over real UDP sockets on 127.0.0.1 (ephemeral ports): a server task and a
//! player task deliver commands that each run once and end `Succeeded`; with UDP black-holed,
//! the same sealed datagrams travel through the session channel instead (here an in-memory
//! stand-in for the TCP 4701 session) and still succeed. Bounded in time; nothing timed is
//! asserted.
#![allow(clippy::disallowed_methods)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use fleetwire_command::*;
use fleetwire_session::{ChannelBinding, PlayerId};
use fleetwire_tokio::command::*;
use tokio::net::UdpSocket;

fn key(player: PlayerId) -> CommandKey {
    CommandKey::derive(&ChannelBinding([3; 32]), &[4; 32], &player)
}

#[tokio::test]
async fn commands_are_delivered_once_over_loopback_udp() {
    tokio::time::timeout(Duration::from_secs(60), delivered_once())
        .await
        .expect("not finished within 60 s");
}

async fn delivered_once() {
    let player = PlayerId::from_bytes([1; 16]);
    let (server, server_task, mut server_events) = CommandServerTask::bind(
        "127.0.0.1:0".parse().unwrap(),
        Arc::new(ServerConfig::default()),
    )
    .await
    .unwrap();
    let server_addr = server_task.local_addr().unwrap();
    let (handle, player_task, mut player_events) = CommandPlayerTask::bind(
        "127.0.0.1:0".parse().unwrap(),
        Arc::new(PlayerConfig::new(server_addr)),
        key(player),
    )
    .await
    .unwrap();
    let s = tokio::spawn(server_task.run(std::future::pending()));
    let p = tokio::spawn(player_task.run(std::future::pending()));
    // The session is at the same IP as the player's UDP socket (the port is learned).
    server
        .player_online(player, key(player), "127.0.0.1:50000".parse().unwrap())
        .await
        .unwrap();
    let mut ids = Vec::new();
    for v in [10u8, 20, 30] {
        ids.push(
            server
                .send(
                    player,
                    CommandSpec::new(Action::SetVolume(v), Duration::from_secs(60)),
                )
                .await
                .unwrap(),
        );
    }
    let mut runs: HashMap<CommandId, usize> = HashMap::new();
    let mut succeeded = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), async {
        while succeeded.len() < ids.len() {
            tokio::select! {
                Some(ev) = player_events.recv() => {
                    if let PlayerDriverEvent::Command(PlayerEvent::Execute(c)) = ev {
                        *runs.entry(c.id).or_default() += 1;
                        handle.report(c.id, Outcome::Succeeded).await.unwrap();
                    }
                }
                Some(ev) = server_events.recv() => {
                    if let ServerDriverEvent::Command(ServerEvent::StateChanged { id, state: CommandState::Succeeded, .. }) = ev {
                        succeeded.push(id);
                    }
                }
            }
        }
    })
    .await
    .expect("commands not delivered within 30 s");
    succeeded.sort();
    assert_eq!(succeeded, ids);
    assert!(ids.iter().all(|id| runs[id] == 1), "{runs:?}");
    let (left, route) = server.commands(player).await.unwrap();
    assert!(left.is_empty());
    assert_eq!(route, Some(Route::Udp));
    s.abort();
    p.abort();
}

#[tokio::test]
async fn with_udp_black_holed_the_session_carries_the_commands() {
    tokio::time::timeout(Duration::from_secs(60), black_holed())
        .await
        .expect("not finished within 60 s");
}

async fn black_holed() {
    let player = PlayerId::from_bytes([2; 16]);
    // Datagrams to these sockets are never read: UDP "gets through" nowhere.
    let hole_a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let hole_b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let config = ServerConfig {
        initial_rto: Duration::from_millis(100),
        player_port: hole_a.local_addr().unwrap().port(),
        ..ServerConfig::default()
    };
    let (server, server_task, mut server_events) =
        CommandServerTask::bind("127.0.0.1:0".parse().unwrap(), Arc::new(config))
            .await
            .unwrap();
    // The player believes the server is at the black hole.
    let (handle, player_task, mut player_events) = CommandPlayerTask::bind(
        "127.0.0.1:0".parse().unwrap(),
        Arc::new(PlayerConfig::new(hole_b.local_addr().unwrap())),
        key(player),
    )
    .await
    .unwrap();
    let s = tokio::spawn(server_task.run(std::future::pending()));
    let p = tokio::spawn(player_task.run(std::future::pending()));
    server
        .player_online(player, key(player), "127.0.0.1:50000".parse().unwrap())
        .await
        .unwrap();
    let id = server
        .send(
            player,
            CommandSpec::new(Action::Reboot, Duration::from_secs(60)),
        )
        .await
        .unwrap();
    let mut fell_back = false;
    let mut via_session = 0;
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            tokio::select! {
                Some(ev) = server_events.recv() => match ev {
                    ServerDriverEvent::ViaSession { player: p, datagram } => {
                        via_session += 1;
                        handle.session_input(datagram).await.unwrap();
                        assert_eq!(p, player);
                    }
                    ServerDriverEvent::Command(ServerEvent::RouteChanged { route: Route::Session, .. }) => fell_back = true,
                    ServerDriverEvent::Command(ServerEvent::StateChanged { id: i, state: CommandState::Succeeded, .. }) if i == id => break,
                    _ => {}
                },
                Some(ev) = player_events.recv() => match ev {
                    PlayerDriverEvent::ViaSession(datagram) => server.session_input(player, datagram).await.unwrap(),
                    PlayerDriverEvent::Command(PlayerEvent::Execute(c)) => handle.report(c.id, Outcome::Succeeded).await.unwrap(),
                    _ => {}
                },
            }
        }
    })
    .await
    .expect("no fallback delivery within 30 s");
    assert!(fell_back);
    assert!(
        via_session >= 2,
        "the command and the result acknowledgement"
    );
    s.abort();
    p.abort();
}
