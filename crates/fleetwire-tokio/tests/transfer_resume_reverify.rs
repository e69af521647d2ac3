//! On resume, every chunk the resume record claims is read back and checked against the signed
//! manifest: a chunk altered inside `.part`, or named by the record but never written (the
//! record reached the disk before the data did, then the power went), is dropped from the
//! record and fetched again, over HTTP(S) and over the framed stream; the file still arrives
//! byte-identical and the chunks that did verify are not fetched again.
#![allow(clippy::disallowed_methods)]

mod transfer_common;

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use fleetwire_tokio::tls;
use fleetwire_tokio::transfer::{
    FetchOptions, HttpEndpoint, PartFile, ReceiveOptions, SendOptions, fetch_http, receive_framed,
    send_framed,
};
use fleetwire_transfer::ReceiverConfig;
use tokio::net::{TcpListener, TcpStream};
use transfer_common::*;

const CHUNK: u32 = 16 * 1024;
/// Chunks the earlier run left named by its record.
const CLAIMED: u32 = 20;
/// Altered on disk after it was stored.
const CORRUPTED: u32 = 3;
/// Named by the record, never written.
const NEVER_WRITTEN: u32 = 11;

/// Leaves `dest.part` and its record as a run killed after a power cut could: chunks
/// `0..CLAIMED` named, one of them altered on disk, one of them all zeros.
fn leave_damaged_partial(dest: &Path, data: &[u8]) {
    let m = manifest(data, CHUNK);
    let mut part = PartFile::open(dest, m.clone(), &trusted()).unwrap();
    for i in 0..CLAIMED {
        if i == NEVER_WRITTEN {
            part.mark_stored(i);
            continue;
        }
        let start = m.chunk_offset(i) as usize;
        part.write_chunk(i, &data[start..start + m.chunk_len(i)])
            .unwrap();
    }
    part.persist().unwrap();
    drop(part);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(PartFile::part_path(dest))
        .unwrap();
    let at = m.chunk_offset(CORRUPTED) + 100;
    f.write_all_at(&[data[at as usize] ^ 0x01], at).unwrap();
    let record = PartFile::load_partial(dest, &trusted(), u32::MAX).unwrap();
    assert_eq!(
        record.stored().count(),
        CLAIMED,
        "the record claims every chunk"
    );
}

#[test]
fn opening_drops_claimed_chunks_that_do_not_verify() {
    let dir = temp_dir("reverify-open");
    let data = test_file(500_000, 21);
    let dest = dir.join("out.bin");
    leave_damaged_partial(&dest, &data);
    let part = PartFile::open(&dest, manifest(&data, CHUNK), &trusted()).unwrap();
    assert_eq!(part.reverify_failed(), 2);
    assert_eq!(part.resumed_chunks(), CLAIMED - 2);
    assert!(!part.stored().contains(CORRUPTED));
    assert!(!part.stored().contains(NEVER_WRITTEN));
    drop(part);
    // The rewritten record no longer names them.
    let record = PartFile::load_partial(&dest, &trusted(), u32::MAX).unwrap();
    assert_eq!(record.stored().count(), CLAIMED - 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_resume_refetches_claimed_chunks_that_do_not_verify() {
    let data = test_file(500_000, 22);
    let server = ContentServer::start(data.clone(), CHUNK).await;
    let dir = temp_dir("reverify-http");
    let endpoints = [
        HttpEndpoint::http(server.http),
        HttpEndpoint::https(
            server.https,
            tls::pinned_client_config(server.fingerprint).unwrap(),
            server_name(),
        ),
    ];
    for (n, ep) in endpoints.iter().enumerate() {
        let dest = dir.join(format!("out-{n}.bin"));
        leave_damaged_partial(&dest, &data);
        server.sent.store(0, Ordering::SeqCst);
        // The optional whole-file read-back agrees.
        let options = FetchOptions {
            check_whole_file: n == 1,
            ..FetchOptions::default()
        };
        let report = fetch_http(ep, "5", &dest, &trusted(), &options, |_| {})
            .await
            .unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), data);
        let kept = u64::from(CLAIMED - 2) * u64::from(CHUNK);
        assert_eq!(report.progress.resumed_bytes, kept);
        assert_eq!(
            server.sent.load(Ordering::SeqCst),
            data.len() as u64 - kept,
            "exactly the chunks not kept were fetched"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framed_resume_refetches_claimed_chunks_that_do_not_verify() {
    let dir = temp_dir("reverify-framed");
    let data = test_file(500_000, 23);
    let src = dir.join("source.bin");
    std::fs::write(&src, &data).unwrap();
    let dest = dir.join("out.bin");
    leave_damaged_partial(&dest, &data);

    let (cert, key) = self_signed();
    let fingerprint = tls::fingerprint(&cert);
    let acceptor = tokio_rustls::TlsAcceptor::from(tls::server_config(vec![cert], key).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let m = manifest(&data, CHUNK);
    let sender = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = acceptor.accept(tcp).await.unwrap();
        send_framed(&mut tls, m, &src, &SendOptions::default())
            .await
            .unwrap()
    });
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut stream =
        tokio_rustls::TlsConnector::from(tls::pinned_client_config(fingerprint).unwrap())
            .connect(server_name(), tcp)
            .await
            .unwrap();
    let options = ReceiveOptions {
        config: Arc::new(ReceiverConfig::new(trusted())),
    };
    let report = receive_framed(&mut stream, &dest, &options, |_| {})
        .await
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    let sent = sender.await.unwrap();
    assert_eq!(
        sent.already_held,
        CLAIMED - 2,
        "the sender was told only what verified"
    );
    assert_eq!(
        report.progress.resumed_bytes,
        u64::from(CLAIMED - 2) * u64::from(CHUNK)
    );
}
