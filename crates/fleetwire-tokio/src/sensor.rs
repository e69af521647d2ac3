//! Sensor uploads over TCP 14354 (TLS by default) with tokio.
//!
//! [`SensorServer`] is the cloud side: it accepts loggers, runs one [`CloudSession`] per
//! connection in its own task, looks keys up and writes batches through a [`LoggerStore`], and
//! publishes [`Notice`]s. [`upload`] is the logger side: connect, send one flight, wait for the
//! acks, close — what a logger does on each wake, and what the simulator runs.
//!
//! Limits per connection: one deadline from accept ([`CloudConfig::deadline`], default 30 s)
//! covers the TLS handshake and the whole exchange, so a peer that connects and stays silent,
//! trickles bytes or stops reading holds a slot for at most that long; the frame limit and the
//! buffered-bytes limit of [`CloudConfig`]; a write timeout; the bytes read ahead (one 16 KiB
//! read is decoded and answered before the next); and caps on connections held at once, in all
//! and per source, beyond which a new connection is closed at accept.
//!
//! **Sources that keep failing.** An [`UploadGate`] is consulted at accept, before the TLS
//! handshake: a source (an IPv4 address or an IPv6 /64, [`Source`]) that keeps failing to
//! authenticate (unknown logger, bad MAC, malformed frames, a handshake or deadline that never
//! got to an authenticated upload) is refused there, costing no handshake, no key lookup and no
//! log or audit write (`lockout::LockoutUploadGate`, feature `login-gate`). An authenticated
//! upload from the source ends its streak, so a site's good loggers keep a misconfigured
//! neighbour behind the same NAT from blocking the site.
//!
//! Exactly-once storage is the store's half of the bargain: [`LoggerStore::store_batch`] must
//! write the readings, the new mark and the closed epoch in one transaction, durably (synced to
//! disk: the ack goes out when it returns), on condition that the stored mark is still `after`
//! (see [`StoreOutcome`]).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use fleetwire_sensor::cloud::{self, CloudConfig, CloudSession, LoggerRecord, StatusStamp};
use fleetwire_sensor::logger::{self, LoggerConfig, LoggerSession};
use fleetwire_sensor::{
    ApiMisuse, Batch, CloseReason, EpochEnd, LoggerId, Mark, SensorError, Settings, Status,
};
use rustls::pki_types::ServerName;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, broadcast, watch};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::source::Source;

/// The sensor upload port.
pub const DEFAULT_PORT: u16 = 14354;

/// Where the server finds logger keys and writes readings.
pub trait LoggerStore: Send + Sync + 'static {
    /// The logger's key, what the store holds of it (its mark, its recent closed epochs, its
    /// newest status) and its settings; `Ok(None)` for an unknown logger (the upload is
    /// rejected). An `Err` drops the connection without an answer: the logger keeps its data and
    /// tries again next wake.
    fn lookup(
        &self,
        logger: LoggerId,
    ) -> impl Future<Output = Result<Option<LoggerRecord>, StoreError>> + Send;

    /// Writes `batch` durably — its readings (and gaps and alarms), the new mark `batch.last()`
    /// and, if `closes` is set, the end of the epoch it closes (an abandoned one as a gap of
    /// unknown length) in one transaction, synced to disk before returning (the ack goes out
    /// when this returns) — but only if the logger's stored mark is still `after`. If it is not
    /// (another connection of the same logger stored first), write nothing and return
    /// [`StoreOutcome::Conflict`] with the mark found.
    fn store_batch(
        &self,
        after: Option<Mark>,
        closes: Option<EpochEnd>,
        batch: Batch,
    ) -> impl Future<Output = Result<StoreOutcome, StoreError>> + Send;

    /// Keeps `status` as the logger's battery and firmware status if `stamp` is above the
    /// stamp of the one stored (a replayed older check-in must not overwrite newer values).
    fn store_status(
        &self,
        logger: LoggerId,
        stamp: StatusStamp,
        status: Status,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
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

/// Decides, per source, whether a new connection may try to upload. Consulted at accept, before
/// the TLS handshake, so a refused source costs no handshake, no key lookup and no write.
pub trait UploadGate: Send + Sync + 'static {
    /// `Err(why)` refuses the connection (it is closed at once and reported as
    /// [`Notice::Refused`]).
    fn admit(&self, source: Source) -> Result<(), String>;
    /// An admitted connection's upload authenticated (a batch's MAC verified).
    fn authenticated(&self, source: Source);
    /// An admitted connection ended without an authenticated upload, for a reason that says
    /// something about the peer: `Some` with the session's error, or `None` when the TLS
    /// handshake failed or timed out. A peer that closes without sending anything (a TCP health
    /// check), a store failure and the server stopping are not reported.
    fn failed(&self, source: Source, reason: Option<&SensorError>);
}

