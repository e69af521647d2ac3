//! The framed transfer connection (features `session` + `transfer`; TCP 4702 in
//! `fleetwire-server`): the player logs in exactly as on the session port, then the server
//! pushes every file assigned to it over the same TLS stream as transfer frames.
//!
//! ## The connection
//! 1. TLS (the server's certificate, pinned by the player).
//! 2. Login, the session exchange of `fleetwire-session` byte for byte: `Hello` → `Challenge` →
//!    `Proof` → `Welcome`, the Ed25519 signature covering the player id, the server's fresh
//!    nonce and the TLS channel binding (`EXPORTER-fleetwire-session-v1`). A refused login ends
//!    with the session `Close` message and its code (`AuthFailed`, `NotApproved`,
//!    `LoginTimeout`, `ProtocolViolation`). The player sends nothing after its `Proof` until
//!    the `Welcome` arrived; bytes sent early are a protocol violation.
//! 3. After `Welcome`, every frame is one transfer message ([`fleetwire_transfer::Message`]),
//!    framed `version 1 | type | len` as in [`crate::transfer::send_framed`]. The server offers
//!    every file ([`send_framed_many`]; configuration before media, as the [`Sender`] orders
//!    them), the player accepts, declines (`Cancel`) or resumes each, and when every transfer
//!    ended the server closes TLS in an orderly way (`close_notify`). An end of stream without
//!    it is a broken connection, never the end of the content.
//!
//! Before the `Welcome`, a peer holds one small read buffer and a frame of at most 256 bytes,
//! for at most the login deadline ([`accept_player`]); no content byte is read from disk or
//! sent before the login succeeded.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::File;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleetwire_session::{
    CHANNEL_BINDING_LABEL, ChannelBinding, Client, ClientConfig, ClientEvent, CloseCode, PlayerId,
    ServerConfig, ServerConnection, ServerEvent, SessionError,
};
use fleetwire_transfer::{
    ChunkSource, Message, Partial, Receiver, ReceiverEvent, Sender, SenderEvent, SignedManifest,
    TransferError, TransferId,
};
use fleetwire_wire::{FRAME_HEADER_LEN, FrameDecoder, encode_frame};
use ring::rand::{SecureRandom, SystemRandom};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::session::{PlayerDirectory, REFUSED, SourceGate};
use crate::tls::ExportKeyingMaterial;
use crate::transfer::{
    Error, FRAME_VERSION, PartFile, Progress, ReceiveOptions, SendOptions, feed, frame_limit,
    sleep_until, stream_err,
};

/// The framed transfer port `fleetwire-server` listens on by default.
pub const TRANSFER_PORT: u16 = 4702;

/// Largest login-phase frame body the server reads before the player proved who it is (the
/// session machine's own pre-login limit).
const SERVER_LOGIN_MAX_FRAME: usize = 256;

/// Largest login-phase frame body the player reads (a `Close` carries up to 255 bytes of text).
const CLIENT_LOGIN_MAX_FRAME: usize = 4096;

/// How long a login-phase write may block on a peer that does not read.
const LOGIN_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// The server side of the login on a framed transfer connection: runs
/// [`ServerConnection`] until the player proved its identity and is approved (returns it) or
/// the login failed (the player was told why with a `Close` message; returns the reason).
/// `gate` judges the claimed player after the `Hello` and hears the outcome, as on the session
/// port (the caller asks it to [`SourceGate::admit`] the source at accept, and reports a failed
/// TLS handshake itself).
///
/// `binding` is the TLS exporter value ([`tls_binding`]). The login must finish within
/// `config.login_timeout` of `accepted` (when the TCP connection was accepted, so the TLS
/// handshake counts too, as on the session port); before the login, the peer costs a 512-byte
/// read buffer and one frame of at most 256 bytes.
#[allow(clippy::too_many_arguments)] // one login: stream, identity, limits, lookup, gate
pub async fn accept_player<S, D>(
    stream: &mut S,
    binding: ChannelBinding,
    config: Arc<ServerConfig>,
    directory: &D,
    accepted: Instant,
    gate: &dyn SourceGate,
    source: IpAddr,
) -> Result<PlayerId, LoginFailed>
where
    S: AsyncRead + AsyncWrite + Unpin,
    D: PlayerDirectory,
{
    let mut refused = false;
    let mut claimed = None;
    let result = login(
        stream,
        binding,
        config,
        directory,
        accepted,
        &mut |player| {
            claimed = Some(*player);
            let verdict = gate.admit_player(source, player);
            refused = verdict.is_err();
            verdict
        },
    )
    .await;
    match &result {
        Ok(player) => gate.logged_in(source, player),
        Err(reason) if !refused => gate.login_failed(source, claimed.as_ref(), Some(reason)),
        Err(_) => {}
    }
    result.map_err(|reason| LoginFailed {
        claimed,
        reason,
        refused,
    })
}

