//! The framed transfer connection over an in-memory stream (the drivers take any
//! `AsyncRead + AsyncWrite`): login, then several files on one connection, configuration
//! first, one declined, an orderly end; a login bound to another channel or with a wrong secret
//! is refused; a player that sends before the `Welcome` is closed as a protocol violation.
#![allow(clippy::disallowed_methods)]

mod transfer_common;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use fleetwire_session::{
    ChannelBinding, Client, ClientConfig, ClientEvent, CloseCode, PlayerId, PlayerLookup,
    PlayerSecret, ServerConfig, SessionError,
};
use fleetwire_tokio::framed::{
    Outgoing, accept_player, login_player, receive_framed_many, send_framed_many,
};
use fleetwire_tokio::session::OpenGate;
use fleetwire_tokio::transfer::{ReceiveOptions, SendOptions};
use fleetwire_transfer::{FileKind, Manifest, ReceiverConfig, TransferError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use transfer_common::*;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

const BINDING: ChannelBinding = ChannelBinding([5; 32]);

fn player() -> (PlayerId, PlayerSecret) {
    (
        PlayerId::from_bytes([1; 16]),
        PlayerSecret::from_bytes([2; 32]),
    )
}

fn directory() -> HashMap<PlayerId, PlayerLookup> {
    let (id, secret) = player();
    HashMap::from([(
        id,
        PlayerLookup::Known {
            verifier: secret.verifier(),
            approved: true,
            config_hash: None,
        },
    )])
}

fn file(dir: &std::path::Path, kind: FileKind, id: u64, data: &[u8]) -> Outgoing {
    let path = dir.join(format!("src-{id}"));
    std::fs::write(&path, data).unwrap();
    Outgoing {
        manifest: Manifest::build(kind, id, 1, 16 * 1024, data)
            .unwrap()
            .sign(&signer()),
        file: path,
    }
}

#[tokio::test]
async fn login_then_many_files_configuration_first_one_declined() {
    let dir = temp_dir("framed-many");
    let media = test_file(200_000, 1);
    let config = test_file(30_000, 2);
    let extra = test_file(50_000, 3);
    let files = vec![
        file(&dir, FileKind::Media, 1, &media),
        file(&dir, FileKind::Configuration, 2, &config),
        file(&dir, FileKind::Media, 3, &extra),
    ];
    // A small pipe, so frames split across reads and the Welcome shares reads with transfer
    // frames.
    let (mut server_io, mut player_io) = tokio::io::duplex(4096);
    let server = tokio::spawn(async move {
        let who = accept_player(
            &mut server_io,
            BINDING,
            Arc::new(ServerConfig::default()),
            &directory(),
            Instant::now(),
            &OpenGate,
            LOOPBACK,
        )
        .await
        .unwrap();
        assert_eq!(who, player().0);
        // A window smaller than the media file, so the configuration must overtake it.
        let options = SendOptions {
            config: Arc::new(fleetwire_transfer::SenderConfig {
                window: 4,
                ..fleetwire_transfer::SenderConfig::default()
            }),
            ..SendOptions::default()
        };
        send_framed_many(&mut server_io, files, &options, |_| {}).await
    });
    let (id, secret) = player();
    let already = login_player(
        &mut player_io,
        BINDING,
        Arc::new(ClientConfig::new(id, secret)),
    )
    .await
    .unwrap();
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let options = ReceiveOptions {
        config: Arc::new(ReceiverConfig::new(trusted())),
    };
    let report = receive_framed_many(
        &mut player_io,
        &already,
        &options,
        None,
        |m| (m.file_id() != 3).then(|| out.join(m.file_id().to_string())),
        |p| assert_no_partial_under(&out.join(p.file_id.to_string()), p.done),
    )
    .await
    .unwrap();
    let order: Vec<PathBuf> = report.received.iter().map(|r| r.dest.clone()).collect();
    assert_eq!(order, [out.join("2"), out.join("1")], "configuration first");
    assert_eq!(std::fs::read(out.join("1")).unwrap(), media);
    assert_eq!(std::fs::read(out.join("2")).unwrap(), config);
    assert!(!out.join("3").exists());
    assert_eq!(report.failed, [(3, TransferError::Cancelled)]);
    let sent = server.await.unwrap().unwrap();
    assert_eq!(sent.completed, [2, 1]);
    assert_eq!(sent.failed, [(3, TransferError::PeerCancelled)]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn other_channel_or_wrong_secret_is_refused_before_any_content() {
    let (id, secret) = player();
    for (binding, secret) in [
        // A login relayed from another TLS connection signs another channel binding.
        (ChannelBinding([6; 32]), secret),
        (BINDING, PlayerSecret::from_bytes([3; 32])),
    ] {
        let (mut server_io, mut player_io) = tokio::io::duplex(4096);
        let server = tokio::spawn(async move {
            accept_player(
                &mut server_io,
                BINDING,
                Arc::new(ServerConfig::default()),
                &directory(),
                Instant::now(),
                &OpenGate,
                LOOPBACK,
            )
            .await
            .map_err(|failed| failed.reason)
        });
        let refused = login_player(
            &mut player_io,
            binding,
            Arc::new(ClientConfig::new(id, secret)),
        )
        .await;
        assert_eq!(refused, Err(SessionError::AuthFailed));
        assert_eq!(server.await.unwrap(), Err(SessionError::AuthFailed));
    }
}

#[tokio::test]
async fn bytes_before_the_welcome_are_a_protocol_violation() {
    let (mut server_io, mut player_io) = tokio::io::duplex(4096);
    let server = tokio::spawn(async move {
        accept_player(
            &mut server_io,
            BINDING,
            Arc::new(ServerConfig::default()),
            &directory(),
            Instant::now(),
            &OpenGate,
            LOOPBACK,
        )
        .await
        .map_err(|failed| failed.reason)
    });
    // A player that sends its proof and a transfer frame in one write.
    let (id, secret) = player();
    let now = Instant::now();
    let mut client = Client::new(Arc::new(ClientConfig::new(id, secret)), now, BINDING);
    let mut out = Vec::new();
    while client.poll_transmit(&mut out).is_some() {}
    player_io.write_all(&out).await.unwrap();
    out.clear();
    let mut challenge = vec![0u8; 6 + 32];
    player_io.read_exact(&mut challenge).await.unwrap();
    client.handle_input(now, &challenge).unwrap();
    while client.poll_transmit(&mut out).is_some() {}
    out.extend_from_slice(&[1, 0x02, 0, 0, 0, 1, 0]);
    player_io.write_all(&out).await.unwrap();
    let mut rest = Vec::new();
    player_io.read_to_end(&mut rest).await.unwrap();
    client.handle_input(now, &rest).ok();
    let mut closed = None;
    while let Some(e) = client.poll_event() {
        if let ClientEvent::Closed { reason } = e {
            closed = Some(reason);
        }
    }
    assert!(
        matches!(
            closed,
            Some(SessionError::PeerClosed {
                code: CloseCode::ProtocolViolation,
                ..
            })
        ),
        "{closed:?}"
    );
    assert!(matches!(
        server.await.unwrap(),
        Err(SessionError::LocalClose {
            code: CloseCode::ProtocolViolation,
            ..
        })
    ));
}