/// Admits every source (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenGate;

impl UploadGate for OpenGate {
    fn admit(&self, _: Source) -> Result<(), String> {
        Ok(())
    }
    fn authenticated(&self, _: Source) {}
    fn failed(&self, _: Source, _: Option<&SensorError>) {}
}

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
    /// Connections held at once from one source (IPv4 address or IPv6 /64); the next from it is
    /// closed at accept while other sources are still served. Default 256 (loggers behind one
    /// NAT share a source; each connection lasts well under a second).
    pub max_connections_per_source: usize,
    /// How long a write may block on a peer that does not read. Default 10 s (and never past
    /// the connection deadline).
    pub write_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 20_000,
            max_connections_per_source: 256,
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
    /// An upload carried a battery and firmware status newer than the stored one.
    Status {
        /// The logger.
        logger: LoggerId,
        /// Its status.
        status: Status,
    },
    /// A connection's session ended.
    Closed {
        /// The logger, if its first upload arrived (authenticated only if `authenticated`).
        logger: Option<LoggerId>,
        /// Its address.
        peer: SocketAddr,
        /// Whether an upload's MAC verified on this connection.
        authenticated: bool,
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
    /// A connection was closed at accept: a connection limit, or the gate.
    Refused {
        /// The address.
        peer: SocketAddr,
        /// Why.
        why: String,
    },
    /// The TLS handshake failed or did not finish within the connection deadline.
    HandshakeFailed {
        /// The address.
        peer: SocketAddr,
        /// Why.
        why: String,
        /// Whether it counts against the source (not for a peer that closed before sending
        /// anything, such as a TCP health check).
        counted: bool,
    },
}

