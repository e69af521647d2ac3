//! Sensor uploads over TCP 14354 (TLS by default) with tokio.
//!
//! [`SensorServer`] is the cloud side: it accepts loggers, runs one [`CloudSession`] per
//! connection in its own task, looks keys up and writes batches through a [`LoggerStore`], and
//! publishes [`Notice`]s. [`upload`] is the logger side: connect, send one flight, wait for the
//! acks, close — what a logger does on each wake, and what the simulator runs.
//!
//! Limits per connection: one deadline from accept ([`CloudConfig::deadline`], default 30 s)
//! covers the TLS handshake and the whole exchange, so a peer that connects and stays silent
//! (or trickles bytes) holds a slot for at most that long; the frame limit and the buffered-bytes
//! limit of [`CloudConfig`]; a write timeout; and a maximum number of connections, beyond which a
//! new connection is closed at accept.
//!
//! Exactly-once storage is the store's half of the bargain: [`LoggerStore::store_batch`] must
//! write the readings and the new mark in one transaction, on condition that the stored mark is
//! still `after` (see [`StoreOutcome`]).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use fleetwire_sensor::cloud::{self, CloudConfig, CloudSession, LoggerRecord};
use fleetwire_sensor::logger::{self, LoggerConfig, LoggerSession};
use fleetwire_sensor::{ApiMisuse, Batch, CloseReason, LoggerId, Mark, Settings, Status};
use rustls::pki_types::ServerName;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, broadcast, watch};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// The sensor upload port.
pub const DEFAULT_PORT: u16 = 14354;

/// Where the server finds logger keys and writes readings.
pub trait LoggerStore: Send + Sync + 'static {
    /// The logger's key, its durable mark and settings; `Ok(None)` for an unknown logger (the
    /// upload is rejected). An `Err` drops the connection without an answer: the logger keeps
    /// its data and tries again next wake.
    fn lookup(
        &self,
        logger: LoggerId,
    ) -> impl Future<Output = Result<Option<LoggerRecord>, StoreError>> + Send;

    /// Writes `batch` durably — its readings (and gaps, alarms, status) and the new mark
    /// `batch.last()` in one transaction — but only if the logger's stored mark is still `after`.
    /// If it is not (another connection of the same logger stored first), write nothing and
    /// return [`StoreOutcome::Conflict`] with the mark found.
    fn store_batch(
        &self,
        after: Option<Mark>,
        batch: Batch,
    ) -> impl Future<Output = Result<StoreOutcome, StoreError>> + Send;
}

/// What a conditional write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOutcome {
    /// Written, with the new mark.
    Stored,
    /// Nothing written: the stored mark was not `after` but this.
    Conflict {
        /// The mark the store holds.
        stored: Option<Mark>,
    },
}

/// A store failure, reported as a [`Notice::StoreFailed`]; the logger is told to retry later.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct StoreError(pub String);

/// How the server speaks to loggers.
#[derive(Clone)]
pub enum Transport {
    /// TLS 1.3 or 1.2 with this configuration.
    Tls(Arc<rustls::ServerConfig>),
    /// No encryption: readings travel in the clear (each batch still carries its MAC). Tests and labs only.
    DangerPlaintext,
}

/// Per-server limits, beside the per-connection ones in [`CloudConfig`].
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections held at once; the next is closed at accept. Default 20,000.
    pub max_connections: usize,
    /// How long a write may block on a peer that does not read. Default 10 s.
    pub write_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 20_000,
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// What the server reports, for logs, audit and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notice {
    /// A batch was stored and acknowledged (or is about to be).
    Stored {
        /// The logger.
        logger: LoggerId,
        /// The new mark.
        last: Mark,
        /// Readings written.
        readings: u64,
    },
    /// An upload held nothing new and was dropped (a resend after a lost ack, or a replay).
    Duplicate {
        /// The logger.
        logger: LoggerId,
        /// The upload's last slot.
        last: Mark,
    },
    /// An upload did not follow what is stored and was dropped.
    OutOfOrder {
        /// The logger.
        logger: LoggerId,
        /// What the store holds.
        stored: Option<Mark>,
        /// Where the upload started.
        first: Mark,
    },
    /// A check-in carried a battery and firmware status.
    Status {
        /// The logger.
        logger: LoggerId,
        /// Its status.
        status: Status,
    },
    /// A connection's session ended.
    Closed {
        /// The logger, if its first upload arrived (authenticated only if `reason` is
        /// `Finished`).
        logger: Option<LoggerId>,
        /// Its address.
        peer: SocketAddr,
        /// Why: [`CloseReason::Finished`] or the error (wrong key, timeout, cut…).
        reason: CloseReason,
        /// The session's counters.
        stats: cloud::Stats,
    },
    /// The store failed a lookup or a write; nothing was acknowledged for it.
    StoreFailed {
        /// The logger.
        logger: LoggerId,
        /// The store's error.
        error: StoreError,
    },
    /// A connection was closed at accept (limit) or during the TLS handshake.
    Refused {
        /// The address.
        peer: SocketAddr,
        /// Why.
        why: String,
    },
}

