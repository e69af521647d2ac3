//! LAN content sharing: a player fetches a file a group peer already holds, over UDP 16733,
//! verified against the server-signed manifest, and falls back to the server when no peer can
//! finish it. One [`Share`] machine per player serves its files to peers and runs its fetches.
//!
//! ## What is reused from fleetwire-transfer, and what is new
//! - Reused: the [`SignedManifest`] (a fetch can only be started with one, so the chunk digests
//!   are the server's), its per-chunk SHA-256 check ([`fleetwire_transfer::Manifest::chunk_matches`]), the
//!   [`Bitmap`] of stored chunks, and the resume record [`Partial`]: a fetch starts from one and,
//!   when it falls back, hands one to the application, which gives it to the server transfer's
//!   `Receiver::add_partial`, so nothing fetched from a peer is downloaded again.
//! - New: the datagram transport. The transfer machines move whole chunks as single messages
//!   (up to 1 MiB: fine on a stream or an HTTP body, impossible in a datagram), and their
//!   sender holds the window. Here chunks are cut into 1 KiB pieces, the *fetcher* holds the
//!   window (pieces in flight, default 256) and asks for exactly the pieces it lacks with ranged
//!   requests, so the loss of one datagram costs one piece, not a chunk; a piece not back
//!   within the retransmission timeout (from measured round trips) is asked for again. A chunk
//!   is accepted only whole and only if its SHA-256 matches the signed digest: a peer can never
//!   make a player accept a byte the server did not sign. A peer that sends a chunk failing
//!   its digest (the HMAC already rules out corruption in transit, so that peer is broken or
//!   hostile) is dropped; a peer that says it lacks the file or falls silent for
//!   `peer_timeout` is dropped too, and the next one is tried.
//! - Every datagram carries the group HMAC: only group members can ask, so a seeder is never a
//!   reflector for strangers. Content travels in the clear on the LAN (it is shown on public
//!   screens); sites that need it confidential should not enable sharing.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleetwire_core::{Rate, Transmit, UnixTime, gcra};
use fleetwire_session::PlayerId;
use fleetwire_transfer::{Bitmap, DEFAULT_MAX_CHUNKS, Partial, PublicKey, SignedManifest};
use fleetwire_wire::Writer;

use crate::error::{ApiMisuse, SyncError};
use crate::key::{GroupId, GroupKey, Keys};
use crate::wire::{self, MAX_RANGES, Message, PIECE_LEN, SeqWindow};

/// How a share machine behaves.
#[derive(Debug, Clone)]
pub struct ShareConfig {
    /// The group.
    pub group: GroupId,
    /// This player.
    pub me: PlayerId,
    /// Content-signing keys (to rebuild resume records).
    pub trusted_keys: Vec<PublicKey>,
    /// Largest manifest accepted, in chunks.
    pub max_chunks: u32,
    /// Pieces in flight per fetch. Default 256 (256 KiB).
    pub window: u32,
    /// Chunks being assembled at once per fetch (memory: this × chunk size). Default 8.
    pub max_assembling: usize,
    /// First retransmission timeout of a piece. Default 50 ms.
    pub initial_rto: Duration,
    /// Floor of the piece retransmission timeout. Default 2 ms.
    pub min_rto: Duration,
    /// Ceiling of the piece retransmission timeout. Default 1 s.
    pub max_rto: Duration,
    /// A peer that sends nothing useful this long while pieces are outstanding is gone.
    /// Default 2 s.
    pub peer_timeout: Duration,
    /// Chunks failing their digest before a peer is dropped. Default 1.
    pub max_bad_chunks: u32,
    /// Fetches at once. Default 4.
    pub max_fetches: usize,
    /// Pieces a seeder sends each requester (GCRA): a cap on what one peer can make it send.
    /// Default 125,000/s (about 1 Gbit/s), burst 2,048.
    pub seed_rate: Rate,
    /// Chunks a seeder keeps in memory. Default 8.
    pub cache_chunks: usize,
    /// Requests a seeder keeps waiting for chunks being read. Default 64.
    pub max_waiting: usize,
}

