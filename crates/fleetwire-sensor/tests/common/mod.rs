//! A deterministic in-memory world for the integration tests: a logger's memory, the cloud's
//! store, and the two machines wrapped as applications on the suite's harness
//! (`fleetwire_testkit::Pair`), optionally cutting the connection after a given number of bytes.
#![allow(dead_code, unreachable_pub, clippy::missing_panics_doc)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleetwire_testkit::{Endpoint, LinkConfig, Pair, VirtualClock};

use fleetwire_sensor::cloud::{self, CloudConfig, CloudSession, LoggerRecord, StatusStamp};
use fleetwire_sensor::logger::{self, LoggerConfig, LoggerSession};
use fleetwire_sensor::{
    Batch, Channel, CloseReason, EpochEnd, Gap, LoggerId, LoggerKey, Mark, Settings, Status,
};

pub const MASTER: [u8; 32] = [0x5a; 32];
pub const T0: u64 = 1_750_000_000;
pub const INTERVAL: u32 = 300;

pub fn key_of(id: LoggerId) -> LoggerKey {
    LoggerKey::derive(&MASTER, id)
}

/// A logged slot's values; `None` = lost (overwritten before upload).
pub type Slot = Option<Vec<Option<i32>>>;

/// One epoch in the logger's flash.
#[derive(Debug, Clone)]
pub struct EpochMemory {
    pub epoch: u32,
    /// How the previous epoch ended: sent with slot 0 of this epoch until that is acknowledged.
    pub previous: Option<EpochEnd>,
    /// Every slot below is acknowledged (and freed).
    pub floor: u64,
    /// The next sequence number to log.
    pub next: u64,
    /// The unacknowledged slots from `floor` on; a sequence number below `next` that is missing
    /// here was lost and goes out as a gap record.
    pub slots: BTreeMap<u64, Slot>,
}

impl EpochMemory {
    fn new(epoch: u32, previous: Option<EpochEnd>) -> Self {
        Self {
            epoch,
            previous,
            floor: 0,
            next: 0,
            slots: BTreeMap::new(),
        }
    }
}

/// The logger's flash: every slot not yet acknowledged, per epoch (the last one is current).
#[derive(Debug, Clone)]
pub struct Memory {
    pub logger: LoggerId,
    pub channels: Vec<Channel>,
    pub epochs: Vec<EpochMemory>,
    pub batch_slots: usize,
    pub settings_version: u32,
    /// Sent with the first batch of the next flight.
    pub status: Option<Status>,
}

impl Memory {
    pub fn new(logger: LoggerId, channels: Vec<Channel>) -> Self {
        Self {
            logger,
            channels,
            epochs: vec![EpochMemory::new(0, None)],
            batch_slots: 100,
            settings_version: 0,
            status: None,
        }
    }

    /// A logger whose slots before `first` of epoch 0 were all acknowledged in an earlier life
    /// (pair it with [`Store::holding_through`]).
    pub fn starting_at(logger: LoggerId, channels: Vec<Channel>, first: u64) -> Self {
        let mut mem = Self::new(logger, channels);
        mem.epochs[0].floor = first;
        mem.epochs[0].next = first;
        mem
    }

    pub fn current(&self) -> &EpochMemory {
        self.epochs.last().unwrap()
    }

    /// Logs slot `seq` of the current epoch (slots skipped since the last one are lost).
    pub fn log(&mut self, seq: u64, values: Slot) {
        let cur = self.epochs.last_mut().unwrap();
        assert!(seq >= cur.next, "slots are logged in order");
        cur.slots.insert(seq, values);
        cur.next = seq + 1;
    }

    /// Unacknowledged slots held, all epochs.
    pub fn held(&self) -> usize {
        self.epochs.iter().map(|e| e.slots.len()).sum()
    }

    /// No unacknowledged slot left, in any epoch.
    pub fn is_empty(&self) -> bool {
        self.epochs.iter().all(|e| e.floor >= e.next)
    }

    /// The logger loses its numbering and starts the next epoch. `abandon`: it also lost track
    /// of the current epoch (its unacknowledged slots are gone, counted as lost); otherwise it
    /// still holds them and states where the epoch ended.
    ///
    /// An epoch that never logged a slot never reached the cloud and is skipped (the new one
    /// repeats its opening statement). An abandoned epoch keeps at least slot 0, as a gap
    /// record, while it is unacknowledged: that batch carries the epoch's own opening statement,
    /// without which the cloud could never reach it.
    pub fn new_epoch(&mut self, abandon: bool) {
        let cur = self.epochs.last_mut().unwrap();
        let epoch = cur.epoch + 1;
        let previous = if cur.next == 0 && cur.previous.is_some() {
            self.epochs.pop().unwrap().previous
        } else {
            if abandon && cur.next > 0 {
                cur.slots.clear();
                cur.next = cur.floor.max(1);
            }
            Some(EpochEnd {
                epoch: cur.epoch,
                next_seq: cur.next,
                abandoned: abandon,
            })
        };
        self.epochs.push(EpochMemory::new(epoch, previous));
        self.collect();
    }

