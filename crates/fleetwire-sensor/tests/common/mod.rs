//! A deterministic in-memory world for the integration tests: a logger's memory, the cloud's
//! store, and a pump that moves bytes between the two machines, optionally cutting the
//! connection after a given number of bytes.
#![allow(dead_code, unreachable_pub, clippy::missing_panics_doc)]
// A driver's clock origin: the machines never read a clock, tests pick an arbitrary `now`.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleetwire_sensor::cloud::{self, CloudConfig, CloudSession, LoggerRecord};
use fleetwire_sensor::logger::{self, LoggerConfig, LoggerSession};
use fleetwire_sensor::{Batch, Channel, CloseReason, Gap, LoggerId, LoggerKey, Mark, Settings};

pub const MASTER: [u8; 32] = [0x5a; 32];
pub const T0: u64 = 1_750_000_000;
pub const INTERVAL: u32 = 300;

pub fn key_of(id: LoggerId) -> LoggerKey {
    LoggerKey::derive(&MASTER, id)
}

/// The logger's flash: every slot not yet acknowledged. `None` = lost (overwritten).
#[derive(Debug, Clone)]
pub struct Memory {
    pub logger: LoggerId,
    pub epoch: u32,
    pub channels: Vec<Channel>,
    pub slots: BTreeMap<u64, Option<Vec<Option<i32>>>>,
    pub batch_slots: usize,
    pub settings_version: u32,
}

impl Memory {
    pub fn new(logger: LoggerId, channels: Vec<Channel>) -> Self {
        Self {
            logger,
            epoch: 0,
            channels,
            slots: BTreeMap::new(),
            batch_slots: 100,
            settings_version: 0,
        }
    }

    pub fn log(&mut self, seq: u64, values: Option<Vec<Option<i32>>>) {
        self.slots.insert(seq, values);
    }

    /// Batches of up to `batch_slots` contiguous slots, from the oldest unacknowledged.
    pub fn batches(&self) -> Vec<Batch> {
        let mut out = Vec::new();
        let mut current: Option<Batch> = None;
        let mut count = 0;
        for (&seq, slot) in &self.slots {
            let contiguous = current
                .as_ref()
                .is_some_and(|b| b.first_seq + b.slots() == seq && count < self.batch_slots);
            if !contiguous {
                out.extend(current.take());
                count = 0;
                current = Some(Batch {
                    logger: self.logger,
                    epoch: self.epoch,
                    first_seq: seq,
                    start: T0 + seq * u64::from(INTERVAL),
                    interval_s: INTERVAL,
                    channels: self.channels.clone(),
                    ..Batch::default()
                });
            }
            let b = current.as_mut().unwrap();
            match slot {
                Some(values) => b.values.extend(values.iter().copied()),
                None => match b.gaps.last_mut() {
                    Some(g) if g.seq + g.count == seq => g.count += 1,
                    _ => b.gaps.push(Gap { seq, count: 1 }),
                },
            }
            count += 1;
        }
        out.extend(current);
        if out.is_empty() {
            let next = self.slots.keys().next().copied().unwrap_or(0);
            out.push(Batch::empty(self.logger, self.epoch, next, T0));
        }
        out
    }

    pub fn free_through(&mut self, mark: Mark) {
        if mark.epoch == self.epoch {
            self.slots.retain(|&seq, _| seq > mark.seq);
        }
    }
}

/// The cloud's store: readings by sequence number, how many times each was written, and the
/// durable mark, updated in one step per batch.
#[derive(Debug, Clone, Default)]
pub struct Store {
    pub readings: BTreeMap<u64, Vec<Option<i32>>>,
    pub writes: BTreeMap<u64, u32>,
    pub gaps: Vec<Gap>,
    pub mark: Option<Mark>,
    pub settings: Option<Settings>,
    pub key_override: Option<LoggerKey>,
    pub unknown: bool,
}

impl Store {
    /// A conditional write: applies only if the mark is still `after`.
    pub fn write(&mut self, after: Option<Mark>, batch: &Batch) -> bool {
        if after != self.mark {
            return false;
        }
        for r in batch.readings() {
            self.readings.insert(r.seq, r.values.to_vec());
            *self.writes.entry(r.seq).or_default() += 1;
        }
        self.gaps.extend(batch.gaps.iter().copied());
        if let Some(last) = batch.last() {
            self.mark = Some(last);
        }
        true
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
            cl.handle_peer_closed(now);
        }
        drain_cloud(
            &mut cl,
            store,
            &mut out,
            now,
            !cut_now || link.store_after_cut,
        );
        if cut_now {
            lg.handle_peer_closed(now);
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
            lg.handle_peer_closed(now);
        }
        drain_logger(&mut lg, mem, &mut out);
        if cut_now {
            cl.handle_peer_closed(now);
            drain_cloud(&mut cl, store, &mut out, now, link.store_after_cut);
            out.cut = true;
            return out;
        }
        if out.logger_close.is_some() && out.cloud_close.is_some() {
            return out;
        }
        if out.logger_close.is_some() || out.cloud_close.is_some() {
            // One side is done: the socket closes.
            lg.handle_peer_closed(now);
            cl.handle_peer_closed(now);
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
                let record = (!store.unknown).then(|| LoggerRecord {
                    key: store
                        .key_override
                        .clone()
                        .unwrap_or_else(|| key_of(*logger)),
                    stored: store.mark,
                    settings: store.settings.clone(),
                    server_time: T0 + 86_400,
                });
                cl.provide_key(now, *logger, record).unwrap();
            }
            cloud::Event::Batch { id, after, batch } if store_ok => {
                if store.write(*after, batch) {
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
            } => mem.free_through(*mark),
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
