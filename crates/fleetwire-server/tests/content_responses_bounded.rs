//! Issue 10, hole 16: an HTTP(S) chunk response is streamed from disk as the client reads, so
//! a client that asks for 64 chunks and stops reading pins little memory, and it is cut at the
//! write deadline; one player has at most `max_requests_per_player` chunk responses at once.
#![allow(clippy::disallowed_methods)] // a real clock

use std::net::IpAddr;
use std::time::{Duration, Instant};

use fleetwire_tokio::transfer::{AUTH_HEADER, RequestSigner};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

mod common;
mod running;
use running::{GUARD, Running, add_players, bytes, publish, source, tight_tcp_from};

const CHUNK: usize = 256 * 1024;
/// 64 chunks: the most one request may ask for.
const FILE: usize = 64 * CHUNK;
/// Non-reading clients per listener.
const EACH: usize = 8;

fn sign(signer: &RequestSigner, path: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    signer.header("GET", path, now).unwrap()
}

fn request(signer: &RequestSigner, path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\n{AUTH_HEADER}: {}\r\n\r\n",
        sign(signer, path)
    )
}

/// Reads until the peer closes or `limit` bytes arrived; the bytes read and whether it closed.
async fn drain<S: AsyncRead + Unpin>(stream: &mut S, limit: usize) -> (usize, bool) {
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0;
    let read = tokio::time::timeout(GUARD, async {
        while total < limit {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(n) => total += n,
            }
        }
        false
    })
    .await;
    (total, read.unwrap_or(false))
}

enum Conn {
    Plain(tokio::net::TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>),
}

impl Conn {
    async fn open(server: &Running, from: IpAddr, tls: bool) -> Self {
        let addr = if tls { server.https } else { server.http };
        let tcp = tight_tcp_from(from, addr).await.unwrap();
        if tls {
            Self::Tls(Box::new(server.tls_over(tcp).await.unwrap()))
        } else {
            Self::Plain(tcp)
        }
    }

    async fn send(&mut self, text: &str) {
        match self {
            Self::Plain(s) => s.write_all(text.as_bytes()).await.unwrap(),
            Self::Tls(s) => {
                s.write_all(text.as_bytes()).await.unwrap();
                s.flush().await.unwrap();
            }
        }
    }

    async fn drain(&mut self, limit: usize) -> (usize, bool) {
        match self {
            Self::Plain(s) => drain(s, limit).await,
            Self::Tls(s) => drain(s, limit).await,
        }
    }

    async fn status_line(&mut self) -> String {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n") {
            let n = match self {
                Self::Plain(s) => read_some(s, &mut byte).await,
                Self::Tls(s) => read_some(s, &mut byte).await,
            };
            if n == 0 {
                break;
            }
            head.push(byte[0]);
        }
        String::from_utf8_lossy(&head).trim_end().to_owned()
    }
}

async fn read_some<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, buf: &mut [u8]) -> usize {
    tokio::time::timeout(GUARD, s.read(buf))
        .await
        .unwrap()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_reading_downloads_pin_little_and_are_cut_at_the_write_deadline() {
    let mut players = Vec::new();
    let mut content = String::new();
    let file = bytes(FILE, 11);
    let server = Running::start(
        "responses-bounded",
        &[
            ("http", "write_timeout_secs = 3"),
            ("content", "max_requests_per_player = 64"),
        ],
        |data| {
            players = add_players(data, 1);
            content = publish(data, "big.mp4", &file, "all", CHUNK as u32);
        },
    );
    let (id, secret) = players[0].clone();
    let signer = RequestSigner::new(*id.as_bytes(), secret.as_bytes());
    let path = format!("/v1/content/{content}/chunks/0?count=64");

    // Warm up (first TLS and HTTP connections, the store), then measure.
    for tls in [false, true] {
        let mut warm = Conn::open(&server, source(2), tls).await;
        warm.send(&request(
            &signer,
            &format!("/v1/content/{content}/chunks/0?count=1"),
        ))
        .await;
        assert_eq!(warm.status_line().await, "HTTP/1.1 200 OK");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = server.anon_kib();

    // 8 plain and 8 TLS clients each ask for 16 MiB and read nothing.
    let mut conns = Vec::new();
    for n in 0..2 * EACH {
        let mut conn = Conn::open(&server, source(2), n % 2 == 1).await;
        conn.send(&request(&signer, &path)).await;
        conns.push(conn);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let pinned = server.anon_kib().saturating_sub(before);
    println!(
        "16 non-reading 16 MiB chunk responses: server anonymous RSS +{pinned} KiB (+{} KiB each)",
        pinned / (2 * EACH as u64)
    );
    // Each response held whole would be 16 MiB; streamed, about a megabyte or two (plus the
    // allocator's slack: the measure is noisy, so the bound is loose).
    assert!(
        pinned < 2 * EACH as u64 * 8 * 1024,
        "16 non-reading responses pin {pinned} KiB"
    );

    // After the write deadline each was cut: what the kernels held arrives, then the end,
    // well before the whole 16 MiB.
    tokio::time::sleep(Duration::from_secs(5)).await;
    for conn in &mut conns {
        let (got, closed) = conn.drain(FILE + 4096).await;
        assert!(
            closed && got < FILE,
            "a non-reading client was not cut ({got} bytes)"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_player_has_at_most_its_cap_of_chunk_responses_at_once() {
    let mut players = Vec::new();
    let mut content = String::new();
    let file = bytes(FILE, 12);
    let server = Running::start(
        "responses-per-player",
        &[("content", "max_requests_per_player = 2")],
        |data| {
            players = add_players(data, 2);
            content = publish(data, "big.mp4", &file, "all", CHUNK as u32);
        },
    );
    let signer = |n: usize| RequestSigner::new(*players[n].0.as_bytes(), players[n].1.as_bytes());
    let path = format!("/v1/content/{content}/chunks/0?count=64");
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut conn = Conn::open(&server, source(2), false).await;
        conn.send(&request(&signer(0), &path)).await;
        assert_eq!(conn.status_line().await, "HTTP/1.1 200 OK");
        held.push(conn);
    }
    // The third at once is refused; another player is not affected.
    let mut third = Conn::open(&server, source(2), false).await;
    third.send(&request(&signer(0), &path)).await;
    assert_eq!(third.status_line().await, "HTTP/1.1 429 Too Many Requests");
    let mut other = Conn::open(&server, source(2), false).await;
    other.send(&request(&signer(1), &path)).await;
    assert_eq!(other.status_line().await, "HTTP/1.1 200 OK");

    // Once the first two go away, the player is served again.
    drop(held);
    let start = Instant::now();
    loop {
        let mut conn = Conn::open(&server, source(2), false).await;
        conn.send(&request(&signer(0), &path)).await;
        if conn.status_line().await == "HTTP/1.1 200 OK" {
            break;
        }
        assert!(start.elapsed() < GUARD, "the slots were never released");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
