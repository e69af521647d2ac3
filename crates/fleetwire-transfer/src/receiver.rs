//! The receiver machine (player side): verifies offers and every chunk against the signed
//! manifest, hands verified chunks to the application, acknowledges what the application
//! stored, resumes from a saved bitmap, and reuses chunks of older versions it holds.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleetwire_wire::{DecodeError, Reader, Writer};

use crate::error::{ApiMisuse, RejectReason, TransferError};
use crate::manifest::{DEFAULT_MAX_CHUNKS, Digest, PublicKey, SignedManifest, sha256};
use crate::message::{MAX_SACK_RANGES, Message};
use crate::ranges::{Bitmap, ChunkSet};
use crate::{TransferId, Transmit};

/// How a receiver behaves.
#[derive(Debug, Clone)]
pub struct ReceiverConfig {
    /// Content-signing keys whose manifests are accepted.
    pub trusted_keys: Vec<PublicKey>,
    /// Largest window the receiver agrees to (chunks verified but not yet stored are bounded by
    /// twice this).
    pub max_window: u32,
    /// Largest manifest accepted, in chunks.
    pub max_chunks: u32,
    /// Most transfers open at once on one connection.
    pub max_transfers: usize,
    /// With a transfer incomplete and nothing from the peer for this long, the connection
    /// closes (keep the partials: a later connection resumes them).
    pub idle_timeout: Duration,
}

impl ReceiverConfig {
    /// Defaults trusting `trusted_keys`.
    pub fn new(trusted_keys: Vec<PublicKey>) -> Self {
        Self {
            trusted_keys,
            max_window: 256,
            max_chunks: DEFAULT_MAX_CHUNKS,
            max_transfers: 16,
            idle_timeout: Duration::from_secs(120),
        }
    }
}

/// What the receiver tells the application.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReceiverEvent {
    /// A signed offer was accepted. Open (or create) the partial file for it, and persist
    /// [`Receiver::partial`] as chunks are stored so a restart can resume.
    Offered {
        /// The transfer.
        transfer: TransferId,
        /// The verified manifest.
        manifest: SignedManifest,
        /// Chunks already held from a resumed partial.
        resumed: u32,
    },
    /// A partial of an older version was dropped: delete its file.
    PartialDiscarded {
        /// The file.
        file_id: u64,
        /// The dropped version.
        version: u64,
    },
    /// Delta: chunk `index` of the new version equals the bytes at `from_offset` of a version
    /// the player holds. Read them and pass them to [`Receiver::local_chunk`] (they are checked
    /// again; pass an empty slice if they cannot be read).
    CopyChunk {
        /// The transfer.
        transfer: TransferId,
        /// Chunk of the new version.
        index: u32,
        /// The held file.
        from_file_id: u64,
        /// The held version.
        from_version: u64,
        /// Where the bytes are in the held file.
        from_offset: u64,
        /// How many bytes.
        len: usize,
    },
    /// A chunk matched its signed digest. Write `data` at `offset`, then call
    /// [`Receiver::chunk_stored`] once it is durable.
    ChunkVerified {
        /// The transfer.
        transfer: TransferId,
        /// Chunk index.
        index: u32,
        /// Byte offset in the file.
        offset: u64,
        /// The verified bytes.
        data: Vec<u8>,
    },
    /// A chunk did not match its signed digest and was dropped (it will be sent again).
    /// A security event: log it.
    ChunkRejected {
        /// The transfer.
        transfer: TransferId,
        /// Chunk index.
        index: u32,
    },
    /// Every chunk is stored and verified: the file is complete and is the server's.
    Completed {
        /// The transfer.
        transfer: TransferId,
        /// The file.
        file_id: u64,
        /// Its version.
        version: u64,
    },
    /// The transfer ended without the file (rejected offer, cancel, or the connection ended:
    /// then `reason` is the connection's, as in [`ReceiverEvent::Closed`], and
    /// [`Receiver::partial`] still gives the resume record). Exactly one terminal event per
    /// transfer.
    Failed {
        /// The transfer.
        transfer: TransferId,
        /// Why.
        reason: TransferError,
    },
    /// The connection is over; every incomplete transfer ended with it, each with its own
    /// [`ReceiverEvent::Failed`] just before. Emitted once; the last event. Partials stay
    /// valid for a later connection, and [`Receiver::partial`] still gives them.
    Closed {
        /// Why.
        reason: TransferError,
    },
}

