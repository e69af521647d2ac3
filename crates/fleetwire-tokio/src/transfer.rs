//! Chunked transfer over tokio (feature `transfer`): the framed TLS/TCP stream driver pair, the
//! HTTP(S) download client, and the resumable `.part` file both use.
//!
//! ## Files on the player
//! A download of `dest` writes `dest.part` (preallocated with `fallocate` where the file system
//! supports it, so a full disk fails before the download) with positioned writes and keeps its
//! resume record (the [`Partial`] format: signed manifest + bitmap of stored chunks) in
//! `dest.part.state`, replaced by write + rename. A chunk is marked stored only after its bytes
//! matched the manifest's signed per-chunk SHA-256, and the record names only stored chunks. Only
//! when every chunk is stored is `dest.part` forced to the disk (`fsync`) and renamed to `dest`: no
//! partial file ever appears under the final name, even across a power cut. A killed download
//! restarted with the same `dest` resumes from the record; the manifest signature is checked again
//! when the record is loaded, and every chunk the record names is read back and checked against its
//! signed digest (a chunk that fails is fetched again).
//!
//! ## Durability: what a kill and a power cut cost
//! Surviving a *process kill* needs only the page cache, so the record is rewritten (no
//! `fsync`) every half window of stored chunks. Surviving a *power cut* needs the disk: the
//! record may then name chunks whose data never reached it, which the re-verification on resume
//! catches, so the record can never make a bad chunk count as stored. Data is forced to the
//! disk in the background every 16 MiB ([`fetch_http`]) and before the final rename; a power
//! cut loses at most what the kernel had not yet written back. The whole-file SHA-256 is not
//! recomputed by default: the file is the concatenation of chunks that each matched a signed
//! digest (docs/SECURITY.md); [`FetchOptions::check_whole_file`] reads it back if wanted.
//!
//! ## At most one window re-sent after a kill
//! A chunk counts against the window from the moment it is requested (HTTP) or offered (framed)
//! until the record that names it is written. So whatever instant the process dies, the data
//! that had arrived but must be fetched again is at most one window.
//!
//! ## Framed stream ([`send_framed`], [`receive_framed`])
//! Each transfer message is the body of one `fleetwire-wire` frame (`version 1 | type | len`),
//! over TLS ([`crate::tls`]) or any byte stream. The [`Sender`] and [`Receiver`] machines decide
//! everything (window, SACK, retransmission); the drivers move bytes and touch files.
//! Several files on one connection, after the player's login, are
//! `framed::send_framed_many` / `framed::receive_framed_many` (features `session` + `transfer`;
//! the server's TCP 4702).
//!
//! ## HTTP and HTTPS ([`fetch_http`])
//! The player pulls. Endpoints (served by `fleetwire-server` on HTTPS and on plain HTTP, port
//! 8001 by default, or 80):
//! - `GET /v1/content/{id}/manifest`: the signed manifest bytes.
//! - `GET /v1/content/{id}/chunks/{index}?count=N`: chunks `index..index+N` concatenated.
//!
//! Up to `window` chunks are requested and not yet named by the record at once, over `window
//! / chunks_per_request` keep-alive connections (defaults: 64 chunks, 16 per request, so 4
//! connections and 4 MiB requests with 256 KiB chunks); the request for the next chunks is the
//! acknowledgement of the ones before. Each connection is driven by one task (TLS decryption,
//! HTTP parsing, then the frame's SHA-256 and its write, while the frame is in that core's
//! cache): every body frame is hashed into the current chunk's SHA-256 and written at its place
//! in `dest.part` as it arrives (no copy, and verification runs on every core); a chunk is
//! reported stored only when its digest matches the signed manifest, so plain HTTP cannot alter
//! content: a tampered chunk is dropped, counted, and fetched again (overwriting its bytes).
//! Requests carry [`AUTH_HEADER`]: the player's Ed25519 signature over the method, the path and
//! query, the time and a fresh random nonce ([`RequestSigner`]); the server checks it with the
//! verifier it already stores and accepts each nonce once.
//!
//! File writes are short blocking calls made on the tasks (run them on a multi-threaded
//! runtime); nothing blocks while holding a lock.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use fleetwire_transfer::{
    Bitmap, ChunkSource, DEFAULT_MAX_CHUNKS, MAX_CHUNK_SIZE, Message, Partial, PublicKey, Receiver,
    ReceiverConfig, ReceiverEvent, Sender, SenderConfig, SenderEvent, SignedManifest,
    TransferError, TransferId,
};
use fleetwire_wire::{FrameDecoder, Writer, encode_frame};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use ring::signature::{ED25519, Ed25519KeyPair, UnparsedPublicKey};
use rustls::pki_types::ServerName;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_rustls::TlsConnector;

/// The request header that carries a player's signature (see [`RequestSigner`]).
pub const AUTH_HEADER: &str = "x-fleetwire-player";

/// Most chunks one HTTP chunk request may ask for (servers refuse more).
pub const MAX_CHUNKS_PER_REQUEST: u32 = 64;

/// How far a download has come, for progress bars and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    /// The file.
    pub file_id: u64,
    /// Its version.
    pub version: u64,
    /// The file's length.
    pub total_bytes: u64,
    /// Bytes verified and written, including `resumed_bytes`.
    pub stored_bytes: u64,
    /// Bytes that were already stored by an earlier run (resume).
    pub resumed_bytes: u64,
    /// Chunk bytes received by this run (including duplicates and rejected chunks).
    pub received_bytes: u64,
    /// Chunks that failed verification (tampering or corruption on the path).
    pub rejected_chunks: u64,
    /// The file is complete under its final name.
    pub done: bool,
}

/// A download or upload failed. The `.part` file and its record stay: run again to resume.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The connection failed or broke.
    #[error("connection to {addr}: {source}")]
    Connection {
        /// The server.
        addr: SocketAddr,
        /// The error.
        source: io::Error,
    },
    /// The server answered with an HTTP error.
    #[error("HTTP {status} for {path}")]
    Status {
        /// The status code.
        status: u16,
        /// The request path.
        path: String,
    },
    /// An HTTP protocol error.
    #[error("HTTP: {0}")]
    Http(String),
    /// The transfer failed (bad manifest signature, rejected, timed out, cancelled).
    #[error("transfer: {0}")]
    Transfer(#[from] TransferError),
    /// Too many requests failed in a row.
    #[error("gave up after {attempts} failed requests in a row; last: {last}")]
    TooManyFailures {
        /// Failures in a row.
        attempts: u32,
        /// The last one.
        last: String,
    },
    /// Every chunk verified but the file read back does not match the whole-file digest
    /// ([`PartFile::check_whole_file`]: the disk changed it); the bad chunks were marked
    /// missing: run again to fetch them.
    #[error(
        "the stored file does not match its signed SHA-256; {bad_chunks} chunks will be fetched again"
    )]
    AtRest {
        /// Chunks found bad on disk.
        bad_chunks: u32,
    },
    /// The peer closed the stream before the transfer finished.
    #[error("the peer closed the connection before the transfer finished")]
    Closed,
    /// A bad option.
    #[error("invalid option: {0}")]
    InvalidOption(&'static str),
}

fn file_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::File {
        path: path.to_owned(),
        source,
    }
}

// ---------------------------------------------------------------------------------------------
// The resumable .part file
// ---------------------------------------------------------------------------------------------

