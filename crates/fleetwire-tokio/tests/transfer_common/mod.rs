//! Shared by the transfer tests: test files, a signed manifest, a self-signed TLS identity, and
//! a tiny HTTP(S) content server (hyper) that counts the chunk bytes it sends and can tamper
//! with one chunk once.
#![allow(dead_code, unreachable_pub, clippy::disallowed_methods)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use fleetwire_tokio::tls;
use fleetwire_transfer::{ContentSigner, FileKind, Manifest, PublicKey, SignedManifest};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::net::TcpListener;

pub fn signer() -> ContentSigner {
    ContentSigner::from_seed(&[9; 32])
}

pub fn trusted() -> Vec<PublicKey> {
    vec![signer().public_key()]
}

/// Deterministic bytes that differ chunk to chunk.
pub fn test_file(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

pub fn manifest(data: &[u8], chunk_size: u32) -> SignedManifest {
    Manifest::build(FileKind::Media, 5, 1, chunk_size, data)
        .unwrap()
        .sign(&signer())
}

pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fw-transfer-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn self_signed() -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let cert = rcgen::generate_simple_self_signed(vec!["fleetwire.local".into()]).unwrap();
    let der = cert.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
    (der, key)
}

pub fn server_name() -> ServerName<'static> {
    ServerName::try_from("fleetwire.local").unwrap()
}

/// The final file never exists before the download says it is done.
pub fn assert_no_partial_under(dest: &Path, done: bool) {
    if !done {
        assert!(
            !dest.exists(),
            "{} appeared before verification",
            dest.display()
        );
    }
}

pub struct ContentServer {
    pub http: SocketAddr,
    pub https: SocketAddr,
    pub fingerprint: [u8; 32],
    /// Chunk bytes put in responses.
    pub sent: Arc<AtomicU64>,
    /// Tamper with the first response carrying this chunk.
    pub tamper: Arc<Mutex<Option<u32>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for ContentServer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

struct Content {
    manifest: SignedManifest,
    data: Vec<u8>,
    sent: Arc<AtomicU64>,
    tamper: Arc<Mutex<Option<u32>>>,
}

impl ContentServer {
    /// Serves `data` as content id `5` on 127.0.0.1 (HTTP and HTTPS, ephemeral ports).
    pub async fn start(data: Vec<u8>, chunk_size: u32) -> Self {
        Self::start_with(data, chunk_size, true).await
    }

    /// As [`ContentServer::start`]; without keep-alive the server closes every connection after
    /// one response.
    pub async fn start_with(data: Vec<u8>, chunk_size: u32, keep_alive: bool) -> Self {
        let sent = Arc::new(AtomicU64::new(0));
        let tamper = Arc::new(Mutex::new(None));
        let content = Arc::new(Content {
            manifest: manifest(&data, chunk_size),
            data,
            sent: sent.clone(),
            tamper: tamper.clone(),
        });
        let (cert, key) = self_signed();
        let fingerprint = tls::fingerprint(&cert);
        let acceptor =
            tokio_rustls::TlsAcceptor::from(tls::server_config(vec![cert], key).unwrap());
        let plain = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let secure = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (http, https) = (plain.local_addr().unwrap(), secure.local_addr().unwrap());
        let c1 = content.clone();
        let t1 = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = plain.accept().await else {
                    return;
                };
                let c = c1.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |r| handle(c.clone(), r));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(keep_alive)
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        let t2 = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = secure.accept().await else {
                    return;
                };
                let (c, acceptor) = (content.clone(), acceptor.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = service_fn(move |r| handle(c.clone(), r));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(keep_alive)
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        Self {
            http,
            https,
            fingerprint,
            sent,
            tamper,
            tasks: vec![t1, t2],
        }
    }
}

#[allow(clippy::unused_async)] // hyper wants a future
async fn handle(
    c: Arc<Content>,
    r: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = r.uri().path();
    let reply = |status: StatusCode, body: Vec<u8>| {
        let mut resp = Response::new(Full::new(Bytes::from(body)));
        *resp.status_mut() = status;
        Ok(resp)
    };
    if path == "/v1/content/5/manifest" {
        return reply(StatusCode::OK, c.manifest.as_bytes().to_vec());
    }
    let Some(index) = path.strip_prefix("/v1/content/5/chunks/") else {
        return reply(StatusCode::NOT_FOUND, Vec::new());
    };
    let (Ok(index), Some(count)) = (
        index.parse::<u32>(),
        r.uri()
            .query()
            .and_then(|q| q.strip_prefix("count="))
            .and_then(|n| n.parse::<u32>().ok()),
    ) else {
        return reply(StatusCode::BAD_REQUEST, Vec::new());
    };
    let m = &c.manifest;
    let end = (index + count).min(m.chunk_count());
    if index >= end {
        return reply(StatusCode::RANGE_NOT_SATISFIABLE, Vec::new());
    }
    let start = m.chunk_offset(index) as usize;
    let stop = (m.chunk_offset(end) as usize).min(c.data.len());
    let mut body = c.data[start..stop].to_vec();
    {
        let mut t = c.tamper.lock().unwrap();
        if let Some(k) = *t {
            if (index..end).contains(&k) {
                body[m.chunk_offset(k) as usize - start] ^= 0x55;
                *t = None;
            }
        }
    }
    c.sent.fetch_add(body.len() as u64, Ordering::SeqCst);
    reply(StatusCode::OK, body)
}

/// A tiny deterministic generator for "random" kill points.
pub struct Lcg(pub u64);

impl Lcg {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n.max(1)
    }
}