/// Whether the receiver is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiverState {
    /// Running.
    Open,
    /// Closed; inputs are no-ops.
    Closed,
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReceiverStats {
    /// Messages sent.
    pub messages_sent: u64,
    /// Bytes of all messages sent.
    pub bytes_sent: u64,
    /// Chunk messages received.
    pub chunks_received: u64,
    /// Chunk messages for chunks already held or pending (duplicates, retransmissions).
    pub duplicate_chunks: u64,
    /// Chunks that failed verification.
    pub rejected_chunks: u64,
    /// Chunks dropped because too many were awaiting storage.
    pub overrun_chunks: u64,
    /// Chunks reused from a held older version.
    pub reused_chunks: u64,
    /// Messages that failed to decode and were dropped.
    pub messages_dropped: u64,
}

/// A resumable partial download: the signed manifest and which chunks are stored. Persist it
/// ([`Partial::encode`]) and give it back to a new receiver ([`Receiver::add_partial`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partial {
    manifest: SignedManifest,
    stored: Bitmap,
}

const PARTIAL_MAGIC: &[u8; 4] = b"FWRP";

impl Partial {
    /// The manifest being downloaded.
    pub fn manifest(&self) -> &SignedManifest {
        &self.manifest
    }

    /// Chunks stored.
    pub fn stored(&self) -> &Bitmap {
        &self.stored
    }

    /// Encodes as `"FWRP" | format:u8=1 | manifest:bytes_varint | bitmap`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = Writer::new(&mut out);
        w.bytes(PARTIAL_MAGIC);
        w.u8(1);
        w.bytes_varint(self.manifest.as_bytes());
        self.stored.encode(&mut w);
        out
    }

    /// Decodes a saved partial, verifying the manifest signature again (the disk is not
    /// trusted more than the network).
    pub fn decode(
        bytes: &[u8],
        trusted: &[PublicKey],
        max_chunks: u32,
    ) -> Result<Self, TransferError> {
        let mut r = Reader::new(bytes);
        if r.array::<4>("partial magic")? != *PARTIAL_MAGIC || r.u8("partial format")? != 1 {
            return Err(DecodeError::InvalidValue {
                field: "partial header",
                reason: "not a fleetwire partial (format 1)",
            }
            .into());
        }
        let manifest = SignedManifest::decode(r.bytes_varint("manifest")?, trusted, max_chunks)?;
        let stored = Bitmap::decode(&mut r)?;
        r.finish()?;
        if stored.len() != manifest.chunk_count() {
            return Err(TransferError::BadManifest(
                "partial bitmap length differs from the chunk count",
            ));
        }
        Ok(Self { manifest, stored })
    }
}

#[derive(Debug)]
struct Rx {
    manifest: SignedManifest,
    stored: Bitmap,
    /// Verified, handed to the application, not yet stored: chunk → transmission to ack
    /// (`None` for a local delta copy).
    pending_store: BTreeMap<u32, Option<u64>>,
    /// Delta copies asked of the application.
    pending_local: BTreeSet<u32>,
    accepted: bool,
    window: u32,
    cumulative: u32,
    highest_stored: u32,
    complete: bool,
}

/// The receiving side of one connection.
///
/// See the [crate docs](crate) for the run loop.
#[derive(Debug)]
pub struct Receiver {
    config: Arc<ReceiverConfig>,
    now: Instant,
    state: ReceiverState,
    transfers: BTreeMap<u32, Rx>,
    partials: HashMap<u64, Partial>,
    held: HashMap<u64, SignedManifest>,
    out: VecDeque<(u32, OutMsg)>,
    events: VecDeque<ReceiverEvent>,
    last_heard: Instant,
    stats: ReceiverStats,
}

#[derive(Debug, Clone)]
enum OutMsg {
    Accept,
    Reject(RejectReason),
    Ack { index: u32, seq: u64 },
    Cancel,
}

impl Receiver {
    /// A receiver for one connection.
    pub fn new(config: Arc<ReceiverConfig>, now: Instant) -> Self {
        Self {
            config,
            now,
            state: ReceiverState::Open,
            transfers: BTreeMap::new(),
            partials: HashMap::new(),
            held: HashMap::new(),
            out: VecDeque::new(),
            events: VecDeque::new(),
            last_heard: now,
            stats: ReceiverStats::default(),
        }
    }

