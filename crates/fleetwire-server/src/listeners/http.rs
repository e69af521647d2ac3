//! The HTTP front: the JSON API over HTTPS, and a plain-HTTP port that serves only what is safe
//! without TLS (signed content) and redirects everything else to HTTPS (W5).
//!
//! Both routers are built from the one route table (`api::table`): its rows say which listener
//! serves them.
//!
//! ## What one peer can hold (both listeners, `[http]` in fleetwire.toml)
//! - Connections: `max_connections` per listener, and `max_connections_per_source` from one
//!   source (an IPv4 address or an IPv6 /64, [`Source`]). A connection over either cap is
//!   dropped at accept; other sources are still served while one is at its cap.
//! - Time: the TLS handshake and each request's headers within `header_timeout_secs` (hyper's
//!   header timer also runs while a keep-alive connection waits for its next request, so an idle
//!   connection is closed after it); from the headers to the response headers, body included,
//!   `request_timeout_secs` (then `408` and the connection closes); a request body slower than
//!   `min_bytes_per_sec` after a 10 s grace is cut, and one larger than `max_body_bytes` is
//!   refused (`413`); while a write waits, the peer must take `min_bytes_per_sec` ×
//!   `write_timeout_secs` bytes every `write_timeout_secs` (a peer that stops reading, or
//!   trickles, is cut).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use fleetwire_tokio::source::Source;
use hyper::body::Frame;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::{Instant, Sleep};
use tokio_rustls::TlsAcceptor;

use crate::app::{App as Ctx, Service};
use crate::config::HttpSettings;

pub(crate) async fn start(ctx: &Arc<Ctx>) -> Result<Service, String> {
    let settings = &ctx.config.http;
    let https = TcpListener::bind(settings.https_listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", settings.https_listen))?;
    let http = TcpListener::bind(settings.http_listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", settings.http_listen))?;
    let https_addr = https.local_addr().map_err(|e| e.to_string())?;
    let public = public_authority(&settings.public_name, https_addr.port())?;
    println!("https api on {https_addr}");
    println!(
        "http on {} (signed content; everything else redirects to https://{public})",
        http.local_addr().map_err(|e| e.to_string())?
    );
    let acceptor = TlsAcceptor::from(ctx.tls.clone());
    let limits = Limits::from_settings(settings);
    // One table (and one content service, so one replay cache) for both listeners.
    let table = crate::api::table(ctx);
    let plain = crate::api::plain(ctx, &table)
        .fallback(move |request: Request| async move { redirect_to_https(&public, &request) });
    let secure = tokio::spawn(accept_loop(
        https,
        Some(acceptor),
        with_deadlines(crate::api::https(ctx, &table), limits),
        limits,
        ctx.shutdown.clone(),
    ));
    let open = tokio::spawn(accept_loop(
        http,
        None,
        with_deadlines(plain, limits),
        limits,
        ctx.shutdown.clone(),
    ));
    Ok(tokio::spawn(async move {
        let _ = secure.await;
        let _ = open.await;
        Ok(())
    }))
}

/// `host[:port]` for redirects, from `[http] public_name` (the HTTPS listener's port when it
/// names none; no port for 443). Checked once at start, so a bad name stops the server.
fn public_authority(name: &str, https_port: u16) -> Result<Arc<str>, String> {
    let name = name.trim();
    let has_port = name
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.ends_with(':') && port.parse::<u16>().is_ok())
        && !name.ends_with(']');
    let authority = if has_port || https_port == 443 {
        name.to_owned()
    } else {
        format!("{name}:{https_port}")
    };
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        && format!("https://{authority}/")
            .parse::<Uri>()
            .is_ok_and(|u| u.authority().is_some_and(|a| a.as_str() == authority));
    if ok {
        Ok(authority.into())
    } else {
        Err(format!(
            "[http] public_name {name:?} is not a host name or host:port for https redirects"
        ))
    }
}

/// A 308 to the same path on `https://{public}`: the configured name, never the request's
/// `Host` (which would let anyone choose where the redirect points).
fn redirect_to_https(public: &str, request: &Request) -> Response {
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    match format!("https://{public}{path}").parse::<Uri>() {
        Ok(location) => (
            StatusCode::PERMANENT_REDIRECT,
            [(header::LOCATION, location.to_string())],
        )
            .into_response(),
        Err(_) => StatusCode::BAD_REQUEST.into_response(),
    }
}

/// Encrypted bytes rustls may queue per HTTPS connection before they are written.
const TLS_SEND_BUFFER: usize = 1 << 20;

/// hyper's read and write buffer limit per connection (request headers included).
const HYPER_BUFFER: usize = 64 * 1024;

/// A request or response body slower than the floor is cut only after this long.
pub(crate) const RATE_GRACE: Duration = Duration::from_secs(10);

/// The time limits of `[http]`, for every connection of both listeners.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    max_connections: usize,
    per_source: usize,
    header: Duration,
    request: Duration,
    write: Duration,
    pub(crate) min_bytes_per_sec: u64,
    max_body_bytes: usize,
}

