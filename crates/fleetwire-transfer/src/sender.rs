//! The sender machine (server side): offers files, sends chunks within a negotiated window,
//! learns from acknowledgements, retransmits what was lost.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::bucket::{RateLimit, TokenBucket};
use crate::error::{ApiMisuse, RejectReason, TransferError};
use crate::manifest::{FileKind, SignedManifest};
use crate::message::{CHUNK_OVERHEAD, Message};
use crate::ranges::Bitmap;
use crate::rtt::RttEstimator;
use crate::{TransferId, Transmit};

/// How a sender behaves. Share one `Arc` between connections.
#[derive(Debug, Clone)]
pub struct SenderConfig {
    /// Most chunks unacknowledged at once that the sender proposes (1 = lock-step, as the seed
    /// protocol). The receiver may lower it.
    pub window: u32,
    /// Retransmission timeout before any round trip was measured (RFC 6298: 1 s).
    pub initial_rto: Duration,
    /// Lower bound on the retransmission timeout.
    pub min_rto: Duration,
    /// Upper bound on the retransmission timeout (backoff stops doubling here).
    pub max_rto: Duration,
    /// A chunk acknowledged by the peer after this many later transmissions were acknowledged
    /// is declared lost and sent again at once (no waiting for the timeout).
    pub reorder_threshold: u64,
    /// A chunk (or an offer) sent this many times without acknowledgement fails the transfer.
    pub max_transmissions: u32,
    /// With work outstanding and nothing valid from the peer for this long, the connection
    /// closes.
    pub idle_timeout: Duration,
    /// Bandwidth cap for the whole connection.
    pub connection_rate: Option<RateLimit>,
}

impl Default for SenderConfig {
    fn default() -> Self {
        Self {
            window: 64,
            initial_rto: Duration::from_secs(1),
            min_rto: Duration::from_millis(200),
            max_rto: Duration::from_secs(10),
            reorder_threshold: 3,
            max_transmissions: 40,
            idle_timeout: Duration::from_secs(120),
            connection_rate: None,
        }
    }
}

/// Where the sender gets chunk bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkSource {
    /// The whole file, in memory (small configuration files, tests).
    Memory(Vec<u8>),
    /// Ask for each chunk with [`SenderEvent::ChunkNeeded`]; answer with
    /// [`Sender::provide_chunk`]. At most about two windows of chunks are held at once.
    OnDemand,
}

/// What the sender tells the application.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SenderEvent {
    /// The receiver accepted the offer. `already_held` chunks (resume, delta) will not be sent.
    Accepted {
        /// The transfer.
        transfer: TransferId,
        /// The negotiated window.
        window: u32,
        /// Chunks the receiver already had.
        already_held: u32,
    },
    /// Read `len` bytes at `offset` of the file and pass them to [`Sender::provide_chunk`].
    ChunkNeeded {
        /// The transfer.
        transfer: TransferId,
        /// The chunk.
        index: u32,
        /// Byte offset in the file.
        offset: u64,
        /// Bytes to read.
        len: usize,
    },
    /// Every chunk is acknowledged: the receiver stored the whole file.
    Completed {
        /// The transfer.
        transfer: TransferId,
    },
    /// The transfer failed (rejected, cancelled by the peer, too many retransmissions, bad
    /// source data, or the connection ended: then `reason` is the connection's, as in
    /// [`SenderEvent::Closed`]). Exactly one terminal event per transfer.
    Failed {
        /// The transfer.
        transfer: TransferId,
        /// Why.
        reason: TransferError,
    },
    /// The application cancelled the transfer.
    Cancelled {
        /// The transfer.
        transfer: TransferId,
    },
    /// The connection is over; every open transfer ended with it, each with its own
    /// [`SenderEvent::Failed`] just before. Emitted once; the last event.
    Closed {
        /// Why.
        reason: TransferError,
    },
}