    /// A partial download saved by an earlier run. An offer of the same signed manifest resumes
    /// it; an offer of a newer version discards it.
    pub fn add_partial(&mut self, partial: Partial) {
        self.partials.insert(partial.manifest.file_id(), partial);
    }

    /// A complete file version the player holds: offers of older versions are refused
    /// (no rollback), and a newer version reuses its matching chunks (delta).
    pub fn hold(&mut self, manifest: SignedManifest) {
        self.held.insert(manifest.file_id(), manifest);
    }

    /// The resume record of a transfer of this connection: persist it after storing chunks.
    /// It stays available after the transfer ended with the connection (`Failed` with the
    /// connection's reason, then `Closed`), and counts chunks stored after that.
    pub fn partial(&self, transfer: TransferId) -> Option<Partial> {
        self.transfers.get(&transfer.0).map(|rx| Partial {
            manifest: rx.manifest.clone(),
            stored: rx.stored.clone(),
        })
    }

    /// The application stored chunk `index` durably (answering
    /// [`ReceiverEvent::ChunkVerified`]). The chunk is acknowledged now. After the connection
    /// closed, the chunk only joins the resume record ([`Receiver::partial`]).
    pub fn chunk_stored(
        &mut self,
        now: Instant,
        transfer: TransferId,
        index: u32,
    ) -> Result<(), ApiMisuse> {
        self.tick(now);
        let rx = self
            .transfers
            .get_mut(&transfer.0)
            .ok_or(ApiMisuse::UnknownTransfer(transfer.0))?;
        let Some(seq) = rx.pending_store.remove(&index) else {
            return Ok(());
        };
        rx.stored.insert(index);
        rx.highest_stored = rx.highest_stored.max(index);
        rx.cumulative = rx.stored.first_clear_from(rx.cumulative);
        if self.state == ReceiverState::Closed {
            return Ok(());
        }
        match seq {
            Some(seq) => self.out.push_back((transfer.0, OutMsg::Ack { index, seq })),
            None => self.maybe_accept(transfer.0),
        }
        self.maybe_complete(transfer.0);
        Ok(())
    }

    /// The bytes of a delta copy (answering [`ReceiverEvent::CopyChunk`]); empty if they could
    /// not be read. Bytes that do not match are fetched from the sender instead.
    pub fn local_chunk(
        &mut self,
        now: Instant,
        transfer: TransferId,
        index: u32,
        data: &[u8],
    ) -> Result<(), ApiMisuse> {
        if self.state == ReceiverState::Closed {
            // Answers an event handed out before the close; a new connection asks again.
            return Ok(());
        }
        self.tick(now);
        let rx = self
            .transfers
            .get_mut(&transfer.0)
            .ok_or(ApiMisuse::UnknownTransfer(transfer.0))?;
        if !rx.pending_local.remove(&index) {
            return Ok(());
        }
        if rx.manifest.chunk_matches(index, data) {
            self.stats.reused_chunks += 1;
            rx.pending_store.insert(index, None);
            self.events.push_back(ReceiverEvent::ChunkVerified {
                transfer,
                index,
                offset: rx.manifest.chunk_offset(index),
                data: data.to_vec(),
            });
        } else {
            self.maybe_accept(transfer.0);
        }
        Ok(())
    }

    /// Cancels a transfer; the sender is told. Keep the partial to resume later, or delete it.
    pub fn cancel(&mut self, now: Instant, transfer: TransferId) -> Result<(), ApiMisuse> {
        if self.state == ReceiverState::Closed {
            return Err(ApiMisuse::Closed);
        }
        self.tick(now);
        if self.transfers.remove(&transfer.0).is_none() {
            return Err(ApiMisuse::UnknownTransfer(transfer.0));
        }
        self.out.push_back((transfer.0, OutMsg::Cancel));
        self.events.push_back(ReceiverEvent::Failed {
            transfer,
            reason: TransferError::Cancelled,
        });
        Ok(())
    }