impl Limits {
    /// Bytes a peer must take per write timeout while the server has data waiting for it.
    fn min_write_progress(&self) -> u64 {
        self.min_bytes_per_sec
            .saturating_mul(self.write.as_secs())
            .max(1)
    }

    fn from_settings(s: &HttpSettings) -> Self {
        Self {
            max_connections: s.max_connections.max(1),
            per_source: s.max_connections_per_source.max(1),
            header: Duration::from_secs(s.header_timeout_secs.max(1)),
            request: Duration::from_secs(s.request_timeout_secs.max(1)),
            write: Duration::from_secs(s.write_timeout_secs.max(1)),
            min_bytes_per_sec: s.min_bytes_per_sec,
            max_body_bytes: s.max_body_bytes.max(1),
        }
    }
}

/// Every route behind the request deadline, the request-body rate floor and the body size
/// limit.
fn with_deadlines(router: Router, limits: Limits) -> Router {
    router
        .layer(axum::extract::DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(limits, deadlines))
}

/// The whole request (headers to response headers, body included) within `request`; the body
/// no slower than the floor. A request cut here is answered `408` and its connection closed.
async fn deadlines(State(limits): State<Limits>, request: Request, next: Next) -> Response {
    let request = request.map(|body| Body::new(RateFloorBody::new(body, limits.min_bytes_per_sec)));
    match tokio::time::timeout(limits.request, next.run(request)).await {
        Ok(response) => response,
        Err(_) => (
            StatusCode::REQUEST_TIMEOUT,
            [(header::CONNECTION, "close")],
            format!(
                "the request did not complete within {} s\n",
                limits.request.as_secs()
            ),
        )
            .into_response(),
    }
}

/// Accepts connections until shutdown: at most `max_connections`, and `per_source` from one
/// source; the TLS handshake and headers within `header`, writes within `write`.
async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let sources = Arc::new(PerSource::new(limits.per_source));
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("http accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let Some(source_slot) = sources.try_acquire(Source::of_peer(peer)) else {
            tracing::debug!(%peer, "http: per-source connection limit reached");
            continue; // dropped: this source holds its share
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "http: connection limit reached");
            continue; // over the limit: dropped
        };
        // Responses are written whole; do not hold their last segment back (Nagle).
        let _ = tcp.set_nodelay(true);
        let tcp = WriteDeadline::new(tcp, limits.write, limits.min_write_progress());
        let (tls, app) = (tls.clone(), app.clone());
        tokio::spawn(async move {
            serve_connection(tcp, peer, tls, app, limits).await;
            drop((permit, source_slot));
        });
    }
}

async fn serve_connection(
    tcp: WriteDeadline<TcpStream>,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    app: Router,
    limits: Limits,
) {
    let service = TowerToHyperService::new(app.layer(axum::Extension(ConnectInfo(peer))));
    let builder = {
        let mut b = hyper::server::conn::http1::Builder::new();
        b.timer(TokioTimer::new())
            .header_read_timeout(limits.header)
            // Bounds hyper's read buffer (so a request's headers: larger is refused) and what
            // it queues to write; its default (about 400 KB) let one unauthenticated
            // connection pin 0.7 MB with headers that never end.
            .max_buf_size(HYPER_BUFFER)
            .keep_alive(true);
        b
    };
    let result = match tls {
        Some(acceptor) => match tokio::time::timeout(limits.header, acceptor.accept(tcp)).await {
            Ok(Ok(mut stream)) => {
                // Let one write encrypt up to 1 MiB of a large response (chunk ranges) and hand
                // it to the socket in one call, instead of 64 KiB.
                stream.get_mut().1.set_buffer_limit(Some(TLS_SEND_BUFFER));
                builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await
            }
            _ => return,
        },
        None => builder.serve_connection(TokioIo::new(tcp), service).await,
    };
    if let Err(e) = result {
        tracing::debug!(%peer, "http connection ended: {e}");
    }
}

/// Connections held per source, for one listener. An entry lives only while its source holds
/// a connection, so the table is never larger than the listener's connection cap.
pub(crate) struct PerSource {
    max: usize,
    held: Mutex<std::collections::HashMap<Source, usize>>,
}

impl PerSource {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            max,
            held: Mutex::default(),
        }
    }

    /// A slot for one more connection from `source`, or `None` at its cap.
    pub(crate) fn try_acquire(self: &Arc<Self>, source: Source) -> Option<SourceSlot> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let n = held.entry(source).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(SourceSlot {
            owner: self.clone(),
            source,
        })
    }
}

/// One connection from a source; released when dropped.
pub(crate) struct SourceSlot {
    owner: Arc<PerSource>,
    source: Source,
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut held = self
            .owner
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = held.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.source);
            }
        }
    }
}

