//! A deterministic in-memory world for the integration tests: a logger's memory, the cloud's
//! store, and a pump that moves bytes between the two machines, optionally cutting the
//! connection after a given number of bytes.
#![allow(dead_code, unreachable_pub, clippy::missing_panics_doc)]
// A driver's clock origin: the machines never read a clock, tests pick an arbitrary `now`.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    /// Cut after this many bytes (both directions counted, in the order they flow).
    pub cut_after: Option<usize>,
    /// After a cut, still write the batches the cloud already handed out.
    pub store_after_cut: bool,
}

/// Runs one connection between a logger with `mem` and the cloud with `store`.
pub fn connect(mem: &mut Memory, store: &mut Store, link: &Link) -> Outcome {
    let now = Instant::now();
    let id = mem.logger;
    let mut cfg = LoggerConfig::new(id, key_of(id));
    cfg.settings_version = mem.settings_version;
    let mut lg = LoggerSession::new(Arc::new(cfg), now, mem.batches()).unwrap();
    let mut cl = CloudSession::new(Arc::new(CloudConfig::default()), now);
    let mut out = Outcome::default();
    let mut budget = link.cut_after.unwrap_or(usize::MAX);
    let mut last_dir = 0u8;
    for _ in 0..100 {
        // Logger -> cloud.
        let mut up = Vec::new();
        while lg.poll_transmit(&mut up).is_some() {}
        let mut cut_now = false;
        if !up.is_empty() {
            if last_dir != 1 {
                out.flights += 1;
                last_dir = 1;
            }
            if up.len() > budget {
                up.truncate(budget);
                cut_now = true;
            }
            budget -= up.len();
            out.up_bytes += up.len();
            let _ = cl.handle_input(now, &up);
        }
        if cut_now {
            cl.handle_close(now);
        }
        drain_cloud(
            &mut cl,
            store,
            &mut out,
            now,
            !cut_now || link.store_after_cut,
        );
        if cut_now {
            lg.handle_close(now);
            drain_logger(&mut lg, mem, &mut out);
            out.cut = true;
            return out;
        }
        // Cloud -> logger.
        let mut down = Vec::new();
        while cl.poll_transmit(&mut down).is_some() {}
        if !down.is_empty() {
            if last_dir != 2 {
                out.flights += 1;
                last_dir = 2;
            }
            if down.len() > budget {
                down.truncate(budget);
                cut_now = true;
            }
            budget -= down.len();
            out.down_bytes += down.len();
            let _ = lg.handle_input(now, &down);
        }
        if cut_now {
            lg.handle_close(now);
        }
        drain_logger(&mut lg, mem, &mut out);
        if cut_now {
            cl.handle_close(now);
            drain_cloud(&mut cl, store, &mut out, now, link.store_after_cut);
            out.cut = true;
            return out;
        }
        if out.logger_close.is_some() && out.cloud_close.is_some() {
            return out;
        }
        if out.logger_close.is_some() || out.cloud_close.is_some() {
            // One side is done: the socket closes.
            lg.handle_close(now);
            cl.handle_close(now);
            drain_logger(&mut lg, mem, &mut out);
            drain_cloud(&mut cl, store, &mut out, now, true);
            return out;
        }
    }
    // Nothing moves any more: the deadlines fire.
    let later = now + Duration::from_secs(3600);
    lg.handle_timeout(later);
    cl.handle_timeout(later);
    drain_logger(&mut lg, mem, &mut out);
    drain_cloud(&mut cl, store, &mut out, later, true);
    out
}

fn drain_cloud(
    cl: &mut CloudSession,
    store: &mut Store,
    out: &mut Outcome,
    now: Instant,
    store_ok: bool,
) {
    while let Some(ev) = cl.poll_event() {
        match &ev {
            cloud::Event::KeyNeeded { logger } => {
                cl.provide_key(now, *logger, store.record(*logger)).unwrap();
            }
            cloud::Event::Status { stamp, status, .. } if store_ok => {
                store.write_status(*stamp, *status);
            }
            cloud::Event::Batch {
                id,
                after,
                closes,
                batch,
            } if store_ok => {
                if store.write(*after, *closes, batch) {
                    cl.confirm_stored(now, *id).unwrap();
                } else {
                    cl.storage_failed(now, *id).unwrap();
                }
            }
            cloud::Event::Closed { reason } => {
                assert!(out.cloud_close.is_none(), "two Closed events");
                out.cloud_close = Some(reason.clone());
            }
            _ => {}
        }
        out.cloud_events.push(ev);
    }
}

fn drain_logger(lg: &mut LoggerSession, mem: &mut Memory, out: &mut Outcome) {
    while let Some(ev) = lg.poll_event() {
        match &ev {
            logger::Event::Acked {
                stored: Some(mark), ..
            } => mem.free(*mark),
            logger::Event::Settings(s) => mem.settings_version = s.version,
            logger::Event::Closed { reason } => {
                assert!(out.logger_close.is_none(), "two Closed events");
                out.logger_close = Some(reason.clone());
            }
            _ => {}
        }
        out.logger_events.push(ev);
    }
}

/// A temperature series: a slow daily swing plus small noise, in tenths of a degree.
pub fn temperature(seq: u64, noise: i32) -> i32 {
    let phase = (seq % 288) as i32;
    let tri = if phase < 144 { phase } else { 288 - phase };
    180 + tri / 3 + noise
}
