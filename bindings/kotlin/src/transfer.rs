//! Chunked transfer and the player watchdog (fleetwire-transfer), as conversions only.
//!
//! A player downloads with a [`Receiver`]: feed it every message from the server
//! (`handleInput`), write each `ChunkVerified` event's bytes at its offset, call `chunkStored`
//! once they are durable, persist `partial(transfer)` for resume, and send what `pollTransmit`
//! returns. [`Sender`] is the server side (and what the tests drive the receiver with).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use fleetwire_transfer as ft;

use crate::{Clock, array, lock};

/// Everything that can go wrong in the transfer domain: the peer or the bytes (a message was
/// dropped, a manifest did not verify, the transfer failed) or the caller (a misuse). The
/// message is the Rust one.
#[derive(Debug, Clone, thiserror::Error, uniffi::Error)]
#[uniffi(flat_error)]
pub enum TransferError {
    /// Bytes were wrong (truncated, bad checksum, unknown type); the message was dropped.
    #[error("{0}")]
    Decode(String),
    /// The manifest's signature did not verify with any trusted key.
    #[error("{0}")]
    BadSignature(String),
    /// The manifest is internally inconsistent.
    #[error("{0}")]
    BadManifest(String),
    /// An older version than one already held (rollback refused).
    #[error("{0}")]
    StaleVersion(String),
    /// The peer refused the transfer.
    #[error("{0}")]
    Rejected(String),
    /// The peer cancelled the transfer.
    #[error("{0}")]
    PeerCancelled(String),
    /// The application cancelled the transfer.
    #[error("{0}")]
    Cancelled(String),
    /// A chunk was sent too often without an acknowledgement.
    #[error("{0}")]
    TooManyRetransmits(String),
    /// The connection ended before the transfer finished (a new connection resumes it).
    #[error("{0}")]
    ConnectionLost(String),
    /// Nothing useful arrived from the peer for too long.
    #[error("{0}")]
    IdleTimeout(String),
    /// Chunk data provided to the sender does not match the manifest.
    #[error("{0}")]
    SourceMismatch(String),
    /// The peer broke the protocol.
    #[error("{0}")]
    Protocol(String),
    /// Caller bug: no open transfer with this id.
    #[error("{0}")]
    UnknownTransfer(String),
    /// Caller bug: chunk index beyond the file.
    #[error("{0}")]
    ChunkOutOfRange(String),
    /// Caller bug: chunk data of the wrong length.
    #[error("{0}")]
    WrongChunkLength(String),
    /// Caller bug: the machine has closed.
    #[error("{0}")]
    Closed(String),
    /// Caller bug: a configuration or argument is out of range (a key of the wrong length, a
    /// file that is not watched, ...).
    #[error("{0}")]
    InvalidInput(String),
    /// Something this binding does not know yet (a newer core crate).
    #[error("{0}")]
    Other(String),
}

/// The kind of a [`TransferReason`], one per `TransferException` subclass it can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum TransferErrorKind {
    Decode,
    BadSignature,
    BadManifest,
    StaleVersion,
    Rejected,
    PeerCancelled,
    Cancelled,
    TooManyRetransmits,
    ConnectionLost,
    IdleTimeout,
    SourceMismatch,
    Protocol,
    Other,
}

/// Why a transfer failed or a connection closed, as carried by events.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct TransferReason {
    /// Which reason.
    pub kind: TransferErrorKind,
    /// The Rust message, for people.
    pub message: String,
}

fn reason(e: &ft::TransferError) -> TransferReason {
    use ft::TransferError as E;
    let kind = match e {
        E::Decode(_) => TransferErrorKind::Decode,
        E::BadSignature => TransferErrorKind::BadSignature,
        E::BadManifest(_) => TransferErrorKind::BadManifest,
        E::StaleVersion { .. } => TransferErrorKind::StaleVersion,
        E::Rejected(_) => TransferErrorKind::Rejected,
        E::PeerCancelled => TransferErrorKind::PeerCancelled,
        E::Cancelled => TransferErrorKind::Cancelled,
        E::TooManyRetransmits { .. } => TransferErrorKind::TooManyRetransmits,
        E::ConnectionLost => TransferErrorKind::ConnectionLost,
        E::IdleTimeout { .. } => TransferErrorKind::IdleTimeout,
        E::SourceMismatch { .. } => TransferErrorKind::SourceMismatch,
        E::Protocol(_) => TransferErrorKind::Protocol,
        _ => TransferErrorKind::Other,
    };
    TransferReason {
        kind,
        message: e.to_string(),
    }
}

impl From<ft::TransferError> for TransferError {
    fn from(e: ft::TransferError) -> Self {
        let r = reason(&e);
        let m = r.message;
        match r.kind {
            TransferErrorKind::Decode => Self::Decode(m),
            TransferErrorKind::BadSignature => Self::BadSignature(m),
            TransferErrorKind::BadManifest => Self::BadManifest(m),
            TransferErrorKind::StaleVersion => Self::StaleVersion(m),
            TransferErrorKind::Rejected => Self::Rejected(m),
            TransferErrorKind::PeerCancelled => Self::PeerCancelled(m),
            TransferErrorKind::Cancelled => Self::Cancelled(m),
            TransferErrorKind::TooManyRetransmits => Self::TooManyRetransmits(m),
            TransferErrorKind::ConnectionLost => Self::ConnectionLost(m),
            TransferErrorKind::IdleTimeout => Self::IdleTimeout(m),
            TransferErrorKind::SourceMismatch => Self::SourceMismatch(m),
            TransferErrorKind::Protocol => Self::Protocol(m),
            TransferErrorKind::Other => Self::Other(m),
        }
    }
}

