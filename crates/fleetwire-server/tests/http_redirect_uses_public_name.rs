//! Issue 10: the plain-HTTP redirect to HTTPS points at the configured public name
//! (`[http] public_name`, default `localhost`), never at the request's `Host` header.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;
mod running;
use running::{GUARD, Running, source, tcp_from};

async fn location(server: &Running, host: &str) -> String {
    let mut tcp = tcp_from(source(1), server.http).await.unwrap();
    let request =
        format!("GET /v1/status?x=1 HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(GUARD, tcp.read_to_end(&mut reply))
        .await
        .unwrap()
        .unwrap();
    let reply = String::from_utf8_lossy(&reply).into_owned();
    assert!(reply.starts_with("HTTP/1.1 308"), "{reply}");
    reply
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("location: ")
                .map(str::to_owned)
        })
        .unwrap_or_else(|| panic!("no Location in {reply}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_ignores_the_host_header() {
    let server = Running::start("redirect-default", &[], |_| {});
    let port = server.https.port();
    for host in ["evil.example", "evil.example:1234", "127.0.0.1"] {
        assert_eq!(
            location(&server, host).await,
            format!("https://localhost:{port}/v1/status?x=1")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_goes_to_the_configured_public_name() {
    let server = Running::start(
        "redirect-named",
        &[("http", "public_name = \"signage.example.com\"")],
        |_| {},
    );
    assert_eq!(
        location(&server, "evil.example").await,
        format!(
            "https://signage.example.com:{}/v1/status?x=1",
            server.https.port()
        )
    );
}
