//! # fleetwire-transfer
//!
//! Chunked file transfer from the server to players (requirement S1) and the player's watchdog
//! (S6), as sans-IO state machines: no sockets, no files, no clock, no threads, no async. The
//! same machines run over a framed stream, HTTP requests or datagrams, because one message is
//! one `&[u8]` (a frame body, an HTTP body, a datagram) and the machine never asks what
//! carried it.
//!
//! ## What it does
//! - [`Manifest`]: file id, version, kind (configuration or media), length, chunk size, a
//!   SHA-256 digest per chunk and for the whole file, signed with the server's Ed25519
//!   content-signing key ([`ContentSigner`], via ring). The player verifies every chunk against
//!   the signed manifest, so even over plain HTTP a tampered chunk is rejected and fetched
//!   again, and a forged manifest is refused.
//!   SHA-256 rather than BLAKE3: ring already provides it (no new dependency in the player's
//!   trust base), it is hardware-accelerated on the `ARMv8` and x86 chips players run on, and
//!   Python's `hashlib` and Kotlin's `MessageDigest` verify it with no extra library. Chunks
//!   are hashed independently, so BLAKE3's tree parallelism would buy little here.
//! - [`Sender`] and [`Receiver`]: every chunk is acknowledged; a negotiated window of
//!   unacknowledged chunks (1 is the seed protocol's lock-step); selective acknowledgement; a
//!   retransmission timeout from measured round trips (RFC 6298) with exponential backoff; loss
//!   detected from later acknowledgements; each transmission numbered so every acknowledgement
//!   gives a clean RTT sample. Chunks are never sent while acknowledged, so a duplicated or
//!   reordered acknowledgement never triggers a resend storm.
//! - Resume: [`Receiver::partial`] is a serializable record ([`Partial`]) of the signed manifest
//!   and a bitmap of stored chunks; a new receiver given it ([`Receiver::add_partial`]) tells
//!   the sender in its `Accept` which chunks not to send. A newer version discards the partial.
//! - Many transfers on one connection, configuration before media, a token-bucket bandwidth
//!   cap per transfer and per connection, cancel from either side.
//! - Delta: a receiver that holds an older version ([`Receiver::hold`]) reuses the chunks whose
//!   digests match ([`ReceiverEvent::CopyChunk`]), and refuses older versions (no rollback).
//! - [`Watchdog`]: keeps last-known-good signed manifests, verifies files at rest, falls back
//!   and asks for a fresh copy, with a cap on restore attempts.
//!
//! ## The contract (every machine in fleetwire has this shape)
//! - Inputs: `handle_input(now, message)` for each message from the peer, `handle_timeout(now)`
//!   when `poll_timeout()` is reached (early calls are no-ops), `handle_close(now)` when the
//!   transport ended (the peer closed it or it broke), and application commands (`offer`,
//!   `provide_chunk`, `chunk_stored`, `cancel`, …).
//! - Outputs: after every input, drain `poll_transmit(&mut buf)`, `poll_event()` (act on it)
//!   and read `poll_timeout()`, until each is empty. `poll_transmit` **appends** one whole
//!   message to `buf` (what `buf` held is kept) and returns a [`Transmit`] with its length:
//!   send `buf[buf.len() - len..]` as one message (a frame body, an HTTP body, a datagram), or
//!   gather several into one write when the transport frames them. It is the suite's one
//!   `fleetwire_core::Transmit`; the transfer a message belongs to is inside the message
//!   ([`Message::decode`]), and no driver needs it. [`Message::encode`] appends the same way.
//! - File data never lives in the machine: the sender asks for chunks
//!   ([`SenderEvent::ChunkNeeded`] → [`Sender::provide_chunk`]) or is given the file in memory
//!   ([`ChunkSource::Memory`]); the receiver hands out verified chunks
//!   ([`ReceiverEvent::ChunkVerified`]), the application writes them and reports durability
//!   ([`Receiver::chunk_stored`]); only then is the chunk acknowledged.
//! - A message that fails to decode (bad checksum, truncated) is dropped and returned as an
//!   `Err`; the connection goes on. A per-transfer failure yields exactly one
//!   `Failed { transfer, reason }`. When the connection ends (a fatal error, the idle timeout,
//!   or `handle_close`), every open transfer gets its own `Failed` with the connection's reason
//!   ([`TransferError::ConnectionLost`] for `handle_close`), then exactly one
//!   `Closed { reason }` comes last; later inputs are no-ops. So every transfer ends with
//!   exactly one terminal event (`Completed`, `Failed` or the sender's `Cancelled`). A
//!   receiver keeps its resume records after the close ([`Receiver::partial`]): persist them
//!   and a new connection resumes where this one stopped.
//! - Time and randomness are parameters; everything in and out is plain data.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::{Duration, Instant};
//! use fleetwire_transfer::*;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let signer = ContentSigner::from_seed(&[42; 32]);
//! let file: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
//! let manifest = Manifest::build(FileKind::Media, 7, 1, 4096, &file)?.sign(&signer);
//!
//! # #[allow(clippy::disallowed_methods)]
//! let mut now = Instant::now(); // a driver's clock; tests use virtual time
//! let mut sender = Sender::new(Arc::new(SenderConfig::default()), now);
//! let config = ReceiverConfig::new(vec![signer.public_key()]);
//! let mut receiver = Receiver::new(Arc::new(config), now);
//! let id = sender.offer(now, manifest, ChunkSource::OnDemand, None)?;
//!
//! let mut disk = vec![0u8; file.len()];
//! let mut buf = Vec::new();
//! let mut done = false;
//! while !done {
//!     // Sender: answer events, send what it has (here straight into the receiver).
//!     while let Some(ev) = sender.poll_event() {
//!         match ev {
//!             SenderEvent::ChunkNeeded { transfer, index, offset, len } => {
//!                 let o = offset as usize;
//!                 sender.provide_chunk(now, transfer, index, &file[o..o + len])?;
//!             }
//!             SenderEvent::Completed { .. } => done = true,
//!             _ => {}
//!         }
//!     }
//!     while let Some(transmit) = sender.poll_transmit(&mut buf) {
//!         let message = &buf[buf.len() - transmit.len..]; // appended: one whole message
//!         let _ = receiver.handle_input(now, message);
//!     }
//!     buf.clear();
//!     // Receiver: write verified chunks, report them stored, send acknowledgements back.
//!     while let Some(ev) = receiver.poll_event() {
//!         if let ReceiverEvent::ChunkVerified { transfer, index, offset, data } = ev {
//!             disk[offset as usize..offset as usize + data.len()].copy_from_slice(&data);
//!             receiver.chunk_stored(now, transfer, index)?;
//!         }
//!     }
//!     while let Some(transmit) = receiver.poll_transmit(&mut buf) {
//!         let _ = sender.handle_input(now, &buf[buf.len() - transmit.len..]);
//!     }
//!     buf.clear();
//!     now += Duration::from_millis(1);
//!     if sender.poll_timeout().is_some_and(|t| t <= now) {
//!         sender.handle_timeout(now);
//!     }
//! }
//! assert_eq!(disk, file);
//! assert_eq!(sender.progress(id), None); // finished transfers are forgotten
//! # Ok(())
//! # }
//! ```

mod bucket;
mod error;
mod manifest;
mod message;
mod ranges;
mod receiver;
mod rtt;
mod sender;
mod watchdog;

pub use bucket::RateLimit;
pub use error::{ApiMisuse, RejectReason, TransferError};
pub use fleetwire_core::Transmit;
pub use manifest::{
    ContentSigner, DEFAULT_MAX_CHUNKS, DIGEST_LEN, Digest, FileKind, MAX_CHUNK_SIZE, Manifest,
    ManifestBuilder, PublicKey, SIGNATURE_LEN, SignedManifest, decode_unverified, sha256,
};
pub use message::{CHUNK_OVERHEAD, MAX_SACK_RANGES, Message, PROTOCOL_VERSION};
pub use ranges::{Bitmap, ChunkSet};
pub use receiver::{
    Partial, Receiver, ReceiverConfig, ReceiverEvent, ReceiverState, ReceiverStats,
};
pub use sender::{ChunkSource, Sender, SenderConfig, SenderEvent, SenderState, SenderStats};
pub use watchdog::{
    FileCheck, Watchdog, WatchdogConfig, WatchdogEvent, WatchdogState, WatchdogStats,
};

/// A transfer on one connection (assigned by the sender).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TransferId(pub u32);