/// A download in progress: `dest.part`, its resume record `dest.part.state`, and the final
/// rename. Used by both drivers; usable by any other driver.
#[derive(Debug)]
pub struct PartFile {
    dest: PathBuf,
    part: PathBuf,
    state: PathBuf,
    file: Arc<File>,
    manifest: SignedManifest,
    stored: Bitmap,
    resumed: u32,
    dirty: bool,
    /// Chunks the record claimed on open that failed re-verification.
    reverify_failed: u32,
}

impl PartFile {
    /// `dest` with `.part` appended.
    pub fn part_path(dest: &Path) -> PathBuf {
        let mut p = dest.as_os_str().to_owned();
        p.push(".part");
        PathBuf::from(p)
    }

    /// `dest` with `.part.state` appended.
    pub fn state_path(dest: &Path) -> PathBuf {
        let mut p = dest.as_os_str().to_owned();
        p.push(".part.state");
        PathBuf::from(p)
    }

    /// The resume record saved for `dest`, if there is one that verifies under `trusted`.
    /// The chunks it claims are not checked here ([`PartFile::open`] re-verifies them).
    pub fn load_partial(dest: &Path, trusted: &[PublicKey], max_chunks: u32) -> Option<Partial> {
        let bytes = std::fs::read(Self::state_path(dest)).ok()?;
        match Partial::decode(&bytes, trusted, max_chunks) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!(dest = %dest.display(), "ignoring a bad resume record: {e}");
                None
            }
        }
    }

    /// Opens the download of `manifest` into `dest`: resumes `dest.part` if its record is for
    /// the same signed manifest, starts afresh otherwise. On resume every chunk the record
    /// claims is read back and checked against the manifest's signed digest; a chunk that fails
    /// (the record was written but the data never reached the disk before a power cut, or the
    /// disk altered it) is dropped from the record and fetched again.
    pub fn open(
        dest: &Path,
        manifest: SignedManifest,
        trusted: &[PublicKey],
    ) -> Result<Self, Error> {
        let part = Self::part_path(dest);
        let state = Self::state_path(dest);
        let count = manifest.chunk_count();
        let resumed = Self::load_partial(dest, trusted, count.max(1))
            .filter(|p| p.manifest().as_bytes() == manifest.as_bytes())
            .and_then(|p| {
                let len = std::fs::metadata(&part).ok()?.len();
                (len == manifest.length()).then(|| p.stored().clone())
            });
        let (file, stored) = if let Some(stored) = resumed {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&part)
                .map_err(file_err(&part))?;
            (file, stored)
        } else {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&part)
                .map_err(file_err(&part))?;
            preallocate(&file, manifest.length()).map_err(file_err(&part))?;
            (file, Bitmap::new(count))
        };
        let mut me = Self {
            dest: dest.to_owned(),
            part,
            state,
            file: Arc::new(file),
            manifest,
            stored,
            resumed: 0,
            dirty: true,
            reverify_failed: 0,
        };
        me.reverify_failed = me.reverify()?;
        if me.reverify_failed > 0 {
            tracing::warn!(
                dest = %dest.display(),
                chunks = me.reverify_failed,
                "chunks named by the resume record do not match the signed manifest: fetching them again"
            );
        }
        me.resumed = me.stored.count();
        me.persist()?;
        Ok(me)
    }

    /// Reads back every chunk marked stored and clears those that do not match their signed
    /// digest; returns how many were cleared.
    fn reverify(&mut self) -> Result<u32, Error> {
        let mut bad = 0;
        let mut buf = Vec::new();
        let count = self.manifest.chunk_count();
        let mut index = self.stored.first_set_from(0);
        while index < count {
            buf.resize(self.manifest.chunk_len(index), 0);
            self.file
                .read_exact_at(&mut buf, self.manifest.chunk_offset(index))
                .map_err(file_err(&self.part))?;
            if !self.manifest.chunk_matches(index, &buf) {
                self.stored.remove(index);
                bad += 1;
            }
            index = self.stored.first_set_from(index + 1);
        }
        Ok(bad)
    }

    /// The signed manifest being downloaded.
    pub fn manifest(&self) -> &SignedManifest {
        &self.manifest
    }

    /// Chunks stored (named by the record once [`PartFile::persist`] returned).
    pub fn stored(&self) -> &Bitmap {
        &self.stored
    }

    /// Chunks that were stored, and still verified, when the file was opened.
    pub fn resumed_chunks(&self) -> u32 {
        self.resumed
    }

    /// Chunks the resume record claimed on open that failed re-verification against the
    /// signed manifest (they are fetched again).
    pub fn reverify_failed(&self) -> u32 {
        self.reverify_failed
    }

    /// Bytes of the stored chunks.
    pub fn stored_bytes(&self) -> u64 {
        let last = self.manifest.chunk_count().checked_sub(1);
        let full = u64::from(self.manifest.chunk_size());
        let mut n = u64::from(self.stored.count()) * full;
        if let Some(last) = last {
            if self.stored.contains(last) {
                n = n - full + self.manifest.chunk_len(last) as u64;
            }
        }
        n
    }

    /// Writes verified chunk `index` and marks it stored (named by the record at the next
    /// [`PartFile::persist`]).
    pub fn write_chunk(&mut self, index: u32, data: &[u8]) -> Result<(), Error> {
        self.file
            .write_all_at(data, self.manifest.chunk_offset(index))
            .map_err(file_err(&self.part))?;
        self.mark_stored(index);
        Ok(())
    }

    /// Marks chunk `index` stored after the caller wrote its verified bytes through
    /// [`PartFile::file`].
    pub fn mark_stored(&mut self, index: u32) {
        self.stored.insert(index);
        self.dirty = true;
    }

    /// The open `dest.part`, for positioned writes of verified chunks from other tasks (then
    /// [`PartFile::mark_stored`]).
    pub fn file(&self) -> &Arc<File> {
        &self.file
    }

    /// Replaces the resume record with one naming every stored chunk (write, rename). The
    /// record and the chunk data are then in the page cache: they survive the process being
    /// killed at any later instant. They are not forced to the disk (see [`PartFile::sync`]):
    /// after a power cut the record may name chunks whose data never reached the disk, which
    /// is why [`PartFile::open`] re-verifies every chunk the record names.
    pub fn persist(&mut self) -> Result<(), Error> {
        if !self.dirty {
            return Ok(());
        }
        self.write_record(false)?;
        self.dirty = false;
        Ok(())
    }

    /// Forces the chunk data, then the record, to the disk (survives a power cut).
    pub fn sync(&mut self) -> Result<(), Error> {
        self.file.sync_data().map_err(file_err(&self.part))?;
        self.write_record(true)?;
        self.dirty = false;
        Ok(())
    }

    fn write_record(&self, durable: bool) -> Result<(), Error> {
        // The `Partial` encoding (docs/PROTOCOL.md): "FWRP" | 1 | manifest | bitmap.
        let mut bytes = Vec::with_capacity(self.manifest.as_bytes().len() + 64);
        let mut w = Writer::new(&mut bytes);
        w.bytes(b"FWRP");
        w.u8(1);
        w.bytes_varint(self.manifest.as_bytes());
        self.stored.encode(&mut w);
        let mut tmp = self.state.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let mut f = File::create(&tmp).map_err(file_err(&tmp))?;
        f.write_all(&bytes).map_err(file_err(&tmp))?;
        if durable {
            f.sync_all().map_err(file_err(&tmp))?;
        }
        std::fs::rename(&tmp, &self.state).map_err(file_err(&self.state))?;
        Ok(())
    }

    /// True when every chunk is stored.
    pub fn is_complete(&self) -> bool {
        self.stored.is_full()
    }

    /// Reads the whole file back and checks it against the manifest's signed whole-file
    /// SHA-256. Not needed for integrity (every chunk was checked against its signed digest
    /// before it was marked stored, and on resume again; see docs/SECURITY.md), but available
    /// to callers who want the data re-read from the file system before the rename. If it does
    /// not match, the bad chunks are marked missing and [`Error::AtRest`] is returned (run
    /// again to fetch them).
    pub fn check_whole_file(&mut self) -> Result<(), Error> {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        let mut reader = File::open(&self.part).map_err(file_err(&self.part))?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = reader.read(&mut buf).map_err(file_err(&self.part))?;
            if n == 0 {
                break;
            }
            ctx.update(&buf[..n]);
        }
        if ctx.finish().as_ref() == self.manifest.file_digest() {
            return Ok(());
        }
        let bad = self.reverify()?;
        self.dirty = true;
        self.persist()?;
        Err(Error::AtRest { bad_chunks: bad })
    }

    /// Forces the file to the disk, renames `dest.part` to `dest` and removes the record. Every
    /// chunk must be stored ([`PartFile::is_complete`]); each was verified against the signed
    /// manifest before it was marked, so the file is the signed one (see
    /// [`PartFile::check_whole_file`] for an extra read-back).
    pub fn finish(self) -> Result<PathBuf, Error> {
        if !self.is_complete() {
            return Err(Error::InvalidOption(
                "finish called before every chunk is stored",
            ));
        }
        self.file.sync_all().map_err(file_err(&self.part))?;
        std::fs::rename(&self.part, &self.dest).map_err(file_err(&self.dest))?;
        if let Some(dir) = self.dest.parent() {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        let _ = std::fs::remove_file(&self.state);
        Ok(self.dest)
    }

    pub(crate) fn progress(&self, received: u64, rejected: u64, done: bool) -> Progress {
        let resumed_bytes = if self.resumed == 0 {
            0
        } else {
            u64::from(self.resumed) * u64::from(self.manifest.chunk_size())
        }
        .min(self.manifest.length());
        Progress {
            file_id: self.manifest.file_id(),
            version: self.manifest.version(),
            total_bytes: self.manifest.length(),
            stored_bytes: self.stored_bytes(),
            resumed_bytes,
            received_bytes: received,
            rejected_chunks: rejected,
            done,
        }
    }
}