impl From<ft::ApiMisuse> for TransferError {
    fn from(e: ft::ApiMisuse) -> Self {
        let m = e.to_string();
        match e {
            ft::ApiMisuse::UnknownTransfer(_) => Self::UnknownTransfer(m),
            ft::ApiMisuse::ChunkOutOfRange { .. } => Self::ChunkOutOfRange(m),
            ft::ApiMisuse::WrongChunkLength { .. } => Self::WrongChunkLength(m),
            ft::ApiMisuse::Closed => Self::Closed(m),
            ft::ApiMisuse::InvalidConfig(_) => Self::InvalidInput(m),
            ft::ApiMisuse::Manifest(inner) => inner.into(),
            _ => Self::Other(m),
        }
    }
}

impl From<crate::InvalidInputError> for TransferError {
    fn from(e: crate::InvalidInputError) -> Self {
        Self::InvalidInput(e.to_string())
    }
}

fn keys(trusted_keys: &[Vec<u8>]) -> Result<Vec<ft::PublicKey>, TransferError> {
    trusted_keys
        .iter()
        .map(|k| Ok(ft::PublicKey(array("trusted key", k)?)))
        .collect()
}

fn max_chunks(m: Option<u32>) -> u32 {
    m.unwrap_or(ft::DEFAULT_MAX_CHUNKS)
}

// ---------------------------------------------------------------------------------------------
// Manifests

/// Configuration (small, urgent, sent first) or media.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum FileKind {
    Configuration,
    Media,
}

impl From<ft::FileKind> for FileKind {
    fn from(k: ft::FileKind) -> Self {
        match k {
            ft::FileKind::Configuration => Self::Configuration,
            ft::FileKind::Media => Self::Media,
        }
    }
}

impl From<FileKind> for ft::FileKind {
    fn from(k: FileKind) -> Self {
        match k {
            FileKind::Configuration => Self::Configuration,
            FileKind::Media => Self::Media,
        }
    }
}

/// The fields of a verified, signed manifest, plus its signed encoding (`bytes`: what a
/// player stores and hands back to `Receiver.hold` or `Watchdog.install`).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ManifestInfo {
    pub kind: FileKind,
    pub file_id: u64,
    pub version: u64,
    /// File length in bytes.
    pub length: u64,
    /// Bytes per chunk (the last chunk may be shorter).
    pub chunk_size: u32,
    pub chunk_count: u32,
    /// SHA-256 of the whole file (32 bytes).
    pub file_sha256: Vec<u8>,
    /// The signed encoding.
    pub bytes: Vec<u8>,
}

fn info(m: &ft::SignedManifest) -> ManifestInfo {
    ManifestInfo {
        kind: m.kind().into(),
        file_id: m.file_id(),
        version: m.version(),
        length: m.length(),
        chunk_size: m.chunk_size(),
        chunk_count: m.chunk_count(),
        file_sha256: m.file_digest().to_vec(),
        bytes: m.as_bytes().to_vec(),
    }
}

/// A manifest whose signature verified (or that was just signed): holding one means the
/// content is the server's.
#[derive(Debug, uniffi::Object)]
pub struct SignedManifest {
    inner: ft::SignedManifest,
}

#[uniffi::export]
impl SignedManifest {
    /// Decodes signed manifest bytes and verifies the signature with any of `trustedKeys`
    /// (32-byte Ed25519 public keys). At most `maxChunks` chunks (default 65,536).
    #[uniffi::constructor(default(max_chunks = None))]
    pub fn decode(
        bytes: Vec<u8>,
        trusted_keys: Vec<Vec<u8>>,
        max_chunks: Option<u32>,
    ) -> Result<Arc<Self>, TransferError> {
        let keys = keys(&trusted_keys)?;
        let inner = ft::SignedManifest::decode(&bytes, &keys, self::max_chunks(max_chunks))?;
        Ok(Arc::new(Self { inner }))
    }

    /// The manifest's fields and signed bytes.
    pub fn info(&self) -> ManifestInfo {
        info(&self.inner)
    }

    /// The signed encoding.
    pub fn bytes(&self) -> Vec<u8> {
        self.inner.as_bytes().to_vec()
    }

    /// Byte offset of chunk `index`.
    pub fn chunk_offset(&self, index: u32) -> u64 {
        self.inner.chunk_offset(index)
    }

    /// Length of chunk `index` (0 beyond the file).
    pub fn chunk_len(&self, index: u32) -> u64 {
        self.inner.chunk_len(index) as u64
    }

    /// The SHA-256 of chunk `index` (32 bytes), or null beyond the file.
    pub fn chunk_sha256(&self, index: u32) -> Option<Vec<u8>> {
        self.inner
            .chunk_digests()
            .get(index as usize)
            .map(|d| d.to_vec())
    }

    /// True if `data` is chunk `index` of this file.
    pub fn chunk_matches(&self, index: u32, data: Vec<u8>) -> bool {
        self.inner.chunk_matches(index, &data)
    }

    /// Checks a whole file at rest: `Ok`, or `Corrupt` with the first bad chunk (null when
    /// only the length or whole-file digest is wrong).
    pub fn verify_file(&self, data: Vec<u8>) -> FileCheck {
        match self.inner.verify_file(&data) {
            Ok(()) => FileCheck::Ok,
            Err(first_bad_chunk) => FileCheck::Corrupt { first_bad_chunk },
        }
    }
}

