//! Issue 10, hole 2: one address must not take the HTTP(S) API down without signing in. A
//! source that opens more than its cap of connections that send headers and then stall (a
//! `Content-Length` body never sent on HTTPS; half a request line on plain HTTP) gets only its
//! cap; a request from another source is still answered; the stalled connections are closed at
//! the request / header deadline.
#![allow(clippy::disallowed_methods)] // a real clock

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;
mod running;
use running::{GUARD, Running, closed_within, source, tcp_from};

const CAP: usize = 4;
const ATTEMPTS: usize = 40;

fn settings() -> [(&'static str, &'static str); 1] {
    [(
        "http",
        "max_connections = 32\nmax_connections_per_source = 4\n\
         header_timeout_secs = 2\nrequest_timeout_secs = 3\n",
    )]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_bodies_from_one_source_leave_https_to_others() {
    let server = Running::start("starve-https", &settings(), |_| {});
    let attacker = source(2);
    // More than the whole listener's slots, each with a body promised and never sent.
    let mut stalled = Vec::new();
    for _ in 0..ATTEMPTS {
        let Ok(Ok(mut tls)) = tokio::time::timeout(
            Duration::from_secs(5),
            server.tls_from(attacker, server.https),
        )
        .await
        else {
            continue;
        };
        let head = "POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                    Content-Length: 1000\r\n\r\n{\"user";
        if tls.write_all(head.as_bytes()).await.is_ok() && tls.flush().await.is_ok() {
            stalled.push(tls);
        }
    }
    assert!(
        !stalled.is_empty(),
        "the first connections of a source are served"
    );

    // Another source is answered while the first one holds what it was given.
    let honest = tokio::time::timeout(GUARD, https_status(&server, source(3)))
        .await
        .expect("the other source's request hung");
    assert!(honest.starts_with("HTTP/1.1 200"), "{honest:?}");
    assert!(
        stalled.len() <= CAP,
        "one source held {} connections (cap {CAP})",
        stalled.len()
    );

    // The stalled requests are closed at the deadline (the generous guard is not a timing test).
    for tls in &mut stalled {
        assert!(
            closed_within(tls, GUARD).await,
            "a stalled request was never closed"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_headers_from_one_source_leave_plain_http_to_others() {
    let server = Running::start("starve-http", &settings(), |_| {});
    let attacker = source(2);
    let mut stalled = Vec::new();
    for _ in 0..ATTEMPTS {
        let Ok(mut tcp) = tcp_from(attacker, server.http).await else {
            continue;
        };
        if tcp
            .write_all(b"GET /v1/content HTTP/1.1\r\nHost: x\r\n")
            .await
            .is_ok()
        {
            stalled.push(tcp);
        }
    }
    // The listener took them all off the backlog (kept or dropped) before the honest request.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut tcp = tcp_from(source(3), server.http).await.unwrap();
    tcp.write_all(b"GET /v1/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(GUARD, tcp.read_to_end(&mut reply))
        .await
        .expect("the other source's request hung");
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 308"), "{reply:?}");

    for tcp in &mut stalled {
        // A connection dropped at accept reads as closed at once; a kept one at the deadline.
        assert!(
            closed_within(tcp, GUARD).await,
            "a stalled request was never closed"
        );
    }
}

/// `GET /v1/status` over HTTPS from `from`; the raw response (empty if the connection failed).
async fn https_status(server: &Running, from: std::net::IpAddr) -> String {
    let Ok(mut tls) = server.tls_from(from, server.https).await else {
        return String::new();
    };
    let _ = tls
        .write_all(b"GET /v1/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await;
    let mut reply = Vec::new();
    let _ = tls.read_to_end(&mut reply).await;
    String::from_utf8_lossy(&reply).into_owned()
}