    /// Batches of up to `batch_slots` slots, oldest epoch first, from the oldest unacknowledged
    /// slot of each; lost slots are gap records. An abandoned epoch whose successor's slot 0 is
    /// not acknowledged yet is probed with an empty batch (its ack tells the logger what the
    /// cloud holds of it, which the opening statement must match).
    pub fn batches(&self) -> Vec<Batch> {
        let mut out = Vec::new();
        for (i, em) in self.epochs.iter().enumerate() {
            if em.floor >= em.next {
                let successor = self.epochs.get(i + 1);
                if successor
                    .is_some_and(|s| s.floor == 0 && s.previous.is_some_and(|p| p.abandoned))
                {
                    out.push(Batch::empty(self.logger, em.epoch, em.floor, T0));
                }
                continue;
            }
            let mut seq = em.floor;
            while seq < em.next {
                let end = (seq + self.batch_slots as u64).min(em.next);
                let mut b = Batch {
                    logger: self.logger,
                    epoch: em.epoch,
                    first_seq: seq,
                    start: start_of(em.epoch, seq),
                    interval_s: INTERVAL,
                    channels: self.channels.clone(),
                    previous: if seq == 0 { em.previous } else { None },
                    ..Batch::default()
                };
                for s in seq..end {
                    match em.slots.get(&s) {
                        Some(Some(values)) => b.values.extend(values.iter().copied()),
                        _ => match b.gaps.last_mut() {
                            Some(g) if g.seq + g.count == s => g.count += 1,
                            _ => b.gaps.push(Gap { seq: s, count: 1 }),
                        },
                    }
                }
                out.push(b);
                seq = end;
            }
        }
        if out.is_empty() {
            let cur = self.current();
            out.push(Batch::empty(self.logger, cur.epoch, cur.next, T0));
        }
        out[0].status = self.status;
        out
    }

    /// An authenticated ack said slots `0..=mark.seq` of `mark.epoch` are stored: free them.
    pub fn free(&mut self, mark: Mark) {
        let Some(i) = self.epochs.iter().position(|e| e.epoch == mark.epoch) else {
            return;
        };
        let em = &mut self.epochs[i];
        em.floor = em.floor.max(mark.seq + 1);
        em.next = em.next.max(em.floor);
        em.slots.retain(|&seq, _| seq > mark.seq);
        let floor = em.floor;
        // An abandoned epoch's end is what the cloud holds of it: learn it from the ack.
        if let Some(successor) = self.epochs.get_mut(i + 1) {
            if let Some(p) = successor.previous.as_mut() {
                if p.abandoned && successor.floor == 0 && p.next_seq < floor {
                    p.next_seq = floor;
                }
            }
        }
        self.collect();
    }

    /// Forgets epochs that are fully acknowledged and no longer needed for an opening statement.
    fn collect(&mut self) {
        let n = self.epochs.len();
        let keep: Vec<bool> = (0..n)
            .map(|i| {
                let em = &self.epochs[i];
                i + 1 == n
                    || em.floor < em.next
                    || self.epochs[i + 1].floor == 0
                        && self.epochs[i + 1].previous.is_some_and(|p| p.abandoned)
            })
            .collect();
        let mut k = keep.iter();
        self.epochs.retain(|_| *k.next().unwrap());
    }
}

/// Unix time of slot `seq` of `epoch`.
pub fn start_of(epoch: u32, seq: u64) -> u64 {
    T0 + u64::from(epoch) * 100_000_000 + seq * u64::from(INTERVAL)
}

/// The cloud's store: readings by (epoch, seq), how many times each was written, the durable
/// mark and the closed epochs, updated in one step per batch.
#[derive(Debug, Clone, Default)]
pub struct Store {
    pub readings: BTreeMap<(u32, u64), Vec<Option<i32>>>,
    pub writes: BTreeMap<(u32, u64), u32>,
    pub gaps: Vec<(u32, Gap)>,
    pub mark: Option<Mark>,
    pub closed: Vec<EpochEnd>,
    pub status: Option<(StatusStamp, Status)>,
    pub settings: Option<Settings>,
    pub key_override: Option<LoggerKey>,
    pub unknown: bool,
}