/// The server's content-signing key (Ed25519). Players never hold one; servers and tests do.
#[derive(Debug, uniffi::Object)]
pub struct ContentSigner {
    inner: ft::ContentSigner,
}

#[uniffi::export]
impl ContentSigner {
    /// A signer from a secret 32-byte seed.
    #[uniffi::constructor]
    pub fn from_seed(seed: Vec<u8>) -> Result<Arc<Self>, TransferError> {
        Ok(Arc::new(Self {
            inner: ft::ContentSigner::from_seed(&array("seed", &seed)?),
        }))
    }

    /// The 32-byte public key players must trust.
    pub fn public_key(&self) -> Vec<u8> {
        self.inner.public_key().0.to_vec()
    }

    /// Builds and signs the manifest of `data`, cut into `chunkSize`-byte chunks.
    pub fn sign_file(
        &self,
        kind: FileKind,
        file_id: u64,
        version: u64,
        chunk_size: u32,
        data: Vec<u8>,
    ) -> Result<Arc<SignedManifest>, TransferError> {
        let m = ft::Manifest::build(kind.into(), file_id, version, chunk_size, &data)?;
        Ok(Arc::new(SignedManifest {
            inner: m.sign(&self.inner),
        }))
    }
}

/// SHA-256 of `data` (32 bytes).
#[uniffi::export]
pub fn transfer_sha256(data: Vec<u8>) -> Vec<u8> {
    ft::sha256(&data).to_vec()
}

// ---------------------------------------------------------------------------------------------
// Messages

/// Half-open range of chunk indices `start until end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct ChunkRange {
    pub start: u32,
    pub end: u32,
}

fn ranges_out(set: &ft::ChunkSet) -> Vec<ChunkRange> {
    set.ranges()
        .iter()
        .map(|&(start, end)| ChunkRange { start, end })
        .collect()
}

fn ranges_in(ranges: &[ChunkRange]) -> ft::ChunkSet {
    let mut set = ft::ChunkSet::new();
    for r in ranges {
        set.insert_range(r.start, r.end);
    }
    set
}

/// One transfer message (one datagram, HTTP body or frame body):
/// `version:u8 | type:u8 | fields | crc32c:u32be`.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum TransferMessage {
    /// Sender → receiver: a file is available (`manifest` is the signed encoding).
    Offer {
        transfer: u32,
        window: u32,
        manifest: Vec<u8>,
    },
    /// Receiver → sender: go ahead; `have` lists chunks already stored.
    Accept {
        transfer: u32,
        window: u32,
        have: Vec<ChunkRange>,
    },
    /// Receiver → sender: no (reason code: 1 bad signature, 2 bad manifest, 3 stale, 4 busy).
    Reject { transfer: u32, reason: u8 },
    /// Sender → receiver: one chunk, transmission number `seq`.
    Chunk {
        transfer: u32,
        index: u32,
        seq: u64,
        data: Vec<u8>,
    },
    /// Receiver → sender: chunk `index` (transmission `seq`) is stored; all below `cumulative`
    /// too, and the `sack` ranges above it.
    Ack {
        transfer: u32,
        index: u32,
        seq: u64,
        cumulative: u32,
        sack: Vec<ChunkRange>,
    },
    /// Either way: stop this transfer.
    Cancel { transfer: u32 },
}

/// Encodes a transfer message.
#[uniffi::export]
pub fn transfer_message_encode(message: TransferMessage) -> Vec<u8> {
    let mut out = Vec::new();
    match &message {
        TransferMessage::Offer {
            transfer,
            window,
            manifest,
        } => ft::Message::Offer {
            transfer: *transfer,
            window: *window,
            manifest,
        }
        .encode(&mut out),
        TransferMessage::Accept {
            transfer,
            window,
            have,
        } => ft::Message::Accept {
            transfer: *transfer,
            window: *window,
            have: ranges_in(have),
        }
        .encode(&mut out),
        TransferMessage::Reject { transfer, reason } => ft::Message::Reject {
            transfer: *transfer,
            reason: *reason,
        }
        .encode(&mut out),
        TransferMessage::Chunk {
            transfer,
            index,
            seq,
            data,
        } => ft::Message::Chunk {
            transfer: *transfer,
            index: *index,
            seq: *seq,
            data,
        }
        .encode(&mut out),
        TransferMessage::Ack {
            transfer,
            index,
            seq,
            cumulative,
            sack,
        } => ft::Message::Ack {
            transfer: *transfer,
            index: *index,
            seq: *seq,
            cumulative: *cumulative,
            sack: ranges_in(sack),
        }
        .encode(&mut out),
        TransferMessage::Cancel { transfer } => ft::Message::Cancel {
            transfer: *transfer,
        }
        .encode(&mut out),
    }
    out
}