/// Why a framed login ended without a player.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginFailed {
    /// The player id the `Hello` claimed, if one arrived (not authenticated).
    pub claimed: Option<PlayerId>,
    /// Why the login ended.
    pub reason: SessionError,
    /// The gate refused the claimed player after its `Hello` (too many failures of it from
    /// this source): a refusal, already counted, not a new failure.
    pub refused: bool,
}

async fn login<S, D>(
    stream: &mut S,
    binding: ChannelBinding,
    config: Arc<ServerConfig>,
    directory: &D,
    accepted: Instant,
    admit: &mut (dyn FnMut(&PlayerId) -> Result<(), String> + Send),
) -> Result<PlayerId, SessionError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    D: PlayerDirectory,
{
    let mut nonce = [0u8; 32];
    if SystemRandom::new().fill(&mut nonce).is_err() {
        return Err(SessionError::LocalClose {
            code: CloseCode::Busy,
            message: "the server has no randomness".into(),
        });
    }
    let mut machine = ServerConnection::new(config, accepted, nonce, binding);
    let mut pending: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    let mut buf = [0u8; 512];
    let mut outcome: Option<Result<PlayerId, SessionError>> = None;
    loop {
        while let Some(event) = machine.poll_event() {
            match event {
                ServerEvent::LookupPlayer { player_id, .. } => {
                    if admit(&player_id).is_err() {
                        let _ = machine.close(Instant::now(), CloseCode::AuthFailed, REFUSED);
                        continue;
                    }
                    let lookup = directory.lookup(player_id).await;
                    let _ = machine.resolve_player(Instant::now(), lookup);
                }
                ServerEvent::LoggedIn { player_id } => {
                    if pending.is_empty() {
                        outcome = Some(Ok(player_id));
                    } else {
                        let _ = machine.close(
                            Instant::now(),
                            CloseCode::ProtocolViolation,
                            "the player sent data before the Welcome",
                        );
                    }
                }
                ServerEvent::Closed { reason } => outcome = Some(Err(reason)),
                _ => {}
            }
        }
        while machine.poll_transmit(&mut out).is_some() {}
        if !out.is_empty() {
            let write = async {
                stream.write_all(&out).await?;
                stream.flush().await
            };
            if !matches!(
                tokio::time::timeout(LOGIN_WRITE_TIMEOUT, write).await,
                Ok(Ok(()))
            ) {
                return Err(SessionError::ConnectionLost);
            }
            out.clear();
        }
        match outcome.take() {
            Some(Ok(player)) => return Ok(player),
            Some(Err(reason)) => {
                let _ = tokio::time::timeout(Duration::from_secs(1), stream.shutdown()).await;
                return Err(reason);
            }
            None => {}
        }
        if let Some(n) = whole_frame(&pending, SERVER_LOGIN_MAX_FRAME) {
            // One frame at a time, so nothing after the Proof is read as a session message.
            let _ = machine.handle_input(Instant::now(), &pending[..n]);
            pending.drain(..n);
            continue;
        }
        let deadline = machine.poll_timeout();
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => machine.handle_close(Instant::now()),
                Ok(n) => pending.extend_from_slice(&buf[..n]),
            },
            () = sleep_until(deadline) => machine.handle_timeout(Instant::now()),
        }
    }
}