/// Sizes a new `.part` file, reserving its blocks up front where the file system can
/// (`fallocate`): writes then need no block allocation (measured: 8% less CPU for a 256 MiB
/// download on ext4), and a disk too full for the file fails here, before anything is fetched.
/// Elsewhere, or where `fallocate` is not supported, the file is sized sparse.
fn preallocate(file: &File, len: u64) -> io::Result<()> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use rustix::fs::{FallocateFlags, fallocate};
        use rustix::io::Errno;
        match fallocate(file, FallocateFlags::empty(), 0, len) {
            Ok(()) => return Ok(()),
            Err(e) if e == Errno::OPNOTSUPP || e == Errno::NOSYS => {}
            Err(e) => return Err(e.into()),
        }
    }
    file.set_len(len)
}

// ---------------------------------------------------------------------------------------------
// Player request signatures
// ---------------------------------------------------------------------------------------------

const AUTH_CONTEXT: &[u8] = b"fleetwire content request v2\0";

/// Signs HTTP content requests as a player:
/// `x-fleetwire-player: <id hex>.<unix secs>.<nonce hex>.<signature hex>`, the Ed25519
/// signature (with the player's provisioning secret, the seed whose public key the server stores
/// as the player's verifier) over
/// `"fleetwire content request v2\0" ‖ id(16) ‖ secs:u64be ‖ nonce(16) ‖ method_len:u8 ‖ method
/// ‖ path-and-query`. The signature binds the method, the path and the query (so exactly which
/// chunks), and the random 128-bit nonce makes each header single-use: the server remembers
/// the nonces it accepted until their time leaves its clock tolerance and refuses a header seen
/// before, so a captured request cannot be replayed (docs/PROTOCOL.md).
pub struct RequestSigner {
    player_id: [u8; 16],
    key: Ed25519KeyPair,
}

impl std::fmt::Debug for RequestSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestSigner")
            .field("player_id", &hex::encode(self.player_id))
            .finish_non_exhaustive()
    }
}

/// The system's random generator failed, so no request nonce could be drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("the system random generator failed: cannot draw a request nonce")]
pub struct NoRandomness;

impl RequestSigner {
    /// A signer for player `player_id` holding the 32-byte secret (Ed25519 seed).
    pub fn new(player_id: [u8; 16], secret: &[u8; 32]) -> Self {
        // INVARIANT: ring accepts any 32-byte seed.
        let key = Ed25519KeyPair::from_seed_unchecked(secret).expect("INVARIANT: 32-byte seed");
        Self { player_id, key }
    }

    /// The header value for the request `method path_and_query` at `unix_secs`, with a fresh
    /// random nonce (every header is single-use).
    pub fn header(
        &self,
        method: &str,
        path_and_query: &str,
        unix_secs: u64,
    ) -> Result<String, NoRandomness> {
        let mut nonce = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce)
            .map_err(|_| NoRandomness)?;
        Ok(self.header_with_nonce(method, path_and_query, unix_secs, nonce))
    }

    /// The header value with a given nonce (test vectors; a real request needs a fresh random
    /// one: use [`RequestSigner::header`]).
    pub fn header_with_nonce(
        &self,
        method: &str,
        path_and_query: &str,
        unix_secs: u64,
        nonce: [u8; 16],
    ) -> String {
        let sig = self.key.sign(&auth_message(
            &self.player_id,
            unix_secs,
            &nonce,
            method,
            path_and_query,
        ));
        format!(
            "{}.{unix_secs}.{}.{}",
            hex::encode(self.player_id),
            hex::encode(nonce),
            hex::encode(sig.as_ref())
        )
    }
}

fn auth_message(id: &[u8; 16], secs: u64, nonce: &[u8; 16], method: &str, path: &str) -> Vec<u8> {
    let method = &method.as_bytes()[..method.len().min(255)];
    let mut m = Vec::with_capacity(AUTH_CONTEXT.len() + 41 + method.len() + path.len());
    m.extend_from_slice(AUTH_CONTEXT);
    m.extend_from_slice(id);
    m.extend_from_slice(&secs.to_be_bytes());
    m.extend_from_slice(nonce);
    m.push(method.len() as u8);
    m.extend_from_slice(method);
    m.extend_from_slice(path.as_bytes());
    m
}

/// A parsed [`AUTH_HEADER`], not yet verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestAuth {
    /// The player it claims to be.
    pub player_id: [u8; 16],
    /// When it was signed (Unix seconds).
    pub unix_secs: u64,
    /// The request's single-use nonce.
    pub nonce: [u8; 16],
    signature: [u8; 64],
}

/// A content request's signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The header is not `<32 hex>.<secs>.<32 hex>.<128 hex>`.
    #[error(
        "malformed x-fleetwire-player header (expected <player id hex>.<unix secs>.<nonce hex>.<signature hex>; \
         a player that sends three fields speaks the old format: upgrade it)"
    )]
    Malformed,
    /// The time is too far from the server's clock.
    #[error("request time is {skew_secs} s from the server's clock (limit {limit_secs} s)")]
    Stale {
        /// The difference.
        skew_secs: u64,
        /// The tolerance.
        limit_secs: u64,
    },
    /// The signature does not verify with the player's key.
    #[error("bad request signature")]
    BadSignature,
}

