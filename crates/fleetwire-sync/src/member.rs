//! One member of a sync group: beacons, leader election and failover, the clock exchange, and
//! the timeline turned into `Play` events on the local clock.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleetwire_core::{Transmit, UnixTime};
use fleetwire_session::PlayerId;

use crate::clock::{Estimator, Model, Sample};
use crate::error::{ApiMisuse, SyncError};
use crate::key::{GroupId, GroupKey, Keys};
use crate::timeline::{Playlist, Timeline};
use crate::wire::{self, MAX_ITEMS, Message, Port, Role, SeqWindow};

/// How a member behaves. Every member of a group must use the same timing values.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// The group (from the server).
    pub group: GroupId,
    /// This player.
    pub me: PlayerId,
    /// This member's clock port (16732), announced in its beacons.
    pub clock_port: u16,
    /// Where beacons and the timeline go: the LAN broadcast address on the timeline port
    /// (`192.168.1.255:16733`), or every other member's timeline address.
    pub announce_to: Vec<SocketAddr>,
    /// How often every member announces itself. Default 250 ms.
    pub beacon_interval: Duration,
    /// A leader silent this long is dead; the next leader takes over at once. Failover takes at
    /// most this plus one beacon interval. Default 1 s.
    pub leader_timeout: Duration,
    /// Clock exchanges per second once synchronized: one per this interval. Default 250 ms.
    pub ping_interval: Duration,
    /// The first eight exchanges with a new leader go this fast. Default 40 ms.
    pub burst_interval: Duration,
    /// Exchanges in the sliding window. Default 64 (16 s at the default interval).
    pub window: usize,
    /// Samples needed before the first synchronization. Default 6.
    pub min_samples: usize,
    /// The fastest the disciplined clock may be pulled toward a new estimate, in parts per
    /// million on top of the drift (500 ppm = 0.5 ms per second). Default 500.
    pub max_slew_ppm: u32,
    /// A correction larger than this is not slewed but stepped, at the next item boundary, so
    /// nothing visibly jumps mid-item. Default 20 ms.
    pub step_threshold: Duration,
    /// How long before an item starts its `Play` event is emitted. Default 300 ms.
    pub lead_time: Duration,
    /// A new playlist starts at the first item boundary at least this far ahead, so every
    /// member hears of it in time. Default 1 s.
    pub switch_margin: Duration,
    /// Most members tracked. Default 64.
    pub max_members: usize,
}

impl SyncConfig {
    /// Defaults for `me` in `group`, announcing to `announce_to`.
    pub fn new(group: GroupId, me: PlayerId, announce_to: Vec<SocketAddr>) -> Self {
        Self {
            group,
            me,
            clock_port: 16732,
            announce_to,
            beacon_interval: Duration::from_millis(250),
            leader_timeout: Duration::from_secs(1),
            ping_interval: Duration::from_millis(250),
            burst_interval: Duration::from_millis(40),
            window: 64,
            min_samples: 6,
            max_slew_ppm: 500,
            step_threshold: Duration::from_millis(20),
            lead_time: Duration::from_millis(300),
            switch_margin: Duration::from_secs(1),
            max_members: 64,
        }
    }
}

/// What the application must do.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SyncEvent {
    /// Show `item` from local instant `at` for `duration` (emitted `lead_time` ahead). For the
    /// tightest start, ask [`SyncMember::instant_of`]`(start)` again just before `at`.
    Play {
        /// The content item.
        item: u64,
        /// Its index in the playlist.
        index: u16,
        /// When to start it, on this player's clock.
        at: Instant,
        /// When it starts on the group clock (nanoseconds).
        start: u64,
        /// How long it shows.
        duration: Duration,
    },
    /// A leader took over (possibly this member).
    LeaderChanged {
        /// The leader.
        leader: PlayerId,
        /// Its term.
        term: u64,
    },
    /// This member's clock is synchronized to the group (first time, or after a step).
    Synchronized {
        /// `group − local`, nanoseconds.
        offset_ns: i64,
        /// The error bound.
        error: Duration,
    },
    /// The machine closed ([`SyncMember::handle_close`]). The last event, exactly once.
    Closed {
        /// Why.
        reason: SyncError,
    },
}