impl ShareConfig {
    /// Defaults for `me` in `group`, trusting `trusted_keys`.
    pub fn new(group: GroupId, me: PlayerId, trusted_keys: Vec<PublicKey>) -> Self {
        Self {
            group,
            me,
            trusted_keys,
            max_chunks: DEFAULT_MAX_CHUNKS,
            window: 256,
            max_assembling: 8,
            initial_rto: Duration::from_millis(50),
            min_rto: Duration::from_millis(2),
            max_rto: Duration::from_secs(1),
            peer_timeout: Duration::from_secs(2),
            max_bad_chunks: 1,
            max_fetches: 4,
            seed_rate: Rate {
                burst: 2048,
                per_period: 125_000,
                period_ms: 1000,
            },
            cache_chunks: 8,
            max_waiting: 64,
        }
    }
}

/// (file id, version, chunk index)
type ChunkKey = (u64, u64, u32);

/// A fetch started with [`Share::fetch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FetchId(pub u32);

/// What the application must do.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShareEvent {
    /// Seeding: read chunk `index` of this file from disk and pass it to
    /// [`Share::provide_chunk`] (a peer asked for it).
    ChunkNeeded {
        /// The file.
        file_id: u64,
        /// Its version.
        version: u64,
        /// The chunk.
        index: u32,
    },
    /// Fetching: a whole chunk matched its signed digest. Write it at `offset`, then call
    /// [`Share::chunk_stored`] once durable.
    ChunkVerified {
        /// The fetch.
        fetch: FetchId,
        /// The chunk.
        index: u32,
        /// Where it goes in the file.
        offset: u64,
        /// The verified bytes.
        data: Vec<u8>,
    },
    /// Fetching: a chunk from `peer` did not match its signed digest and was thrown away. A
    /// security event: log it.
    ChunkRejected {
        /// The fetch.
        fetch: FetchId,
        /// The chunk.
        index: u32,
        /// The peer that sent it.
        peer: SocketAddr,
    },
    /// Fetching: a peer was dropped (silent, lacks the file, or sent bad chunks); the next one
    /// is tried.
    PeerDropped {
        /// The fetch.
        fetch: FetchId,
        /// The peer.
        peer: SocketAddr,
        /// True if it sent chunks that failed their digest.
        misbehaved: bool,
    },
    /// Fetching: every chunk is stored and verified.
    Completed {
        /// The fetch.
        fetch: FetchId,
        /// The file.
        file_id: u64,
        /// Its version.
        version: u64,
    },
    /// Fetching: no peer can finish the file. Download the rest from the server: give
    /// `partial` to the transfer receiver (`Receiver::add_partial`) and only the missing chunks
    /// are sent. The fetch is over.
    FallBackToServer {
        /// The fetch.
        fetch: FetchId,
        /// What is stored so far, under the signed manifest.
        partial: Partial,
    },
    /// The machine closed ([`Share::handle_close`]). The last event, exactly once.
    Closed {
        /// Why.
        reason: SyncError,
    },
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShareStats {
    /// Datagrams handed to `handle_input`.
    pub datagrams_in: u64,
    /// Datagrams produced.
    pub datagrams_out: u64,
    /// Bytes produced.
    pub bytes_out: u64,
    /// Pieces received that were used.
    pub pieces_in: u64,
    /// Pieces received that were not needed (duplicates, late copies, unsolicited).
    pub pieces_unneeded: u64,
    /// Pieces asked for again after their timeout.
    pub pieces_rerequested: u64,
    /// Pieces sent as a seeder.
    pub pieces_out: u64,
    /// Chunks that failed their digest.
    pub chunks_rejected: u64,
    /// Requests refused by the seeder's rate limit.
    pub requests_limited: u64,
    /// Dropped: not a datagram, other group, bad key or tag, replayed.
    pub dropped: u64,
}