impl RequestAuth {
    /// Parses a header value.
    pub fn parse(value: &str) -> Result<Self, AuthError> {
        let mut parts = value.trim().split('.');
        let (Some(id), Some(secs), Some(nonce), Some(sig), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(AuthError::Malformed);
        };
        let mut player_id = [0u8; 16];
        hex::decode_to_slice(id, &mut player_id).map_err(|_| AuthError::Malformed)?;
        if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AuthError::Malformed);
        }
        let unix_secs = secs.parse().map_err(|_| AuthError::Malformed)?;
        let mut nonce_bytes = [0u8; 16];
        hex::decode_to_slice(nonce, &mut nonce_bytes).map_err(|_| AuthError::Malformed)?;
        let mut signature = [0u8; 64];
        hex::decode_to_slice(sig, &mut signature).map_err(|_| AuthError::Malformed)?;
        Ok(Self {
            player_id,
            unix_secs,
            nonce: nonce_bytes,
            signature,
        })
    }

    /// Verifies the signature over `method` and `path_and_query` with the player's verifier
    /// (Ed25519 public key), then the time within `tolerance_secs` of `now_unix_secs`. Whether
    /// the nonce was seen before is the server's to check (it keeps the accepted ones).
    pub fn verify(
        &self,
        method: &str,
        path_and_query: &str,
        now_unix_secs: u64,
        tolerance_secs: u64,
        verifier: &[u8; 32],
    ) -> Result<(), AuthError> {
        self.verify_signature(method, path_and_query, verifier)?;
        self.check_time(now_unix_secs, tolerance_secs)
    }

    /// Verifies only the signature over `method` and `path_and_query`.
    pub fn verify_signature(
        &self,
        method: &str,
        path_and_query: &str,
        verifier: &[u8; 32],
    ) -> Result<(), AuthError> {
        UnparsedPublicKey::new(&ED25519, verifier)
            .verify(
                &auth_message(
                    &self.player_id,
                    self.unix_secs,
                    &self.nonce,
                    method,
                    path_and_query,
                ),
                &self.signature,
            )
            .map_err(|_| AuthError::BadSignature)
    }

    /// Checks only the time: within `tolerance_secs` of `now_unix_secs`.
    pub fn check_time(&self, now_unix_secs: u64, tolerance_secs: u64) -> Result<(), AuthError> {
        let skew = now_unix_secs.abs_diff(self.unix_secs);
        if skew > tolerance_secs {
            return Err(AuthError::Stale {
                skew_secs: skew,
                limit_secs: tolerance_secs,
            });
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP(S) download
// ---------------------------------------------------------------------------------------------

/// Where and how to reach a content server over HTTP or HTTPS.
#[derive(Clone)]
pub struct HttpEndpoint {
    addr: SocketAddr,
    tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    signer: Option<Arc<RequestSigner>>,
}

impl std::fmt::Debug for HttpEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpEndpoint")
            .field("addr", &self.addr)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl HttpEndpoint {
    /// HTTPS with this client configuration (for example
    /// [`crate::tls::pinned_client_config`]).
    pub fn https(
        addr: SocketAddr,
        config: Arc<rustls::ClientConfig>,
        server_name: ServerName<'static>,
    ) -> Self {
        Self {
            addr,
            tls: Some((config, server_name)),
            signer: None,
        }
    }

    /// Plain HTTP (port 80 or 8001). Content stays tamper-proof (every chunk is checked against
    /// the signed manifest) but anyone on the path can read it.
    pub fn http(addr: SocketAddr) -> Self {
        Self {
            addr,
            tls: None,
            signer: None,
        }
    }

    /// Signs every request as this player.
    #[must_use]
    pub fn with_signer(mut self, signer: Arc<RequestSigner>) -> Self {
        self.signer = Some(signer);
        self
    }

    /// The server address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// How [`fetch_http`] downloads.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Chunks requested and not yet named by the resume record at once (1 = the seed's
    /// lock-step). Default 64 (16 MiB with the server's default 256 KiB chunks).
    pub window: u32,
    /// Chunks per request (at most half the window, at most [`MAX_CHUNKS_PER_REQUEST`], and at
    /// most 4 MiB of chunks, since the server holds a response in memory). Connections =
    /// window / this. Default 16 (so 4 connections, and 4 MiB requests with 256 KiB chunks).
    pub chunks_per_request: u32,
    /// Requests that may fail in a row before giving up. Default 8.
    pub max_failures: u32,
    /// Largest manifest accepted, in chunks.
    pub max_chunks: u32,
    /// A request with no data for this long fails (and is retried). Default 30 s.
    pub stall_timeout: Duration,
    /// Read the whole file back and check its signed SHA-256 before the rename
    /// ([`PartFile::check_whole_file`]). Default off: every chunk is already checked against
    /// its signed digest as it arrives (docs/SECURITY.md).
    pub check_whole_file: bool,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            window: 64,
            chunks_per_request: 16,
            max_failures: 8,
            max_chunks: DEFAULT_MAX_CHUNKS,
            stall_timeout: Duration::from_secs(30),
            check_whole_file: false,
        }
    }
}

/// What a finished download did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchReport {
    /// The final progress (`done` is true).
    pub progress: Progress,
}

/// Largest response [`fetch_http`] asks for, in bytes (fewer chunks per request when chunks are
/// large).
const MAX_REQUEST_BYTES: u32 = 4 << 20;

/// Chunk data forced to the disk in the background every this many bytes, so that little is
/// left for the `fsync` before the rename (and a power cut loses little).
const BACKGROUND_SYNC_BYTES: u64 = 16 << 20;

