//! Measures the most memory one connection, and one credential, can make the real server pin
//! on 8001, 8443 and 4702 (issue 10): for each kind of hostile client, the server's resident
//! anonymous memory (`RssAnon`) before and after N such connections are held open, divided by
//! N. Ignored by default (it opens hundreds of connections and prints a table); run with
//!
//! ```text
//! FLEETWIRE_SERVER_BIN=$CARGO_TARGET_DIR/release/fleetwire-server \
//!   cargo nextest run -p fleetwire-server --test pinned_memory --run-ignored only --no-capture
//! ```
//!
//! Each scenario runs on a fresh server with default settings (deadlines 10–30 s: every
//! measurement is taken within 3 s of the last connection, before any deadline fires). The
//! bound asserted is loose (the allocator keeps freed memory), only there so that a return of
//! "hold the whole response" fails.
#![allow(clippy::disallowed_methods)] // a real clock

use std::net::IpAddr;
use std::time::Duration;

use fleetwire_tokio::transfer::{AUTH_HEADER, RequestSigner};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

mod common;
mod running;
use running::{
    Running, accepted_not_reading, add_players, bytes, content_key, publish, source, tcp_from,
    tight_tcp_from,
};

const WARM_UP: usize = 4;
/// Connections per scenario before login: enough that the server's own background allocations
/// (tens of MB at times) count for little per connection.
const N: usize = 512;

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Opens `WARM_UP` then `n` connections with `open`, holds them, and prints the server's
/// anonymous memory per connection; returns it in KiB.
async fn measure<F, Fut>(server: &Running, what: &str, n: usize, mut open: F) -> u64
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = Box<dyn Stream>>,
{
    // Let the server settle first (start-up work, such as the password hasher's first run,
    // allocates tens of MB in its first seconds and would be counted against the connections).
    for _ in 0..15 {
        let a = server.anon_kib();
        tokio::time::sleep(Duration::from_secs(1)).await;
        if server.anon_kib() <= a + 64 {
            break;
        }
    }
    let mut held = Vec::new();
    for i in 0..WARM_UP {
        held.push(open(i).await);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = server.anon_kib();
    for i in WARM_UP..WARM_UP + n {
        held.push(open(i).await);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let each = server.anon_kib().saturating_sub(before) / n as u64;
    println!("| {what} | {n} | {each} KiB |");
    drop(held);
    each
}

/// Source 127.0.0.(2 + i / 200): spreads connections under the per-source cap (256).
fn from(i: usize) -> IpAddr {
    source(2 + u8::try_from(i / 200).unwrap())
}

fn signed(signer: &RequestSigner, path: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\n{AUTH_HEADER}: {}\r\n\r\n",
        signer.header("GET", path, now).unwrap()
    )
}

/// Headers up to just under hyper's buffer (about 400 KB), never finished.
fn huge_unfinished_headers() -> Vec<u8> {
    let mut h = b"GET /v1/status HTTP/1.1\r\nHost: x\r\n".to_vec();
    while h.len() < 380_000 {
        h.extend_from_slice(b"X-Pad: ");
        h.extend_from_slice(&[b'a'; 1000]);
        h.extend_from_slice(b"\r\n");
    }
    h
}

/// A fresh server (so that memory freed by one scenario cannot hide the next) with 100 players
/// and a 16 MiB file (256 KiB chunks) published to all.
struct Fresh {
    server: Running,
    players: Vec<(fleetwire_session::PlayerId, fleetwire_session::PlayerSecret)>,
    signers: Vec<RequestSigner>,
    path: String,
    key: [u8; 32],
}

fn fresh(tag: &str) -> Fresh {
    let mut players = Vec::new();
    let mut content = String::new();
    let mut key = [0u8; 32];
    let file = bytes(64 * 256 * 1024, 51);
    // Deadlines long enough that no connection is cut before the measurement: what is measured
    // is what a connection holds while it is allowed to.
    let settings = [
        (
            "http",
            "header_timeout_secs = 120\nrequest_timeout_secs = 120\nwrite_timeout_secs = 120",
        ),
        ("session", "login_timeout_secs = 120"),
        ("transfer", "write_timeout_secs = 120"),
    ];
    let server = Running::start(tag, &settings, |data| {
        players = add_players(data, 100);
        content = publish(data, "big.mp4", &file, "all", 256 * 1024);
        key = content_key(data);
    });
    let signers = players
        .iter()
        .map(|(id, secret)| RequestSigner::new(*id.as_bytes(), secret.as_bytes()))
        .collect();
    Fresh {
        server,
        players,
        signers,
        path: format!("/v1/content/{content}/chunks/0?count=64"),
        key,
    }
}

async fn plain_or_tls(server: &Running, tcp: tokio::net::TcpStream, tls: bool) -> Box<dyn Stream> {
    if tls {
        Box::new(server.tls_over(tcp).await.unwrap())
    } else {
        Box::new(tcp)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run it on its own (see the file's docs)"]
async fn memory_pinned_before_login() {
    let headers = huge_unfinished_headers();
    let mut rows = Vec::new();
    // The floor: a connection that is open and silent (on 8443, after the TLS handshake).
    for tls in [false, true] {
        let f = fresh("pinned-idle");
        let port = if tls { "8443" } else { "8001" };
        let addr = if tls { f.server.https } else { f.server.http };
        let srv = &f.server;
        let what = format!("{port} before login: connected, silent (the floor)");
        rows.push(
            measure(srv, &what, N, |i| async move {
                plain_or_tls(srv, tcp_from(from(i), addr).await.unwrap(), tls).await
            })
            .await,
        );
    }
    for tls in [false, true] {
        let f = fresh("pinned-headers");
        let port = if tls { "8443" } else { "8001" };
        let addr = if tls { f.server.https } else { f.server.http };
        let (srv, h) = (&f.server, &headers);
        let what = format!("{port} before login: 380 KB of headers, unfinished");
        rows.push(
            measure(srv, &what, N, |i| async move {
                let mut s = plain_or_tls(srv, tcp_from(from(i), addr).await.unwrap(), tls).await;
                let _ = s.write_all(h).await;
                let _ = s.flush().await;
                s
            })
            .await,
        );
    }
    // HTTPS: 64 KiB of login body (the limit) less one byte, then nothing.
    let f = fresh("pinned-body");
    let srv = &f.server;
    rows.push(
        measure(
            srv,
            "8443 before login: a 64 KiB body less one byte",
            N,
            |i| async move {
                let mut s =
                    plain_or_tls(srv, tcp_from(from(i), srv.https).await.unwrap(), true).await;
                let head = format!(
                    "POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\n\r\n",
                    64 * 1024
                );
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(&vec![b' '; 64 * 1024 - 1]).await;
                let _ = s.flush().await;
                s
            },
        )
        .await,
    );
    // HTTP and HTTPS: thousands of pipelined requests, no response ever read.
    let pipelined = b"GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n".repeat(20_000);
    for tls in [false, true] {
        let f = fresh("pinned-pipelined");
        let port = if tls { "8443" } else { "8001" };
        let addr = if tls { f.server.https } else { f.server.http };
        let (srv, p) = (&f.server, &pipelined);
        let what = format!("{port} before login: 20,000 pipelined requests, nothing read");
        rows.push(
            measure(srv, &what, 128, |i| async move {
                let tcp = tight_tcp_from(from(i), addr).await.unwrap();
                let mut s = plain_or_tls(srv, tcp, tls).await;
                let writing = async {
                    let _ = s.write_all(p).await;
                    let _ = s.flush().await;
                };
                let _ = tokio::time::timeout(Duration::from_millis(300), writing).await;
                s
            })
            .await,
        );
    }
    // 4702: TLS done, half a Hello.
    let f = fresh("pinned-hello");
    let srv = &f.server;
    rows.push(
        measure(
            srv,
            "4702 before login: TLS, then half a Hello",
            N,
            |i| async move {
                let tcp = tcp_from(from(i), srv.framed).await.unwrap();
                let mut s = plain_or_tls(srv, tcp, true).await;
                let _ = s.write_all(&[1, 1, 0, 0, 0, 29, 1, 2, 3]).await;
                let _ = s.flush().await;
                s
            },
        )
        .await,
    );
    for each in rows {
        assert!(each < 4 * 1024, "{each} KiB per connection before login");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run it on its own (see the file's docs)"]
async fn memory_pinned_after_login() {
    let mut http_each = Vec::new();
    for tls in [false, true] {
        let f = fresh("pinned-chunks");
        let port = if tls { "8443" } else { "8001" };
        let addr = if tls { f.server.https } else { f.server.http };
        let (srv, signers, path) = (&f.server, &f.signers, &f.path);
        // 8 responses per player (its cap): 256 connections over 32 players.
        let what = format!("{port} after login: a 16 MiB chunk response, not read");
        http_each.push(
            measure(srv, &what, 256, |i| async move {
                let tcp = tight_tcp_from(from(i), addr).await.unwrap();
                let mut s = plain_or_tls(srv, tcp, tls).await;
                let _ = s.write_all(signed(&signers[i / 8], path).as_bytes()).await;
                let _ = s.flush().await;
                s
            })
            .await,
        );
    }
    let f = fresh("pinned-framed");
    let (srv, players, key) = (&f.server, &f.players, f.key);
    let what = "4702 after login: a 16 MiB offer accepted, not read";
    let framed_each = measure(srv, what, 64, |i| async move {
        Box::new(accepted_not_reading(srv, &players[i], key).await) as Box<dyn Stream>
    })
    .await;
    println!(
        "| per credential | 8001: {} KiB, 8443: {} KiB (8 responses) | 4702: {framed_each} KiB (one connection) |",
        8 * http_each[0],
        8 * http_each[1],
    );
    for each in http_each {
        assert!(each < 8 * 1024, "{each} KiB per chunk response");
    }
    assert!(
        framed_each < 16 * 1024,
        "{framed_each} KiB per framed connection"
    );
}
