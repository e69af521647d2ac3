//! Issue 10: slow and partial input and output on 8001 (plain HTTP), 8443 (HTTPS) and 4702
//! (framed transfer), before and after authentication. Each client below trickles bytes or
//! stops reading; each must be closed by a deadline (header, request/body, login, write, idle)
//! while it still trickles. The deadlines are set to 2–3 s here; the guards are generous and no
//! assertion is about speed.
#![allow(clippy::disallowed_methods)] // a real clock

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use fleetwire_tokio::transfer::{AUTH_HEADER, RequestSigner};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

mod common;
mod running;
use running::{
    GUARD, Running, accepted_not_reading, add_players, bytes, content_key, publish, source,
    tcp_from, tight_tcp_from,
};

const SETTINGS: [(&str, &str); 3] = [
    (
        "http",
        "header_timeout_secs = 2\nrequest_timeout_secs = 3\nwrite_timeout_secs = 2\n",
    ),
    ("session", "login_timeout_secs = 2"),
    ("transfer", "write_timeout_secs = 2"),
];

/// Sends `bytes` one at a time every `every` until the peer closes; true if it closed before
/// every byte was sent (or within the guard after).
async fn trickle<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    bytes: &[u8],
    every: Duration,
) -> bool {
    for b in bytes {
        if stream.write_all(&[*b]).await.is_err() || stream.flush().await.is_err() {
            return true;
        }
        // A closed peer shows as a read of 0 or an error; data (a 408) is fine to skip.
        let mut buf = [0u8; 4096];
        if let Ok(Ok(0) | Err(_)) = tokio::time::timeout(every, stream.read(&mut buf)).await {
            return true;
        }
    }
    false
}

/// Reads a trickle (1 KiB every 2 s, below the 1 KiB/s floor) for three deadlines, then
/// everything left at full speed: true if the server had cut the stream, i.e. it ended before
/// `whole` bytes arrived.
async fn read_trickle<S: AsyncRead + Unpin>(stream: &mut S, whole: usize) -> bool {
    let mut buf = vec![0u8; 1024];
    let mut total = 0;
    for _ in 0..3 {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return total < whole,
            Ok(n) => total += n,
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let mut buf = vec![0u8; 256 * 1024];
    let ended = tokio::time::timeout(GUARD, async {
        while total < whole {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(n) => total += n,
            }
        }
        false
    })
    .await;
    ended.unwrap_or(false) && total < whole
}

/// The status line of a response (reads it byte by byte).
async fn status_line<S: AsyncRead + Unpin>(stream: &mut S) -> String {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        match tokio::time::timeout(GUARD, stream.read(&mut b)).await {
            Ok(Ok(1)) => line.push(b[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&line).trim_end().to_owned()
}

fn signed_get(signer: &RequestSigner, path: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\n{AUTH_HEADER}: {}\r\n\r\n",
        signer.header("GET", path, now).unwrap()
    )
}

async fn http(server: &Running, from: IpAddr, tls: bool) -> Box<dyn Stream> {
    let addr: SocketAddr = if tls { server.https } else { server.http };
    let tcp = tcp_from(from, addr).await.unwrap();
    if tls {
        Box::new(server.tls_over(tcp).await.unwrap())
    } else {
        Box::new(tcp)
    }
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_on_the_http_listeners_are_closed_by_their_deadlines() {
    let mut players = Vec::new();
    let mut content = String::new();
    let file = bytes(64 * 256 * 1024, 41);
    let server = Running::start("slow-http", &SETTINGS, |data| {
        players = add_players(data, 1);
        content = publish(data, "big.mp4", &file, "all", 256 * 1024);
    });
    let signer = RequestSigner::new(*players[0].0.as_bytes(), players[0].1.as_bytes());
    let request = b"GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    for tls in [false, true] {
        let what = if tls { "8443" } else { "8001" };
        // Before authentication: headers trickled a byte every 250 ms (the header deadline).
        let mut s = http(&server, source(2), tls).await;
        assert!(
            trickle(&mut s, request, Duration::from_millis(250)).await,
            "{what}: trickled headers were never cut"
        );
        // An idle keep-alive connection after one request.
        let mut s = http(&server, source(2), tls).await;
        s.write_all(b"GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        s.flush().await.unwrap();
        assert!(status_line(&mut s).await.starts_with("HTTP/1.1 "));
        assert!(
            running::closed_within(&mut s, GUARD).await,
            "{what}: idle keep-alive never closed"
        );
        // A connection that never sends a byte (on 8443: never starts the TLS handshake).
        let addr = if tls { server.https } else { server.http };
        let mut silent = tcp_from(source(2), addr).await.unwrap();
        assert!(
            running::closed_within(&mut silent, GUARD).await,
            "{what}: silent peer never closed"
        );
        // After authentication: a chunk response read at 512 B/s (the write deadline and its
        // minimum rate).
        let path = format!("/v1/content/{content}/chunks/0?count=64");
        let tcp = tight_tcp_from(source(2), addr).await.unwrap();
        let mut s: Box<dyn Stream> = if tls {
            Box::new(server.tls_over(tcp).await.unwrap())
        } else {
            Box::new(tcp)
        };
        s.write_all(signed_get(&signer, &path).as_bytes())
            .await
            .unwrap();
        s.flush().await.unwrap();
        assert_eq!(status_line(&mut s).await, "HTTP/1.1 200 OK");
        assert!(
            read_trickle(&mut s, file.len()).await,
            "{what}: a trickling reader was never cut"
        );
    }
    // HTTPS, before authentication: a request body trickled a byte every 250 ms.
    let mut s = http(&server, source(3), true).await;
    let head = b"POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n";
    s.write_all(head).await.unwrap();
    let body = [b' '; 200];
    assert!(
        trickle(&mut s, &body, Duration::from_millis(250)).await,
        "8443: a trickled body was never cut"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_request_bodies_are_refused_before_they_are_held() {
    let server = Running::start("big-body", &SETTINGS, |_| {});
    let mut s = http(&server, source(2), true).await;
    let body = vec![b' '; 200 * 1024];
    let head = format!(
        "POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let _ = s.write_all(&body).await;
    let _ = s.flush().await;
    assert_eq!(status_line(&mut s).await, "HTTP/1.1 413 Payload Too Large");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_on_the_framed_port_are_closed_by_their_deadlines() {
    let mut players = Vec::new();
    let file = bytes(32 * 256 * 1024, 42);
    let mut key = [0u8; 32];
    let server = Running::start("slow-framed", &SETTINGS, |data| {
        players = add_players(data, 1);
        publish(data, "big.mp4", &file, "all", 256 * 1024);
        key = content_key(data);
    });
    // Before authentication: a Hello trickled a byte every 250 ms (the login deadline).
    let mut tls = server.tls_from(source(2), server.framed).await.unwrap();
    let hello = [
        1u8, 1, 0, 0, 0, 29, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
    ];
    assert!(
        trickle(&mut tls, &hello.repeat(4), Duration::from_millis(250)).await,
        "4702: a trickled Hello was never cut"
    );
    // Before authentication: nothing at all after TCP (no TLS handshake).
    let mut silent = tcp_from(source(2), server.framed).await.unwrap();
    assert!(
        running::closed_within(&mut silent, GUARD).await,
        "4702: silent peer never closed"
    );
    // After authentication: the content read at 512 B/s.
    let mut tls = accepted_not_reading(&server, &players[0], key).await;
    assert!(
        read_trickle(&mut tls, file.len()).await,
        "4702: a trickling reader was never cut"
    );
}