/// The sensor upload server.
pub struct SensorServer<S> {
    listener: TcpListener,
    transport: Transport,
    store: Arc<S>,
    gate: Arc<dyn UploadGate>,
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
    per_source: Mutex<HashMap<Source, usize>>,
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
            per_source: Mutex::new(HashMap::new()),
        });
        Ok(Self {
            listener,
            transport,
            store: Arc::new(store),
            gate: Arc::new(OpenGate),
            shared,
        })
    }

    /// Puts `gate` in front of every connection (the default admits every source).
    #[must_use]
    pub fn with_gate(mut self, gate: Arc<dyn UploadGate>) -> Self {
        self.gate = gate;
        self
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
        let shared = &self.shared;
        let source = Source::of_peer(peer);
        if let Err(why) = self.gate.admit(source) {
            shared.notice(Notice::Refused { peer, why });
            return; // dropping the stream closes it
        }
        let Ok(permit) = shared.slots.clone().try_acquire_owned() else {
            shared.notice(Notice::Refused {
                peer,
                why: "connection limit reached".into(),
            });
            return;
        };
        let Some(held) = SourceSlot::take(shared, source) else {
            shared.notice(Notice::Refused {
                peer,
                why: format!(
                    "{} connections from {source} already open (the per-source limit)",
                    shared.limits.max_connections_per_source
                ),
            });
            return;
        };
        let _ = tcp.set_nodelay(true);
        let shared = shared.clone();
        let store = self.store.clone();
        let gate = self.gate.clone();
        let transport = self.transport.clone();
        tokio::spawn(async move {
            let accepted = Instant::now();
            let conn = Conn {
                shared: shared.clone(),
                store,
                gate: gate.clone(),
                peer,
                source,
                accepted,
            };
            match transport {
                Transport::DangerPlaintext => conn.serve(tcp, stop).await,
                Transport::Tls(config) => {
                    let handshake = TlsAcceptor::from(config).accept(tcp);
                    let deadline = accepted + shared.config.deadline;
                    let failed = match tokio::time::timeout_at(deadline.into(), handshake).await {
                        Ok(Ok(stream)) => {
                            conn.serve(stream, stop).await;
                            None
                        }
                        Ok(Err(e)) => Some((
                            format!("TLS handshake failed: {e}"),
                            e.kind() != io::ErrorKind::UnexpectedEof,
                        )),
                        Err(_) => Some((
                            "TLS handshake did not finish within the connection deadline".into(),
                            true,
                        )),
                    };
                    if let Some((why, counted)) = failed {
                        if counted {
                            gate.failed(source, None);
                        }
                        shared.notice(Notice::HandshakeFailed { peer, why, counted });
                    }
                }
            }
            drop(held);
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

/// One connection's place in the per-source count, given back on drop.
struct SourceSlot {
    shared: Arc<Shared>,
    source: Source,
}

impl SourceSlot {
    fn take(shared: &Arc<Shared>, source: Source) -> Option<Self> {
        let mut counts = shared
            .per_source
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let count = counts.entry(source).or_insert(0);
        if *count >= shared.limits.max_connections_per_source {
            return None;
        }
        *count += 1;
        Some(Self {
            shared: shared.clone(),
            source,
        })
    }
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut counts = self
            .shared
            .per_source
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.source) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.source);
            }
        }
    }
}

/// Whether a connection that ended without an authenticated upload says something about its
/// source (the gate counts it).
fn counts_against_source(reason: &CloseReason, stats: &cloud::Stats) -> bool {
    match reason {
        CloseReason::Error(e) => match e {
            SensorError::BadMac { .. }
            | SensorError::UnknownLogger { .. }
            | SensorError::LoggerMismatch { .. }
            | SensorError::Decode(_)
            | SensorError::UnexpectedMessage { .. }
            | SensorError::TooMuchBuffered { .. } => true,
            // Silent or trickling until the deadline; a peer that closed after sending bytes
            // that never made an upload.
            SensorError::Timeout { .. } | SensorError::PeerClosed => stats.bytes_received > 0,
            _ => false,
        },
        _ => false,
    }
}

