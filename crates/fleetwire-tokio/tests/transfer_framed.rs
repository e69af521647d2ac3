//! The framed stream driver pair over TLS on loopback: the file arrives byte-identical under its
//! final name and never appears there before it verified; a chunk altered on the path (with a
//! valid message checksum) is refused and resent; a receiver killed at random points resumes
//! and the sender re-sends at most one window.
#![allow(clippy::disallowed_methods)]

mod transfer_common;

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use fleetwire_tokio::tls;
use fleetwire_tokio::transfer::{
    PartFile, ReceiveOptions, SendOptions, receive_framed, send_framed,
};
use fleetwire_transfer::{CHUNK_OVERHEAD, ReceiverConfig, SenderConfig, SignedManifest};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use transfer_common::*;

const CHUNK: u32 = 16 * 1024;

/// Counts bytes written through it.
struct Counting<S> {
    inner: S,
    written: Arc<AtomicU64>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counting<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counting<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            self.written.fetch_add(n as u64, Ordering::SeqCst);
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

struct Setup {
    addr: std::net::SocketAddr,
    fingerprint: [u8; 32],
    written: Arc<AtomicU64>,
    server: tokio::task::JoinHandle<()>,
}

/// A TLS server that sends `file` to every connection with `options`, counting plaintext bytes.
async fn serve(manifest: SignedManifest, file: PathBuf, options: SendOptions) -> Setup {
    let (cert, key) = self_signed();
    let fingerprint = tls::fingerprint(&cert);
    let acceptor = tokio_rustls::TlsAcceptor::from(tls::server_config(vec![cert], key).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let written = Arc::new(AtomicU64::new(0));
    let w = written.clone();
    let server = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, m, f, o, w) = (
                acceptor.clone(),
                manifest.clone(),
                file.clone(),
                options.clone(),
                w.clone(),
            );
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut stream = Counting {
                    inner: tls,
                    written: w,
                };
                let _ = send_framed(&mut stream, m, &f, &o).await;
            });
        }
    });
    Setup {
        addr,
        fingerprint,
        written,
        server,
    }
}

async fn connect(s: &Setup) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(s.addr).await.unwrap();
    tokio_rustls::TlsConnector::from(tls::pinned_client_config(s.fingerprint).unwrap())
        .connect(server_name(), tcp)
        .await
        .unwrap()
}

fn receive_options(window: u32) -> ReceiveOptions {
    let mut config = ReceiverConfig::new(trusted());
    config.max_window = window;
    ReceiveOptions {
        config: Arc::new(config),
    }
}

fn write_source(dir: &Path, data: &[u8]) -> PathBuf {
    let p = dir.join("source.bin");
    std::fs::write(&p, data).unwrap();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_arrives_identical_and_never_partial_under_its_name() {
    let dir = temp_dir("framed-ok");
    let data = test_file(700_001, 11);
    let src = write_source(&dir, &data);
    let setup = serve(manifest(&data, CHUNK), src, SendOptions::default()).await;
    let dest = dir.join("out.bin");
    let check = dest.clone();
    let mut stream = connect(&setup).await;
    let report = receive_framed(&mut stream, &dest, &receive_options(32), |p| {
        assert_no_partial_under(&check, p.done);
    })
    .await
    .unwrap();
    assert!(report.progress.done);
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    assert!(!PartFile::part_path(&dest).exists());
    assert!(!PartFile::state_path(&dest).exists());
    setup.server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_chunk_is_refused_and_resent() {
    let dir = temp_dir("framed-tamper");
    let data = test_file(200_000, 12);
    let src = write_source(&dir, &data);
    let options = SendOptions {
        config: Arc::new(SenderConfig::default()),
        danger_tamper_chunk_once: Some(4),
        ..SendOptions::default()
    };
    let setup = serve(manifest(&data, CHUNK), src, options).await;
    let dest = dir.join("out.bin");
    let mut stream = connect(&setup).await;
    let report = receive_framed(&mut stream, &dest, &receive_options(32), |_| {})
        .await
        .unwrap();
    assert_eq!(report.progress.rejected_chunks, 1);
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    setup.server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_random_points_resumes_and_resends_at_most_one_window() {
    let dir = temp_dir("framed-kill");
    let data = test_file(1_500_000, 13);
    let src = write_source(&dir, &data);
    let window = 8u32;
    let signed = manifest(&data, CHUNK);
    let offer_bytes = signed.as_bytes().len() as u64 + 64;
    let config = SenderConfig {
        window,
        ..SenderConfig::default()
    };
    let options = SendOptions {
        config: Arc::new(config),
        ..SendOptions::default()
    };
    let setup = serve(signed, src, options).await;
    // Per chunk on the wire: data, message overhead, frame header.
    let window_bytes = u64::from(window) * (u64::from(CHUNK) + CHUNK_OVERHEAD as u64 + 6);
    let mut rng = Lcg(7);
    for round in 0..5 {
        let dest = dir.join(format!("out-{round}.bin"));
        setup.written.store(0, Ordering::SeqCst);
        let kill_at = rng.below(data.len() as u64 - 100_000) + 1;
        let reached = Arc::new(tokio::sync::Notify::new());
        let r = reached.clone();
        let mut stream = connect(&setup).await;
        let (dest1, opts) = (dest.clone(), receive_options(window));
        let task = tokio::spawn(async move {
            receive_framed(&mut stream, &dest1, &opts, move |p| {
                if p.stored_bytes >= kill_at {
                    r.notify_one();
                }
            })
            .await
        });
        reached.notified().await;
        task.abort();
        let _ = task.await;
        assert!(!dest.exists());
        let first = setup.written.load(Ordering::SeqCst);
        let mut resumed = None;
        let mut stream = connect(&setup).await;
        receive_framed(&mut stream, &dest, &receive_options(window), |p| {
            resumed.get_or_insert(p.resumed_bytes);
        })
        .await
        .unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), data);
        let resumed = resumed.unwrap();
        // The killed run's bytes that were not kept: at most one window (plus the offer).
        let lost = first.saturating_sub(resumed + offer_bytes);
        let per_chunk_overhead =
            u64::from(resumed.div_ceil(u64::from(CHUNK)) as u32) * (CHUNK_OVERHEAD as u64 + 6);
        assert!(
            lost <= window_bytes + per_chunk_overhead,
            "round {round}: {lost} bytes sent were not kept (window {window_bytes})"
        );
    }
    setup.server.abort();
}