/// Decodes one transfer message; throws `TransferException.Decode` on bad bytes.
#[uniffi::export]
pub fn transfer_message_decode(bytes: Vec<u8>) -> Result<TransferMessage, TransferError> {
    let m = ft::Message::decode(&bytes).map_err(ft::TransferError::from)?;
    Ok(match m {
        ft::Message::Offer {
            transfer,
            window,
            manifest,
        } => TransferMessage::Offer {
            transfer,
            window,
            manifest: manifest.to_vec(),
        },
        ft::Message::Accept {
            transfer,
            window,
            have,
        } => TransferMessage::Accept {
            transfer,
            window,
            have: ranges_out(&have),
        },
        ft::Message::Reject { transfer, reason } => TransferMessage::Reject { transfer, reason },
        ft::Message::Chunk {
            transfer,
            index,
            seq,
            data,
        } => TransferMessage::Chunk {
            transfer,
            index,
            seq,
            data: data.to_vec(),
        },
        ft::Message::Ack {
            transfer,
            index,
            seq,
            cumulative,
            sack,
        } => TransferMessage::Ack {
            transfer,
            index,
            seq,
            cumulative,
            sack: ranges_out(&sack),
        },
        ft::Message::Cancel { transfer } => TransferMessage::Cancel { transfer },
    })
}

// ---------------------------------------------------------------------------------------------
// Resume records

/// A decoded resume record: the verified manifest and the chunks already stored.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PartialInfo {
    pub manifest: ManifestInfo,
    /// Indices of stored chunks, ascending.
    pub stored: Vec<u32>,
}

/// Decodes a saved resume record (from `Receiver.partial`), verifying the manifest signature
/// again: the disk is trusted no more than the network.
#[uniffi::export(default(max_chunks = None))]
pub fn transfer_partial_decode(
    bytes: Vec<u8>,
    trusted_keys: Vec<Vec<u8>>,
    max_chunks: Option<u32>,
) -> Result<PartialInfo, TransferError> {
    let keys = keys(&trusted_keys)?;
    let p = ft::Partial::decode(&bytes, &keys, self::max_chunks(max_chunks))?;
    Ok(PartialInfo {
        manifest: info(p.manifest()),
        stored: p.stored().to_set().iter().collect(),
    })
}

// ---------------------------------------------------------------------------------------------
// Receiver

/// Optional receiver settings; null keeps the core default.
#[derive(Debug, Clone, Default, uniffi::Record)]
pub struct ReceiverOptions {
    /// Largest window agreed to (default 256 chunks).
    #[uniffi(default = None)]
    pub max_window: Option<u32>,
    /// Largest manifest accepted, in chunks (default 65,536).
    #[uniffi(default = None)]
    pub max_chunks: Option<u32>,
    /// Most transfers open at once (default 16).
    #[uniffi(default = None)]
    pub max_transfers: Option<u32>,
    /// Connection closes after this long without progress (default 120,000 ms).
    #[uniffi(default = None)]
    pub idle_timeout_ms: Option<u64>,
}

/// What the receiver tells the player.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum ReceiverEvent {
    /// A signed offer was accepted: open the partial file, persist `partial(transfer)` as
    /// chunks are stored.
    Offered {
        transfer: u32,
        manifest: ManifestInfo,
        resumed: u32,
    },
    /// A partial of an older version was dropped: delete its file.
    PartialDiscarded { file_id: u64, version: u64 },
    /// Delta: read `len` bytes at `fromOffset` of the held version and pass them to
    /// `localChunk` (empty if unreadable).
    CopyChunk {
        transfer: u32,
        index: u32,
        from_file_id: u64,
        from_version: u64,
        from_offset: u64,
        len: u64,
    },
    /// A chunk matched its signed digest: write `data` at `offset`, then `chunkStored`.
    ChunkVerified {
        transfer: u32,
        index: u32,
        offset: u64,
        data: Vec<u8>,
    },
    /// A chunk failed its digest and was dropped (it will be sent again). Log it.
    ChunkRejected { transfer: u32, index: u32 },
    /// Every chunk is stored and verified.
    Completed {
        transfer: u32,
        file_id: u64,
        version: u64,
    },
    /// The transfer ended without the file; exactly once per transfer.
    Failed {
        transfer: u32,
        reason: TransferReason,
    },
    /// The connection is over (partials stay valid); exactly once.
    Closed { reason: TransferReason },
    /// An event this binding does not know yet.
    Other { description: String },
}

/// Open, or closed (inputs are no-ops).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum MachineState {
    Open,
    Closed,
}

/// Receiver counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct ReceiverStats {
    pub messages_sent: u64,
    pub bytes_sent: u64,
    pub chunks_received: u64,
    pub duplicate_chunks: u64,
    pub rejected_chunks: u64,
    pub overrun_chunks: u64,
    pub reused_chunks: u64,
    pub messages_dropped: u64,
}

struct ReceiverInner {
    machine: ft::Receiver,
    clock: Clock,
    keys: Vec<ft::PublicKey>,
    max_chunks: u32,
}

/// The player's side of a transfer connection. After every input drain `pollTransmit` and
/// `pollEvent` until null; call `handleTimeout` at `pollTimeout()`.
#[derive(uniffi::Object)]
pub struct Receiver {
    inner: Mutex<ReceiverInner>,
}

#[uniffi::export]
impl Receiver {
    /// A receiver trusting manifests signed by any of `trustedKeys` (32-byte public keys).
    #[uniffi::constructor(default(options = None))]
    pub fn new(
        trusted_keys: Vec<Vec<u8>>,
        now_ms: u64,
        options: Option<ReceiverOptions>,
    ) -> Result<Arc<Self>, TransferError> {
        let keys = keys(&trusted_keys)?;
        let mut config = ft::ReceiverConfig::new(keys.clone());
        let o = options.unwrap_or_default();
        if let Some(w) = o.max_window {
            config.max_window = w;
        }
        if let Some(c) = o.max_chunks {
            config.max_chunks = c;
        }
        if let Some(t) = o.max_transfers {
            config.max_transfers = t as usize;
        }
        if let Some(ms) = o.idle_timeout_ms {
            config.idle_timeout = Duration::from_millis(ms);
        }
        let max_chunks = config.max_chunks;
        let mut clock = Clock::new(now_ms);
        let now = clock.at(now_ms);
        Ok(Arc::new(Self {
            inner: Mutex::new(ReceiverInner {
                machine: ft::Receiver::new(Arc::new(config), now),
                clock,
                keys,
                max_chunks,
            }),
        }))
    }

