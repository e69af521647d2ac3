//! Issue 10, hole 15: on the framed transfer port (4702) a logged-in player that stops reading
//! is cut at the write deadline and pins little memory meanwhile (chunks are read from disk as
//! the socket drains, not a window ahead); one player has one framed connection at a time (a
//! new login replaces the old connection).
#![allow(clippy::disallowed_methods)] // a real clock

use std::sync::Arc;
use std::time::Duration;

use fleetwire_session::ClientConfig;
use fleetwire_tokio::framed::{connect_player, receive_framed_many};
use fleetwire_tokio::transfer::ReceiveOptions;
use fleetwire_transfer::{PublicKey, ReceiverConfig};
use rustls::pki_types::ServerName;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

mod common;
mod running;
use common::cli;
use running::{GUARD, Running, accepted_not_reading, add_players, bytes, publish};

/// Large chunks, so that reading a window ahead (64 chunks, more than the file) shows.
const CHUNK: usize = 1024 * 1024;
const FILE: usize = 32 * CHUNK;

/// Reads until the server closes or `limit` bytes arrived (within `within`); (bytes, closed).
async fn drain(stream: &mut TlsStream<TcpStream>, limit: usize, within: Duration) -> (usize, bool) {
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0;
    let closed = tokio::time::timeout(within, async {
        while total < limit {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(n) => total += n,
            }
        }
        false
    })
    .await;
    (total, closed.unwrap_or(false))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_that_stops_reading_pins_little_and_is_cut() {
    let mut players = Vec::new();
    let mut key = [0u8; 32];
    let file = bytes(FILE, 21);
    let server = Running::start(
        "framed-stalled",
        &[("transfer", "write_timeout_secs = 3")],
        |data| {
            players = add_players(data, 8);
            publish(data, "big.mp4", &file, "all", CHUNK as u32);
            hex::decode_to_slice(cli(data, &["content", "key"]).trim(), &mut key).unwrap();
        },
    );
    // Warm up (TLS, the store, the allocator's arenas) with two such players, then measure
    // six more.
    let mut stalled = Vec::new();
    for player in &players[6..] {
        stalled.push(accepted_not_reading(&server, player, key).await);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = server.anon_kib();
    for player in &players[..6] {
        stalled.push(accepted_not_reading(&server, player, key).await);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let pinned = server.anon_kib().saturating_sub(before);
    println!(
        "6 logged-in framed players not reading: server anonymous RSS +{pinned} KiB (+{} KiB each)",
        pinned / 6
    );
    // Read ahead, each would hold the whole 32 MiB file; read as the socket drains, what the
    // kernel took plus a chunk or two (plus the allocator's slack: the bound is loose).
    assert!(
        pinned < 6 * 20 * 1024,
        "6 non-reading framed connections pin {pinned} KiB"
    );
    // Past the write deadline every one was cut: what the kernels held, then the end.
    tokio::time::sleep(Duration::from_secs(5)).await;
    for tls in &mut stalled {
        let (got, closed) = drain(tls, FILE, GUARD).await;
        assert!(closed && got < FILE, "not cut ({got} bytes)");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_connection_of_a_player_replaces_the_old_one() {
    let mut players = Vec::new();
    let mut key = [0u8; 32];
    let file = bytes(FILE, 22);
    let server = Running::start("framed-replace", &[], |data| {
        players = add_players(data, 1);
        publish(data, "big.mp4", &file, "all", CHUNK as u32);
        hex::decode_to_slice(cli(data, &["content", "key"]).trim(), &mut key).unwrap();
    });
    let mut first = accepted_not_reading(&server, &players[0], key).await;

    // The same player connects again and receives everything on the new connection.
    let (id, secret) = players[0].clone();
    let mut conn = tokio::time::timeout(
        GUARD,
        connect_player(
            server.framed,
            server.tls_config(),
            ServerName::try_from("fleetwire.local").unwrap(),
            Arc::new(ClientConfig::new(id, secret)),
        ),
    )
    .await
    .unwrap()
    .unwrap();
    let dest = server.data.join("received.mp4");
    let options = ReceiveOptions {
        config: Arc::new(ReceiverConfig::new(vec![PublicKey(key)])),
    };
    let report = tokio::time::timeout(
        GUARD,
        receive_framed_many(
            &mut conn.stream,
            &conn.already_read,
            &options,
            None,
            |_| Some(dest.clone()),
            |_| {},
        ),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(report.received.len(), 1);
    assert_eq!(std::fs::read(&dest).unwrap(), file);

    // The first connection was closed when the second logged in (long before any deadline).
    let (got, closed) = drain(&mut first, FILE, Duration::from_secs(20)).await;
    assert!(
        closed && got < FILE,
        "the old connection stayed open ({got} bytes)"
    );
}