impl Store {
    /// A conditional write: applies only if the mark is still `after`. Checks the store's own
    /// invariant (each epoch a contiguous prefix from 0) so a machine bug shows here.
    pub fn write(&mut self, after: Option<Mark>, closes: Option<EpochEnd>, batch: &Batch) -> bool {
        if after != self.mark {
            return false;
        }
        let (epoch, next) = self.mark.map_or((0, 0), |m| (m.epoch, m.seq + 1));
        if let Some(end) = closes {
            assert_eq!(
                (end.epoch, end.next_seq),
                (epoch, next),
                "closes what is stored"
            );
            assert!(batch.epoch > epoch && batch.first_seq == 0);
            self.closed.push(end);
        } else {
            assert_eq!(batch.epoch, epoch, "same epoch without a closing statement");
            assert_eq!(
                batch.first_seq, next,
                "the batch continues the stored prefix"
            );
        }
        for r in batch.readings() {
            self.readings
                .insert((batch.epoch, r.seq), r.values.to_vec());
            *self.writes.entry((batch.epoch, r.seq)).or_default() += 1;
        }
        self.gaps
            .extend(batch.gaps.iter().map(|g| (batch.epoch, *g)));
        if let Some(last) = batch.last() {
            self.mark = Some(last);
        }
        true
    }

    /// A store that holds epoch 0 before `next` (readings not kept: they are not under test).
    pub fn holding_through(next: u64) -> Self {
        Self {
            mark: next.checked_sub(1).map(|seq| Mark { epoch: 0, seq }),
            ..Self::default()
        }
    }

    /// What `provide_key` gets.
    pub fn record(&self, logger: LoggerId) -> Option<LoggerRecord> {
        (!self.unknown).then(|| LoggerRecord {
            key: self.key_override.clone().unwrap_or_else(|| key_of(logger)),
            stored: self.mark,
            closed: self.closed.clone(),
            status: self.status.map(|(stamp, _)| stamp),
            settings: self.settings.clone(),
            server_time: T0 + 86_400,
        })
    }

    /// Keeps the newest status.
    pub fn write_status(&mut self, stamp: StatusStamp, status: Status) {
        if self.status.is_none_or(|(s, _)| stamp > s) {
            self.status = Some((stamp, status));
        }
    }
}

/// What happened on one connection.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub logger_close: Option<CloseReason>,
    pub cloud_close: Option<CloseReason>,
    pub logger_events: Vec<logger::Event>,
    pub cloud_events: Vec<cloud::Event>,
    pub up_bytes: usize,
    pub down_bytes: usize,
    /// Changes of direction of the byte flow: 2 = one round trip.
    pub flights: usize,
    pub cut: bool,
}

/// Options for one connection.
#[derive(Debug, Clone, Default)]
pub struct Link {
    /// The connection breaks once the logger sent this many bytes (the cloud reads them,
    /// then the end of the stream).
    pub break_uplink_after: Option<usize>,
    /// The connection breaks once the cloud sent this many bytes.
    pub break_downlink_after: Option<usize>,
    /// After a cut, still write the batches the cloud already handed out.
    pub store_after_cut: bool,
}

impl Link {
    /// A connection cut after `cut_after` bytes of an exchange whose uplink flight is `uplink`
    /// bytes (uplink and downlink bytes both count, in the order they flow: one round trip).
    pub fn cut_after(cut_after: usize, uplink: usize, store_after_cut: bool) -> Self {
        if cut_after < uplink {
            Self {
                break_uplink_after: Some(cut_after),
                store_after_cut,
                ..Self::default()
            }
        } else {
            Self {
                break_downlink_after: Some(cut_after - uplink),
                store_after_cut,
                ..Self::default()
            }
        }
    }
}

/// The logger application: its flash ([`Memory`]) frees what acks cover.
#[derive(Debug)]
pub struct LoggerApp<'m> {
    pub lg: LoggerSession,
    pub mem: &'m mut Memory,
    pub events: Vec<logger::Event>,
    pub close: Option<CloseReason>,
}

impl Endpoint for LoggerApp<'_> {
    fn handle_input(&mut self, now: Instant, data: &[u8]) {
        let _ = self.lg.handle_input(now, data);
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.lg.handle_timeout(now);
    }
    fn handle_close(&mut self, now: Instant) {
        self.lg.handle_close(now);
    }
    fn process_events(&mut self, _now: Instant) {
        while let Some(ev) = self.lg.poll_event() {
            match &ev {
                logger::Event::Acked {
                    stored: Some(mark), ..
                } => self.mem.free(*mark),
                logger::Event::Settings(s) => self.mem.settings_version = s.version,
                logger::Event::Closed { reason } => {
                    assert!(self.close.is_none(), "two Closed events");
                    self.close = Some(reason.clone());
                }
                _ => {}
            }
            self.events.push(ev);
        }
    }
    fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> bool {
        self.lg.poll_transmit(buf).is_some()
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.lg.poll_timeout()
    }
}