    /// A resume record saved by an earlier run (verified again); an offer of the same manifest
    /// resumes it.
    pub fn add_partial(&self, partial: Vec<u8>) -> Result<(), TransferError> {
        let mut g = lock(&self.inner);
        let p = ft::Partial::decode(&partial, &g.keys, g.max_chunks)?;
        g.machine.add_partial(p);
        Ok(())
    }

    /// A complete version the player holds (signed manifest bytes): older offers are refused,
    /// newer ones reuse its matching chunks.
    pub fn hold(&self, manifest: Vec<u8>) -> Result<(), TransferError> {
        let mut g = lock(&self.inner);
        let m = ft::SignedManifest::decode(&manifest, &g.keys, g.max_chunks)?;
        g.machine.hold(m);
        Ok(())
    }

    /// The resume record of a transfer of this connection (persist it after storing chunks),
    /// or null. It stays available after the connection closed.
    pub fn partial(&self, transfer: u32) -> Option<Vec<u8>> {
        lock(&self.inner)
            .machine
            .partial(ft::TransferId(transfer))
            .map(|p| p.encode())
    }

    /// Chunk `index` is durably stored; it is acknowledged now.
    pub fn chunk_stored(
        &self,
        now_ms: u64,
        transfer: u32,
        index: u32,
    ) -> Result<(), TransferError> {
        let mut g = lock(&self.inner);
        let now = g.clock.at(now_ms);
        Ok(g.machine
            .chunk_stored(now, ft::TransferId(transfer), index)?)
    }

    /// The bytes of a delta copy (answering `CopyChunk`); empty if unreadable.
    pub fn local_chunk(
        &self,
        now_ms: u64,
        transfer: u32,
        index: u32,
        data: Vec<u8>,
    ) -> Result<(), TransferError> {
        let mut g = lock(&self.inner);
        let now = g.clock.at(now_ms);
        Ok(g.machine
            .local_chunk(now, ft::TransferId(transfer), index, &data)?)
    }

    /// Cancels a transfer; the sender is told.
    pub fn cancel(&self, now_ms: u64, transfer: u32) -> Result<(), TransferError> {
        let mut g = lock(&self.inner);
        let now = g.clock.at(now_ms);
        Ok(g.machine.cancel(now, ft::TransferId(transfer))?)
    }

    /// One message from the sender. A message that fails to decode or verify is dropped and
    /// thrown; the connection goes on.
    pub fn handle_input(&self, now_ms: u64, data: Vec<u8>) -> Result<(), TransferError> {
        let mut g = lock(&self.inner);
        let now = g.clock.at(now_ms);
        Ok(g.machine.handle_input(now, &data)?)
    }

    /// Lets time pass; early calls do nothing.
    pub fn handle_timeout(&self, now_ms: u64) {
        let mut g = lock(&self.inner);
        let now = g.clock.at(now_ms);
        g.machine.handle_timeout(now);
    }

    /// The transport ended (the peer closed it or it broke): every open transfer ends with one
    /// `Failed` event (`ConnectionLost`), then one `Closed`. No-op if already closed.
    pub fn handle_close(&self, now_ms: u64) {
        let mut g = lock(&self.inner);
        let now = g.clock.at(now_ms);
        g.machine.handle_close(now);
    }

    /// The next message to send, or null.
    pub fn poll_transmit(&self) -> Option<Vec<u8>> {
        let mut buf = Vec::new();
        lock(&self.inner)
            .machine
            .poll_transmit(&mut buf)
            .map(|_| buf)
    }

    /// When to call `handleTimeout` next, in host ms, or null.
    pub fn poll_timeout(&self) -> Option<u64> {
        let g = lock(&self.inner);
        g.machine.poll_timeout().map(|t| g.clock.ms(t))
    }

    /// The next event, or null.
    pub fn poll_event(&self) -> Option<ReceiverEvent> {
        use ft::ReceiverEvent as E;
        let event = lock(&self.inner).machine.poll_event()?;
        Some(match event {
            E::Offered {
                transfer,
                manifest,
                resumed,
            } => ReceiverEvent::Offered {
                transfer: transfer.0,
                manifest: info(&manifest),
                resumed,
            },
            E::PartialDiscarded { file_id, version } => {
                ReceiverEvent::PartialDiscarded { file_id, version }
            }
            E::CopyChunk {
                transfer,
                index,
                from_file_id,
                from_version,
                from_offset,
                len,
            } => ReceiverEvent::CopyChunk {
                transfer: transfer.0,
                index,
                from_file_id,
                from_version,
                from_offset,
                len: len as u64,
            },
            E::ChunkVerified {
                transfer,
                index,
                offset,
                data,
            } => ReceiverEvent::ChunkVerified {
                transfer: transfer.0,
                index,
                offset,
                data,
            },
            E::ChunkRejected { transfer, index } => ReceiverEvent::ChunkRejected {
                transfer: transfer.0,
                index,
            },
            E::Completed {
                transfer,
                file_id,
                version,
            } => ReceiverEvent::Completed {
                transfer: transfer.0,
                file_id,
                version,
            },
            E::Failed { transfer, reason } => ReceiverEvent::Failed {
                transfer: transfer.0,
                reason: self::reason(&reason),
            },
            E::Closed { reason } => ReceiverEvent::Closed {
                reason: self::reason(&reason),
            },
            other => ReceiverEvent::Other {
                description: format!("{other:?}"),
            },
        })
    }

