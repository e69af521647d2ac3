//! HTTP and HTTPS downloads over loopback: the file arrives byte-identical under its final name
//! and never appears there before it verified; a tampered chunk is refused and fetched again;
//! a download aborted at random points and restarted re-fetches at most one window.
#![allow(clippy::disallowed_methods)]

mod transfer_common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use fleetwire_tokio::tls;
use fleetwire_tokio::transfer::{FetchOptions, HttpEndpoint, PartFile, Progress, fetch_http};
use transfer_common::*;

const CHUNK: u32 = 16 * 1024;

fn endpoints(server: &ContentServer) -> [HttpEndpoint; 2] {
    [
        HttpEndpoint::http(server.http),
        HttpEndpoint::https(
            server.https,
            tls::pinned_client_config(server.fingerprint).unwrap(),
            server_name(),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_arrives_identical_over_http_and_https_and_never_partial_under_its_name() {
    let data = test_file(1_000_003, 1);
    let server = ContentServer::start(data.clone(), CHUNK).await;
    let dir = temp_dir("http-ok");
    for (n, ep) in endpoints(&server).iter().enumerate() {
        let dest = dir.join(format!("file-{n}.bin"));
        let calls = Arc::new(AtomicU64::new(0));
        let seen = calls.clone();
        let check = dest.clone();
        let report = fetch_http(
            ep,
            "5",
            &dest,
            &trusted(),
            &FetchOptions::default(),
            |p: Progress| {
                seen.fetch_add(1, Ordering::Relaxed);
                assert_no_partial_under(&check, p.done);
            },
        )
        .await
        .unwrap();
        assert!(report.progress.done);
        assert_eq!(report.progress.stored_bytes, data.len() as u64);
        assert_eq!(std::fs::read(&dest).unwrap(), data);
        assert!(!PartFile::part_path(&dest).exists());
        assert!(!PartFile::state_path(&dest).exists());
        assert!(calls.load(Ordering::Relaxed) > 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_chunk_is_refused_and_the_file_still_completes() {
    let data = test_file(300_000, 2);
    let server = ContentServer::start(data.clone(), CHUNK).await;
    let dir = temp_dir("http-tamper");
    for (n, ep) in endpoints(&server).iter().enumerate() {
        *server.tamper.lock().unwrap() = Some(7);
        let dest = dir.join(format!("file-{n}.bin"));
        let report = fetch_http(ep, "5", &dest, &trusted(), &FetchOptions::default(), |_| {})
            .await
            .unwrap();
        assert_eq!(report.progress.rejected_chunks, 1);
        assert_eq!(std::fs::read(&dest).unwrap(), data);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_random_points_resumes_and_refetches_at_most_one_window() {
    let data = test_file(2_000_000, 3);
    let server = ContentServer::start(data.clone(), CHUNK).await;
    let dir = temp_dir("http-kill");
    let options = FetchOptions {
        window: 8,
        chunks_per_request: 2,
        ..FetchOptions::default()
    };
    let window_bytes = u64::from(options.window) * u64::from(CHUNK);
    let mut rng = Lcg(42);
    let eps = endpoints(&server);
    for round in 0..6 {
        let ep = eps[round % 2].clone();
        let dest = dir.join(format!("file-{round}.bin"));
        server.sent.store(0, Ordering::SeqCst);
        // Kill once the download stored at least `kill_at` bytes (a random point).
        let kill_at = rng.below(data.len() as u64 - 100_000) + 1;
        let stored = Arc::new(AtomicU64::new(0));
        let reached = Arc::new(tokio::sync::Notify::new());
        let (s, r) = (stored.clone(), reached.clone());
        let (ep1, dest1, opts1) = (ep.clone(), dest.clone(), options.clone());
        let task = tokio::spawn(async move {
            fetch_http(&ep1, "5", &dest1, &trusted(), &opts1, move |p| {
                s.store(p.stored_bytes, Ordering::SeqCst);
                if p.stored_bytes >= kill_at {
                    r.notify_one();
                }
            })
            .await
        });
        reached.notified().await;
        task.abort();
        let _ = task.await;
        assert!(
            !dest.exists(),
            "the final name appeared for an unfinished download"
        );
        let first_run_sent = server.sent.load(Ordering::SeqCst);
        let resumed = Arc::new(Mutex::new(None));
        let seen = resumed.clone();
        let report = fetch_http(&ep, "5", &dest, &trusted(), &options, move |p| {
            seen.lock().unwrap().get_or_insert(p.resumed_bytes);
        })
        .await
        .unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), data);
        let resumed = resumed.lock().unwrap().unwrap();
        let refetched = first_run_sent - resumed;
        assert!(
            refetched <= window_bytes,
            "round {round}: {refetched} bytes sent in the killed run were not kept (window {window_bytes})"
        );
        let total = server.sent.load(Ordering::SeqCst);
        assert!(
            total - data.len() as u64 <= window_bytes,
            "round {round}: total {total}"
        );
        assert_eq!(report.progress.resumed_bytes, resumed);
    }
}