/// A player's LAN-share machine: seeder of the files it holds, fetcher of the files it needs.
///
/// See the [crate docs](crate) for the run loop.
#[derive(Debug)]
pub struct Share {
    config: Arc<ShareConfig>,
    keys: Keys,
    seq: u64,
    windows: HashMap<PlayerId, SeqWindow>,
    seeding: HashMap<(u64, u64), SignedManifest>,
    cache: VecDeque<(ChunkKey, Arc<Vec<u8>>)>,
    waiting: Vec<Waiting>,
    tats: HashMap<PlayerId, u64>,
    fetches: BTreeMap<u32, Fetch>,
    next_fetch: u32,
    out: VecDeque<Out>,
    events: VecDeque<ShareEvent>,
    stats: ShareStats,
    origin: Instant,
    closed: bool,
}

#[derive(Debug)]
struct Waiting {
    to: SocketAddr,
    key: ChunkKey,
    pieces: Vec<u16>,
}

#[derive(Debug)]
enum Out {
    Request {
        to: SocketAddr,
        file: u64,
        version: u64,
        chunk: u32,
        ranges: Vec<(u16, u16)>,
    },
    Piece {
        to: SocketAddr,
        key: ChunkKey,
        piece: u16,
        data: Arc<Vec<u8>>,
    },
    Missing {
        to: SocketAddr,
        file: u64,
        version: u64,
    },
}

#[derive(Debug)]
struct Fetch {
    manifest: SignedManifest,
    peers: Vec<SocketAddr>,
    current: usize,
    bad: u32,
    stored: Bitmap,
    pending_store: std::collections::BTreeSet<u32>,
    assembling: BTreeMap<u32, Assembly>,
    /// (chunk, piece) → (asked at, asked before)
    in_flight: BTreeMap<(u32, u16), (Instant, bool)>,
    last_progress: Instant,
    srtt: Option<Duration>,
}

#[derive(Debug)]
struct Assembly {
    data: Vec<u8>,
    have: Vec<bool>,
    missing: usize,
}

impl Share {
    /// A share machine. `wall` seeds its message counter (see `SyncMember::new`).
    pub fn new(config: Arc<ShareConfig>, now: Instant, wall: UnixTime, key: GroupKey) -> Self {
        Self {
            config,
            keys: Keys::new(key),
            seq: wall.as_millis() << 20,
            windows: HashMap::new(),
            seeding: HashMap::new(),
            cache: VecDeque::new(),
            waiting: Vec::new(),
            tats: HashMap::new(),
            fetches: BTreeMap::new(),
            next_fetch: 1,
            out: VecDeque::new(),
            events: VecDeque::new(),
            stats: ShareStats::default(),
            origin: now,
            closed: false,
        }
    }

    /// A new group key (rotation; the previous epoch stays accepted).
    pub fn set_key(&mut self, key: GroupKey) {
        self.keys.rotate(key);
    }

    /// Offers a complete, verified file to group peers.
    pub fn seed(&mut self, manifest: SignedManifest) {
        self.seeding
            .insert((manifest.file_id(), manifest.version()), manifest);
    }

    /// Stops offering a file version.
    pub fn unseed(&mut self, file_id: u64, version: u64) {
        self.seeding.remove(&(file_id, version));
        self.cache
            .retain(|((f, v, _), _)| (*f, *v) != (file_id, version));
    }

    /// Seeding: the bytes of a chunk asked for with [`ShareEvent::ChunkNeeded`]. They are
    /// checked against the manifest before any peer gets them.
    pub fn provide_chunk(
        &mut self,
        _now: Instant,
        file_id: u64,
        version: u64,
        index: u32,
        data: &[u8],
    ) -> Result<(), ApiMisuse> {
        let m = self
            .seeding
            .get(&(file_id, version))
            .ok_or(ApiMisuse::NotShareable {
                file_id,
                reason: "not seeded",
            })?;
        let key = (file_id, version, index);
        if !m.chunk_matches(index, data) {
            // Answer the waiting peers that we lack it, rather than serve bad bytes.
            let waiting: Vec<Waiting> = self.take_waiting(key);
            for w in waiting {
                self.out.push_back(Out::Missing {
                    to: w.to,
                    file: file_id,
                    version,
                });
            }
            return Err(ApiMisuse::ChunkMismatch { file_id, index });
        }
        let data = Arc::new(data.to_vec());
        if self.cache.len() >= self.config.cache_chunks.max(1) {
            self.cache.pop_front();
        }
        self.cache.push_back((key, data.clone()));
        for w in self.take_waiting(key) {
            self.serve(w.to, key, &w.pieces, &data);
        }
        Ok(())
    }