/// One connection's task.
struct Conn<S> {
    shared: Arc<Shared>,
    store: Arc<S>,
    gate: Arc<dyn UploadGate>,
    peer: SocketAddr,
    source: Source,
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
        let deadline = self.accepted + shared.config.deadline;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 16 * 1024];
        let mut authenticated = false;
        loop {
            while let Some(event) = machine.poll_event() {
                if let cloud::Event::Closed { reason } = &event {
                    self.judge_source(authenticated, reason, &machine.stats());
                }
                if !self.on_event(&mut machine, event, authenticated).await {
                    // A store failure without an answer: drop the connection.
                    return;
                }
            }
            if !authenticated && machine.stats().uploads > 0 {
                authenticated = true;
                self.gate.authenticated(self.source);
            }
            while machine.poll_transmit(&mut out).is_some() {}
            if !out.is_empty() {
                let write = async {
                    stream.write_all(&out).await?;
                    stream.flush().await
                };
                let limit = (Instant::now() + shared.limits.write_timeout).min(deadline);
                let written = tokio::time::timeout_at(limit.into(), write).await;
                out.clear();
                if !matches!(written, Ok(Ok(()))) {
                    machine.handle_close(Instant::now());
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
                    Ok(0) | Err(_) => machine.handle_close(Instant::now()),
                    Ok(n) => { let _ = machine.handle_input(Instant::now(), &buf[..n]); }
                },
                () = sleep_until(deadline) => machine.handle_timeout(Instant::now()),
                _ = stop.changed() => return,
            }
        }
    }

    /// Tells the gate how a connection that never authenticated went.
    fn judge_source(&self, authenticated: bool, reason: &CloseReason, stats: &cloud::Stats) {
        if !authenticated && stats.uploads == 0 && counts_against_source(reason, stats) {
            if let CloseReason::Error(e) = reason {
                self.gate.failed(self.source, Some(e));
            }
        }
    }

    /// Acts on one machine event; false means drop the connection now.
    async fn on_event(
        &self,
        machine: &mut CloudSession,
        event: cloud::Event,
        authenticated: bool,
    ) -> bool {
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
            cloud::Event::Batch {
                id,
                after,
                closes,
                batch,
            } => {
                let logger = batch.logger;
                let last = batch.last();
                let readings = batch.reading_count() as u64;
                let now = Instant::now();
                match self.store.store_batch(after, closes, batch).await {
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
                    // Another connection stored these slots first, in this very epoch: they
                    // are durable, so the ack ("slots 0..=last of this epoch") is true. A mark
                    // in another epoch says nothing about this one: no ack.
                    Ok(StoreOutcome::Conflict { stored })
                        if last.is_some_and(|l| {
                            stored.is_some_and(|s| s.epoch == l.epoch && s.seq >= l.seq)
                        }) =>
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
            cloud::Event::Status {
                logger,
                stamp,
                status,
            } => match self.store.store_status(logger, stamp, status).await {
                Ok(()) => shared.notice(Notice::Status { logger, status }),
                Err(error) => shared.notice(Notice::StoreFailed { logger, error }),
            },
            cloud::Event::Closed { reason } => shared.notice(Notice::Closed {
                logger: machine.logger(),
                peer: self.peer,
                authenticated: authenticated || machine.stats().uploads > 0,
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
    /// What the cloud acknowledged as durably stored, per epoch (the highest mark of each, in
    /// epoch order): free slots `0..=seq` of each mark's epoch, keep everything else.
    pub stored: Vec<Mark>,
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
                session.handle_close(Instant::now());
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
                Ok(0) | Err(_) => session.handle_close(Instant::now()),
                Ok(n) => { let _ = session.handle_input(Instant::now(), &buf[..n]); }
            },
            () = sleep_until(deadline) => session.handle_timeout(Instant::now()),
        }
    };
    let (wire_bytes_sent, wire_bytes_received) = stream.counts();
    UploadReport {
        reason,
        stored: session.stored().to_vec(),
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

/// An [`UploadGate`] over `fleetwire-auth`'s lockout engine (feature `login-gate`).
///
/// - **What counts.** Consecutive connections from one source that end without an
///   authenticated upload for a reason that says something about the peer: unknown logger, bad
///   MAC, malformed or unexpected frames, a TLS handshake that failed or timed out, a deadline
///   or close after bytes that never made an upload. A TCP health check (connect, close), a
///   store failure and the server stopping count for nothing. An authenticated upload from the
///   source ends the streak.
/// - **Which source.** [`Source`]: the IPv4 address, or the IPv6 /64.
/// - **What it bounds.** Past the threshold, the source's connections are closed at accept,
///   before any handshake, key lookup, log line or audit write; the block grows while failures
///   continue (1 min, 2, 4 … 1 h).
/// - **Memory.** The engine's table: about 21 bytes per tracked source, at most `max_sources`.
#[cfg(feature = "login-gate")]
pub mod lockout {
    use std::sync::{Mutex, MutexGuard, PoisonError};
    use std::time::{SystemTime, UNIX_EPOCH};

    use fleetwire_auth::UnixTime;
    use fleetwire_auth::lockout::{
        BlockGrowth, LockStatus, LockoutConfig, LockoutConfigError, LockoutEngine, LockoutKey,
        Outcome,
    };
    use fleetwire_sensor::SensorError;

    use super::UploadGate;
    use crate::source::Source;

    /// The lockout namespace of sensor upload sources.
    pub const NAMESPACE: &str = "sensor-upload-source";

    /// Refuses sources after repeated failed sensor uploads.
    #[derive(Debug)]
    pub struct LockoutUploadGate {
        engine: Mutex<LockoutEngine>,
    }

    impl LockoutUploadGate {
        /// A gate over `engine` (its keys are in [`NAMESPACE`]).
        pub fn new(engine: LockoutEngine) -> Self {
            Self {
                engine: Mutex::new(engine),
            }
        }

        /// The server's default: after `failures` consecutive failed connections a source is
        /// refused for 1 minute, then 2, 4 … up to 1 hour for each further failure; forgotten
        /// after a quiet day; at most `max_sources` sources tracked.
        pub fn for_uploads(
            failures: u16,
            max_sources: u32,
            secret: [u8; 16],
        ) -> Result<Self, LockoutConfigError> {
            let config = LockoutConfig {
                max_failures: failures,
                failures_per_block: 1,
                base_block_secs: 60,
                growth: BlockGrowth::Exponential,
                max_block_secs: 3600,
                jitter_percent: 10,
                failure_reset_secs: 24 * 3600,
                quick_failure: None,
                permanent_after_blocks: None,
                hard_limit: fleetwire_auth::lockout::NIST_MAX_CONSECUTIVE_FAILURES,
                max_keys: max_sources,
            };
            Ok(Self::new(LockoutEngine::new(config, secret)?))
        }

        /// The engine, to persist it or to inspect a source.
        pub fn engine(&self) -> MutexGuard<'_, LockoutEngine> {
            self.engine.lock().unwrap_or_else(PoisonError::into_inner)
        }

        /// Forgets a source's failures and block (an operator's unblock).
        pub fn clear(&self, source: Source) {
            self.engine()
                .clear(&LockoutKey::untrusted(NAMESPACE, source.as_bytes()));
        }
    }

    fn now() -> UnixTime {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        UnixTime::from_millis(ms)
    }

    impl UploadGate for LockoutUploadGate {
        fn admit(&self, source: Source) -> Result<(), String> {
            let now = now();
            match self
                .engine()
                .status(&LockoutKey::untrusted(NAMESPACE, source.as_bytes()), now)
            {
                LockStatus::Open { .. } => Ok(()),
                LockStatus::Locked(locked) => Err(match locked.until {
                    Some(until) => format!(
                        "too many failed uploads from {source}: refused for {} s more",
                        until.as_secs().saturating_sub(now.as_secs())
                    ),
                    None => format!("too many failed uploads from {source}: refused until cleared"),
                }),
            }
        }

        fn authenticated(&self, source: Source) {
            self.clear(source);
        }

        fn failed(&self, source: Source, _reason: Option<&SensorError>) {
            let now = now();
            let mut engine = self.engine();
            let key = LockoutKey::untrusted(NAMESPACE, source.as_bytes());
            // Refused while blocked: not counted (the block already runs).
            if let Ok(ticket) = engine.begin_attempt(&key, now) {
                engine.finish(ticket, Outcome::Failure, now);
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn blocks_after_consecutive_failures_and_an_upload_ends_the_streak() {
            let gate = LockoutUploadGate::for_uploads(3, 100, [5; 16]).unwrap();
            let ip = Source::of("192.0.2.1".parse().unwrap());
            let other = Source::of("192.0.2.2".parse().unwrap());
            for _ in 0..2 {
                gate.failed(ip, None);
            }
            gate.authenticated(ip);
            for _ in 0..2 {
                gate.failed(ip, None);
            }
            assert!(gate.admit(ip).is_ok(), "the streak restarted at the upload");
            gate.failed(ip, None);
            let why = gate.admit(ip).unwrap_err();
            assert!(
                why.contains("too many failed uploads from 192.0.2.1"),
                "{why}"
            );
            assert!(gate.admit(other).is_ok(), "other sources are unaffected");
            gate.clear(ip);
            assert!(gate.admit(ip).is_ok());
        }
    }
}