/// Downloads content `content_id` into `dest` over HTTP(S), resuming `dest.part` if a previous
/// run left one. `progress` is called after every stored chunk. Returns when `dest` holds the
/// verified file.
#[allow(clippy::too_many_lines)] // one run loop, read top to bottom
pub async fn fetch_http(
    endpoint: &HttpEndpoint,
    content_id: &str,
    dest: &Path,
    trusted: &[PublicKey],
    options: &FetchOptions,
    mut progress: impl FnMut(Progress),
) -> Result<FetchReport, Error> {
    if options.window == 0 {
        return Err(Error::InvalidOption("window must be at least 1"));
    }
    if content_id.is_empty()
        || !content_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(Error::InvalidOption(
            "content id must be letters, digits and '-'",
        ));
    }
    let flush_every = (options.window / 2).max(1);
    let per_request = options
        .chunks_per_request
        .clamp(1, MAX_CHUNKS_PER_REQUEST)
        .min(flush_every);
    let connections = (options.window / per_request).max(1);
    let mut conn = HttpConn::connect(endpoint).await?;
    // Open the other connections (TCP + TLS handshakes) while the manifest is fetched.
    let mut early: Vec<_> = (1..connections)
        .map(|_| {
            let ep = endpoint.clone();
            tokio::spawn(async move { HttpConn::connect(&ep).await.ok() })
        })
        .collect();
    let manifest_path = format!("/v1/content/{content_id}/manifest");
    let bytes = conn.get_all(endpoint, &manifest_path).await?;
    let manifest = SignedManifest::decode(&bytes, trusted, options.max_chunks)?;
    let mut part = PartFile::open(dest, manifest, trusted)?;
    let mut received = 0u64;
    let mut rejected = 0u64;
    progress(part.progress(0, 0, false));
    // The server holds a response in memory: bound it in bytes whatever the chunk size.
    let chunk_size = part.manifest().chunk_size().max(1);
    let per_request = per_request.min((MAX_REQUEST_BYTES / chunk_size).max(1));

    let mut missing = VecDeque::new();
    let count = part.manifest().chunk_count();
    let mut i = part.stored().first_clear_from(0);
    while i < count {
        let end = part.stored().first_set_from(i).min(i + per_request);
        missing.push_back((i, end - i));
        i = part.stored().first_clear_from(end);
    }
    let queue = Arc::new(Mutex::new(missing));
    let permits = Arc::new(Semaphore::new(options.window as usize));
    let manifest = Arc::new(part.manifest().clone());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut workers = JoinSet::new();
    if part.is_complete() {
        drop(conn);
        for handle in early {
            handle.abort();
        }
    } else {
        // The first worker reuses the connection that fetched the manifest; the others take
        // the ones opened meanwhile (or connect themselves if that failed).
        let mut first = Some(conn);
        for _ in 0..connections {
            let conn = match first.take() {
                Some(c) => Some(c),
                None => match early.pop() {
                    Some(handle) => handle.await.ok().flatten(),
                    None => None,
                },
            };
            workers.spawn(http_worker(
                Worker {
                    endpoint: endpoint.clone(),
                    prefix: format!("/v1/content/{content_id}/chunks/"),
                    manifest: manifest.clone(),
                    file: part.file().clone(),
                    part_path: PartFile::part_path(dest),
                    queue: queue.clone(),
                    permits: permits.clone(),
                    tx: tx.clone(),
                    options: options.clone(),
                },
                conn,
            ));
        }
    }
    drop(tx);
    let mut unpersisted = 0u32;
    let mut failure = None;
    let mut since_sync = 0u64;
    let mut syncing: Option<tokio::task::JoinHandle<io::Result<()>>> = None;
    while !part.is_complete() {
        // Drain what is ready without a timer; wait (bounded, to persist when idle) otherwise.
        let got = match rx.try_recv() {
            Ok(got) => Some(got),
            Err(mpsc::error::TryRecvError::Disconnected) => break,
            Err(mpsc::error::TryRecvError::Empty) if unpersisted == 0 => match rx.recv().await {
                Some(got) => Some(got),
                None => break,
            },
            Err(mpsc::error::TryRecvError::Empty) => {
                match tokio::time::timeout(Duration::from_millis(20), rx.recv()).await {
                    Ok(Some(got)) => Some(got),
                    Ok(None) => break,
                    Err(_) => None,
                }
            }
        };
        let idle = got.is_none();
        match got {
            Some(Got::Chunk { index, len }) => {
                received += len as u64;
                since_sync += len as u64;
                part.mark_stored(index);
                unpersisted += 1;
            }
            Some(Got::Rejected { index, len }) => {
                received += len as u64;
                rejected += 1;
                tracing::warn!(
                    index,
                    "chunk failed verification against the signed manifest: fetching it again"
                );
                permits.add_permits(1);
            }
            Some(Got::Failed(e)) => {
                failure = Some(e);
                break;
            }
            None => {}
        }
        if unpersisted > 0 && (unpersisted >= flush_every || idle || part.is_complete()) {
            part.persist()?;
            permits.add_permits(unpersisted as usize);
            unpersisted = 0;
        }
        if since_sync >= BACKGROUND_SYNC_BYTES
            && syncing
                .as_ref()
                .is_none_or(tokio::task::JoinHandle::is_finished)
        {
            since_sync = 0;
            let file = part.file().clone();
            syncing = Some(tokio::task::spawn_blocking(move || file.sync_data()));
        }
        if !idle {
            progress(part.progress(received, rejected, false));
        }
    }
    workers.abort_all();
    if let Some(sync) = syncing {
        let _ = sync.await;
    }
    if !part.is_complete() {
        part.persist()?;
        return Err(failure.unwrap_or(Error::Closed));
    }
    part.persist()?;
    if options.check_whole_file {
        part.check_whole_file()?;
    }
    let mut last = part.progress(received, rejected, true);
    part.finish()?;
    last.done = true;
    progress(last);
    Ok(FetchReport { progress: last })
}

enum Got {
    /// Verified and written to the part file.
    Chunk {
        index: u32,
        len: usize,
    },
    Rejected {
        index: u32,
        len: usize,
    },
    Failed(Error),
}

struct Worker {
    endpoint: HttpEndpoint,
    prefix: String,
    manifest: Arc<SignedManifest>,
    file: Arc<File>,
    part_path: PathBuf,
    queue: Arc<Mutex<VecDeque<(u32, u32)>>>,
    permits: Arc<Semaphore>,
    tx: mpsc::UnboundedSender<Got>,
    options: FetchOptions,
}

impl Worker {
    fn pop(&self) -> Option<(u32, u32)> {
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front()
    }

    fn push_front(&self, start: u32, count: u32) {
        if count > 0 {
            self.queue
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push_front((start, count));
        }
    }
}

async fn http_worker(w: Worker, mut conn: Option<HttpConn>) {
    let mut failures = 0u32;
    while let Some((start, count)) = w.pop() {
        if w.tx.is_closed() {
            return; // the download was dropped
        }
        let Ok(permit) = w.permits.acquire_many(count).await else {
            return;
        };
        permit.forget();
        if conn
            .as_ref()
            .is_some_and(|c| c.conn.is_none() || c.send.is_closed())
        {
            conn = None; // the server closed it after the last response: not a failure
        }
        let result = async {
            if conn.is_none() {
                conn = Some(
                    HttpConn::connect(&w.endpoint)
                        .await
                        .map_err(|e| (start, e))?,
                );
            }
            // INVARIANT: set just above.
            let c = conn.as_mut().expect("INVARIANT: connected");
            fetch_range(c, &w, start, count).await
        }
        .await;
        match result {
            Ok(()) => failures = 0,
            Err((next, e)) => {
                conn = None;
                let left = start + count - next.max(start);
                w.push_front(next.max(start), left);
                w.permits.add_permits(left as usize);
                if matches!(e, Error::File { .. }) {
                    // The disk, not the network: retrying will not help.
                    let _ = w.tx.send(Got::Failed(e));
                    return;
                }
                failures += 1;
                if failures >= w.options.max_failures {
                    let _ = w.tx.send(Got::Failed(Error::TooManyFailures {
                        attempts: failures,
                        last: e.to_string(),
                    }));
                    return;
                }
                tracing::debug!("content request failed ({e}); retrying");
                tokio::time::sleep(Duration::from_millis(50 * u64::from(failures))).await;
            }
        }
    }
}