/// The cloud application: looks loggers up in the [`Store`] and writes batches to it.
#[derive(Debug)]
pub struct CloudApp<'s> {
    pub cl: CloudSession,
    pub store: &'s mut Store,
    /// After the transport ended, still write the batches already handed out.
    pub store_after_cut: bool,
    /// The transport ended.
    pub transport_closed: bool,
    pub events: Vec<cloud::Event>,
    pub close: Option<CloseReason>,
}

impl Endpoint for CloudApp<'_> {
    fn handle_input(&mut self, now: Instant, data: &[u8]) {
        let _ = self.cl.handle_input(now, data);
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.cl.handle_timeout(now);
    }
    fn handle_close(&mut self, now: Instant) {
        self.transport_closed = true;
        self.cl.handle_close(now);
    }
    fn process_events(&mut self, now: Instant) {
        let store_ok = !self.transport_closed || self.store_after_cut;
        while let Some(ev) = self.cl.poll_event() {
            match &ev {
                cloud::Event::KeyNeeded { logger } => {
                    self.cl
                        .provide_key(now, *logger, self.store.record(*logger))
                        .unwrap();
                }
                cloud::Event::Status { stamp, status, .. } if store_ok => {
                    self.store.write_status(*stamp, *status);
                }
                cloud::Event::Batch {
                    id,
                    after,
                    closes,
                    batch,
                } if store_ok => {
                    if self.store.write(*after, *closes, batch) {
                        self.cl.confirm_stored(now, *id).unwrap();
                    } else {
                        self.cl.storage_failed(now, *id).unwrap();
                    }
                }
                cloud::Event::Closed { reason } => {
                    assert!(self.close.is_none(), "two Closed events");
                    self.close = Some(reason.clone());
                }
                _ => {}
            }
            self.events.push(ev);
        }
    }
    fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> bool {
        self.cl.poll_transmit(buf).is_some()
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.cl.poll_timeout()
    }
}

/// Runs one connection between a logger with `mem` and the cloud with `store`, on the suite's
/// deterministic harness (`fleetwire_testkit::Pair`, `a` the logger, `b` the cloud). When one
/// side has closed and nothing is in flight, the socket closes (both get `handle_close`).
pub fn connect(mem: &mut Memory, store: &mut Store, link: &Link) -> Outcome {
    let clock = VirtualClock::new();
    let now = clock.now();
    let id = mem.logger;
    let mut cfg = LoggerConfig::new(id, key_of(id));
    cfg.settings_version = mem.settings_version;
    let lg = LoggerSession::new(Arc::new(cfg), now, mem.batches()).unwrap();
    let cl = CloudSession::new(Arc::new(CloudConfig::default()), now);
    let logger_app = LoggerApp {
        lg,
        mem,
        events: Vec::new(),
        close: None,
    };
    let cloud_app = CloudApp {
        cl,
        store,
        store_after_cut: link.store_after_cut,
        transport_closed: false,
        events: Vec::new(),
        close: None,
    };
    let wire = |break_after_bytes| {
        fleetwire_testkit::Link::new(
            LinkConfig {
                break_after_bytes,
                ..LinkConfig::perfect()
            },
            0,
        )
    };
    let mut p = Pair::new(
        logger_app,
        cloud_app,
        wire(link.break_uplink_after),
        wire(link.break_downlink_after),
        clock,
    );
    p.run_until(Duration::from_secs(3600), 10_000, |p| {
        let (lg, cl) = (p.a.close.is_some(), p.b.close.is_some());
        p.closed || lg && cl || (lg || cl) && p.a_to_b.is_idle() && p.b_to_a.is_idle()
    });
    // One side is done (or both): the socket closes.
    p.close();
    Outcome {
        cut: p.a_to_b.is_broken() || p.b_to_a.is_broken(),
        up_bytes: p.a_to_b.stats().delivered_bytes as usize,
        down_bytes: p.b_to_a.stats().delivered_bytes as usize,
        flights: p.flights as usize,
        logger_close: p.a.close,
        cloud_close: p.b.close,
        logger_events: p.a.events,
        cloud_events: p.b.events,
    }
}

/// A temperature series: a slow daily swing plus small noise, in tenths of a degree.
pub fn temperature(seq: u64, noise: i32) -> i32 {
    let phase = (seq % 288) as i32;
    let tri = if phase < 144 { phase } else { 288 - phase };
    180 + tri / 3 + noise
}