    pub fn state(&self) -> MachineState {
        match lock(&self.inner).machine.state() {
            ft::ReceiverState::Open => MachineState::Open,
            ft::ReceiverState::Closed => MachineState::Closed,
        }
    }

    pub fn stats(&self) -> ReceiverStats {
        let s = lock(&self.inner).machine.stats();
        ReceiverStats {
            messages_sent: s.messages_sent,
            bytes_sent: s.bytes_sent,
            chunks_received: s.chunks_received,
            duplicate_chunks: s.duplicate_chunks,
            rejected_chunks: s.rejected_chunks,
            overrun_chunks: s.overrun_chunks,
            reused_chunks: s.reused_chunks,
            messages_dropped: s.messages_dropped,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Sender

/// Optional sender settings; null keeps the core default.
#[derive(Debug, Clone, Default, uniffi::Record)]
pub struct SenderOptions {
    /// Proposed window (default 64 chunks; 1 is lock-step).
    #[uniffi(default = None)]
    pub window: Option<u32>,
    /// Retransmission timeout before any RTT sample (default 1000 ms).
    #[uniffi(default = None)]
    pub initial_rto_ms: Option<u64>,
    /// Transmissions of one chunk before the transfer fails (default 40).
    #[uniffi(default = None)]
    pub max_transmissions: Option<u32>,
    /// Connection closes after this long without progress (default 120,000 ms).
    #[uniffi(default = None)]
    pub idle_timeout_ms: Option<u64>,
}

/// What the sender tells the server application.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum SenderEvent {
    /// The receiver accepted; `alreadyHeld` chunks will not be sent.
    Accepted {
        transfer: u32,
        window: u32,
        already_held: u32,
    },
    /// Read `len` bytes at `offset` and pass them to `provideChunk`.
    ChunkNeeded {
        transfer: u32,
        index: u32,
        offset: u64,
        len: u64,
    },
    /// The receiver stored the whole file.
    Completed { transfer: u32 },
    /// The transfer failed; exactly once per transfer.
    Failed {
        transfer: u32,
        reason: TransferReason,
    },
    /// The application cancelled the transfer.
    Cancelled { transfer: u32 },
    /// The connection is over; exactly once.
    Closed { reason: TransferReason },
    /// An event this binding does not know yet.
    Other { description: String },
}

struct SenderInner {
    machine: ft::Sender,
    clock: Clock,
}

/// The server's side of a transfer connection.
#[derive(uniffi::Object)]
pub struct Sender {
    inner: Mutex<SenderInner>,
}

#[uniffi::export]
impl Sender {
    #[uniffi::constructor(default(options = None))]
    pub fn new(now_ms: u64, options: Option<SenderOptions>) -> Arc<Self> {
        let mut config = ft::SenderConfig::default();
        let o = options.unwrap_or_default();
        if let Some(w) = o.window {
            config.window = w;
        }
        if let Some(ms) = o.initial_rto_ms {
            config.initial_rto = Duration::from_millis(ms);
        }
        if let Some(n) = o.max_transmissions {
            config.max_transmissions = n;
        }
        if let Some(ms) = o.idle_timeout_ms {
            config.idle_timeout = Duration::from_millis(ms);
        }
        let mut clock = Clock::new(now_ms);
        let now = clock.at(now_ms);
        Arc::new(Self {
            inner: Mutex::new(SenderInner {
                machine: ft::Sender::new(Arc::new(config), now),
                clock,
            }),
        })
    }

    /// Offers a file; `data` is the whole file in memory, or null to be asked for each chunk
    /// (`ChunkNeeded`). Returns the transfer id.
    #[uniffi::method(default(data = None))]
    pub fn offer(
        &self,
        now_ms: u64,
        manifest: Arc<SignedManifest>,
        data: Option<Vec<u8>>,
    ) -> Result<u32, TransferError> {
        let source = data.map_or(ft::ChunkSource::OnDemand, ft::ChunkSource::Memory);
        let mut g = lock(&self.inner);
        let now = g.clock.at(now_ms);
        Ok(g.machine
            .offer(now, manifest.inner.clone(), source, None)?
            .0)
    }

    /// The bytes of chunk `index`, answering `ChunkNeeded`.
    pub fn provide_chunk(
        &self,
        now_ms: u64,
        transfer: u32,
        index: u32,
        data: Vec<u8>,
    ) -> Result<(), TransferError> {
        let mut g = lock(&self.inner);
        let now = g.clock.at(now_ms);
        Ok(g.machine
            .provide_chunk(now, ft::TransferId(transfer), index, &data)?)
    }

    /// Cancels a transfer; the receiver is told.
    pub fn cancel(&self, now_ms: u64, transfer: u32) -> Result<(), TransferError> {
        let mut g = lock(&self.inner);
        let now = g.clock.at(now_ms);
        Ok(g.machine.cancel(now, ft::TransferId(transfer))?)
    }

    /// One message from the receiver; a bad one is dropped and thrown.
    pub fn handle_input(&self, now_ms: u64, data: Vec<u8>) -> Result<(), TransferError> {
        let mut g = lock(&self.inner);
        let now = g.clock.at(now_ms);
        Ok(g.machine.handle_input(now, &data)?)
    }

    /// Lets time pass; early calls do nothing.
    pub fn handle_timeout(&self, now_ms: u64) {
        let mut g = lock(&self.inner);
        let now = g.clock.at(now_ms);
        g.machine.handle_timeout(now);
    }

    /// The transport ended (the peer closed it or it broke): every open transfer ends with one
    /// `Failed` event (`ConnectionLost`), then one `Closed`. No-op if already closed.
    pub fn handle_close(&self, now_ms: u64) {
        let mut g = lock(&self.inner);
        let now = g.clock.at(now_ms);
        g.machine.handle_close(now);
    }

    /// The next message to send, or null.
    pub fn poll_transmit(&self) -> Option<Vec<u8>> {
        let mut buf = Vec::new();
        lock(&self.inner)
            .machine
            .poll_transmit(&mut buf)
            .map(|_| buf)
    }

    /// When to call `handleTimeout` next, in host ms, or null.
    pub fn poll_timeout(&self) -> Option<u64> {
        let g = lock(&self.inner);
        g.machine.poll_timeout().map(|t| g.clock.ms(t))
    }

    /// The next event, or null.
    pub fn poll_event(&self) -> Option<SenderEvent> {
        use ft::SenderEvent as E;
        let event = lock(&self.inner).machine.poll_event()?;
        Some(match event {
            E::Accepted {
                transfer,
                window,
                already_held,
            } => SenderEvent::Accepted {
                transfer: transfer.0,
                window,
                already_held,
            },
            E::ChunkNeeded {
                transfer,
                index,
                offset,
                len,
            } => SenderEvent::ChunkNeeded {
                transfer: transfer.0,
                index,
                offset,
                len: len as u64,
            },
            E::Completed { transfer } => SenderEvent::Completed {
                transfer: transfer.0,
            },
            E::Failed { transfer, reason } => SenderEvent::Failed {
                transfer: transfer.0,
                reason: self::reason(&reason),
            },
            E::Cancelled { transfer } => SenderEvent::Cancelled {
                transfer: transfer.0,
            },
            E::Closed { reason } => SenderEvent::Closed {
                reason: self::reason(&reason),
            },
            other => SenderEvent::Other {
                description: format!("{other:?}"),
            },
        })
    }

    pub fn state(&self) -> MachineState {
        match lock(&self.inner).machine.state() {
            ft::SenderState::Open => MachineState::Open,
            ft::SenderState::Closed => MachineState::Closed,
        }
    }

    /// Chunks acknowledged, for a progress bar (null once finished).
    pub fn acked_chunks(&self, transfer: u32) -> Option<u32> {
        lock(&self.inner)
            .machine
            .progress(ft::TransferId(transfer))
            .map(|(acked, _)| acked)
    }
}

// ---------------------------------------------------------------------------------------------
// Watchdog

/// The result of checking one file at rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum FileCheck {
    /// The file matches its signed manifest (and, for configuration, parses).
    Ok,
    /// The file is gone.
    Missing,
    /// The bytes differ; the first bad chunk if known.
    Corrupt { first_bad_chunk: Option<u32> },
    /// A configuration file verified but did not parse.
    ParseFailed,
}

impl From<ft::FileCheck> for FileCheck {
    fn from(c: ft::FileCheck) -> Self {
        match c {
            ft::FileCheck::Ok => Self::Ok,
            ft::FileCheck::Missing => Self::Missing,
            ft::FileCheck::Corrupt { first_bad_chunk } => Self::Corrupt { first_bad_chunk },
            ft::FileCheck::ParseFailed => Self::ParseFailed,
        }
    }
}

impl From<FileCheck> for ft::FileCheck {
    fn from(c: FileCheck) -> Self {
        match c {
            FileCheck::Ok => Self::Ok,
            FileCheck::Missing => Self::Missing,
            FileCheck::Corrupt { first_bad_chunk } => Self::Corrupt { first_bad_chunk },
            FileCheck::ParseFailed => Self::ParseFailed,
        }
    }
}

/// What the watchdog tells the player.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum WatchdogEvent {
    /// Verify this file at rest (`verifyFile` or `report`).
    VerifyNeeded { file_id: u64, version: u64 },
    /// The file checked out; it is now last-known-good.
    Verified { file_id: u64, version: u64 },
    /// A check failed: forward it to the server's security log.
    Anomaly {
        file_id: u64,
        version: u64,
        check: FileCheck,
    },
    /// Switch to the last-known-good copy.
    Fallback {
        file_id: u64,
        from_version: u64,
        to_version: u64,
    },
    /// Ask the server for a fresh copy.
    RequestFresh {
        file_id: u64,
        version: u64,
        attempt: u32,
    },
    /// Restore attempts exhausted for this file.
    GaveUp { file_id: u64, attempts: u32 },
    /// An event this binding does not know yet.
    Other { description: String },
}