/// The sensor upload server.
pub struct SensorServer<S> {
    listener: TcpListener,
    transport: Transport,
    store: Arc<S>,
    shared: Arc<Shared>,
}

/// A cheap handle to a running server.
#[derive(Clone)]
pub struct SensorHandle {
    shared: Arc<Shared>,
}

struct Shared {
    config: Arc<CloudConfig>,
    limits: Limits,
    notices: broadcast::Sender<Notice>,
    slots: Arc<Semaphore>,
}

impl<S: LoggerStore> SensorServer<S> {
    /// Binds the listener.
    pub async fn bind(
        addr: SocketAddr,
        transport: Transport,
        config: Arc<CloudConfig>,
        limits: Limits,
        store: S,
    ) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let (notices, _) = broadcast::channel(4096);
        let shared = Arc::new(Shared {
            config,
            limits,
            notices,
            slots: Arc::new(Semaphore::new(limits.max_connections)),
        });
        Ok(Self {
            listener,
            transport,
            store: Arc::new(store),
            shared,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// A handle for notices and counters.
    pub fn handle(&self) -> SensorHandle {
        SensorHandle {
            shared: self.shared.clone(),
        }
    }

    /// Serves until `shutdown` completes, then stops accepting and gives running uploads up to
    /// two seconds to finish. An upload cut by the stop loses nothing: what was not acknowledged
    /// stays on the logger.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((tcp, peer)) => self.admit(tcp, peer, stop_rx.clone()),
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
        }
        let all = u32::try_from(self.shared.limits.max_connections).unwrap_or(u32::MAX);
        let _ =
            tokio::time::timeout(Duration::from_secs(2), self.shared.slots.acquire_many(all)).await;
        let _ = stop_tx.send(true);
        Ok(())
    }

    fn admit(&self, tcp: TcpStream, peer: SocketAddr, stop: watch::Receiver<bool>) {
        let Ok(permit) = self.shared.slots.clone().try_acquire_owned() else {
            self.shared.notice(Notice::Refused {
                peer,
                why: "connection limit reached".into(),
            });
            return; // dropping the stream closes it
        };
        let _ = tcp.set_nodelay(true);
        let shared = self.shared.clone();
        let store = self.store.clone();
        let transport = self.transport.clone();
        tokio::spawn(async move {
            let accepted = Instant::now();
            let conn = Conn {
                shared: shared.clone(),
                store,
                peer,
                accepted,
            };
            match transport {
                Transport::DangerPlaintext => conn.serve(tcp, stop).await,
                Transport::Tls(config) => {
                    let handshake = TlsAcceptor::from(config).accept(tcp);
                    let deadline = accepted + shared.config.deadline;
                    match tokio::time::timeout_at(deadline.into(), handshake).await {
                        Ok(Ok(stream)) => conn.serve(stream, stop).await,
                        Ok(Err(e)) => shared.notice(Notice::Refused {
                            peer,
                            why: format!("TLS handshake failed: {e}"),
                        }),
                        Err(_) => shared.notice(Notice::Refused {
                            peer,
                            why: "TLS handshake did not finish within the connection deadline"
                                .into(),
                        }),
                    }
                }
            }
            drop(permit);
        });
    }
}

impl SensorHandle {
    /// Subscribes to notices. A subscriber more than 4,096 notices behind loses the oldest.
    pub fn subscribe(&self) -> broadcast::Receiver<Notice> {
        self.shared.notices.subscribe()
    }

    /// Connections held now.
    pub fn connections(&self) -> usize {
        self.shared.limits.max_connections - self.shared.slots.available_permits()
    }
}

impl Shared {
    fn notice(&self, notice: Notice) {
        let _ = self.notices.send(notice);
    }
}

/// One connection's task.
struct Conn<S> {
    shared: Arc<Shared>,
    store: Arc<S>,
    peer: SocketAddr,
    accepted: Instant,
}