/// The player side of the login on a framed transfer connection: runs [`Client`] until the
/// `Welcome`, then returns the bytes already read past it (the start of the transfer frames:
/// pass them to [`receive_framed_many`]). A refused login returns the server's reason
/// ([`SessionError::PeerClosed`] with its code).
pub async fn login_player<S>(
    stream: &mut S,
    binding: ChannelBinding,
    config: Arc<ClientConfig>,
) -> Result<Vec<u8>, SessionError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut client = Client::new(config, Instant::now(), binding);
    let mut pending: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        while let Some(event) = client.poll_event() {
            match event {
                ClientEvent::LoggedIn { .. } => return Ok(pending),
                ClientEvent::Closed { reason } => {
                    while client.poll_transmit(&mut out).is_some() {}
                    let _ = stream.write_all(&out).await;
                    let _ = stream.shutdown().await;
                    return Err(reason);
                }
                _ => {}
            }
        }
        while client.poll_transmit(&mut out).is_some() {}
        if !out.is_empty() {
            let write = async {
                stream.write_all(&out).await?;
                stream.flush().await
            };
            if write.await.is_err() {
                client.handle_close(Instant::now());
            }
            out.clear();
            continue;
        }
        if let Some(n) = whole_frame(&pending, CLIENT_LOGIN_MAX_FRAME) {
            let _ = client.handle_input(Instant::now(), &pending[..n]);
            pending.drain(..n);
            continue;
        }
        let deadline = client.poll_timeout();
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => client.handle_close(Instant::now()),
                Ok(n) => pending.extend_from_slice(&buf[..n]),
            },
            () = sleep_until(deadline) => client.handle_timeout(Instant::now()),
        }
    }
}

/// The TLS channel binding of a connection (the exporter with the session label), as both
/// sides of the login sign and check it.
pub fn tls_binding(conn: &impl ExportKeyingMaterial) -> Result<ChannelBinding, rustls::Error> {
    conn.export(CHANNEL_BINDING_LABEL).map(ChannelBinding)
}

/// A logged-in framed transfer connection, player side.
pub struct PlayerConnection {
    /// The TLS stream, positioned after the `Welcome`.
    pub stream: tokio_rustls::client::TlsStream<TcpStream>,
    /// Transfer bytes read with the `Welcome`: pass them to [`receive_framed_many`].
    pub already_read: Vec<u8>,
}

/// Connects to a framed transfer server over TLS and logs in.
pub async fn connect_player(
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    server_name: ServerName<'static>,
    config: Arc<ClientConfig>,
) -> Result<PlayerConnection, ConnectError> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let mut stream = TlsConnector::from(tls).connect(server_name, tcp).await?;
    let binding = tls_binding(stream.get_ref().1).map_err(io::Error::other)?;
    let already_read = login_player(&mut stream, binding, config).await?;
    Ok(PlayerConnection {
        stream,
        already_read,
    })
}

/// Connecting to a framed transfer server failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// TCP or TLS failed.
    #[error("connection: {0}")]
    Io(#[from] io::Error),
    /// The login was refused or broke off.
    #[error("login: {0}")]
    Login(#[from] SessionError),
}

/// One file to send: its signed manifest and where its bytes are.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The signed manifest.
    pub manifest: SignedManifest,
    /// The file on disk (its bytes are checked against the manifest as they are read).
    pub file: PathBuf,
}

/// What [`send_framed_many`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendManyReport {
    /// Files the player stored completely (file ids).
    pub completed: Vec<u64>,
    /// Files that ended without being stored (declined by the player, source changed, …).
    pub failed: Vec<(u64, TransferError)>,
    /// Chunks the player already held (resume), over every file.
    pub already_held: u64,
    /// Chunk data bytes sent, retransmissions included.
    pub chunk_bytes_sent: u64,
    /// Retransmissions.
    pub retransmissions: u64,
}