/// What this member knows of its clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClockStatus {
    /// `group − local` by the disciplined clock, nanoseconds (what `Play` events use).
    pub offset_ns: i64,
    /// The offset the sample window measures now (the disciplined clock slews toward it).
    pub measured_ns: Option<i64>,
    /// Drift against the leader as measured, parts per million (the disciplined clock runs at
    /// this plus a bounded slew).
    pub drift_ppm: f64,
    /// Error bound: half the least round trip in the window (zero on the leader).
    pub error: Duration,
    /// Samples in the window.
    pub samples: usize,
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Datagrams handed to `handle_input`.
    pub datagrams_in: u64,
    /// Datagrams produced.
    pub datagrams_out: u64,
    /// Pings sent.
    pub pings: u64,
    /// Pongs that gave a sample.
    pub samples: u64,
    /// Steps of the disciplined clock (after the first synchronization).
    pub steps: u64,
    /// Times this member became leader.
    pub took_over: u64,
    /// Dropped: not a sync datagram or bad body.
    pub dropped_decode: u64,
    /// Dropped: another group.
    pub dropped_other_group: u64,
    /// Dropped: unknown key epoch or bad tag.
    pub dropped_auth: u64,
    /// Dropped: replayed.
    pub dropped_replay: u64,
    /// Ignored: authentic but unexpected.
    pub ignored: u64,
}

/// One sync-group member. The same machine leads or follows; who leads is decided by the
/// group (lowest player id among live synchronized members when the leader falls silent;
/// a higher term, then a lower id, wins any conflict).
///
/// See the [crate docs](crate) for the run loop.
#[derive(Debug)]
pub struct SyncMember {
    config: Arc<SyncConfig>,
    origin: Instant,
    keys: Keys,
    seq: u64,
    role: Role,
    term: u64,
    max_term: u64,
    leader: Option<PlayerId>,
    members: BTreeMap<PlayerId, Member>,
    estimator: Estimator,
    model: Option<Model>,
    pending_step: Option<Model>,
    error_ns: u64,
    measured: Option<f64>,
    drift: f64,
    timeline: Option<Timeline>,
    playlist: Option<Playlist>,
    last_played: Option<u64>,
    /// Group time the item last played ends (under the clock it was scheduled with).
    playing_until: Option<u64>,
    outstanding: VecDeque<u64>,
    burst_left: u32,
    next_ping: Instant,
    next_beacon: Instant,
    election_at: Instant,
    out: VecDeque<(Port, SocketAddr, Vec<u8>)>,
    events: VecDeque<SyncEvent>,
    stats: SyncStats,
    closed: bool,
}

#[derive(Debug)]
struct Member {
    addr: SocketAddr,
    clock_port: u16,
    last_heard: Instant,
    role: Role,
    term: u64,
    synced: bool,
    window: SeqWindow,
}

const BURST: u32 = 8;

impl SyncMember {
    /// A member that has just joined. `wall` (the wall clock now) seeds its message counter,
    /// so a restarted member's messages are never taken for replays. It listens for one leader
    /// timeout before electing a leader.
    pub fn new(config: Arc<SyncConfig>, now: Instant, wall: UnixTime, key: GroupKey) -> Self {
        let max_rate = 1e-3;
        Self {
            estimator: Estimator::new(config.window, max_rate),
            election_at: now + config.leader_timeout,
            config,
            origin: now,
            keys: Keys::new(key),
            seq: wall.as_millis() << 20,
            role: Role::Follower,
            term: 0,
            max_term: 0,
            leader: None,
            members: BTreeMap::new(),
            model: None,
            pending_step: None,
            error_ns: 0,
            measured: None,
            drift: 0.0,
            timeline: None,
            playlist: None,
            last_played: None,
            playing_until: None,
            outstanding: VecDeque::new(),
            burst_left: BURST,
            next_ping: now,
            next_beacon: now,
            out: VecDeque::new(),
            events: VecDeque::new(),
            stats: SyncStats::default(),
            closed: false,
        }
    }