/// Whether the sender is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SenderState {
    /// Accepting work.
    Open,
    /// Closed; inputs are no-ops.
    Closed,
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SenderStats {
    /// Messages sent.
    pub messages_sent: u64,
    /// Bytes of all messages sent.
    pub bytes_sent: u64,
    /// Chunk messages sent (first sends and retransmissions).
    pub chunks_sent: u64,
    /// Chunk data bytes sent (first sends and retransmissions).
    pub chunk_bytes_sent: u64,
    /// Chunk retransmissions.
    pub retransmissions: u64,
    /// Retransmission timeouts that fired.
    pub timeouts: u64,
    /// Messages received that failed to decode and were dropped.
    pub messages_dropped: u64,
    /// Smoothed round-trip time in microseconds (0 before the first sample).
    pub srtt_micros: u64,
    /// Current retransmission timeout in microseconds.
    pub rto_micros: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Offering,
    Sending,
}

#[derive(Debug, Clone, Copy)]
struct Flight {
    index: u32,
    sent_at: Instant,
}

#[derive(Debug)]
struct Tx {
    id: u32,
    manifest: SignedManifest,
    source: ChunkSource,
    phase: Phase,
    window: u32,
    acked: Bitmap,
    /// In-flight transmissions by sequence number (= send order).
    flights: BTreeMap<u64, Flight>,
    /// Chunk → the sequence number of its transmission in flight.
    in_flight: HashMap<u32, u64>,
    /// Chunks declared lost, waiting to be sent again.
    lost: BTreeSet<u32>,
    /// Next chunk never sent.
    next_new: u32,
    /// Transmissions per chunk.
    sends: HashMap<u32, u32>,
    /// Chunk bytes held (on-demand source).
    cache: HashMap<u32, Vec<u8>>,
    /// Chunks asked for and not yet provided.
    requested: BTreeSet<u32>,
    rate: Option<TokenBucket>,
    offer_due: bool,
    offer_sent_at: Option<Instant>,
    offers_sent: u32,
    offer_backoff: u32,
    /// After a retransmission timeout: one chunk in flight until an acknowledgement arrives,
    /// so a dead or cut link costs one chunk per (backed-off) timeout, not a window.
    recovering: bool,
}

/// The sending side of one connection: many transfers, configuration before media.
///
/// See the [crate docs](crate) for the run loop.
#[derive(Debug)]
pub struct Sender {
    config: Arc<SenderConfig>,
    now: Instant,
    state: SenderState,
    transfers: BTreeMap<u32, Tx>,
    /// Transfer ids in sending priority: configuration first, then by id.
    order: Vec<(FileKind, u32)>,
    next_id: u32,
    rtt: RttEstimator,
    largest_acked_seq: u64,
    next_seq: u64,
    conn_rate: Option<TokenBucket>,
    control: VecDeque<Control>,
    events: VecDeque<SenderEvent>,
    last_heard: Instant,
    stats: SenderStats,
}

#[derive(Debug, Clone, Copy)]
enum Control {
    Cancel(u32),
}

impl Sender {
    /// A sender for one connection.
    pub fn new(config: Arc<SenderConfig>, now: Instant) -> Self {
        let rtt = RttEstimator::new(config.initial_rto, config.min_rto, config.max_rto);
        let conn_rate = config.connection_rate.map(|r| TokenBucket::new(r, now));
        Self {
            config,
            now,
            state: SenderState::Open,
            transfers: BTreeMap::new(),
            order: Vec::new(),
            next_id: 1,
            rtt,
            largest_acked_seq: 0,
            next_seq: 1,
            conn_rate,
            control: VecDeque::new(),
            events: VecDeque::new(),
            last_heard: now,
            stats: SenderStats::default(),
        }
    }

