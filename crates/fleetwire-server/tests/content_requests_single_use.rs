//! Issue 10, hole 7: a player's signed content request is single-use and bound to its method,
//! path and query. A captured request replayed (from another address) is refused and adds no
//! bytes to the player's account; a header moved to other chunks is refused; an unknown player
//! and a bad signature get the same answer, so nobody learns which player ids exist.
#![allow(clippy::disallowed_methods)] // a real clock

use std::net::IpAddr;
use std::time::{Duration, Instant};

use fleetwire_tokio::transfer::{AUTH_HEADER, RequestSigner};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;
mod running;
use common::cli;
use running::{GUARD, Running, add_players, bytes, publish, source, tcp_from};

const CHUNK: usize = 65_536;

/// A signed header for `GET path` now (fresh nonce).
fn sign(signer: &RequestSigner, path: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    signer.header("GET", path, now).unwrap()
}

/// `GET path` on plain HTTP from `from` with the header `auth`; (status, body).
async fn get(server: &Running, from: IpAddr, path: &str, auth: &str) -> (u16, Vec<u8>) {
    let mut tcp = tcp_from(from, server.http).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{AUTH_HEADER}: {auth}\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(GUARD, tcp.read_to_end(&mut reply))
        .await
        .unwrap()
        .unwrap();
    let end = reply.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let status = std::str::from_utf8(&reply[9..12]).unwrap().parse().unwrap();
    (status, reply[end + 4..].to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_requests_cannot_be_replayed_and_unknown_looks_like_bad() {
    let mut players = Vec::new();
    let file = bytes(16 * CHUNK, 7);
    let mut content = String::new();
    let server = Running::start("single-use", &[], |data| {
        players = add_players(data, 1);
        content = publish(
            data,
            "clip.mp4",
            &file,
            &players[0].0.to_string(),
            CHUNK as u32,
        );
    });
    let (id, secret) = players[0].clone();
    let signer = RequestSigner::new(*id.as_bytes(), secret.as_bytes());
    let player = source(2);
    let eavesdropper = source(3);

    // The player's request is served once.
    let path = format!("/v1/content/{content}/chunks/0?count=4");
    let captured = sign(&signer, &path);
    let (status, body) = get(&server, player, &path, &captured).await;
    assert_eq!(status, 200);
    assert_eq!(body, file[..4 * CHUNK]);

    // Replayed, from the player's address or another one, it is refused every time.
    for n in 0..10 {
        let from = if n % 2 == 0 { eavesdropper } else { player };
        let (status, body) = get(&server, from, &path, &captured).await;
        assert_eq!(status, 401, "replay {n} served ({} bytes)", body.len());
    }
    // Moved to other chunks (a bigger count, another index), it is refused too.
    for other in [
        format!("/v1/content/{content}/chunks/0?count=16"),
        format!("/v1/content/{content}/chunks/4?count=4"),
    ] {
        let (status, _) = get(&server, eavesdropper, &other, &captured).await;
        assert_eq!(status, 401, "{other}");
    }
    // A fresh request from the player still works.
    let (status, _) = get(&server, player, &path, &sign(&signer, &path)).await;
    assert_eq!(status, 200);

    // Only the two genuine responses count as sent.
    let want = format!(
        "sent to {}: {} bytes",
        hex::encode(id.as_bytes()),
        8 * CHUNK
    );
    let start = Instant::now();
    loop {
        let list = cli(&server.data, &["content", "list"]);
        if list.contains(&want) {
            break;
        }
        assert!(start.elapsed() < GUARD, "want {want:?}:\n{list}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let list = cli(&server.data, &["content", "list"]);
    assert!(
        list.contains(&want),
        "bytes grew after the replays:\n{list}"
    );

    // An unknown player and a known player with a bad signature get the same answer.
    let listing = "/v1/content";
    let unknown = RequestSigner::new([0x5a; 16], &[9; 32]);
    let forged = RequestSigner::new(*id.as_bytes(), &[9; 32]);
    let a = get(&server, eavesdropper, listing, &sign(&unknown, listing)).await;
    let b = get(&server, eavesdropper, listing, &sign(&forged, listing)).await;
    assert_eq!(a, b);
    assert_eq!(a.0, 401);
}