    /// One message from the sender. A message that fails to decode or verify is dropped and
    /// reported as `Err`; the connection goes on.
    pub fn handle_input(&mut self, now: Instant, data: &[u8]) -> Result<(), TransferError> {
        if self.state == ReceiverState::Closed {
            return Ok(());
        }
        self.tick(now);
        let msg = match Message::decode(data) {
            Ok(m) => m,
            Err(e) => {
                self.stats.messages_dropped += 1;
                return Err(e.into());
            }
        };
        self.last_heard = now;
        match msg {
            Message::Offer {
                transfer,
                window,
                manifest,
            } => self.on_offer(transfer, window, manifest),
            Message::Chunk {
                transfer,
                index,
                seq,
                data,
            } => self.on_chunk(transfer, index, seq, data),
            Message::Cancel { transfer } => {
                // A complete transfer already had its terminal event (`Completed`): a late
                // cancel (the sender gave up as the last ack was lost) must not fail it too.
                if self
                    .transfers
                    .remove(&transfer)
                    .is_some_and(|rx| !rx.complete)
                {
                    self.events.push_back(ReceiverEvent::Failed {
                        transfer: TransferId(transfer),
                        reason: TransferError::PeerCancelled,
                    });
                }
                Ok(())
            }
            Message::Accept { .. } | Message::Reject { .. } | Message::Ack { .. } => {
                Err(TransferError::Protocol("sender sent a receiver's message"))
            }
        }
    }