/// Optional watchdog settings; null keeps the core default.
#[derive(Debug, Clone, Default, uniffi::Record)]
pub struct WatchdogOptions {
    /// Scheduled check period (default 3,600,000 ms); 0 checks only on request.
    #[uniffi(default = None)]
    pub check_interval_ms: Option<u64>,
    /// Restore attempts in a row before giving up (default 3).
    #[uniffi(default = None)]
    pub max_restore_attempts: Option<u32>,
    /// Largest manifest accepted, in chunks (default 65,536).
    #[uniffi(default = None)]
    pub max_chunks: Option<u32>,
}

/// Watchdog counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct WatchdogStats {
    pub checks: u64,
    pub anomalies: u64,
    pub fallbacks: u64,
    pub requests: u64,
}

struct WatchdogInner {
    machine: ft::Watchdog,
    clock: Clock,
}

/// The player's watchdog: last-known-good manifests, checks at rest, fallback and restore.
#[derive(uniffi::Object)]
pub struct Watchdog {
    inner: Mutex<WatchdogInner>,
}

#[uniffi::export]
impl Watchdog {
    #[uniffi::constructor(default(options = None))]
    pub fn new(
        trusted_keys: Vec<Vec<u8>>,
        now_ms: u64,
        options: Option<WatchdogOptions>,
    ) -> Result<Arc<Self>, TransferError> {
        let mut config = ft::WatchdogConfig::new(keys(&trusted_keys)?);
        let o = options.unwrap_or_default();
        if let Some(ms) = o.check_interval_ms {
            config.check_interval = (ms > 0).then(|| Duration::from_millis(ms));
        }
        if let Some(n) = o.max_restore_attempts {
            config.max_restore_attempts = n;
        }
        if let Some(c) = o.max_chunks {
            config.max_chunks = c;
        }
        let mut clock = Clock::new(now_ms);
        let now = clock.at(now_ms);
        Ok(Arc::new(Self {
            inner: Mutex::new(WatchdogInner {
                machine: ft::Watchdog::new(Arc::new(config), now),
                clock,
            }),
        }))
    }