impl<S: LoggerStore> Conn<S> {
    async fn serve<T: AsyncRead + AsyncWrite + Unpin>(
        self,
        mut stream: T,
        mut stop: watch::Receiver<bool>,
    ) {
        let shared = &self.shared;
        let mut machine = CloudSession::new(shared.config.clone(), self.accepted);
        let mut out = Vec::new();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            while let Some(event) = machine.poll_event() {
                if !self.on_event(&mut machine, event).await {
                    // A store failure without an answer: drop the connection.
                    return;
                }
            }
            while machine.poll_transmit(&mut out).is_some() {}
            if !out.is_empty() {
                let write = async {
                    stream.write_all(&out).await?;
                    stream.flush().await
                };
                let written = tokio::time::timeout(shared.limits.write_timeout, write).await;
                out.clear();
                if !matches!(written, Ok(Ok(()))) {
                    machine.handle_peer_closed(Instant::now());
                    continue;
                }
            }
            if machine.state() == cloud::State::Closed {
                let _ = tokio::time::timeout(Duration::from_secs(1), stream.shutdown()).await;
                return;
            }
            let deadline = machine.poll_timeout();
            tokio::select! {
                read = stream.read(&mut buf) => match read {
                    Ok(0) | Err(_) => machine.handle_peer_closed(Instant::now()),
                    Ok(n) => { let _ = machine.handle_input(Instant::now(), &buf[..n]); }
                },
                () = sleep_until(deadline) => machine.handle_timeout(Instant::now()),
                _ = stop.changed() => return,
            }
        }
    }

    /// Acts on one machine event; false means drop the connection now.
    async fn on_event(&self, machine: &mut CloudSession, event: cloud::Event) -> bool {
        let shared = &self.shared;
        match event {
            cloud::Event::KeyNeeded { logger } => match self.store.lookup(logger).await {
                Ok(record) => {
                    let _ = machine.provide_key(Instant::now(), logger, record);
                }
                Err(error) => {
                    shared.notice(Notice::StoreFailed { logger, error });
                    return false;
                }
            },
            cloud::Event::Batch { id, after, batch } => {
                let logger = batch.logger;
                let last = batch.last();
                let readings = batch.reading_count() as u64;
                let now = Instant::now();
                match self.store.store_batch(after, batch).await {
                    Ok(StoreOutcome::Stored) => {
                        let _ = machine.confirm_stored(now, id);
                        if let Some(last) = last {
                            shared.notice(Notice::Stored {
                                logger,
                                last,
                                readings,
                            });
                        }
                    }
                    // Another connection stored these slots first: they are durable, so the
                    // ack ("stored through last") is true.
                    Ok(StoreOutcome::Conflict { stored })
                        if last.is_some_and(|l| stored.is_some_and(|s| s >= l)) =>
                    {
                        let _ = machine.confirm_stored(now, id);
                    }
                    Ok(StoreOutcome::Conflict { stored }) => {
                        shared.notice(Notice::StoreFailed {
                            logger,
                            error: StoreError(format!(
                                "conditional write lost: expected mark {after:?}, found {stored:?}"
                            )),
                        });
                        let _ = machine.storage_failed(now, id);
                    }
                    Err(error) => {
                        shared.notice(Notice::StoreFailed { logger, error });
                        let _ = machine.storage_failed(now, id);
                    }
                }
            }
            cloud::Event::Duplicate { logger, last } => {
                shared.notice(Notice::Duplicate { logger, last });
            }
            cloud::Event::OutOfOrder {
                logger,
                stored,
                first,
            } => shared.notice(Notice::OutOfOrder {
                logger,
                stored,
                first,
            }),
            cloud::Event::Status { logger, status } => {
                shared.notice(Notice::Status { logger, status });
            }
            cloud::Event::Closed { reason } => shared.notice(Notice::Closed {
                logger: machine.logger(),
                peer: self.peer,
                reason,
                stats: machine.stats(),
            }),
            _ => {}
        }
        true
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

/// How a logger reaches the cloud.
#[derive(Clone)]
pub enum LoggerTransport {
    /// TLS with this configuration (for example [`crate::tls::pinned_client_config`]).
    Tls {
        /// The client configuration.
        config: Arc<rustls::ClientConfig>,
        /// The name sent in SNI (the pinned verifier ignores it).
        server_name: ServerName<'static>,
    },
    /// No encryption. Tests and labs only.
    DangerPlaintext,
}

/// The upload could not start, or the connection could not be set up.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum UploadError {
    /// The batches were not a valid upload (nothing was sent).
    #[error("invalid upload: {0}")]
    Invalid(#[from] ApiMisuse),
    /// TCP connect failed.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: io::Error,
    },
    /// The TLS handshake failed (wrong certificate pin, TLS refused).
    #[error("TLS handshake with {addr} failed: {source}")]
    Tls {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: io::Error,
    },
    /// The radio-on deadline passed before the connection was up.
    #[error("radio-on deadline passed while connecting to {addr}")]
    Deadline {
        /// The address.
        addr: SocketAddr,
    },
}