/// Fetches chunks `start..start+count`; on error returns the first chunk not handled.
///
/// No copy: each body frame is hashed into the current chunk's SHA-256 and written at its
/// place in the part file as it arrives. A chunk is reported stored only once its digest
/// matched the signed one; until then its bytes in the part file are not named by the record
/// (a chunk that fails is fetched again and overwritten).
async fn fetch_range(
    conn: &mut HttpConn,
    w: &Worker,
    start: u32,
    count: u32,
) -> Result<(), (u32, Error)> {
    let path = format!("{}{start}?count={count}", w.prefix);
    let response = conn.get(&w.endpoint, &path).await.map_err(|e| (start, e))?;
    if !response.status().is_success() {
        return Err((
            start,
            Error::Status {
                status: response.status().as_u16(),
                path,
            },
        ));
    }
    let mut body = response.into_body();
    let mut index = start;
    let end = start + count;
    let mut hash = ring::digest::Context::new(&ring::digest::SHA256);
    let mut have = 0usize;
    while index < end {
        let frame = tokio::time::timeout(w.options.stall_timeout, conn.frame(&mut body)).await;
        let data = match frame {
            Ok(Ok(Some(Ok(frame)))) => match frame.into_data() {
                Ok(d) => d,
                Err(_) => continue,
            },
            Ok(Ok(Some(Err(e)))) => return Err((index, Error::Http(e.to_string()))),
            Ok(Ok(None)) => {
                return Err((index, Error::Http("response body ended early".into())));
            }
            Ok(Err(e)) => return Err((index, e)),
            Err(_) => return Err((index, Error::Http("response stalled".into()))),
        };
        if w.tx.is_closed() {
            // The download was dropped (cancelled): write nothing more.
            return Ok(());
        }
        let mut data: &[u8] = &data;
        while !data.is_empty() && index < end {
            let chunk_len = w.manifest.chunk_len(index);
            let take = (chunk_len - have).min(data.len());
            let (piece, rest) = data.split_at(take);
            hash.update(piece);
            w.file
                .write_all_at(piece, w.manifest.chunk_offset(index) + have as u64)
                .map_err(|e| (index, file_err(&w.part_path)(e)))?;
            have += take;
            data = rest;
            if have == chunk_len {
                let digest =
                    std::mem::replace(&mut hash, ring::digest::Context::new(&ring::digest::SHA256))
                        .finish();
                let ok = w
                    .manifest
                    .chunk_digests()
                    .get(index as usize)
                    .is_some_and(|d| digest.as_ref() == d);
                let got = if ok {
                    Got::Chunk {
                        index,
                        len: chunk_len,
                    }
                } else {
                    w.push_front(index, 1);
                    Got::Rejected {
                        index,
                        len: chunk_len,
                    }
                };
                if w.tx.send(got).is_err() {
                    return Ok(());
                }
                index += 1;
                have = 0;
            }
        }
        if !data.is_empty() {
            return Err((
                end,
                Error::Http("response body longer than the chunks asked for".into()),
            ));
        }
    }
    Ok(())
}

/// One keep-alive HTTP/1 connection. Its IO is driven on the task that uses it (no task of its
/// own): decrypting a body frame, hashing it and writing it then happen on one thread while the
/// frame is in that core's cache, with no cross-task hand-off per frame.
struct HttpConn {
    send: SendRequest<Empty<Bytes>>,
    /// `None` once the connection ended cleanly (the server closed it after a response).
    conn: Option<ConnDriver>,
}

type ConnDriver = Pin<Box<dyn Future<Output = hyper::Result<()>> + Send>>;

impl HttpConn {
    async fn connect(ep: &HttpEndpoint) -> Result<Self, Error> {
        let conn_err = |source| Error::Connection {
            addr: ep.addr,
            source,
        };
        let tcp = TcpStream::connect(ep.addr).await.map_err(conn_err)?;
        tcp.set_nodelay(true).map_err(conn_err)?;
        match &ep.tls {
            None => Self::handshake(tcp).await,
            Some((config, name)) => {
                let tls = TlsConnector::from(config.clone())
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(conn_err)?;
                Self::handshake(tls).await
            }
        }
    }

    async fn handshake<T>(io: T) -> Result<Self, Error>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| Error::Http(e.to_string()))?;
        Ok(Self {
            send,
            conn: Some(Box::pin(conn)),
        })
    }

    async fn get(
        &mut self,
        ep: &HttpEndpoint,
        path: &str,
    ) -> Result<hyper::Response<Incoming>, Error> {
        let mut request =
            hyper::Request::get(path).header(hyper::header::HOST, ep.addr.to_string());
        if let Some(signer) = &ep.signer {
            let value = signer
                .header("GET", path, unix_now())
                .map_err(|e| Error::Http(e.to_string()))?;
            request = request.header(AUTH_HEADER, value);
        }
        let request = request
            .body(Empty::new())
            .map_err(|e| Error::Http(e.to_string()))?;
        drive(&mut self.conn, self.send.ready())
            .await?
            .map_err(|e| Error::Http(e.to_string()))?;
        drive(&mut self.conn, self.send.send_request(request))
            .await?
            .map_err(|e| Error::Http(e.to_string()))
    }

    async fn get_all(&mut self, ep: &HttpEndpoint, path: &str) -> Result<Bytes, Error> {
        let response = self.get(ep, path).await?;
        if !response.status().is_success() {
            return Err(Error::Status {
                status: response.status().as_u16(),
                path: path.to_owned(),
            });
        }
        // Manifests are small: 32 bytes a chunk. Bound what we buffer anyway.
        let limited = http_body_util::Limited::new(response.into_body(), 4 << 20);
        Ok(drive(&mut self.conn, limited.collect())
            .await?
            .map_err(|e| Error::Http(e.to_string()))?
            .to_bytes())
    }

    /// The next frame of a response body on this connection.
    async fn frame(
        &mut self,
        body: &mut Incoming,
    ) -> Result<Option<Result<hyper::body::Frame<Bytes>, hyper::Error>>, Error> {
        drive(&mut self.conn, body.frame()).await
    }
}

