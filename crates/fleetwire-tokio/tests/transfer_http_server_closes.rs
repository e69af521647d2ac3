//! A content server that closes the connection after every response (no keep-alive): the
//! download still completes, byte-identical, over HTTP and HTTPS, without counting the closes
//! as failures.
#![allow(clippy::disallowed_methods)]

mod transfer_common;

use std::sync::atomic::Ordering;

use fleetwire_tokio::tls;
use fleetwire_tokio::transfer::{FetchOptions, HttpEndpoint, fetch_http};
use transfer_common::*;

const CHUNK: u32 = 16 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_completes_when_the_server_closes_after_each_response() {
    let data = test_file(1_500_000, 31);
    let server = ContentServer::start_with(data.clone(), CHUNK, false).await;
    let dir = temp_dir("http-close");
    let endpoints = [
        HttpEndpoint::http(server.http),
        HttpEndpoint::https(
            server.https,
            tls::pinned_client_config(server.fingerprint).unwrap(),
            server_name(),
        ),
    ];
    // Fewer failures allowed than requests made: a close must not count as one.
    let options = FetchOptions {
        window: 8,
        chunks_per_request: 2,
        max_failures: 2,
        ..FetchOptions::default()
    };
    for (n, ep) in endpoints.iter().enumerate() {
        let dest = dir.join(format!("file-{n}.bin"));
        server.sent.store(0, Ordering::SeqCst);
        fetch_http(ep, "5", &dest, &trusted(), &options, |_| {})
            .await
            .unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), data);
        assert_eq!(server.sent.load(Ordering::SeqCst), data.len() as u64);
    }
}