    /// Fetching: starts downloading `manifest`'s file from `peers` (tried in order), resuming
    /// from `partial` if given (a record of the same signed manifest).
    pub fn fetch(
        &mut self,
        now: Instant,
        manifest: SignedManifest,
        peers: Vec<SocketAddr>,
        partial: Option<Partial>,
    ) -> Result<FetchId, ApiMisuse> {
        if self.closed {
            return Err(ApiMisuse::Closed);
        }
        if peers.is_empty() {
            return Err(ApiMisuse::NoPeers);
        }
        if manifest.chunk_count() > self.config.max_chunks {
            return Err(ApiMisuse::NotShareable {
                file_id: manifest.file_id(),
                reason: "more chunks than max_chunks",
            });
        }
        if manifest.chunk_size() as usize > PIECE_LEN * usize::from(u16::MAX) {
            return Err(ApiMisuse::NotShareable {
                file_id: manifest.file_id(),
                reason: "chunks too large for 16-bit piece numbers",
            });
        }
        if self.fetches.len() >= self.config.max_fetches {
            return Err(ApiMisuse::NotShareable {
                file_id: manifest.file_id(),
                reason: "too many fetches at once (max_fetches)",
            });
        }
        let stored = match partial {
            Some(p) if p.manifest() == &manifest => p.stored().clone(),
            _ => Bitmap::new(manifest.chunk_count()),
        };
        let id = self.next_fetch;
        self.next_fetch = self.next_fetch.wrapping_add(1).max(1);
        self.fetches.insert(
            id,
            Fetch {
                manifest,
                peers,
                current: 0,
                bad: 0,
                stored,
                pending_store: std::collections::BTreeSet::new(),
                assembling: BTreeMap::new(),
                in_flight: BTreeMap::new(),
                last_progress: now,
                srtt: None,
            },
        );
        self.check_complete(FetchId(id));
        self.fill(now, id);
        Ok(FetchId(id))
    }

    /// Fetching: the application stored chunk `index` (answering
    /// [`ShareEvent::ChunkVerified`]).
    pub fn chunk_stored(
        &mut self,
        now: Instant,
        fetch: FetchId,
        index: u32,
    ) -> Result<(), ApiMisuse> {
        let f = self
            .fetches
            .get_mut(&fetch.0)
            .ok_or(ApiMisuse::UnknownFetch(fetch.0))?;
        if f.pending_store.remove(&index) {
            f.stored.insert(index);
        }
        self.check_complete(fetch);
        self.fill(now, fetch.0);
        Ok(())
    }

    /// Fetching: what is stored so far, as a transfer resume record.
    pub fn partial(&self, fetch: FetchId) -> Option<Partial> {
        let f = self.fetches.get(&fetch.0)?;
        self.make_partial(f)
    }

    /// Fetching: gives up a fetch (no event).
    pub fn cancel(&mut self, fetch: FetchId) -> Result<(), ApiMisuse> {
        self.fetches
            .remove(&fetch.0)
            .map(|_| ())
            .ok_or(ApiMisuse::UnknownFetch(fetch.0))
    }

    /// One datagram from the timeline port whose type is a share type
    /// ([`crate::wire::kind`]).
    pub fn handle_input(
        &mut self,
        now: Instant,
        from: SocketAddr,
        data: &[u8],
    ) -> Result<(), SyncError> {
        if self.closed {
            return Ok(());
        }
        self.stats.datagrams_in += 1;
        let r = self.accept(now, from, data);
        if matches!(
            r,
            Err(SyncError::Decode(_)
                | SyncError::OtherGroup { .. }
                | SyncError::UnknownEpoch { .. }
                | SyncError::BadTag
                | SyncError::Replay { .. })
        ) {
            self.stats.dropped += 1;
        }
        r
    }