    /// Offers a file. Returns the transfer's id on this connection.
    pub fn offer(
        &mut self,
        now: Instant,
        manifest: SignedManifest,
        source: ChunkSource,
        rate: Option<RateLimit>,
    ) -> Result<TransferId, ApiMisuse> {
        if self.state == SenderState::Closed {
            return Err(ApiMisuse::Closed);
        }
        if let ChunkSource::Memory(data) = &source {
            if data.len() as u64 != manifest.length() {
                return Err(ApiMisuse::InvalidConfig(
                    "in-memory source length differs from the manifest",
                ));
            }
        }
        self.tick(now);
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let count = manifest.chunk_count();
        self.order.push((manifest.kind(), id));
        self.order.sort_unstable();
        self.transfers.insert(
            id,
            Tx {
                id,
                source,
                phase: Phase::Offering,
                window: 1,
                acked: Bitmap::new(count),
                flights: BTreeMap::new(),
                in_flight: HashMap::new(),
                lost: BTreeSet::new(),
                next_new: 0,
                sends: HashMap::new(),
                cache: HashMap::new(),
                requested: BTreeSet::new(),
                rate: rate.map(|r| TokenBucket::new(r, now)),
                offer_due: true,
                offer_sent_at: None,
                offers_sent: 0,
                offer_backoff: 0,
                recovering: false,
                manifest,
            },
        );
        if self.transfers.len() == 1 {
            // Idle clock starts when there is work.
            self.last_heard = now;
        }
        Ok(TransferId(id))
    }

    /// The bytes of chunk `index`, answering [`SenderEvent::ChunkNeeded`]. They are checked
    /// against the signed manifest: a file that changed on disk fails the transfer rather than
    /// sending data the player will reject forever.
    pub fn provide_chunk(
        &mut self,
        now: Instant,
        transfer: TransferId,
        index: u32,
        data: &[u8],
    ) -> Result<(), ApiMisuse> {
        if self.state == SenderState::Closed {
            // Answers an event handed out before the close: nothing to send it on.
            return Ok(());
        }
        self.tick(now);
        let tx = self
            .transfers
            .get_mut(&transfer.0)
            .ok_or(ApiMisuse::UnknownTransfer(transfer.0))?;
        let count = tx.manifest.chunk_count();
        if index >= count {
            return Err(ApiMisuse::ChunkOutOfRange { index, count });
        }
        let expected = tx.manifest.chunk_len(index);
        if data.len() != expected {
            return Err(ApiMisuse::WrongChunkLength {
                index,
                expected,
                got: data.len(),
            });
        }
        if !tx.requested.remove(&index) || tx.acked.contains(index) {
            return Ok(());
        }
        if !tx.manifest.chunk_matches(index, data) {
            let id = tx.id;
            self.fail(id, TransferError::SourceMismatch { index });
            return Ok(());
        }
        tx.cache.insert(index, data.to_vec());
        Ok(())
    }

    /// Cancels a transfer: the peer is told, [`SenderEvent::Cancelled`] follows.
    pub fn cancel(&mut self, now: Instant, transfer: TransferId) -> Result<(), ApiMisuse> {
        if self.state == SenderState::Closed {
            return Err(ApiMisuse::Closed);
        }
        self.tick(now);
        if self.transfers.remove(&transfer.0).is_none() {
            return Err(ApiMisuse::UnknownTransfer(transfer.0));
        }
        self.order.retain(|&(_, id)| id != transfer.0);
        self.control.push_back(Control::Cancel(transfer.0));
        self.events.push_back(SenderEvent::Cancelled { transfer });
        Ok(())
    }