/// How one wake's upload went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadReport {
    /// [`CloseReason::Finished`] if every upload was acknowledged; otherwise why not (for
    /// example `Rejected { reason: BadMac }` for a wrong key, or `PeerClosed` after a cut).
    pub reason: CloseReason,
    /// The cloud's durable mark from the last ack: free everything up to it, keep the rest.
    pub stored: Option<Mark>,
    /// The cloud's clock from the last ack, unix seconds.
    pub server_time: Option<u64>,
    /// Newer settings the cloud sent, to apply and persist.
    pub settings: Option<Settings>,
    /// The session's counters (protocol bytes).
    pub stats: logger::Stats,
    /// Bytes written to the TCP socket, TLS records and handshake included.
    pub wire_bytes_sent: u64,
    /// Bytes read from the TCP socket.
    pub wire_bytes_received: u64,
}

/// One wake of a logger: connect, send every batch in one flight, wait for the acks, close.
///
/// The radio-on deadline ([`LoggerConfig::radio_deadline`]) starts before the connect and covers
/// the TLS handshake too. Returns an [`UploadReport`] once the session closed, whether it
/// finished or failed; free only what [`UploadReport::stored`] covers.
pub async fn upload(
    addr: SocketAddr,
    transport: &LoggerTransport,
    config: Arc<LoggerConfig>,
    batches: Vec<Batch>,
) -> Result<UploadReport, UploadError> {
    let start = Instant::now();
    let session = LoggerSession::new(config, start, batches)?;
    // INVARIANT: a new session always has a deadline.
    let deadline = session.poll_timeout().expect("INVARIANT: deadline set");
    let tcp = match tokio::time::timeout_at(deadline.into(), TcpStream::connect(addr)).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(source)) => return Err(UploadError::Connect { addr, source }),
        Err(_) => return Err(UploadError::Deadline { addr }),
    };
    let _ = tcp.set_nodelay(true);
    let counting = Counting::new(tcp);
    match transport {
        LoggerTransport::DangerPlaintext => Ok(drive_logger(counting, session).await),
        LoggerTransport::Tls {
            config,
            server_name,
        } => {
            let connect = TlsConnector::from(config.clone()).connect(server_name.clone(), counting);
            match tokio::time::timeout_at(deadline.into(), connect).await {
                Ok(Ok(stream)) => Ok(drive_logger(stream, session).await),
                Ok(Err(source)) => Err(UploadError::Tls { addr, source }),
                Err(_) => Err(UploadError::Deadline { addr }),
            }
        }
    }
}

trait WireCount {
    fn counts(&self) -> (u64, u64);
}

impl WireCount for Counting<TcpStream> {
    fn counts(&self) -> (u64, u64) {
        (self.sent, self.received)
    }
}

impl<S: WireCount> WireCount for tokio_rustls::client::TlsStream<S> {
    fn counts(&self) -> (u64, u64) {
        self.get_ref().0.counts()
    }
}

async fn drive_logger<T: AsyncRead + AsyncWrite + Unpin + WireCount>(
    mut stream: T,
    mut session: LoggerSession,
) -> UploadReport {
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    let (mut server_time, mut settings) = (None, None);
    let reason = loop {
        let mut closed = None;
        while let Some(event) = session.poll_event() {
            match event {
                logger::Event::Acked { server_time: t, .. } => server_time = Some(t),
                logger::Event::Settings(s) => settings = Some(s),
                logger::Event::Closed { reason } => closed = Some(reason),
                _ => {}
            }
        }
        while session.poll_transmit(&mut out).is_some() {}
        if !out.is_empty() {
            let write = async {
                stream.write_all(&out).await?;
                stream.flush().await
            };
            let written = match session.poll_timeout() {
                Some(deadline) => tokio::time::timeout_at(deadline.into(), write)
                    .await
                    .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into())),
                None => write.await,
            };
            out.clear();
            if written.is_err() && closed.is_none() {
                session.handle_peer_closed(Instant::now());
                continue;
            }
        }
        if let Some(reason) = closed {
            let _ = tokio::time::timeout(Duration::from_secs(1), stream.shutdown()).await;
            break reason;
        }
        let deadline = session.poll_timeout();
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => session.handle_peer_closed(Instant::now()),
                Ok(n) => { let _ = session.handle_input(Instant::now(), &buf[..n]); }
            },
            () = sleep_until(deadline) => session.handle_timeout(Instant::now()),
        }
    };
    let (wire_bytes_sent, wire_bytes_received) = stream.counts();
    UploadReport {
        reason,
        stored: session.stored(),
        server_time,
        settings,
        stats: session.stats(),
        wire_bytes_sent,
        wire_bytes_received,
    }
}

/// A stream that counts the bytes through it.
struct Counting<S> {
    inner: S,
    sent: u64,
    received: u64,
}

impl<S> Counting<S> {
    fn new(inner: S) -> Self {
        Self {
            inner,
            sent: 0,
            received: 0,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counting<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.received += (buf.filled().len() - before) as u64;
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counting<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = polled {
            self.sent += n as u64;
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