/// Offers every file in `files` on one framed stream with one [`Sender`], one file at a time
/// (configuration before media, then in the order given), sends what the receiver does not
/// hold, and closes the stream in an orderly way once every transfer ended. `on_chunk_bytes` is
/// called with the chunk data bytes of each frame written to the stream (for per-player
/// accounting), so bytes are counted even if the connection breaks later.
///
/// ## What one connection holds
/// - One file open and offered at a time, so the window is one file's, not one per file.
/// - The window is lowered to fit [`SendOptions::max_in_flight_bytes`] of the largest chunk.
/// - Chunks are read from disk only when the socket took the previous frame and the sender has
///   room to send one (the sender asks for a window ahead; the driver answers one request at a
///   time, lowest index first, and only while chunks are going out), and each frame is written
///   alone within [`SendOptions::write_timeout`]. So a peer that stops reading holds what the
///   kernel buffered, one frame and one chunk ahead, then is cut at the write deadline.
#[allow(clippy::too_many_lines)] // one run loop, read top to bottom
pub async fn send_framed_many<S>(
    stream: &mut S,
    mut files: Vec<Outgoing>,
    options: &SendOptions,
    mut on_chunk_bytes: impl FnMut(u64),
) -> Result<SendManyReport, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let largest = files
        .iter()
        .map(|f| f.manifest.chunk_size())
        .max()
        .unwrap_or(1);
    let max_chunks = files
        .iter()
        .map(|f| f.manifest.chunk_count())
        .max()
        .unwrap_or(1);
    // Configuration before media (a stable sort keeps the given order within each kind).
    files.sort_by_key(|f| f.manifest.kind());
    let mut queue: VecDeque<Outgoing> = files.into();
    let mut sender = Sender::new(options.sender_config(largest), Instant::now());
    let mut active: Option<Active> = None;
    let mut report = SendManyReport::default();
    let mut decoder = FrameDecoder::new(frame_limit(max_chunks));
    let (mut buf, mut out, mut chunk) = (Vec::new(), Vec::new(), Vec::new());
    let mut input = vec![0u8; 64 * 1024];
    let mut counted = 0u64;
    // Chunks the sender asked for and not yet read, by index (of the active transfer).
    let mut needs: BTreeMap<u32, (u64, usize)> = BTreeMap::new();
    // Read one more chunk only after a chunk went out, the offer was accepted, an
    // acknowledgement made progress, or a timer fired: never a window ahead.
    let mut may_read = true;
    loop {
        if active.is_none() {
            let Some(next) = queue.pop_front() else {
                // Anything the sender still has to say (a cancel), then the orderly close.
                while sender.poll_transmit(&mut buf).is_some() {
                    encode_frame(
                        &mut out,
                        FRAME_VERSION,
                        buf.get(1).copied().unwrap_or(0),
                        &buf,
                    );
                    buf.clear(); // poll_transmit appends: one message at a time
                    options.write(stream, &out).await?;
                    out.clear();
                }
                let stats = sender.stats();
                report.chunk_bytes_sent = stats.chunk_bytes_sent;
                report.retransmissions = stats.retransmissions;
                tokio::time::timeout(options.write_timeout, stream.shutdown())
                    .await
                    .map_err(|_| stream_err(io::ErrorKind::TimedOut.into()))?
                    .map_err(stream_err)?;
                return Ok(report);
            };
            let source = File::open(&next.file).map_err(|source| Error::File {
                path: next.file.clone(),
                source,
            })?;
            let file_id = next.manifest.file_id();
            let transfer = sender
                .offer(Instant::now(), next.manifest, ChunkSource::OnDemand, None)
                .map_err(|e| Error::Http(e.to_string()))?;
            active = Some(Active {
                transfer,
                file_id,
                path: next.file,
                source,
            });
            needs.clear();
            may_read = true;
        }
        while let Some(event) = sender.poll_event() {
            let is_active = |t: TransferId| active.as_ref().is_some_and(|a| a.transfer == t);
            match event {
                SenderEvent::ChunkNeeded {
                    transfer,
                    index,
                    offset,
                    len,
                } if is_active(transfer) => {
                    needs.insert(index, (offset, len));
                }
                SenderEvent::Accepted { already_held, .. } => {
                    report.already_held += u64::from(already_held);
                    may_read = true;
                }
                SenderEvent::Completed { transfer } if is_active(transfer) => {
                    if let Some(done) = active.take() {
                        report.completed.push(done.file_id);
                    }
                }
                SenderEvent::Failed { transfer, reason } if is_active(transfer) => {
                    if let Some(done) = active.take() {
                        tracing::info!(
                            file_id = done.file_id,
                            "transfer ended without the file: {reason}"
                        );
                        report.failed.push((done.file_id, reason));
                    }
                }
                SenderEvent::Closed { reason } => return Err(reason.into()),
                _ => {}
            }
        }
        let chunks_before = sender.stats().chunks_sent;
        if sender.poll_transmit(&mut buf).is_some() {
            encode_frame(
                &mut out,
                FRAME_VERSION,
                buf.get(1).copied().unwrap_or(0),
                &buf,
            );
            buf.clear(); // poll_transmit appends: one message at a time
            options.write(stream, &out).await?;
            out.clear();
            let stats = sender.stats();
            if stats.chunks_sent > chunks_before {
                may_read = true;
            }
            if stats.chunk_bytes_sent > counted {
                on_chunk_bytes(stats.chunk_bytes_sent - counted);
                counted = stats.chunk_bytes_sent;
            }
            continue;
        }
        if active.is_none() {
            continue; // the next file, or the end
        }
        if may_read {
            if let (Some((index, (offset, len))), Some(a)) = (needs.pop_first(), active.as_ref()) {
                chunk.resize(len, 0);
                a.source
                    .read_exact_at(&mut chunk, offset)
                    .map_err(|source| Error::File {
                        path: a.path.clone(),
                        source,
                    })?;
                sender
                    .provide_chunk(Instant::now(), a.transfer, index, &chunk)
                    .map_err(|e| Error::Http(e.to_string()))?;
                may_read = false;
                continue;
            }
        }
        let deadline = sender.poll_timeout();
        tokio::select! {
            read = stream.read(&mut input) => match read {
                Ok(0) => return Err(Error::Closed),
                Ok(n) => {
                    let transfer = active.as_ref().map(|a| a.transfer);
                    let before = transfer.and_then(|t| sender.progress(t));
                    feed(&mut decoder, &input[..n], |m| {
                        forget_acked(&mut needs, transfer, m);
                        let _ = sender.handle_input(Instant::now(), m);
                    })?;
                    // Acknowledged chunks free room in the window (and may reveal losses):
                    // read one more. Input that acknowledges nothing new reads nothing ahead.
                    if transfer.and_then(|t| sender.progress(t)) != before {
                        may_read = true;
                    }
                }
                Err(e) => return Err(stream_err(e)),
            },
            () = sleep_until(deadline) => {
                sender.handle_timeout(Instant::now());
                may_read = true;
            }
        }
    }
}