    /// One message from the receiver. A message that fails to decode is dropped and reported
    /// as `Err(TransferError::Decode)`; the connection goes on.
    pub fn handle_input(&mut self, now: Instant, data: &[u8]) -> Result<(), TransferError> {
        if self.state == SenderState::Closed {
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
        let result = match msg {
            Message::Accept {
                transfer,
                window,
                have,
            } => {
                self.last_heard = now;
                self.on_accept(transfer, window, &have);
                Ok(())
            }
            Message::Reject { transfer, reason } => {
                self.last_heard = now;
                if self.transfers.contains_key(&transfer) {
                    let reason = TransferError::Rejected(RejectReason::from_code(reason));
                    self.fail(transfer, reason);
                }
                Ok(())
            }
            Message::Ack {
                transfer,
                index,
                seq,
                cumulative,
                sack,
            } => {
                self.last_heard = now;
                self.on_ack(now, transfer, index, seq, cumulative, &sack)
            }
            Message::Cancel { transfer } => {
                self.last_heard = now;
                if self.transfers.contains_key(&transfer) {
                    self.fail(transfer, TransferError::PeerCancelled);
                }
                Ok(())
            }
            Message::Offer { .. } | Message::Chunk { .. } => {
                Err(TransferError::Protocol("receiver sent a sender's message"))
            }
        };
        self.request_chunks();
        result
    }

    /// Time passed. Early or spurious calls are no-ops.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == SenderState::Closed {
            return;
        }
        self.tick(now);
        if self.has_work() && now >= self.last_heard + self.config.idle_timeout {
            let millis = self.config.idle_timeout.as_millis() as u64;
            self.close(TransferError::IdleTimeout { millis });
            return;
        }
        let rto = self.rtt.rto();
        let mut fired = false;
        let ids: Vec<u32> = self.transfers.keys().copied().collect();
        for id in ids {
            let Some(tx) = self.transfers.get_mut(&id) else {
                continue;
            };
            match tx.phase {
                Phase::Offering => {
                    let offer_rto = rto.saturating_mul(1 << tx.offer_backoff.min(10));
                    if let Some(at) = tx.offer_sent_at {
                        if now >= at + offer_rto.min(self.config.max_rto) && !tx.offer_due {
                            if tx.offers_sent >= self.config.max_transmissions {
                                let attempts = tx.offers_sent;
                                self.fail(
                                    id,
                                    TransferError::TooManyRetransmits { index: 0, attempts },
                                );
                                continue;
                            }
                            tx.offer_due = true;
                            tx.offer_backoff += 1;
                        }
                    }
                }
                Phase::Sending => {
                    let expired: Vec<u64> = tx
                        .flights
                        .iter()
                        .take_while(|(_, f)| now >= f.sent_at + rto)
                        .map(|(s, _)| *s)
                        .collect();
                    if !expired.is_empty() {
                        fired = true;
                        tx.recovering = true;
                    }
                    for seq in expired {
                        if let Some(f) = tx.flights.remove(&seq) {
                            tx.in_flight.remove(&f.index);
                            tx.lost.insert(f.index);
                        }
                    }
                }
            }
        }
        if fired {
            self.stats.timeouts += 1;
            self.rtt.back_off();
        }
        self.request_chunks();
    }

    /// The transport ended: the peer closed it or it broke. Every open transfer ends with one
    /// [`SenderEvent::Failed`] carrying [`TransferError::ConnectionLost`], then the sender
    /// closes with one [`SenderEvent::Closed`]; nothing more is sent. No-op if already closed.
    pub fn handle_close(&mut self, now: Instant) {
        if self.state == SenderState::Closed {
            return;
        }
        self.tick(now);
        self.close(TransferError::ConnectionLost);
    }

    /// Appends the next message to send to `buf` (what `buf` held is kept) and returns its
    /// length: send `buf[buf.len() - len..]` as one message. Drain until `None` after every call
    /// into the machine. The transfer a message belongs to is in the message
    /// ([`Message::decode`]); drivers do not need it.
    #[must_use]
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<Transmit> {
        let start = buf.len();
        if let Some(c) = self.control.pop_front() {
            let Control::Cancel(transfer) = c;
            Message::Cancel { transfer }.encode(buf);
            return Some(self.sent(buf.len() - start));
        }
        // Offers first: they are small and unblock the receiver.
        if self.poll_offer(buf) {
            return Some(self.sent(buf.len() - start));
        }
        let now = self.now;
        // Then chunks, in priority order: a configuration file goes before any media.
        let mut failed = None;
        let mut chosen = None;
        for &(_, id) in &self.order {
            let Some(tx) = self.transfers.get_mut(&id) else {
                continue;
            };
            let Some(index) = tx.candidate() else {
                continue;
            };
            let len = tx.manifest.chunk_len(index) + CHUNK_OVERHEAD;
            if self.conn_rate.as_ref().is_some_and(|b| !b.can_send(len)) {
                break;
            }
            if tx.rate.as_ref().is_some_and(|b| !b.can_send(len)) {
                continue;
            }
            let sends = tx.sends.entry(index).or_insert(0);
            if *sends >= self.config.max_transmissions {
                failed = Some((
                    id,
                    TransferError::TooManyRetransmits {
                        index,
                        attempts: *sends,
                    },
                ));
                break;
            }
            *sends += 1;
            let retransmission = *sends > 1;
            let seq = self.next_seq;
            self.next_seq += 1;
            let data: &[u8] = match &tx.source {
                ChunkSource::Memory(d) => {
                    let start = tx.manifest.chunk_offset(index) as usize;
                    &d[start..start + tx.manifest.chunk_len(index)]
                }
                // INVARIANT: candidate() only returns on-demand chunks present in the cache.
                ChunkSource::OnDemand => tx.cache.get(&index).expect("INVARIANT: cached"),
            };
            Message::Chunk {
                transfer: id,
                index,
                seq,
                data,
            }
            .encode(buf);
            let data_len = data.len() as u64;
            if !tx.lost.remove(&index) {
                tx.next_new = index + 1;
            }
            tx.flights.insert(
                seq,
                Flight {
                    index,
                    sent_at: now,
                },
            );
            tx.in_flight.insert(index, seq);
            let len = buf.len() - start;
            if let Some(b) = tx.rate.as_mut() {
                b.spend(len);
            }
            if let Some(b) = self.conn_rate.as_mut() {
                b.spend(len);
            }
            self.stats.chunks_sent += 1;
            self.stats.chunk_bytes_sent += data_len;
            if retransmission {
                self.stats.retransmissions += 1;
            }
            chosen = Some(len);
            break;
        }
        if let Some((id, reason)) = failed {
            self.fail(id, reason);
            return self.poll_transmit(buf);
        }
        let len = chosen?;
        Some(self.sent(len))
    }

    /// When [`Sender::handle_timeout`] should next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == SenderState::Closed {
            return None;
        }
        let rto = self.rtt.rto();
        let mut next: Option<Instant> = None;
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        if self.has_work() {
            consider(self.last_heard + self.config.idle_timeout);
        }
        for tx in self.transfers.values() {
            match tx.phase {
                Phase::Offering => {
                    if let Some(at) = tx.offer_sent_at {
                        let offer_rto = rto.saturating_mul(1 << tx.offer_backoff.min(10));
                        consider(at + offer_rto.min(self.config.max_rto));
                    }
                }
                Phase::Sending => {
                    if let Some(f) = tx.flights.values().next() {
                        consider(f.sent_at + rto);
                    }
                    // Waiting only for a bandwidth cap.
                    if let Some(index) = tx.candidate() {
                        let len = tx.manifest.chunk_len(index) + CHUNK_OVERHEAD;
                        let mut ready = self.now;
                        if let Some(b) = &tx.rate {
                            ready = ready.max(b.ready_at(len));
                        }
                        if let Some(b) = &self.conn_rate {
                            ready = ready.max(b.ready_at(len));
                        }
                        if ready > self.now {
                            consider(ready);
                        }
                    }
                }
            }
        }
        next
    }

    /// The next event for the application.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<SenderEvent> {
        self.events.pop_front()
    }

    /// Open or closed.
    pub fn state(&self) -> SenderState {
        self.state
    }

    /// Counters.
    pub fn stats(&self) -> SenderStats {
        let mut s = self.stats;
        s.srtt_micros = self.rtt.srtt().map_or(0, |d| d.as_micros() as u64);
        s.rto_micros = self.rtt.rto().as_micros() as u64;
        s
    }

    /// Chunks acknowledged and total, for a progress bar.
    pub fn progress(&self, transfer: TransferId) -> Option<(u32, u32)> {
        self.transfers
            .get(&transfer.0)
            .map(|tx| (tx.acked.count(), tx.acked.len()))
    }

    // ---- helpers ----

    fn tick(&mut self, now: Instant) {
        if now > self.now {
            self.now = now;
        }
        if let Some(b) = self.conn_rate.as_mut() {
            b.refill(self.now);
        }
        for tx in self.transfers.values_mut() {
            if let Some(b) = tx.rate.as_mut() {
                b.refill(self.now);
            }
        }
    }

    fn has_work(&self) -> bool {
        !self.transfers.is_empty()
    }

    /// Appends the first due offer, in priority order, to `buf`; false if none is due.
    fn poll_offer(&mut self, buf: &mut Vec<u8>) -> bool {
        for &(_, id) in &self.order {
            let Some(tx) = self.transfers.get_mut(&id) else {
                continue;
            };
            if tx.phase == Phase::Offering && tx.offer_due {
                tx.offer_due = false;
                tx.offer_sent_at = Some(self.now);
                tx.offers_sent += 1;
                Message::Offer {
                    transfer: id,
                    window: self.config.window.max(1),
                    manifest: tx.manifest.as_bytes(),
                }
                .encode(buf);
                return true;
            }
        }
        false
    }

    fn sent(&mut self, len: usize) -> Transmit {
        self.stats.messages_sent += 1;
        self.stats.bytes_sent += len as u64;
        // One whole message, for the connection's peer (the transport knows who that is).
        Transmit { len, to: None }
    }

    fn on_accept(&mut self, transfer: u32, window: u32, have: &crate::ChunkSet) {
        let Some(tx) = self.transfers.get_mut(&transfer) else {
            return;
        };
        if tx.phase != Phase::Offering {
            return;
        }
        if let (Some(at), 1) = (tx.offer_sent_at, tx.offers_sent) {
            self.rtt.sample(self.now.saturating_duration_since(at));
        }
        tx.phase = Phase::Sending;
        tx.window = window.clamp(1, self.config.window.max(1));
        let count = tx.acked.len();
        for &(s, e) in have.ranges() {
            for i in s..e.min(count) {
                tx.acked.insert(i);
            }
        }
        tx.next_new = tx.acked.first_clear_from(0);
        self.events.push_back(SenderEvent::Accepted {
            transfer: TransferId(transfer),
            window: tx.window,
            already_held: tx.acked.count(),
        });
        self.maybe_complete(transfer);
    }

    fn on_ack(
        &mut self,
        now: Instant,
        transfer: u32,
        index: u32,
        seq: u64,
        cumulative: u32,
        sack: &crate::ChunkSet,
    ) -> Result<(), TransferError> {
        let Some(tx) = self.transfers.get_mut(&transfer) else {
            return Ok(());
        };
        if tx.phase != Phase::Sending {
            return Ok(());
        }
        let count = tx.acked.len();
        if index >= count || cumulative > count || seq >= self.next_seq {
            return Err(TransferError::Protocol("acknowledgement out of range"));
        }
        // RTT sample from the exact transmission acknowledged.
        if let Some(f) = tx.flights.get(&seq) {
            self.rtt.sample(now.saturating_duration_since(f.sent_at));
        }
        self.largest_acked_seq = self.largest_acked_seq.max(seq);
        let is_acked = |i: u32| {
            i == index
                || i < cumulative
                || sack
                    .ranges()
                    .binary_search_by(|&(s, e)| {
                        if e <= i {
                            std::cmp::Ordering::Less
                        } else if s > i {
                            std::cmp::Ordering::Greater
                        } else {
                            std::cmp::Ordering::Equal
                        }
                    })
                    .is_ok()
        };
        // Only chunks in flight or queued for retransmission can change state: O(window).
        let newly: Vec<u32> = tx
            .in_flight
            .keys()
            .chain(tx.lost.iter())
            .copied()
            .filter(|&i| is_acked(i))
            .collect();
        if !newly.is_empty() {
            tx.recovering = false;
        }
        for i in newly {
            if let Some(s) = tx.in_flight.remove(&i) {
                tx.flights.remove(&s);
            }
            tx.lost.remove(&i);
            tx.cache.remove(&i);
            tx.acked.insert(i);
        }
        // Loss detection: transmissions sent well before one that was acknowledged.
        let threshold = self
            .largest_acked_seq
            .saturating_sub(self.config.reorder_threshold);
        let lost: Vec<u64> = tx.flights.range(..threshold).map(|(s, _)| *s).collect();
        for s in lost {
            if let Some(f) = tx.flights.remove(&s) {
                tx.in_flight.remove(&f.index);
                tx.lost.insert(f.index);
            }
        }
        self.maybe_complete(transfer);
        Ok(())
    }

    fn maybe_complete(&mut self, transfer: u32) {
        if self
            .transfers
            .get(&transfer)
            .is_some_and(|tx| tx.acked.is_full())
        {
            self.transfers.remove(&transfer);
            self.order.retain(|&(_, id)| id != transfer);
            self.events.push_back(SenderEvent::Completed {
                transfer: TransferId(transfer),
            });
        }
    }

    fn fail(&mut self, transfer: u32, reason: TransferError) {
        if self.transfers.remove(&transfer).is_some() {
            self.order.retain(|&(_, id)| id != transfer);
            if !matches!(
                reason,
                TransferError::PeerCancelled | TransferError::Rejected(_)
            ) {
                self.control.push_back(Control::Cancel(transfer));
            }
            self.events.push_back(SenderEvent::Failed {
                transfer: TransferId(transfer),
                reason,
            });
        }
    }

    /// Ends the connection: one `Failed` per open transfer (in id order), then one `Closed`.
    fn close(&mut self, reason: TransferError) {
        self.state = SenderState::Closed;
        self.order.clear();
        self.control.clear();
        for id in std::mem::take(&mut self.transfers).into_keys() {
            self.events.push_back(SenderEvent::Failed {
                transfer: TransferId(id),
                reason: reason.clone(),
            });
        }
        self.events.push_back(SenderEvent::Closed { reason });
    }

    /// Asks the application for the chunks the window will need next (at most one window
    /// ahead of what is in flight).
    fn request_chunks(&mut self) {
        for tx in self.transfers.values_mut() {
            if tx.phase != Phase::Sending || tx.source != ChunkSource::OnDemand {
                continue;
            }
            let want = tx.window as usize;
            let mut wanted: Vec<u32> = tx.lost.iter().copied().take(want).collect();
            let mut i = tx.next_new;
            while wanted.len() < want && i < tx.acked.len() {
                if !tx.acked.contains(i) && !tx.in_flight.contains_key(&i) {
                    wanted.push(i);
                }
                i += 1;
            }
            for i in wanted {
                if !tx.cache.contains_key(&i) && tx.requested.insert(i) {
                    self.events.push_back(SenderEvent::ChunkNeeded {
                        transfer: TransferId(tx.id),
                        index: i,
                        offset: tx.manifest.chunk_offset(i),
                        len: tx.manifest.chunk_len(i),
                    });
                }
            }
        }
    }
}