    /// Time passed: pieces asked for again, silent peers dropped. Early calls do nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        let ids: Vec<u32> = self.fetches.keys().copied().collect();
        for id in ids {
            let Some(f) = self.fetches.get_mut(&id) else {
                continue;
            };
            if !f.in_flight.is_empty() && now >= f.last_progress + self.config.peer_timeout {
                self.next_peer(now, id, false);
                continue;
            }
            let rto = rto(&self.config, f.srtt);
            let late: Vec<(u32, u16)> = f
                .in_flight
                .iter()
                .filter(|(_, (at, _))| now >= *at + rto)
                .map(|(k, _)| *k)
                .collect();
            self.stats.pieces_rerequested += late.len() as u64;
            self.request(now, id, &late);
            self.fill(now, id);
        }
    }

    /// The socket is gone: the machine stops.
    pub fn handle_close(&mut self, _now: Instant) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.out.clear();
        self.events.push_back(ShareEvent::Closed {
            reason: SyncError::Closed,
        });
    }

    /// Appends the next datagram to `buf` (send it from the timeline socket to `to`).
    #[must_use]
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<Transmit> {
        let out = self.out.pop_front()?;
        self.seq += 1;
        let (to, len) = match out {
            Out::Request {
                to,
                file,
                version,
                chunk,
                ranges,
            } => {
                let msg = Message::ShareRequest {
                    file,
                    version,
                    chunk,
                    ranges,
                };
                (to, self.seal(&msg, buf))
            }
            Out::Piece {
                to,
                key: (file, version, chunk),
                piece,
                data,
            } => {
                let start = usize::from(piece) * PIECE_LEN;
                let end = (start + PIECE_LEN).min(data.len());
                let msg = Message::SharePiece {
                    file,
                    version,
                    chunk,
                    piece,
                    data: &data[start..end],
                };
                self.stats.pieces_out += 1;
                (to, self.seal(&msg, buf))
            }
            Out::Missing { to, file, version } => {
                (to, self.seal(&Message::ShareMissing { file, version }, buf))
            }
        };
        self.stats.datagrams_out += 1;
        self.stats.bytes_out += len as u64;
        Some(Transmit::datagram(len, to))
    }

    /// When to call [`Share::handle_timeout`] next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        self.fetches
            .values()
            .filter(|f| !f.in_flight.is_empty())
            .flat_map(|f| {
                let rto = rto(&self.config, f.srtt);
                let oldest = f.in_flight.values().map(|(at, _)| *at).min();
                [
                    oldest.map(|t| t + rto),
                    Some(f.last_progress + self.config.peer_timeout),
                ]
            })
            .flatten()
            .min()
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ShareEvent> {
        self.events.pop_front()
    }

    /// Counters.
    pub fn stats(&self) -> ShareStats {
        self.stats
    }

    // ---- helpers ----

    fn seal(&self, msg: &Message<'_>, buf: &mut Vec<u8>) -> usize {
        wire::seal(
            &self.keys.current,
            self.config.group,
            self.config.me,
            self.seq,
            msg,
            buf,
        )
    }

    fn accept(&mut self, now: Instant, from: SocketAddr, data: &[u8]) -> Result<(), SyncError> {
        let (h, signed, tag) = wire::decode_header(data)?;
        if h.group != self.config.group {
            return Err(SyncError::OtherGroup {
                theirs: h.group.0,
                ours: self.config.group.0,
            });
        }
        let key = self
            .keys
            .for_epoch(h.epoch)
            .ok_or(SyncError::UnknownEpoch { epoch: h.epoch })?;
        if !wire::verify(key, signed, tag) {
            return Err(SyncError::BadTag);
        }
        if h.sender == self.config.me {
            return Err(SyncError::Unexpected("our own datagram"));
        }
        let msg = wire::decode_body(&h, signed)?;
        if !self.windows.entry(h.sender).or_default().accept(h.seq) {
            return Err(SyncError::Replay { seq: h.seq });
        }
        match msg {
            Message::ShareRequest {
                file,
                version,
                chunk,
                ranges,
            } => {
                self.on_request(now, h.sender, from, (file, version, chunk), &ranges);
                Ok(())
            }
            Message::SharePiece {
                file,
                version,
                chunk,
                piece,
                data,
            } => {
                self.on_piece(now, from, (file, version, chunk), piece, data);
                Ok(())
            }
            Message::ShareMissing { file, version } => {
                let ids: Vec<u32> = self
                    .fetches
                    .iter()
                    .filter(|(_, f)| {
                        f.manifest.file_id() == file
                            && f.manifest.version() == version
                            && f.peers.get(f.current) == Some(&from)
                    })
                    .map(|(id, _)| *id)
                    .collect();
                for id in ids {
                    self.next_peer(now, id, false);
                }
                Ok(())
            }
            _ => Err(SyncError::Unexpected(
                "a sync datagram (for the sync member)",
            )),
        }
    }

    fn on_request(
        &mut self,
        now: Instant,
        sender: PlayerId,
        from: SocketAddr,
        key: ChunkKey,
        ranges: &[(u16, u16)],
    ) {
        let (file, version, chunk) = key;
        let Some(m) = self.seeding.get(&(file, version)) else {
            // Smaller than the request: no amplification.
            self.out.push_back(Out::Missing {
                to: from,
                file,
                version,
            });
            return;
        };
        if chunk >= m.chunk_count() {
            return;
        }
        // Each piece of the chunk at most once, however the ranges overlap: a request never
        // makes the seeder send more than one chunk.
        let count = m.chunk_len(chunk).div_ceil(PIECE_LEN);
        let mut wanted = vec![false; count];
        for &(first, n) in ranges {
            let end = (usize::from(first) + usize::from(n)).min(count);
            for w in wanted.iter_mut().take(end).skip(usize::from(first)) {
                *w = true;
            }
        }
        let pieces: Vec<u16> = (0..count)
            .filter(|&p| wanted[p])
            .map(|p| p as u16)
            .collect();
        let now_us = u64::try_from(now.saturating_duration_since(self.origin).as_micros())
            .unwrap_or(u64::MAX);
        let mut tat = self.tats.get(&sender).copied().unwrap_or(0);
        for _ in 0..pieces.len() {
            if let Ok(t) = gcra(self.config.seed_rate, tat, now_us) {
                tat = t;
            } else {
                self.stats.requests_limited += 1;
                self.tats.insert(sender, tat);
                return;
            }
        }
        self.tats.insert(sender, tat);
        if let Some((_, data)) = self.cache.iter().find(|(k, _)| *k == key) {
            let data = data.clone();
            self.serve(from, key, &pieces, &data);
            return;
        }
        if self.waiting.len() >= self.config.max_waiting {
            return;
        }
        let first = !self.waiting.iter().any(|w| w.key == key);
        self.waiting.push(Waiting {
            to: from,
            key,
            pieces,
        });
        if first {
            self.events.push_back(ShareEvent::ChunkNeeded {
                file_id: file,
                version,
                index: chunk,
            });
        }
    }

    fn serve(&mut self, to: SocketAddr, key: ChunkKey, pieces: &[u16], data: &Arc<Vec<u8>>) {
        let count = data.len().div_ceil(PIECE_LEN);
        for &piece in pieces.iter().filter(|&&p| usize::from(p) < count) {
            self.out.push_back(Out::Piece {
                to,
                key,
                piece,
                data: data.clone(),
            });
        }
    }

    fn take_waiting(&mut self, key: ChunkKey) -> Vec<Waiting> {
        let (take, keep): (Vec<Waiting>, Vec<Waiting>) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|w| w.key == key);
        self.waiting = keep;
        take
    }

    fn on_piece(
        &mut self,
        now: Instant,
        from: SocketAddr,
        (file, version, chunk): ChunkKey,
        piece: u16,
        data: &[u8],
    ) {
        let Some((&id, f)) = self.fetches.iter_mut().find(|(_, f)| {
            f.manifest.file_id() == file
                && f.manifest.version() == version
                && f.peers.get(f.current) == Some(&from)
        }) else {
            self.stats.pieces_unneeded += 1;
            return;
        };
        let asked = f.in_flight.remove(&(chunk, piece));
        let Some(a) = f.assembling.get_mut(&chunk) else {
            self.stats.pieces_unneeded += 1;
            return;
        };
        let p = usize::from(piece);
        let start = p * PIECE_LEN;
        let expected = a.data.len().saturating_sub(start).min(PIECE_LEN);
        if p >= a.have.len() || a.have[p] || data.len() != expected {
            self.stats.pieces_unneeded += 1;
            return;
        }
        a.data[start..start + expected].copy_from_slice(data);
        a.have[p] = true;
        a.missing -= 1;
        self.stats.pieces_in += 1;
        f.last_progress = now;
        if let Some((at, false)) = asked {
            let sample = now.saturating_duration_since(at);
            f.srtt = Some(match f.srtt {
                None => sample,
                Some(s) => (s * 7 + sample) / 8,
            });
        }
        // Pieces of a chunk are served in order: three later pieces of the same request having
        // arrived, an earlier one still missing is lost. Ask again now, not after a timeout.
        let mut lost = Vec::new();
        if let Some((asked_at, _)) = asked {
            for (&(c, q), &(at, _)) in f.in_flight.range((chunk, 0)..(chunk, piece)) {
                if c == chunk && q + 3 <= piece && at <= asked_at {
                    lost.push((c, q));
                }
            }
        }
        if a.missing == 0 {
            // INVARIANT: looked up just above.
            let a = f
                .assembling
                .remove(&chunk)
                .expect("INVARIANT: assembly present");
            if f.manifest.chunk_matches(chunk, &a.data) {
                f.pending_store.insert(chunk);
                self.events.push_back(ShareEvent::ChunkVerified {
                    fetch: FetchId(id),
                    index: chunk,
                    offset: f.manifest.chunk_offset(chunk),
                    data: a.data,
                });
            } else {
                self.stats.chunks_rejected += 1;
                f.bad += 1;
                self.events.push_back(ShareEvent::ChunkRejected {
                    fetch: FetchId(id),
                    index: chunk,
                    peer: from,
                });
                if f.bad >= self.config.max_bad_chunks.max(1) {
                    self.next_peer(now, id, true);
                    return;
                }
            }
        }
        if !lost.is_empty() {
            self.stats.pieces_rerequested += lost.len() as u64;
            self.request(now, id, &lost);
        }
        self.fill(now, id);
    }

    /// Drops the current peer and moves to the next, or falls back to the server.
    fn next_peer(&mut self, now: Instant, id: u32, misbehaved: bool) {
        let Some(f) = self.fetches.get_mut(&id) else {
            return;
        };
        let peer = f.peers[f.current];
        self.events.push_back(ShareEvent::PeerDropped {
            fetch: FetchId(id),
            peer,
            misbehaved,
        });
        // Pieces from the dropped peer are not mixed with another peer's.
        f.assembling.clear();
        f.in_flight.clear();
        f.bad = 0;
        f.srtt = None;
        f.current += 1;
        f.last_progress = now;
        if f.current < f.peers.len() {
            self.fill(now, id);
            return;
        }
        // INVARIANT: looked up at the top.
        let f = self.fetches.remove(&id).expect("INVARIANT: fetch present");
        if let Some(partial) = self.make_partial(&f) {
            self.events.push_back(ShareEvent::FallBackToServer {
                fetch: FetchId(id),
                partial,
            });
        }
    }

    fn make_partial(&self, f: &Fetch) -> Option<Partial> {
        // The resume record's own encoding, decoded again (which re-verifies the signature).
        let mut bytes = Vec::new();
        let mut w = Writer::new(&mut bytes);
        w.bytes(b"FWRP");
        w.u8(1);
        w.bytes_varint(f.manifest.as_bytes());
        f.stored.encode(&mut w);
        Partial::decode(&bytes, &self.config.trusted_keys, self.config.max_chunks).ok()
    }

    fn check_complete(&mut self, fetch: FetchId) {
        let Some(f) = self.fetches.get(&fetch.0) else {
            return;
        };
        if f.stored.is_full() {
            let (file_id, version) = (f.manifest.file_id(), f.manifest.version());
            self.fetches.remove(&fetch.0);
            self.events.push_back(ShareEvent::Completed {
                fetch,
                file_id,
                version,
            });
        }
    }

    /// Asks for more pieces while the window has room (in batches of a quarter window).
    fn fill(&mut self, now: Instant, id: u32) {
        let window = self.config.window.max(1) as usize;
        let max_assembling = self.config.max_assembling.max(1);
        let Some(f) = self.fetches.get_mut(&id) else {
            return;
        };
        let free = window.saturating_sub(f.in_flight.len());
        if free == 0 || (!f.in_flight.is_empty() && free < window / 4) {
            return;
        }
        let mut wanted: Vec<(u32, u16)> = Vec::new();
        // Pieces missing from chunks already being assembled, then new chunks.
        let mut chunk = 0u32;
        loop {
            if wanted.len() >= free {
                break;
            }
            let next = f.assembling.keys().copied().find(|&c| c >= chunk);
            let c = if let Some(c) = next {
                c
            } else {
                {
                    if f.assembling.len() >= max_assembling {
                        break;
                    }
                    let mut c = chunk;
                    while c < f.manifest.chunk_count()
                        && (f.stored.contains(c)
                            || f.pending_store.contains(&c)
                            || f.assembling.contains_key(&c))
                    {
                        c += 1;
                    }
                    if c >= f.manifest.chunk_count() {
                        break;
                    }
                    let len = f.manifest.chunk_len(c);
                    let pieces = len.div_ceil(PIECE_LEN);
                    f.assembling.insert(
                        c,
                        Assembly {
                            data: vec![0; len],
                            have: vec![false; pieces],
                            missing: pieces,
                        },
                    );
                    c
                }
            };
            let a = &f.assembling[&c];
            for p in 0..a.have.len() {
                if wanted.len() >= free {
                    break;
                }
                let p16 = p as u16;
                if !a.have[p] && !f.in_flight.contains_key(&(c, p16)) {
                    wanted.push((c, p16));
                }
            }
            chunk = c + 1;
        }
        self.request(now, id, &wanted);
    }

    /// Sends requests for `pieces` (sorted by chunk) as ranges, and marks them in flight.
    fn request(&mut self, now: Instant, id: u32, pieces: &[(u32, u16)]) {
        let Some(f) = self.fetches.get_mut(&id) else {
            return;
        };
        let Some(&to) = f.peers.get(f.current) else {
            return;
        };
        let (file, version) = (f.manifest.file_id(), f.manifest.version());
        let mut sorted = pieces.to_vec();
        sorted.sort_unstable();
        let mut i = 0;
        while i < sorted.len() {
            let chunk = sorted[i].0;
            let mut ranges: Vec<(u16, u16)> = Vec::new();
            while i < sorted.len() && sorted[i].0 == chunk {
                let p = sorted[i].1;
                if let Some(last) = ranges
                    .last_mut()
                    .filter(|(first, n)| u32::from(*first) + u32::from(*n) == u32::from(p))
                {
                    last.1 += 1;
                } else if ranges.len() == MAX_RANGES {
                    break;
                } else {
                    ranges.push((p, 1));
                }
                // A piece asked for before gives no round-trip sample (Karn).
                let again = f.in_flight.contains_key(&(chunk, p));
                f.in_flight.insert((chunk, p), (now, again));
                i += 1;
            }
            self.out.push_back(Out::Request {
                to,
                file,
                version,
                chunk,
                ranges,
            });
        }
    }
}

fn rto(config: &ShareConfig, srtt: Option<Duration>) -> Duration {
    srtt.map_or(config.initial_rto, |s| s * 2 + Duration::from_millis(1))
        .clamp(config.min_rto, config.max_rto.max(config.min_rto))
}