    /// A new group key from the server (rotation): messages under the previous epoch are
    /// still accepted until the next rotation.
    pub fn set_key(&mut self, key: GroupKey) -> Result<(), ApiMisuse> {
        if key.epoch < self.keys.current.epoch {
            return Err(ApiMisuse::StaleKey {
                given: key.epoch,
                current: self.keys.current.epoch,
            });
        }
        self.keys.rotate(key);
        Ok(())
    }

    /// The playlist the server assigned. A leader announces it from the first item boundary at
    /// least `switch_margin` ahead if it is newer than the one playing; a follower keeps it for
    /// when it leads.
    pub fn set_playlist(&mut self, now: Instant, playlist: Playlist) -> Result<(), ApiMisuse> {
        if playlist.items.is_empty()
            || playlist.items.len() > MAX_ITEMS
            || playlist.items.iter().any(|i| i.duration_ms == 0)
        {
            return Err(ApiMisuse::BadPlaylist {
                items: playlist.items.len(),
            });
        }
        self.playlist = Some(playlist);
        if self.role == Role::Leader {
            self.adopt_playlist(now);
            self.announce(now);
        }
        Ok(())
    }

    /// One datagram from either port (the type byte tells them apart).
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
        if let Err(e) = &r {
            let s = &mut self.stats;
            match e {
                SyncError::Decode(_) => s.dropped_decode += 1,
                SyncError::OtherGroup { .. } => s.dropped_other_group += 1,
                SyncError::UnknownEpoch { .. } | SyncError::BadTag => s.dropped_auth += 1,
                SyncError::Replay { .. } => s.dropped_replay += 1,
                _ => s.ignored += 1,
            }
        }
        r
    }

    /// Time passed: beacons, pings, leader liveness and election, `Play` events. Early or
    /// spurious calls do nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        // Leader liveness.
        if let Some(l) = self.leader.filter(|l| *l != self.config.me) {
            let alive = self
                .members
                .get(&l)
                .is_some_and(|m| now < m.last_heard + self.config.leader_timeout);
            if !alive {
                self.leader = None;
                self.election_at = now;
            }
        }
        if self.leader.is_none() && now >= self.election_at {
            self.elect(now);
        }
        if now >= self.next_beacon {
            self.beacon(now);
            self.next_beacon = now + self.config.beacon_interval;
        }
        if self.role == Role::Follower && now >= self.next_ping {
            self.ping(now);
        }
        self.play(now);
        let forget = self.config.leader_timeout * 10;
        self.members.retain(|_, m| now < m.last_heard + forget);
    }

    /// The sockets are gone: the machine stops.
    pub fn handle_close(&mut self, _now: Instant) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.out.clear();
        self.events.push_back(SyncEvent::Closed {
            reason: SyncError::Closed,
        });
    }

    /// Appends the next datagram to `buf`; `port` says which socket sends it (pings and pongs
    /// from the clock socket, everything else from the timeline socket).
    #[must_use]
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<SyncTransmit> {
        let (port, to, bytes) = self.out.pop_front()?;
        buf.extend_from_slice(&bytes);
        self.stats.datagrams_out += 1;
        Some(SyncTransmit {
            transmit: Transmit::datagram(bytes.len(), to),
            port,
        })
    }

    /// When to call [`SyncMember::handle_timeout`] next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        let mut t = self.next_beacon;
        if self.role == Role::Follower {
            if self.leader.is_some() {
                t = t.min(self.next_ping);
            }
            match self.leader {
                Some(l) => {
                    if let Some(m) = self.members.get(&l) {
                        t = t.min(m.last_heard + self.config.leader_timeout);
                    }
                }
                None => t = t.min(self.election_at),
            }
        }
        if let Some(at) = self.next_play_due() {
            t = t.min(at);
        }
        Some(t)
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<SyncEvent> {
        self.events.pop_front()
    }

    /// Leading or following.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The leader this member follows (itself when leading).
    pub fn leader(&self) -> Option<PlayerId> {
        self.leader
    }

    /// The current leadership term.
    pub fn term(&self) -> u64 {
        self.term
    }

    /// True once the clock is synchronized (always on the leader).
    pub fn is_synchronized(&self) -> bool {
        self.model.is_some()
    }

    /// The group clock now (nanoseconds), once synchronized.
    pub fn group_time(&self, now: Instant) -> Option<u64> {
        self.model.map(|m| m.group_at(self.local(now)))
    }

    /// The local instant at which the group clock reads `group`, once synchronized.
    pub fn instant_of(&self, group: u64) -> Option<Instant> {
        self.model
            .map(|m| self.origin + Duration::from_nanos(m.local_for(group)))
    }

    /// The clock's state (for benchmarks and diagnostics), once synchronized.
    pub fn clock(&self, now: Instant) -> Option<ClockStatus> {
        let m = self.model?;
        let local = self.local(now);
        Some(ClockStatus {
            offset_ns: m.offset_at(local) as i64,
            measured_ns: self.measured.map(|o| o as i64),
            drift_ppm: if self.role == Role::Leader {
                m.rate
            } else {
                self.drift
            } * 1e6,
            error: Duration::from_nanos(self.error_ns),
            samples: self.estimator.len(),
        })
    }

    /// Members heard from lately (not counting this one).
    pub fn members(&self) -> Vec<PlayerId> {
        self.members.keys().copied().collect()
    }

    /// Counters.
    pub fn stats(&self) -> SyncStats {
        self.stats
    }

    // ---- helpers ----

    fn local(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.origin).as_nanos()).unwrap_or(u64::MAX)
    }

    fn queue(&mut self, port: Port, to: SocketAddr, msg: &Message<'_>) {
        let mut bytes = Vec::new();
        self.seq += 1;
        wire::seal(
            &self.keys.current,
            self.config.group,
            self.config.me,
            self.seq,
            msg,
            &mut bytes,
        );
        self.out.push_back((port, to, bytes));
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
        if !matches!(
            msg,
            Message::Ping { .. }
                | Message::Pong { .. }
                | Message::Beacon { .. }
                | Message::Timeline { .. }
        ) {
            return Err(SyncError::Unexpected(
                "a LAN-share datagram (for the share machine)",
            ));
        }
        let m = self.member_entry(now, from, h.sender, &msg)?;
        if !m.window.accept(h.seq) {
            return Err(SyncError::Replay { seq: h.seq });
        }
        m.last_heard = now;
        match msg {
            Message::Ping { t1 } => self.on_ping(now, from, t1),
            Message::Pong { t1, t2, t3, term } => self.on_pong(now, h.sender, t1, t2, t3, term),
            Message::Beacon {
                role,
                term,
                clock_port,
                synced,
                ..
            } => {
                m.addr = from;
                m.clock_port = clock_port;
                m.role = role;
                m.term = term;
                m.synced = synced;
                self.on_beacon(now, h.sender, role, term);
                Ok(())
            }
            Message::Timeline {
                term,
                playlist,
                anchor_index,
                anchor_start,
                items,
                ..
            } => {
                if Some(h.sender) != self.leader || term < self.term {
                    return Err(SyncError::Unexpected(
                        "a timeline from a member that is not the leader",
                    ));
                }
                self.timeline = Some(Timeline {
                    playlist,
                    items,
                    anchor_index,
                    anchor_start,
                });
                Ok(())
            }
            _ => Err(SyncError::Unexpected("a LAN-share datagram")),
        }
    }

    /// The sender's entry; beacons and pings from a new member create one.
    fn member_entry(
        &mut self,
        now: Instant,
        from: SocketAddr,
        sender: PlayerId,
        msg: &Message<'_>,
    ) -> Result<&mut Member, SyncError> {
        if !self.members.contains_key(&sender) {
            if !matches!(msg, Message::Beacon { .. } | Message::Ping { .. }) {
                return Err(SyncError::Unexpected(
                    "a message from a member not heard yet",
                ));
            }
            if self.members.len() >= self.config.max_members {
                return Err(SyncError::TooManyMembers {
                    max: self.config.max_members,
                });
            }
        }
        Ok(self.members.entry(sender).or_insert(Member {
            addr: from,
            clock_port: from.port(),
            last_heard: now,
            role: Role::Follower,
            term: 0,
            synced: false,
            window: SeqWindow::default(),
        }))
    }

    fn on_ping(&mut self, now: Instant, from: SocketAddr, t1: u64) -> Result<(), SyncError> {
        if self.role != Role::Leader {
            return Err(SyncError::Unexpected(
                "a ping, but this member does not lead",
            ));
        }
        let Some(m) = self.model else {
            return Err(SyncError::Unexpected(
                "a ping before the group clock exists",
            ));
        };
        // The pong is the same size as the ping (the ping carries padding).
        let g = m.group_at(self.local(now));
        let pong = Message::Pong {
            t1,
            t2: g,
            t3: g,
            term: self.term,
        };
        self.queue(Port::Clock, from, &pong);
        Ok(())
    }

    fn on_pong(
        &mut self,
        now: Instant,
        sender: PlayerId,
        t1: u64,
        t2: u64,
        t3: u64,
        term: u64,
    ) -> Result<(), SyncError> {
        if Some(sender) != self.leader || self.role == Role::Leader || term < self.term {
            return Err(SyncError::Unexpected(
                "a pong from a member that is not our leader",
            ));
        }
        let Some(pos) = self.outstanding.iter().position(|&t| t == t1) else {
            return Err(SyncError::Unexpected("a pong that answers no ping of ours"));
        };
        self.outstanding.remove(pos);
        let t4 = self.local(now);
        let Some(sample) = Sample::from_exchange(t1, t2, t3, t4) else {
            return Err(SyncError::Unexpected("a pong with inconsistent timestamps"));
        };
        self.stats.samples += 1;
        self.estimator.add(sample);
        self.discipline(now);
        Ok(())
    }

    /// Moves the disciplined clock toward the estimate: the first time (or after a big
    /// error, at an item boundary) in one step, otherwise by slewing at a bounded rate.
    fn discipline(&mut self, now: Instant) {
        let local = self.local(now);
        let Some(est) = self.estimator.estimate(local) else {
            return;
        };
        self.measured = Some(est.offset);
        self.error_ns = est.error;
        self.drift = est.rate;
        let Some(model) = self.model else {
            if self.estimator.len() >= self.config.min_samples.max(1) {
                self.model = Some(Model {
                    local_ref: local,
                    off_ref: est.offset,
                    rate: est.rate,
                });
                self.events.push_back(SyncEvent::Synchronized {
                    offset_ns: est.offset as i64,
                    error: Duration::from_nanos(est.error),
                });
            }
            return;
        };
        let current = model.offset_at(local);
        let diff = est.offset - current;
        let step = self.config.step_threshold.as_nanos() as f64;
        if diff.abs() > step {
            self.pending_step = Some(Model {
                local_ref: local,
                off_ref: est.offset,
                rate: est.rate,
            });
            if self.last_played.is_none() {
                self.apply_step();
            }
            return;
        }
        self.pending_step = None;
        // Remove the difference over about 2 s, never faster than max_slew.
        let max_slew = f64::from(self.config.max_slew_ppm) * 1e-6;
        let slew = (diff / 2e9).clamp(-max_slew, max_slew);
        self.model = Some(Model {
            local_ref: local,
            off_ref: current,
            rate: est.rate + slew,
        });
    }

    fn apply_step(&mut self) {
        if let Some(m) = self.pending_step.take() {
            self.model = Some(m);
            self.stats.steps += 1;
            self.events.push_back(SyncEvent::Synchronized {
                offset_ns: m.off_ref as i64,
                error: Duration::from_nanos(self.error_ns),
            });
        }
    }

    fn on_beacon(&mut self, now: Instant, sender: PlayerId, role: Role, term: u64) {
        self.max_term = self.max_term.max(term);
        if role != Role::Leader {
            return;
        }
        let wins = |term: u64, id: PlayerId, than_term: u64, than_id: PlayerId| {
            term > than_term || (term == than_term && id < than_id)
        };
        match (self.role, self.leader) {
            (Role::Leader, _) => {
                if wins(term, sender, self.term, self.config.me) {
                    // Another leader outranks us (a healed partition): follow it.
                    self.follow(now, sender, term);
                }
            }
            (Role::Follower, Some(current)) if current == sender => self.term = term,
            (Role::Follower, Some(current)) => {
                if wins(term, sender, self.term, current) {
                    self.follow(now, sender, term);
                }
            }
            (Role::Follower, None) => {
                if term >= self.term {
                    self.follow(now, sender, term);
                }
            }
        }
    }

    fn follow(&mut self, now: Instant, leader: PlayerId, term: u64) {
        let changed = self.leader != Some(leader);
        self.role = Role::Follower;
        self.leader = Some(leader);
        self.term = term;
        if changed {
            // Samples were against another clock; the drift estimate stays.
            self.estimator.clear();
            self.outstanding.clear();
            self.burst_left = BURST;
            self.next_ping = now;
            self.events
                .push_back(SyncEvent::LeaderChanged { leader, term });
        }
    }

    fn elect(&mut self, now: Instant) {
        let live = |m: &Member| now < m.last_heard + self.config.leader_timeout;
        let any_synced = self.model.is_some() || self.members.values().any(|m| live(m) && m.synced);
        let me = self.config.me;
        let mut candidates = self
            .members
            .iter()
            .filter(|(_, m)| live(m) && (m.synced || !any_synced))
            .map(|(id, _)| *id)
            .collect::<Vec<_>>();
        if self.model.is_some() || !any_synced {
            candidates.push(me);
        }
        let lowest = candidates.into_iter().min();
        if lowest == Some(me) {
            self.become_leader(now);
        } else {
            // Give the candidate one timeout to announce itself.
            self.election_at = now + self.config.leader_timeout;
        }
    }

    fn become_leader(&mut self, now: Instant) {
        let local = self.local(now);
        self.role = Role::Leader;
        self.term = self.max_term.max(self.term).saturating_add(1);
        self.max_term = self.term;
        self.leader = Some(self.config.me);
        self.stats.took_over += 1;
        // Our clock becomes the group clock: continue it where it is, at the drift measured
        // against the old leader (no slew), so the group clock neither jumps nor changes pace.
        self.model = Some(match self.model {
            Some(m) => Model {
                local_ref: local,
                off_ref: m.offset_at(local),
                rate: self.estimator.estimate(local).map_or(m.rate, |e| e.rate),
            },
            None => Model::identity(local),
        });
        self.pending_step = None;
        self.error_ns = 0;
        self.measured = None;
        self.estimator.clear();
        self.outstanding.clear();
        self.events.push_back(SyncEvent::LeaderChanged {
            leader: self.config.me,
            term: self.term,
        });
        self.adopt_playlist(now);
        self.announce(now);
        self.next_beacon = now + self.config.beacon_interval;
    }

    /// As leader: start the assigned playlist if it is newer than the one playing, at the first
    /// boundary at least `switch_margin` ahead.
    fn adopt_playlist(&mut self, now: Instant) {
        let (Some(p), Some(m)) = (&self.playlist, self.model) else {
            return;
        };
        if self.timeline.as_ref().is_some_and(|t| t.playlist >= p.id) {
            return;
        }
        let at = m.group_at(self.local(now)) + self.config.switch_margin.as_nanos() as u64;
        let start = self
            .timeline
            .as_ref()
            .map_or(at, |t| t.next_at_or_after(at).start);
        self.timeline = Some(Timeline {
            playlist: p.id,
            items: p.items.clone(),
            anchor_index: 0,
            anchor_start: start,
        });
    }

    fn beacon(&mut self, now: Instant) {
        let msg = Message::Beacon {
            role: self.role,
            term: self.term,
            clock_port: self.config.clock_port,
            synced: self.model.is_some(),
            leader: self.leader.unwrap_or(PlayerId::from_bytes([0; 16])),
            error_us: u32::try_from(self.error_ns / 1000).unwrap_or(u32::MAX),
        };
        for to in self.config.announce_to.clone() {
            self.queue(Port::Timeline, to, &msg);
        }
        if self.role == Role::Leader {
            self.announce_timeline(now);
        }
    }

    fn announce(&mut self, now: Instant) {
        self.beacon(now);
    }

    fn announce_timeline(&mut self, now: Instant) {
        let (Some(t), Some(m)) = (&self.timeline, self.model) else {
            return;
        };
        let g = m.group_at(self.local(now));
        let t = t.reanchored(g);
        let msg = Message::Timeline {
            term: self.term,
            group_now: g,
            playlist: t.playlist,
            anchor_index: t.anchor_index,
            anchor_start: t.anchor_start,
            items: t.items.clone(),
        };
        for to in self.config.announce_to.clone() {
            self.queue(Port::Timeline, to, &msg);
        }
    }

    fn ping(&mut self, now: Instant) {
        let Some(l) = self.leader else {
            return;
        };
        let Some(m) = self.members.get(&l) else {
            return;
        };
        let to = SocketAddr::new(m.addr.ip(), m.clock_port);
        let t1 = self.local(now);
        if self.outstanding.len() >= 16 {
            self.outstanding.pop_front();
        }
        self.outstanding.push_back(t1);
        self.queue(Port::Clock, to, &Message::Ping { t1 });
        self.stats.pings += 1;
        let interval = if self.burst_left > 0 {
            self.burst_left -= 1;
            self.config.burst_interval
        } else {
            self.config.ping_interval
        };
        self.next_ping = now + interval;
    }

    /// The local instant the next `Play` is due (lead time before the next boundary).
    fn next_play_due(&self) -> Option<Instant> {
        let (t, m) = (self.timeline.as_ref()?, self.model?);
        let lead = self.config.lead_time.as_nanos() as u64;
        // A step waits for the end of what is showing, on the clock it was scheduled by.
        let boundary = match self.playing_until.filter(|_| self.pending_step.is_some()) {
            Some(end) => end,
            None => {
                t.next_at_or_after(self.last_played.map_or(0, |s| s.saturating_add(1)))
                    .start
            }
        };
        let local = m.local_for(boundary.saturating_sub(lead));
        Some(self.origin + Duration::from_nanos(local))
    }

    fn play(&mut self, now: Instant) {
        if self.timeline.is_none() || self.model.is_none() {
            return;
        }
        // At most a few boundaries per call (short items, or a late call).
        for _ in 0..8 {
            let Some(due) = self.next_play_due() else {
                return;
            };
            if due > now {
                return;
            }
            // An item boundary: the moment a pending step may be applied.
            self.apply_step();
            let (Some(t), Some(m)) = (&self.timeline, self.model) else {
                return;
            };
            let g = m.group_at(self.local(now));
            let lead = self.config.lead_time.as_nanos() as u64;
            let after = self.last_played.map_or(0, |s| s.saturating_add(1));
            let slot = t.next_at_or_after(after);
            if slot.start < g.saturating_add(lead / 2) {
                // Too late to start it in step (joined mid-item, or the machine was starved):
                // catch up at the next boundary instead.
                let next = t.next_at_or_after(g.saturating_add(lead / 2));
                self.last_played = Some(next.start.saturating_sub(1));
                continue;
            }
            self.last_played = Some(slot.start);
            self.playing_until = Some(
                slot.start
                    .saturating_add(u64::from(slot.item.duration_ms) * 1_000_000),
            );
            let at = self.origin + Duration::from_nanos(m.local_for(slot.start));
            self.events.push_back(SyncEvent::Play {
                item: slot.item.id,
                index: slot.index,
                at,
                start: slot.start,
                duration: Duration::from_millis(u64::from(slot.item.duration_ms)),
            });
        }
    }
}

/// One datagram to send: `transmit.len` bytes appended to the caller's buffer for
/// `transmit.to`, from the socket `port` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncTransmit {
    /// The bytes appended and where they go.
    pub transmit: Transmit,
    /// Which socket sends it.
    pub port: Port,
}