impl Tx {
    /// The next chunk to send if the window has room and its bytes are at hand.
    fn candidate(&self) -> Option<u32> {
        let window = if self.recovering {
            1
        } else {
            self.window as usize
        };
        if self.phase != Phase::Sending || self.flights.len() >= window {
            return None;
        }
        let index = if let Some(&i) = self.lost.first() {
            i
        } else {
            let mut i = self.next_new;
            while i < self.acked.len()
                && (self.acked.contains(i) || self.in_flight.contains_key(&i))
            {
                i += 1;
            }
            if i >= self.acked.len() {
                return None;
            }
            i
        };
        match self.source {
            ChunkSource::Memory(_) => Some(index),
            ChunkSource::OnDemand => self.cache.contains_key(&index).then_some(index),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ContentSigner, FileKind, Manifest};

    fn setup(window: u32) -> (Sender, Instant, Vec<u8>) {
        let now = fleetwire_testkit::VirtualClock::new().now();
        let data = vec![7u8; 10 * 100];
        let m = Manifest::build(FileKind::Media, 1, 1, 100, &data)
            .unwrap()
            .sign(&ContentSigner::from_seed(&[1; 32]));
        let config = SenderConfig {
            window,
            ..SenderConfig::default()
        };
        let mut s = Sender::new(Arc::new(config), now);
        s.offer(now, m, ChunkSource::Memory(data.clone()), None)
            .unwrap();
        (s, now, data)
    }

    fn drain(s: &mut Sender) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = Vec::new();
        while s.poll_transmit(&mut buf).is_some() {
            out.push(std::mem::take(&mut buf));
        }
        out
    }