    /// A downloaded (or stored) signed manifest becomes the file's current version; refused if
    /// the signature fails or it is older than the newest known.
    pub fn install(&self, now_ms: u64, manifest: Vec<u8>) -> Result<(), TransferError> {
        let mut g = lock(&self.inner);
        let now = g.clock.at(now_ms);
        Ok(g.machine.install(now, &manifest)?)
    }

    /// Asks for every file to be verified now (`VerifyNeeded` events).
    pub fn check_now(&self, now_ms: u64) {
        let mut g = lock(&self.inner);
        let now = g.clock.at(now_ms);
        g.machine.check_now(now);
    }

    /// Verifies the file's bytes (null: missing) against its current manifest and reports it.
    pub fn verify_file(
        &self,
        now_ms: u64,
        file_id: u64,
        data: Option<Vec<u8>>,
    ) -> Result<FileCheck, TransferError> {
        let mut g = lock(&self.inner);
        let now = g.clock.at(now_ms);
        Ok(g.machine.verify_file(now, file_id, data.as_deref())?.into())
    }

    /// Reports a check made by the player (e.g. `ParseFailed`).
    pub fn report(&self, now_ms: u64, file_id: u64, check: FileCheck) -> Result<(), TransferError> {
        let mut g = lock(&self.inner);
        let now = g.clock.at(now_ms);
        Ok(g.machine.report(now, file_id, check.into())?)
    }

    /// The manifest of the version the player should use, or null.
    pub fn current(&self, file_id: u64) -> Option<ManifestInfo> {
        lock(&self.inner).machine.current(file_id).map(info)
    }

    /// The last version that passed a check, or null.
    pub fn known_good(&self, file_id: u64) -> Option<ManifestInfo> {
        lock(&self.inner).machine.known_good(file_id).map(info)
    }

    /// Lets time pass: runs the scheduled check when due.
    pub fn handle_timeout(&self, now_ms: u64) {
        let mut g = lock(&self.inner);
        let now = g.clock.at(now_ms);
        g.machine.handle_timeout(now);
    }

    /// When the next scheduled check is due, in host ms, or null.
    pub fn poll_timeout(&self) -> Option<u64> {
        let g = lock(&self.inner);
        g.machine.poll_timeout().map(|t| g.clock.ms(t))
    }

    /// The next event, or null.
    pub fn poll_event(&self) -> Option<WatchdogEvent> {
        use ft::WatchdogEvent as E;
        let event = lock(&self.inner).machine.poll_event()?;
        Some(match event {
            E::VerifyNeeded { file_id, version } => {
                WatchdogEvent::VerifyNeeded { file_id, version }
            }
            E::Verified { file_id, version } => WatchdogEvent::Verified { file_id, version },
            E::Anomaly {
                file_id,
                version,
                check,
            } => WatchdogEvent::Anomaly {
                file_id,
                version,
                check: check.into(),
            },
            E::Fallback {
                file_id,
                from_version,
                to_version,
            } => WatchdogEvent::Fallback {
                file_id,
                from_version,
                to_version,
            },
            E::RequestFresh {
                file_id,
                version,
                attempt,
            } => WatchdogEvent::RequestFresh {
                file_id,
                version,
                attempt,
            },
            E::GaveUp { file_id, attempts } => WatchdogEvent::GaveUp { file_id, attempts },
            other => WatchdogEvent::Other {
                description: format!("{other:?}"),
            },
        })
    }

    pub fn stats(&self) -> WatchdogStats {
        let s = lock(&self.inner).machine.stats();
        WatchdogStats {
            checks: s.checks,
            anomalies: s.anomalies,
            fallbacks: s.fallbacks,
            requests: s.requests,
        }
    }
}