/// Awaits `f` while polling the connection's IO on the same task. If the connection ends
/// cleanly first (a server that closes after each response), `f` is awaited alone: what the
/// connection already read is still delivered, and requests on it fail.
async fn drive<F: Future>(conn: &mut Option<ConnDriver>, f: F) -> Result<F::Output, Error> {
    tokio::pin!(f);
    if let Some(c) = conn.as_mut() {
        tokio::select! {
            biased;
            out = &mut f => return Ok(out),
            ended = c.as_mut() => {
                *conn = None;
                if let Err(e) = ended {
                    return Err(Error::Http(e.to_string()));
                }
            }
        }
    }
    Ok(f.await)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

// ---------------------------------------------------------------------------------------------
// Framed stream
// ---------------------------------------------------------------------------------------------

/// Frame header version for transfer messages on a stream.
pub(crate) const FRAME_VERSION: u8 = 1;

/// How [`send_framed`] (and `framed::send_framed_many`) sends.
#[derive(Debug, Clone)]
pub struct SendOptions {
    /// The sender machine's configuration (window, timeouts, bandwidth cap).
    pub config: Arc<SenderConfig>,
    /// A write the peer does not drain fails the send (`TimedOut`): while a frame waits, the
    /// peer must take at least `min_bytes_per_sec` × this many bytes within this long (a peer
    /// that stopped reading, or reads a trickle). The machine's own idle timeout cannot run
    /// while a write is blocked, so this is what bounds it. Default 30 s.
    pub write_timeout: Duration,
    /// See `write_timeout`. Default 1024.
    pub min_bytes_per_sec: u64,
    /// Most chunk bytes sent and not yet acknowledged on one connection: the window (in chunks)
    /// is lowered so that window × the largest chunk size fits. With chunks read from disk only
    /// as the socket takes them, this bounds what one connection holds in memory. Default
    /// 16 MiB (64 chunks of 256 KiB).
    pub max_in_flight_bytes: u64,
    /// Test hook: alters the first transmission of this chunk (with a valid message checksum),
    /// as an attacker on the path would. Never set it outside tests.
    #[doc(hidden)]
    pub danger_tamper_chunk_once: Option<u32>,
}

impl Default for SendOptions {
    fn default() -> Self {
        Self {
            config: Arc::new(SenderConfig::default()),
            write_timeout: Duration::from_secs(30),
            min_bytes_per_sec: 1024,
            max_in_flight_bytes: 16 << 20,
            danger_tamper_chunk_once: None,
        }
    }
}

impl SendOptions {
    /// The sender configuration with its window lowered so that `window` chunks of
    /// `largest_chunk` bytes fit in `max_in_flight_bytes`.
    pub(crate) fn sender_config(&self, largest_chunk: u32) -> Arc<SenderConfig> {
        let fits = self.max_in_flight_bytes / u64::from(largest_chunk.max(1));
        let window = u32::try_from(fits)
            .unwrap_or(u32::MAX)
            .clamp(1, self.config.window.max(1));
        if window == self.config.window {
            return self.config.clone();
        }
        Arc::new(SenderConfig {
            window,
            ..(*self.config).clone()
        })
    }

    /// Writes `bytes` whole and flushes, within the write deadline.
    pub(crate) async fn write<S: AsyncWrite + Unpin>(
        &self,
        stream: &mut S,
        bytes: &[u8],
    ) -> Result<(), Error> {
        let min_progress = self
            .min_bytes_per_sec
            .saturating_mul(self.write_timeout.as_secs())
            .max(1);
        write_with_deadline(stream, bytes, self.write_timeout, min_progress)
            .await
            .map_err(stream_err)
    }
}

/// Writes `bytes` whole, then flushes; fails with `TimedOut` when the peer takes fewer than
/// `min_progress` bytes within `timeout` while the write waits.
pub(crate) async fn write_with_deadline<S: AsyncWrite + Unpin>(
    stream: &mut S,
    bytes: &[u8],
    timeout: Duration,
    min_progress: u64,
) -> io::Result<()> {
    let stalled = || {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "the peer took less than {min_progress} bytes in {} s (write timeout)",
                timeout.as_secs()
            ),
        )
    };
    let mut deadline = tokio::time::Instant::now() + timeout;
    let (mut at, mut taken) = (0, 0u64);
    while at < bytes.len() {
        match tokio::time::timeout_at(deadline, stream.write(&bytes[at..])).await {
            Ok(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(Ok(n)) => {
                at += n;
                taken += n as u64;
                if taken >= min_progress {
                    taken = 0;
                    deadline = tokio::time::Instant::now() + timeout;
                }
            }
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(stalled()),
        }
    }
    tokio::time::timeout_at(deadline, stream.flush())
        .await
        .map_err(|_| stalled())?
}

/// What a framed send did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendReport {
    /// Chunks the receiver already held (resume).
    pub already_held: u32,
    /// Chunk data bytes sent, retransmissions included.
    pub chunk_bytes_sent: u64,
    /// Retransmissions.
    pub retransmissions: u64,
}

/// Sends `file` (described by `manifest`) over a framed stream and returns once the receiver
/// acknowledged every chunk as stored.
#[allow(clippy::too_many_lines)] // one run loop, read top to bottom
pub async fn send_framed<S>(
    stream: &mut S,
    manifest: SignedManifest,
    file: &Path,
    options: &SendOptions,
) -> Result<SendReport, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let source = File::open(file).map_err(file_err(file))?;
    let max_frame = frame_limit(manifest.chunk_count());
    let mut sender = Sender::new(options.sender_config(manifest.chunk_size()), Instant::now());
    sender
        .offer(Instant::now(), manifest, ChunkSource::OnDemand, None)
        .map_err(|e| Error::Http(e.to_string()))?;
    let mut tamper = options.danger_tamper_chunk_once;
    let mut decoder = FrameDecoder::new(max_frame);
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let mut chunk = Vec::new();
    let mut input = vec![0u8; 64 * 1024];
    let mut already_held = 0;
    loop {
        let mut completed = false;
        while let Some(event) = sender.poll_event() {
            match event {
                SenderEvent::ChunkNeeded {
                    transfer,
                    index,
                    offset,
                    len,
                } => {
                    chunk.resize(len, 0);
                    source
                        .read_exact_at(&mut chunk, offset)
                        .map_err(file_err(file))?;
                    sender
                        .provide_chunk(Instant::now(), transfer, index, &chunk)
                        .map_err(|e| Error::Http(e.to_string()))?;
                }
                SenderEvent::Accepted {
                    already_held: n, ..
                } => already_held = n,
                SenderEvent::Completed { .. } => completed = true,
                SenderEvent::Failed { reason, .. } | SenderEvent::Closed { reason } => {
                    return Err(reason.into());
                }
                _ => {}
            }
        }
        while sender.poll_transmit(&mut buf).is_some() {
            if let Some(target) = tamper {
                if let Ok(Message::Chunk {
                    transfer,
                    index,
                    seq,
                    data,
                }) = Message::decode(&buf)
                {
                    if index == target {
                        let mut bad = data.to_vec();
                        if let Some(b) = bad.first_mut() {
                            *b ^= 0xff;
                        }
                        let mut forged = Vec::new();
                        Message::Chunk {
                            transfer,
                            index,
                            seq,
                            data: &bad,
                        }
                        .encode(&mut forged);
                        buf = forged;
                        tamper = None;
                    }
                }
            }
            // One frame at a time, each within the write deadline: nothing piles up here.
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
        if completed {
            let stats = sender.stats();
            let _ = stream.shutdown().await;
            return Ok(SendReport {
                already_held,
                chunk_bytes_sent: stats.chunk_bytes_sent,
                retransmissions: stats.retransmissions,
            });
        }
        let deadline = sender.poll_timeout();
        tokio::select! {
            read = stream.read(&mut input) => match read {
                Ok(0) => return Err(Error::Closed),
                Ok(n) => feed(&mut decoder, &input[..n], |m| { let _ = sender.handle_input(Instant::now(), m); })?,
                Err(e) => return Err(stream_err(e)),
            },
            () = sleep_until(deadline) => sender.handle_timeout(Instant::now()),
        }
    }
}

/// How [`receive_framed`] receives.
#[derive(Debug, Clone)]
pub struct ReceiveOptions {
    /// The receiver machine's configuration (trusted keys, window, limits).
    pub config: Arc<ReceiverConfig>,
}