/// A socket whose writes fail with `TimedOut` when the peer stops reading, or reads too slowly.
/// When a write blocks, a timer of `timeout` starts; it stops once the peer has taken
/// `min_progress` bytes since, or everything queued was written (a flush completed). If it runs
/// out while a write is still blocked, the write fails: so while the server has data waiting,
/// the peer must read at least `min_progress` bytes per `timeout`. Reads pass through.
pub(crate) struct WriteDeadline<T> {
    io: T,
    timeout: Duration,
    min_progress: u64,
    /// Armed while writes are held back: the deadline and the bytes taken since it was armed.
    stalled: Option<(Pin<Box<Sleep>>, u64)>,
}

impl<T> WriteDeadline<T> {
    pub(crate) fn new(io: T, timeout: Duration, min_progress: u64) -> Self {
        Self {
            io,
            timeout,
            min_progress,
            stalled: None,
        }
    }

    /// After the inner write returned `Pending`: arm the timer, or fail if it ran out.
    fn blocked<R>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        let timeout = self.timeout;
        let (sleep, _) = self
            .stalled
            .get_or_insert_with(|| (Box::pin(tokio::time::sleep(timeout)), 0));
        ready!(sleep.as_mut().poll(cx));
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "the peer read too little for {} s (write timeout)",
                timeout.as_secs()
            ),
        )))
    }

    fn wrote(
        &mut self,
        result: Poll<io::Result<usize>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        match result {
            Poll::Ready(Ok(n)) => {
                if let Some((_, taken)) = &mut self.stalled {
                    *taken += n as u64;
                    if *taken >= self.min_progress {
                        self.stalled = None;
                    }
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => self.blocked(cx),
        }
    }

    fn flushed(
        &mut self,
        result: Poll<io::Result<()>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        match result {
            Poll::Ready(r) => {
                // Everything queued reached the socket: nothing is held back any more.
                self.stalled = None;
                Poll::Ready(r)
            }
            Poll::Pending => self.blocked(cx),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteDeadline<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.io).poll_write(cx, buf);
        self.wrote(result, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.wrote(result, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.io).poll_flush(cx);
        self.flushed(result, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.io).poll_shutdown(cx);
        self.flushed(result, cx)
    }
}

/// When a body that has moved `bytes` falls below `min_bytes_per_sec` (after [`RATE_GRACE`]
/// from `start`).
pub(crate) fn rate_deadline(start: Instant, bytes: u64, min_bytes_per_sec: u64) -> Option<Instant> {
    if min_bytes_per_sec == 0 {
        return None;
    }
    let allowed = Duration::from_millis(bytes.saturating_mul(1000) / min_bytes_per_sec);
    Some(start + RATE_GRACE + allowed)
}

/// A request body that fails once it arrives slower than the floor (a peer trickling its body
/// to hold the connection).
struct RateFloorBody {
    inner: Body,
    min_bytes_per_sec: u64,
    start: Instant,
    received: u64,
    timer: Option<Pin<Box<Sleep>>>,
}

impl RateFloorBody {
    fn new(inner: Body, min_bytes_per_sec: u64) -> Self {
        Self {
            inner,
            min_bytes_per_sec,
            start: Instant::now(),
            received: 0,
            timer: None,
        }
    }
}

impl HttpBody for RateFloorBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            if let Some(Ok(f)) = &frame {
                if let Some(data) = f.data_ref() {
                    this.received += data.len() as u64;
                    this.timer = None;
                }
            }
            return Poll::Ready(frame);
        }
        let Some(deadline) = rate_deadline(this.start, this.received, this.min_bytes_per_sec)
        else {
            return Poll::Pending;
        };
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        ready!(timer.as_mut().poll(cx));
        Poll::Ready(Some(Err(axum::Error::new(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "request body slower than {} bytes/s",
                this.min_bytes_per_sec
            ),
        )))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_authority_adds_the_https_port_unless_given() {
        assert_eq!(
            &*public_authority("localhost", 8443).unwrap(),
            "localhost:8443"
        );
        assert_eq!(
            &*public_authority("example.com", 443).unwrap(),
            "example.com"
        );
        assert_eq!(
            &*public_authority("example.com:9443", 8443).unwrap(),
            "example.com:9443"
        );
        assert_eq!(
            &*public_authority("[2001:db8::1]", 8443).unwrap(),
            "[2001:db8::1]:8443"
        );
        for bad in ["", "a b", "evil.com/x", "x@evil.com", "evil.com?x"] {
            assert!(public_authority(bad, 8443).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_source_at_its_cap_gets_nothing_more_and_others_still_do() {
        let cap = Arc::new(PerSource::new(2));
        let a = Source::of("192.0.2.1".parse().unwrap());
        let b = Source::of("192.0.2.2".parse().unwrap());
        let first = cap.try_acquire(a).unwrap();
        let _second = cap.try_acquire(a).unwrap();
        assert!(cap.try_acquire(a).is_none());
        assert!(cap.try_acquire(b).is_some());
        drop(first);
        assert!(cap.try_acquire(a).is_some());
    }
}