    fn accept(s: &mut Sender, now: Instant, window: u32) {
        let mut buf = Vec::new();
        Message::Accept {
            transfer: 1,
            window,
            have: crate::ChunkSet::new(),
        }
        .encode(&mut buf);
        s.handle_input(now, &buf).unwrap();
    }

    #[test]
    fn lock_step_sends_one_chunk_per_ack_and_window_is_negotiated_down() {
        let (mut s, now, _) = setup(1);
        assert_eq!(drain(&mut s).len(), 1); // the offer
        accept(&mut s, now, 8); // receiver may not raise the window
        assert_eq!(drain(&mut s).len(), 1);
        let (mut s, now, _) = setup(8);
        let _ = drain(&mut s);
        accept(&mut s, now, 3);
        assert_eq!(drain(&mut s).len(), 3);
    }

    #[test]
    fn duplicated_acks_send_nothing_extra() {
        let (mut s, now, _) = setup(4);
        let _ = drain(&mut s);
        accept(&mut s, now, 4);
        let sent = drain(&mut s);
        assert_eq!(sent.len(), 4);
        let mut ack = Vec::new();
        Message::Ack {
            transfer: 1,
            index: 0,
            seq: 1,
            cumulative: 1,
            sack: crate::ChunkSet::new(),
        }
        .encode(&mut ack);
        s.handle_input(now, &ack).unwrap();
        assert_eq!(drain(&mut s).len(), 1); // the window slides by one
        for _ in 0..10 {
            s.handle_input(now, &ack).unwrap();
        }
        assert!(drain(&mut s).is_empty());
        assert_eq!(s.stats().retransmissions, 0);
    }

    #[test]
    fn timeout_backs_off_and_sends_one_chunk() {
        let (mut s, now, _) = setup(4);
        let _ = drain(&mut s);
        accept(&mut s, now, 4);
        let _ = drain(&mut s);
        let t = s.poll_timeout().unwrap();
        s.handle_timeout(t.checked_sub(Duration::from_millis(1)).unwrap()); // early: no-op
        assert!(drain(&mut s).is_empty());
        s.handle_timeout(t);
        assert_eq!(
            drain(&mut s).len(),
            1,
            "one chunk in flight after a timeout"
        );
        let t2 = s.poll_timeout().unwrap();
        assert!(t2 - t >= t - now, "timeout doubled");
    }
}