/// Receives one file over a framed stream into `dest` (through `dest.part`), resuming a
/// previous partial download of the same signed manifest. Further offers on the connection are
/// refused. Returns once `dest` holds the verified file.
#[allow(clippy::too_many_lines)] // one run loop, read top to bottom
pub async fn receive_framed<S>(
    stream: &mut S,
    dest: &Path,
    options: &ReceiveOptions,
    mut progress: impl FnMut(Progress),
) -> Result<FetchReport, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let config = &options.config;
    let mut receiver = Receiver::new(config.clone(), Instant::now());
    // Re-verify what an earlier run's record claims before telling the sender what we hold:
    // opening the part file drops chunks that fail and rewrites the record.
    let mut resumed = None;
    if let Some(partial) = PartFile::load_partial(dest, &config.trusted_keys, config.max_chunks) {
        let file = PartFile::open(dest, partial.manifest().clone(), &config.trusted_keys)?;
        if let Some(checked) = PartFile::load_partial(dest, &config.trusted_keys, config.max_chunks)
        {
            receiver.add_partial(checked);
        }
        resumed = Some(file);
    }
    let flush_every = (config.max_window / 2).max(1) as usize;
    let mut decoder = FrameDecoder::new(frame_limit(config.max_chunks));
    let mut part: Option<(TransferId, PartFile)> = None;
    let mut pending: Vec<u32> = Vec::new();
    let (mut received, mut rejected) = (0u64, 0u64);
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let mut input = vec![0u8; 256 * 1024];
    let mut completed = false;
    loop {
        while let Some(event) = receiver.poll_event() {
            match event {
                ReceiverEvent::Offered {
                    transfer, manifest, ..
                } => {
                    if part.is_some() {
                        let _ = receiver.cancel(Instant::now(), transfer);
                        continue;
                    }
                    let file = match resumed.take() {
                        Some(file) if file.manifest().as_bytes() == manifest.as_bytes() => file,
                        _ => PartFile::open(dest, manifest, &config.trusted_keys)?,
                    };
                    progress(file.progress(received, rejected, false));
                    part = Some((transfer, file));
                }
                ReceiverEvent::ChunkVerified {
                    transfer,
                    index,
                    data,
                    ..
                } => {
                    if let Some((_, file)) = part.as_mut().filter(|(t, _)| *t == transfer) {
                        received += data.len() as u64;
                        file.write_chunk(index, &data)?;
                        pending.push(index);
                        progress(file.progress(received, rejected, false));
                    }
                }
                ReceiverEvent::ChunkRejected { index, .. } => {
                    rejected += 1;
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
                    completed = part.as_ref().is_some_and(|(t, _)| *t == transfer);
                }
                ReceiverEvent::Failed { transfer, reason }
                    if part.as_ref().is_some_and(|(t, _)| *t == transfer) =>
                {
                    return Err(reason.into());
                }
                ReceiverEvent::Closed { reason } => return Err(reason.into()),
                _ => {}
            }
        }
        if pending.len() >= flush_every {
            flush_pending(&mut receiver, &mut part, &mut pending)?;
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
        if completed {
            // INVARIANT: `completed` is set only for the transfer held in `part`.
            let (_, file) = part
                .take()
                .expect("INVARIANT: completed transfer has a file");
            let mut last = file.progress(received, rejected, true);
            file.finish()?;
            last.stored_bytes = last.total_bytes;
            progress(last);
            let _ = stream.shutdown().await;
            return Ok(FetchReport { progress: last });
        }
        let deadline = receiver.poll_timeout();
        tokio::select! {
            biased;
            read = stream.read(&mut input) => match read {
                Ok(0) => {
                    flush_pending(&mut receiver, &mut part, &mut pending)?;
                    return Err(Error::Closed);
                }
                Ok(n) => feed(&mut decoder, &input[..n], |m| { let _ = receiver.handle_input(Instant::now(), m); })?,
                Err(e) => {
                    flush_pending(&mut receiver, &mut part, &mut pending)?;
                    return Err(stream_err(e));
                }
            },
            () = tokio::task::yield_now(), if !pending.is_empty() => {
                // Nothing more to read right now: make what arrived durable and acknowledge it.
                flush_pending(&mut receiver, &mut part, &mut pending)?;
            }
            () = sleep_until(deadline) => receiver.handle_timeout(Instant::now()),
        }
    }
}

fn flush_pending(
    receiver: &mut Receiver,
    part: &mut Option<(TransferId, PartFile)>,
    pending: &mut Vec<u32>,
) -> Result<(), Error> {
    let Some((transfer, file)) = part.as_mut() else {
        pending.clear();
        return Ok(());
    };
    if pending.is_empty() {
        return Ok(());
    }
    file.persist()?;
    for index in pending.drain(..) {
        let _ = receiver.chunk_stored(Instant::now(), *transfer, index);
    }
    Ok(())
}

pub(crate) fn frame_limit(max_chunks: u32) -> u32 {
    MAX_CHUNK_SIZE.max(max_chunks.saturating_mul(32)) + 4096
}

pub(crate) fn feed(
    decoder: &mut FrameDecoder,
    mut input: &[u8],
    mut on_message: impl FnMut(&[u8]),
) -> Result<(), Error> {
    while !input.is_empty() {
        let (used, frame) = decoder
            .decode(input)
            .map_err(|e| Error::Transfer(TransferError::Decode(e)))?;
        if let Some(frame) = frame {
            on_message(frame.body);
        }
        input = &input[used..];
    }
    Ok(())
}

pub(crate) fn stream_err(e: io::Error) -> Error {
    Error::Connection {
        addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        source: e,
    }
}

pub(crate) async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: [u8; 16] = [
        0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd,
        0xef,
    ];
    const NONCE: [u8; 16] = [
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee,
        0xff,
    ];
    const PATH: &str = "/v1/content/1/chunks/16?count=16";

    fn signer() -> RequestSigner {
        RequestSigner::new(ID, &[0x42; 32])
    }

    fn verifier() -> [u8; 32] {
        let key = Ed25519KeyPair::from_seed_unchecked(&[0x42; 32]).unwrap();
        ring::signature::KeyPair::public_key(&key)
            .as_ref()
            .try_into()
            .unwrap()
    }

    /// The example in docs/PROTOCOL.md ("Over HTTP and HTTPS").
    #[test]
    fn request_header_matches_the_protocol_example() {
        let header = signer().header_with_nonce("GET", PATH, 1_700_000_000, NONCE);
        assert_eq!(
            header,
            "0123456789abcdef0123456789abcdef.1700000000.00112233445566778899aabbccddeeff.\
             ffd298ef2c424dd9aebd5b8691f20997f636d2f72d700c5485d88f0ed742f3fa\
             1d3c26af4e5adbedfabc59df9e492ad44b712d1535c5b5a81913ebdb7dba420a"
        );
    }

    #[test]
    fn signature_binds_method_path_query_time_and_nonce() {
        let header = signer().header_with_nonce("GET", PATH, 1_700_000_000, NONCE);
        let auth = RequestAuth::parse(&header).unwrap();
        assert_eq!(auth.nonce, NONCE);
        assert_eq!(
            auth.verify("GET", PATH, 1_700_000_100, 300, &verifier()),
            Ok(())
        );
        for (method, path) in [
            ("HEAD", PATH),
            ("GET", "/v1/content/1/chunks/16?count=64"),
            ("GET", "/v1/content/1/chunks/17?count=16"),
            ("GET", "/v1/content/2/chunks/16?count=16"),
        ] {
            assert_eq!(
                auth.verify(method, path, 1_700_000_000, 300, &verifier()),
                Err(AuthError::BadSignature),
                "{method} {path}"
            );
        }
        let mut other_nonce = auth.clone();
        other_nonce.nonce[0] ^= 1;
        assert_eq!(
            other_nonce.verify_signature("GET", PATH, &verifier()),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            auth.verify("GET", PATH, 1_700_000_301, 300, &verifier()),
            Err(AuthError::Stale {
                skew_secs: 301,
                limit_secs: 300
            })
        );
    }

    #[test]
    fn fresh_headers_differ_and_old_three_field_headers_are_malformed() {
        let a = signer().header("GET", PATH, 1).unwrap();
        let b = signer().header("GET", PATH, 1).unwrap();
        assert_ne!(a, b, "every header has its own nonce");
        let (id, rest) = a.split_once('.').unwrap();
        let (secs, rest) = rest.split_once('.').unwrap();
        let (_, sig) = rest.split_once('.').unwrap();
        assert_eq!(
            RequestAuth::parse(&format!("{id}.{secs}.{sig}")),
            Err(AuthError::Malformed)
        );
        for bad in ["", "....", "x.1.y.z", &a.replace('.', ".+")] {
            assert_eq!(RequestAuth::parse(bad), Err(AuthError::Malformed), "{bad}");
        }
    }
}