/// The file being sent.
struct Active {
    transfer: TransferId,
    file_id: u64,
    path: PathBuf,
    source: File,
}

/// Drops from `needs` the chunks an acknowledgement of the active transfer names as stored (a
/// chunk declared lost and asked for again may be acknowledged late; reading it would be
/// wasted, and the sender would not send it). An honest receiver only acknowledges chunks it
/// was sent; one that acknowledges others only stalls its own transfer (the sender still waits
/// for them), which its idle timeout then ends.
fn forget_acked(
    needs: &mut BTreeMap<u32, (u64, usize)>,
    active: Option<TransferId>,
    message: &[u8],
) {
    if needs.is_empty() {
        return;
    }
    let Ok(Message::Ack {
        transfer,
        index,
        cumulative,
        sack,
        ..
    }) = Message::decode(message)
    else {
        return;
    };
    if active.is_none_or(|a| a.0 != transfer) {
        return;
    }
    let in_sack = |i: u32| {
        sack.ranges()
            .iter()
            .any(|&(start, end)| start <= i && i < end)
    };
    needs.retain(|&i, _| i != index && i >= cumulative && !in_sack(i));
}

/// A file [`receive_framed_many`] stored under its final name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// Where it is.
    pub dest: PathBuf,
    /// The last progress (`done` is true).
    pub progress: Progress,
}