    /// Time passed. Early or spurious calls are no-ops.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == ReceiverState::Closed {
            return;
        }
        self.tick(now);
        if self.has_work() && now >= self.last_heard + self.config.idle_timeout {
            self.close(TransferError::IdleTimeout {
                millis: self.config.idle_timeout.as_millis() as u64,
            });
        }
    }

    /// The transport ended: the peer closed it or it broke. Every incomplete transfer ends
    /// with one [`ReceiverEvent::Failed`] carrying [`TransferError::ConnectionLost`], then the
    /// receiver closes with one [`ReceiverEvent::Closed`]; nothing more is sent. The resume
    /// records stay ([`Receiver::partial`]): persist them, and a new connection resumes. No-op
    /// if already closed.
    pub fn handle_close(&mut self, now: Instant) {
        if self.state == ReceiverState::Closed {
            return;
        }
        self.tick(now);
        self.close(TransferError::ConnectionLost);
    }

    /// Appends the next message to send to `buf` (what `buf` held is kept) and returns its
    /// length: send `buf[buf.len() - len..]` as one message.
    #[must_use]
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<Transmit> {
        let start = buf.len();
        loop {
            let (transfer, msg) = self.out.pop_front()?;
            match msg {
                OutMsg::Reject(reason) => Message::Reject {
                    transfer,
                    reason: reason.code(),
                }
                .encode(buf),
                OutMsg::Cancel => Message::Cancel { transfer }.encode(buf),
                OutMsg::Accept => {
                    let Some(rx) = self.transfers.get(&transfer) else {
                        continue;
                    };
                    Message::Accept {
                        transfer,
                        window: rx.window,
                        have: rx.stored.to_set(),
                    }
                    .encode(buf);
                }
                OutMsg::Ack { index, seq } => {
                    let Some(rx) = self.transfers.get(&transfer) else {
                        continue;
                    };
                    let sack = rx.sack(index);
                    Message::Ack {
                        transfer,
                        index,
                        seq,
                        cumulative: rx.cumulative,
                        sack,
                    }
                    .encode(buf);
                }
            }
            let len = buf.len() - start;
            self.stats.messages_sent += 1;
            self.stats.bytes_sent += len as u64;
            // One whole message, for the connection's peer (the transport knows who that is).
            return Some(Transmit { len, to: None });
        }
    }

    /// When [`Receiver::handle_timeout`] should next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        (self.state == ReceiverState::Open && self.has_work())
            .then(|| self.last_heard + self.config.idle_timeout)
    }

    /// The next event for the application.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ReceiverEvent> {
        self.events.pop_front()
    }

    /// Open or closed.
    pub fn state(&self) -> ReceiverState {
        self.state
    }

    /// Counters.
    pub fn stats(&self) -> ReceiverStats {
        self.stats
    }

    // ---- helpers ----

    fn tick(&mut self, now: Instant) {
        if now > self.now {
            self.now = now;
        }
    }

    fn has_work(&self) -> bool {
        self.transfers.values().any(|rx| !rx.complete)
    }

    /// Ends the connection: one `Failed` per incomplete transfer (in id order), then one
    /// `Closed`. The records stay, for [`Receiver::partial`].
    fn close(&mut self, reason: TransferError) {
        self.state = ReceiverState::Closed;
        self.out.clear();
        for (&id, rx) in &mut self.transfers {
            rx.pending_local.clear();
            if !rx.complete {
                self.events.push_back(ReceiverEvent::Failed {
                    transfer: TransferId(id),
                    reason: reason.clone(),
                });
            }
        }
        self.events.push_back(ReceiverEvent::Closed { reason });
    }

    fn reject(&mut self, transfer: u32, reason: RejectReason, error: TransferError) {
        self.out.push_back((transfer, OutMsg::Reject(reason)));
        self.events.push_back(ReceiverEvent::Failed {
            transfer: TransferId(transfer),
            reason: error,
        });
    }

    fn on_offer(&mut self, transfer: u32, window: u32, bytes: &[u8]) -> Result<(), TransferError> {
        if let Some(rx) = self.transfers.get(&transfer) {
            // A repeated offer: our accept was lost. Repeat it (once the delta copies are done).
            if rx.accepted {
                self.out.push_back((transfer, OutMsg::Accept));
            }
            return Ok(());
        }
        let manifest = match SignedManifest::decode(
            bytes,
            &self.config.trusted_keys,
            self.config.max_chunks,
        ) {
            Ok(m) => m,
            Err(e) => {
                let reason = if e == TransferError::BadSignature {
                    RejectReason::BadSignature
                } else {
                    RejectReason::BadManifest
                };
                self.reject(transfer, reason, e.clone());
                return Err(e);
            }
        };
        let file_id = manifest.file_id();
        if let Some(held) = self.held.get(&file_id) {
            if held.version() > manifest.version() {
                let e = TransferError::StaleVersion {
                    file_id,
                    offered: manifest.version(),
                    held: held.version(),
                };
                self.reject(transfer, RejectReason::StaleVersion, e.clone());
                return Err(e);
            }
        }
        if self.transfers.values().filter(|rx| !rx.complete).count() >= self.config.max_transfers {
            self.out
                .push_back((transfer, OutMsg::Reject(RejectReason::Busy)));
            return Ok(());
        }
        let count = manifest.chunk_count();
        let mut stored = Bitmap::new(count);
        match self.partials.remove(&file_id) {
            Some(p) if p.manifest == manifest => stored = p.stored,
            Some(p) if p.manifest.version() > manifest.version() => {
                // Keep the newer partial; refuse the rollback.
                let e = TransferError::StaleVersion {
                    file_id,
                    offered: manifest.version(),
                    held: p.manifest.version(),
                };
                self.partials.insert(file_id, p);
                self.reject(transfer, RejectReason::StaleVersion, e.clone());
                return Err(e);
            }
            Some(p) => self.events.push_back(ReceiverEvent::PartialDiscarded {
                file_id,
                version: p.manifest.version(),
            }),
            None => {}
        }
        if let Some(held) = self.held.get(&file_id) {
            if held.manifest() == manifest.manifest() {
                // Already complete.
                for i in 0..count {
                    stored.insert(i);
                }
            }
        }
        self.events.push_back(ReceiverEvent::Offered {
            transfer: TransferId(transfer),
            manifest: manifest.clone(),
            resumed: stored.count(),
        });
        let pending_local = self.delta_copies(transfer, &manifest, &stored);
        let cumulative = stored.first_clear_from(0);
        let rx = Rx {
            manifest,
            highest_stored: 0,
            cumulative,
            stored,
            pending_store: BTreeMap::new(),
            pending_local,
            accepted: false,
            window: window.clamp(1, self.config.max_window.max(1)),
            complete: false,
        };
        self.transfers.insert(transfer, rx);
        self.maybe_accept(transfer);
        self.maybe_complete(transfer);
        Ok(())
    }

    fn on_chunk(
        &mut self,
        transfer: u32,
        index: u32,
        seq: u64,
        data: &[u8],
    ) -> Result<(), TransferError> {
        self.stats.chunks_received += 1;
        let Some(rx) = self.transfers.get_mut(&transfer) else {
            // Unknown (cancelled, or forgotten after a restart): tell the sender to stop.
            self.out.push_back((transfer, OutMsg::Cancel));
            return Ok(());
        };
        if index >= rx.manifest.chunk_count() {
            return Err(TransferError::Protocol("chunk index beyond the manifest"));
        }
        if !rx.accepted {
            return Ok(());
        }
        if rx.stored.contains(index) {
            self.stats.duplicate_chunks += 1;
            self.out.push_back((transfer, OutMsg::Ack { index, seq }));
            return Ok(());
        }
        if let Some(pending) = rx.pending_store.get_mut(&index) {
            self.stats.duplicate_chunks += 1;
            if pending.is_some() {
                *pending = Some(seq);
            }
            return Ok(());
        }
        if rx.pending_store.len() >= 2 * rx.window as usize {
            self.stats.overrun_chunks += 1;
            return Ok(());
        }
        let Some(expected) = rx.manifest.chunk_digests().get(index as usize) else {
            return Err(TransferError::Protocol("chunk index beyond the manifest"));
        };
        if data.len() != rx.manifest.chunk_len(index) || sha256(data) != *expected {
            self.stats.rejected_chunks += 1;
            self.events.push_back(ReceiverEvent::ChunkRejected {
                transfer: TransferId(transfer),
                index,
            });
            return Ok(());
        }
        rx.pending_store.insert(index, Some(seq));
        self.events.push_back(ReceiverEvent::ChunkVerified {
            transfer: TransferId(transfer),
            index,
            offset: rx.manifest.chunk_offset(index),
            data: data.to_vec(),
        });
        Ok(())
    }

    /// Delta: asks the application for local copies of the chunks whose digests a held
    /// version already has.
    fn delta_copies(
        &mut self,
        transfer: u32,
        manifest: &SignedManifest,
        stored: &Bitmap,
    ) -> BTreeSet<u32> {
        let mut pending_local = BTreeSet::new();
        let mut by_digest: HashMap<&Digest, (&SignedManifest, u32)> = HashMap::new();
        for held in self.held.values() {
            for (i, d) in held.chunk_digests().iter().enumerate() {
                by_digest.entry(d).or_insert((held, i as u32));
            }
        }
        if by_digest.is_empty() {
            return pending_local;
        }
        for (i, d) in manifest.chunk_digests().iter().enumerate() {
            let i = i as u32;
            if stored.contains(i) {
                continue;
            }
            if let Some(&(held, j)) = by_digest.get(d) {
                if held.chunk_len(j) == manifest.chunk_len(i) {
                    pending_local.insert(i);
                    self.events.push_back(ReceiverEvent::CopyChunk {
                        transfer: TransferId(transfer),
                        index: i,
                        from_file_id: held.file_id(),
                        from_version: held.version(),
                        from_offset: held.chunk_offset(j),
                        len: held.chunk_len(j),
                    });
                }
            }
        }
        pending_local
    }

    fn maybe_accept(&mut self, transfer: u32) {
        let Some(rx) = self.transfers.get_mut(&transfer) else {
            return;
        };
        if rx.accepted
            || !rx.pending_local.is_empty()
            || rx.pending_store.values().any(Option::is_none)
        {
            return;
        }
        rx.accepted = true;
        self.out.push_back((transfer, OutMsg::Accept));
    }

    fn maybe_complete(&mut self, transfer: u32) {
        let Some(rx) = self.transfers.get_mut(&transfer) else {
            return;
        };
        if rx.complete || !rx.stored.is_full() {
            return;
        }
        rx.complete = true;
        let manifest = rx.manifest.clone();
        self.events.push_back(ReceiverEvent::Completed {
            transfer: TransferId(transfer),
            file_id: manifest.file_id(),
            version: manifest.version(),
        });
        self.held.insert(manifest.file_id(), manifest);
    }
}

impl Rx {
    /// Up to [`MAX_SACK_RANGES`] stored ranges above the cumulative point, always including the
    /// range holding `index`.
    fn sack(&self, index: u32) -> ChunkSet {
        let mut set = ChunkSet::new();
        let mut i = self.cumulative;
        let end = self.highest_stored.saturating_add(1).min(self.stored.len());
        let mut ranges = 0;
        let mut has_index = index < self.cumulative;
        while i < end && ranges < MAX_SACK_RANGES - 1 {
            if self.stored.contains(i) {
                let start = i;
                while i < end && self.stored.contains(i) {
                    i += 1;
                }
                set.insert_range(start, i);
                has_index |= (start..i).contains(&index);
                ranges += 1;
            } else {
                i = self.stored.first_set_from(i).min(end);
            }
        }
        if !has_index && self.stored.contains(index) {
            set.insert(index);
        }
        set
    }
}