/// What [`receive_framed_many`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReceiveManyReport {
    /// Files stored under their final names.
    pub received: Vec<Received>,
    /// Offers that ended without the file (file id, reason): declined ones, and refused
    /// manifests (file id 0 when the manifest could not be read).
    pub failed: Vec<(u64, TransferError)>,
}

/// Receives every file offered on a framed stream until the sender closes it in an orderly
/// way. `choose` names where an offered file goes (through `dest.part`, resumed when
/// `partials` holds its record, see [`PartFile::load_partial`]) or declines it with `None`.
/// `already_read` are transfer bytes read before (from [`login_player`]). Each file appears
/// under its final name only once it verified.
#[allow(clippy::too_many_lines)] // one run loop, read top to bottom
pub async fn receive_framed_many<S>(
    stream: &mut S,
    already_read: &[u8],
    options: &ReceiveOptions,
    partials: impl IntoIterator<Item = Partial>,
    mut choose: impl FnMut(&SignedManifest) -> Option<PathBuf>,
    mut progress: impl FnMut(Progress),
) -> Result<ReceiveManyReport, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let config = &options.config;
    let mut receiver = Receiver::new(config.clone(), Instant::now());
    for partial in partials {
        receiver.add_partial(partial);
    }
    let flush_every = (config.max_window / 2).max(1) as usize;
    let mut decoder = FrameDecoder::new(frame_limit(config.max_chunks));
    let mut files: HashMap<TransferId, Download> = HashMap::new();
    let mut report = ReceiveManyReport::default();
    let mut pending = 0usize;
    let (mut buf, mut out) = (Vec::new(), Vec::new());
    let mut input = vec![0u8; 256 * 1024];
    let mut first = Some(already_read);
    loop {
        while let Some(event) = receiver.poll_event() {
            match event {
                ReceiverEvent::Offered {
                    transfer, manifest, ..
                } => {
                    let Some(dest) = choose(&manifest) else {
                        report
                            .failed
                            .push((manifest.file_id(), TransferError::Cancelled));
                        let _ = receiver.cancel(Instant::now(), transfer);
                        continue;
                    };
                    let file = PartFile::open(&dest, manifest, &config.trusted_keys)?;
                    progress(file.progress(0, 0, false));
                    files.insert(
                        transfer,
                        Download {
                            file,
                            pending: Vec::new(),
                            received: 0,
                            rejected: 0,
                        },
                    );
                }
                ReceiverEvent::ChunkVerified {
                    transfer,
                    index,
                    data,
                    ..
                } => {
                    if let Some(d) = files.get_mut(&transfer) {
                        d.received += data.len() as u64;
                        d.file.write_chunk(index, &data)?;
                        d.pending.push(index);
                        pending += 1;
                        progress(d.file.progress(d.received, d.rejected, false));
                    }
                }
                ReceiverEvent::ChunkRejected { transfer, index } => {
                    if let Some(d) = files.get_mut(&transfer) {
                        d.rejected += 1;
                    }
                    tracing::warn!(
                        index,
                        "chunk failed verification against the signed manifest"
                    );
                }
                ReceiverEvent::CopyChunk {
                    transfer, index, ..
                } => {
                    let _ = receiver.local_chunk(Instant::now(), transfer, index, &[]);
                }
                ReceiverEvent::Completed { transfer, .. } => {
                    if let Some(d) = files.remove(&transfer) {
                        let mut last = d.file.progress(d.received, d.rejected, true);
                        let dest = d.file.finish()?;
                        last.stored_bytes = last.total_bytes;
                        progress(last);
                        report.received.push(Received {
                            dest,
                            progress: last,
                        });
                    }
                }
                ReceiverEvent::Failed { transfer, reason } => {
                    let file_id = files.remove(&transfer).map_or(0, |d| {
                        pending -= d.pending.len();
                        d.file.manifest().file_id()
                    });
                    if reason != TransferError::Cancelled {
                        report.failed.push((file_id, reason));
                    }
                }
                ReceiverEvent::Closed { reason } => return Err(reason.into()),
                _ => {}
            }
        }
        if pending >= flush_every {
            flush_all(&mut receiver, &mut files)?;
            pending = 0;
            continue;
        }
        while receiver.poll_transmit(&mut buf).is_some() {
            encode_frame(
                &mut out,
                FRAME_VERSION,
                buf.get(1).copied().unwrap_or(0),
                &buf,
            );
            buf.clear(); // poll_transmit appends: one message at a time
        }
        if !out.is_empty() {
            stream.write_all(&out).await.map_err(stream_err)?;
            stream.flush().await.map_err(stream_err)?;
            out.clear();
        }
        if let Some(bytes) = first.take() {
            if !bytes.is_empty() {
                feed(&mut decoder, bytes, |m| {
                    let _ = receiver.handle_input(Instant::now(), m);
                })?;
                continue;
            }
        }
        let deadline = receiver.poll_timeout();
        tokio::select! {
            biased;
            read = stream.read(&mut input) => match read {
                Ok(0) => {
                    flush_all(&mut receiver, &mut files)?;
                    if files.is_empty() && decoder.is_idle() {
                        return Ok(report);
                    }
                    return Err(Error::Closed);
                }
                Ok(n) => feed(&mut decoder, &input[..n], |m| { let _ = receiver.handle_input(Instant::now(), m); })?,
                Err(e) => {
                    flush_all(&mut receiver, &mut files)?;
                    return Err(stream_err(e));
                }
            },
            () = tokio::task::yield_now(), if pending > 0 => {
                // Nothing more to read right now: make what arrived durable and acknowledge it.
                flush_all(&mut receiver, &mut files)?;
                pending = 0;
            }
            () = sleep_until(deadline) => receiver.handle_timeout(Instant::now()),
        }
    }
}

struct Download {
    file: PartFile,
    pending: Vec<u32>,
    received: u64,
    rejected: u64,
}

/// Makes every written chunk durable (data, then the record naming it), then acknowledges it.
fn flush_all(
    receiver: &mut Receiver,
    files: &mut HashMap<TransferId, Download>,
) -> Result<(), Error> {
    // Configuration before media here too: acknowledge (and so complete) in priority order.
    let mut order: Vec<(fleetwire_transfer::FileKind, TransferId)> = files
        .iter()
        .filter(|(_, d)| !d.pending.is_empty())
        .map(|(t, d)| (d.file.manifest().kind(), *t))
        .collect();
    order.sort_unstable();
    for (_, transfer) in order {
        let Some(d) = files.get_mut(&transfer) else {
            continue;
        };
        d.file.persist()?;
        for index in d.pending.drain(..) {
            let _ = receiver.chunk_stored(Instant::now(), transfer, index);
        }
    }
    Ok(())
}

/// The length of the whole frame at the start of `pending`, if it has arrived. A declared
/// length above `max` returns everything held, for the session machine to refuse.
fn whole_frame(pending: &[u8], max: usize) -> Option<usize> {
    let header = pending.get(..FRAME_HEADER_LEN)?;
    let len = u32::from_be_bytes([header[2], header[3], header[4], header[5]]) as usize;
    if len > max {
        return Some(pending.len());
    }
    (pending.len() >= FRAME_HEADER_LEN + len).then_some(FRAME_HEADER_LEN + len)
}
