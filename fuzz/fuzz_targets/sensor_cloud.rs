#![no_main]
//! The cloud machine against an attacker on the path who sees every frame but cannot forge a
//! MAC. The input is a program: an honest logger logs slots, changes epochs (stating where the
//! old one ended, or abandoning it) and wakes; every flight it sends is captured, and the
//! attacker replays captured uploads in any order, on several connections at once, split at any
//! byte, with flipped bytes or under the wrong key, cuts connections, replays captured acks to
//! the logger, and makes the store fail. A model store answers the cloud's events.
//!
//! Invariants, checked as the program runs:
//! - the store holds nothing that did not authenticate: every stored reading is one the honest
//!   logger logged, with its values (frames under the wrong key carry other values);
//! - no acknowledgement any cloud session sends covers a slot the store does not hold;
//! - every reading the logger frees because of an ack is in the store, written once;
//! - the store's own rules hold (each epoch a prefix from 0, epochs closed exactly where stated);
//! - no panic, and exactly one `Closed` per session;
//! - liveness: once the attacker stops and the store works, a few honest wakes store everything
//!   the logger logged and did not itself drop (an abandoned epoch's unsent slots).
//!
//! Seeds: `fuzz/corpus/sensor_cloud/seed-*` (programs with epoch changes, replays and splits).
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleetwire_sensor::cloud::{self, CloudConfig, CloudSession, LoggerRecord, StatusStamp};
use fleetwire_sensor::codec::{Upload, decode_ack_unverified, encode_upload};
use fleetwire_sensor::logger::{self, LoggerConfig, LoggerSession};
use fleetwire_sensor::{Batch, Channel, EpochEnd, Gap, LoggerId, LoggerKey, Mark};
use fleetwire_wire::FrameDecoder;
use libfuzzer_sys::fuzz_target;

const ID: LoggerId = LoggerId(7);
const MAX_POOL: usize = 64;
const MAX_OPS: usize = 48;
/// The `wake` mode of an honest wake (no attacker).
const HONEST: u8 = 0xff;

type Values = Vec<Option<i32>>;

/// Reads the program's bytes; past the end everything is 0.
struct Program<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Program<'_> {
    fn byte(&mut self) -> u8 {
        let b = self.bytes.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }
    fn done(&self) -> bool {
        self.pos >= self.bytes.len()
    }
}

/// One epoch of the logger's flash.
#[derive(Clone)]
struct EpochMem {
    epoch: u32,
    previous: Option<EpochEnd>,
    floor: u64,
    next: u64,
    slots: BTreeMap<u64, Values>,
}

/// The honest logger.
struct Logger {
    key: LoggerKey,
    epochs: Vec<EpochMem>,
    /// Everything it ever logged.
    logged: BTreeMap<(u32, u64), Values>,
    /// Readings it dropped itself when it abandoned an epoch.
    dropped: Vec<(u32, u64)>,
}

impl Logger {
    fn log(&mut self, n: u8, lose: u8) {
        let cur = self.epochs.last_mut().unwrap();
        for i in 0..u64::from(n % 8) + 1 {
            let seq = cur.next;
            cur.next += 1;
            if lose & (1 << (i % 8)) != 0 && lose > 0xf0 {
                continue; // overwritten before upload: a gap
            }
            let values = vec![Some((seq as i32 % 97) + 10 * cur.epoch as i32)];
            cur.slots.insert(seq, values.clone());
            self.logged.insert((cur.epoch, seq), values);
        }
    }

    fn new_epoch(&mut self, abandon: bool) {
        let cur = self.epochs.last_mut().unwrap();
        let epoch = cur.epoch + 1;
        let previous = if cur.next == 0 && cur.previous.is_some() {
            self.epochs.pop().unwrap().previous
        } else {
            if abandon && cur.next > 0 {
                self.dropped
                    .extend(cur.slots.keys().map(|&seq| (cur.epoch, seq)));
                cur.slots.clear();
                cur.next = cur.floor.max(1);
            }
            Some(EpochEnd {
                epoch: cur.epoch,
                next_seq: cur.next,
                abandoned: abandon,
            })
        };
        self.epochs.push(EpochMem {
            epoch,
            previous,
            floor: 0,
            next: 0,
            slots: BTreeMap::new(),
        });
    }

    fn batches(&self, max: u64) -> Vec<Batch> {
        let mut out = Vec::new();
        for (i, em) in self.epochs.iter().enumerate() {
            if em.floor >= em.next {
                if self
                    .epochs
                    .get(i + 1)
                    .is_some_and(|s| s.floor == 0 && s.previous.is_some_and(|p| p.abandoned))
                {
                    out.push(Batch::empty(ID, em.epoch, em.floor, 1_750_000_000));
                }
                continue;
            }
            let mut seq = em.floor;
            while seq < em.next {
                let end = (seq + max).min(em.next);
                let mut b = Batch {
                    logger: ID,
                    epoch: em.epoch,
                    first_seq: seq,
                    start: 1_750_000_000 + seq * 60,
                    interval_s: 60,
                    channels: vec![Channel::TEMPERATURE_DECI_C],
                    previous: if seq == 0 { em.previous } else { None },
                    ..Batch::default()
                };
                for s in seq..end {
                    match em.slots.get(&s) {
                        Some(v) => b.values.extend(v.iter().copied()),
                        None => match b.gaps.last_mut() {
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
            let cur = self.epochs.last().unwrap();
            out.push(Batch::empty(ID, cur.epoch, cur.next, 1_750_000_000));
        }
        out
    }

    /// An authenticated ack covers slots 0..=mark.seq of mark.epoch: free them (checking each
    /// freed reading is stored, once, as logged).
    fn free(&mut self, mark: Mark, store: &Store) {
        let Some(i) = self.epochs.iter().position(|e| e.epoch == mark.epoch) else {
            return;
        };
        let em = &mut self.epochs[i];
        for (&seq, values) in em.slots.range(..=mark.seq) {
            assert_eq!(
                store.readings.get(&(mark.epoch, seq)),
                Some(values),
                "an ack {mark:?} freed ({}, {seq}), which the store does not hold",
                mark.epoch
            );
        }
        em.slots.retain(|&s, _| s > mark.seq);
        em.floor = em.floor.max(mark.seq + 1);
        em.next = em.next.max(em.floor);
        let floor = em.floor;
        if let Some(p) = self.epochs.get_mut(i + 1).and_then(|s| {
            (s.floor == 0).then_some(()).and(s.previous.as_mut())
        }) {
            if p.abandoned && p.next_seq < floor {
                p.next_seq = floor;
            }
        }
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

/// The model store.
#[derive(Default)]
struct Store {
    readings: BTreeMap<(u32, u64), Values>,
    mark: Option<Mark>,
    closed: Vec<EpochEnd>,
    status: Option<StatusStamp>,
    fail_writes: bool,
}

impl Store {
    fn next(&self) -> (u32, u64) {
        self.mark.map_or((0, 0), |m| (m.epoch, m.seq + 1))
    }

    /// Whether slots 0..=mark.seq of mark.epoch are all stored.
    fn holds(&self, mark: Mark) -> bool {
        let (epoch, next) = self.next();
        if mark.epoch == epoch {
            return mark.seq < next;
        }
        self.closed
            .iter()
            .any(|c| c.epoch == mark.epoch && mark.seq < c.next_seq)
    }

    fn write(
        &mut self,
        after: Option<Mark>,
        closes: Option<EpochEnd>,
        batch: &Batch,
        logged: &BTreeMap<(u32, u64), Values>,
    ) -> bool {
        if after != self.mark || self.fail_writes {
            return false;
        }
        let (epoch, next) = self.next();
        match closes {
            Some(end) => {
                assert_eq!((end.epoch, end.next_seq), (epoch, next), "closes what is stored");
                assert!(batch.epoch > epoch && batch.first_seq == 0);
                self.closed.push(end);
            }
            None => {
                assert_eq!(batch.epoch, epoch, "same epoch without a statement");
                assert_eq!(batch.first_seq, next, "continues the stored prefix");
            }
        }
        for r in batch.readings() {
            let slot = (batch.epoch, r.seq);
            assert_eq!(
                logged.get(&slot).map(Vec::as_slice),
                Some(r.values),
                "stored {slot:?}, which the logger did not log (unauthenticated)"
            );
            assert!(
                self.readings.insert(slot, r.values.to_vec()).is_none(),
                "{slot:?} stored twice"
            );
        }
        if let Some(last) = batch.last() {
            self.mark = Some(last);
        }
        true
    }
}

/// Splits bytes into whole frames.
fn frames(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut dec = FrameDecoder::default();
    let mut rest = bytes;
    let mut out = Vec::new();
    while let Ok((used, frame)) = dec.decode(rest) {
        if used == 0 {
            break;
        }
        if frame.is_some() {
            out.push(rest[..used].to_vec());
        }
        rest = &rest[used..];
    }
    out
}

struct World<'a> {
    p: Program<'a>,
    logger: Logger,
    store: Store,
    uploads: Vec<Vec<u8>>,
    acks: Vec<Vec<u8>>,
    now: Instant,
}

impl World<'_> {
    /// Runs cloud sessions over `streams`, concurrently: inputs split where the program says,
    /// events answered round-robin against the one store. Returns each session's output.
    fn run_cloud(&mut self, streams: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let now = self.now;
        let mut sessions: Vec<CloudSession> = streams
            .iter()
            .map(|_| CloudSession::new(Arc::new(CloudConfig::default()), now))
            .collect();
        let mut closed = vec![0u32; sessions.len()];
        let mut outputs = vec![Vec::new(); sessions.len()];
        for (cl, input) in sessions.iter_mut().zip(streams) {
            let mut rest = &input[..];
            for _ in 0..8 {
                if rest.is_empty() {
                    break;
                }
                let n = (usize::from(self.p.byte()) % rest.len()) + 1;
                let _ = cl.handle_input(now, &rest[..n]);
                rest = &rest[n..];
            }
            let _ = cl.handle_input(now, rest);
        }
        for closing in [false, true] {
            if closing {
                for cl in &mut sessions {
                    cl.handle_close(now);
                    cl.handle_timeout(now + Duration::from_secs(3600));
                }
            }
            loop {
                let mut progressed = false;
                for (i, cl) in sessions.iter_mut().enumerate() {
                    if let Some(ev) = cl.poll_event() {
                        progressed = true;
                        if matches!(ev, cloud::Event::Closed { .. }) {
                            closed[i] += 1;
                        }
                        answer(&mut self.store, &self.logger.logged, cl, ev, now);
                    }
                    let before = outputs[i].len();
                    while cl.poll_transmit(&mut outputs[i]).is_some() {}
                    // Every ack just sent covers only what the store holds.
                    for ack in frames(&outputs[i][before..]) {
                        if ack[1] == fleetwire_sensor::codec::MSG_ACK {
                            if let Ok((a, _)) = decode_ack_unverified(&ack[6..]) {
                                if let Some(m) = a.stored {
                                    assert!(
                                        self.store.holds(m),
                                        "ack covers {m:?}; store at {:?} closed {:?}",
                                        self.store.mark,
                                        self.store.closed
                                    );
                                }
                            }
                            self.acks.push(ack);
                        }
                    }
                }
                if !progressed {
                    break;
                }
            }
        }
        assert!(closed.iter().all(|&c| c == 1), "one Closed per session: {closed:?}");
        outputs
    }

    /// A wake of the honest logger: its flight is captured; the cloud gets `uplink` (the flight
    /// as sent unless the attacker rewrote it); the logger hears `downlink` acks.
    fn wake(&mut self, mode: u8) {
        if mode == HONEST {
            return self.honest_wake();
        }
        let batches = self.logger.batches(u64::from(self.p.byte() % 6) + 1);
        let cfg = LoggerConfig::new(ID, self.logger.key.clone());
        let mut lg = LoggerSession::new(Arc::new(cfg), self.now, batches).unwrap();
        let mut flight = Vec::new();
        while lg.poll_transmit(&mut flight).is_some() {}
        for f in frames(&flight) {
            if self.uploads.len() < MAX_POOL {
                self.uploads.push(f);
            }
        }
        let uplink = match mode % 4 {
            0 => flight.clone(),
            1 => {
                let cut = usize::from(self.p.byte()) * flight.len() / 256;
                flight[..cut].to_vec()
            }
            2 => Vec::new(),
            _ => {
                let mut s = Vec::new();
                for _ in 0..self.p.byte() % 6 {
                    if let Some(f) = self.pick_upload() {
                        s.extend_from_slice(&f);
                    }
                }
                s
            }
        };
        let mut streams = vec![uplink];
        if self.p.byte() & 1 == 1 {
            let extra = self.replay_stream();
            streams.push(extra);
        }
        let outputs = self.run_cloud(&streams);
        let mut downlink = outputs[0].clone();
        if self.p.byte() & 3 == 3 {
            // Old captured acks in front (bound to other uploads or indices: refused, or a
            // repeated true statement for the same upload bytes).
            let mut d = Vec::new();
            for _ in 0..self.p.byte() % 4 {
                if let Some(a) = self.pick_ack() {
                    d.extend_from_slice(&a);
                }
            }
            d.extend_from_slice(&downlink);
            downlink = d;
        }
        let mut rest = &downlink[..];
        while !rest.is_empty() {
            let n = (usize::from(self.p.byte()) % rest.len()) + 1;
            let _ = lg.handle_input(self.now, &rest[..n]);
            rest = &rest[n..];
            self.drain_logger(&mut lg);
        }
        lg.handle_close(self.now);
        self.drain_logger(&mut lg);
    }

    /// A wake with no attacker: the flight as sent, the acks as sent.
    fn honest_wake(&mut self) {
        let batches = self.logger.batches(16);
        let cfg = LoggerConfig::new(ID, self.logger.key.clone());
        let mut lg = LoggerSession::new(Arc::new(cfg), self.now, batches).unwrap();
        let mut flight = Vec::new();
        while lg.poll_transmit(&mut flight).is_some() {}
        let saved = std::mem::replace(&mut self.p.bytes, &[]);
        let outputs = self.run_cloud(&[flight]);
        self.p.bytes = saved;
        let _ = lg.handle_input(self.now, &outputs[0]);
        self.drain_logger(&mut lg);
        lg.handle_close(self.now);
        self.drain_logger(&mut lg);
    }

    fn drain_logger(&mut self, lg: &mut LoggerSession) {
        while let Some(ev) = lg.poll_event() {
            if let logger::Event::Acked {
                stored: Some(mark), ..
            } = ev
            {
                self.logger.free(mark, &self.store);
            }
        }
    }

    fn pick_upload(&mut self) -> Option<Vec<u8>> {
        let n = self.uploads.len();
        (n > 0).then(|| self.uploads[usize::from(self.p.byte()) % n].clone())
    }

    fn pick_ack(&mut self) -> Option<Vec<u8>> {
        let n = self.acks.len();
        (n > 0).then(|| self.acks[usize::from(self.p.byte()) % n].clone())
    }

    /// Captured uploads in an attacker-chosen order, possibly tampered or under another key.
    fn replay_stream(&mut self) -> Vec<u8> {
        let mut s = Vec::new();
        for _ in 0..self.p.byte() % 8 {
            let op = self.p.byte();
            match op % 4 {
                // A flipped byte: fails its MAC.
                3 => {
                    if let Some(mut f) = self.pick_upload() {
                        let at = usize::from(self.p.byte()) % f.len();
                        f[at] ^= 1 | self.p.byte();
                        s.extend_from_slice(&f);
                    }
                }
                // A well-formed upload of this logger under the wrong key, with values the
                // logger never logged.
                2 => {
                    let (epoch, next) = self.store.next();
                    let batch = Batch {
                        logger: ID,
                        epoch,
                        first_seq: next.saturating_sub(u64::from(self.p.byte() % 3)),
                        start: 1_750_000_000,
                        interval_s: 60,
                        channels: vec![Channel::TEMPERATURE_DECI_C],
                        values: vec![Some(-1_000_000); usize::from(self.p.byte() % 4) + 1],
                        ..Batch::default()
                    };
                    let upload = Upload {
                        batch,
                        settings_version: 0,
                        last: false,
                    };
                    let wrong = LoggerKey::derive(&[0xee; 32], ID);
                    let _ = encode_upload(&mut s, &wrong, &upload);
                }
                _ => {
                    if let Some(f) = self.pick_upload() {
                        s.extend_from_slice(&f);
                    }
                }
            }
        }
        s
    }
}

/// What a driver does with a cloud event (the policy of fleetwire-tokio's `SensorServer`).
fn answer(
    store: &mut Store,
    logged: &BTreeMap<(u32, u64), Values>,
    cl: &mut CloudSession,
    ev: cloud::Event,
    now: Instant,
) {
    match ev {
        cloud::Event::KeyNeeded { logger } => {
            let record = (logger == ID).then(|| LoggerRecord {
                key: LoggerKey::derive(&[3; 32], logger),
                stored: store.mark,
                closed: store.closed.clone(),
                status: store.status,
                settings: None,
                server_time: 0,
            });
            cl.provide_key(now, logger, record).unwrap();
        }
        cloud::Event::Batch {
            id,
            after,
            closes,
            batch,
        } => {
            assert_eq!(batch.logger, ID);
            let last = batch.last();
            if store.write(after, closes, &batch, logged)
                || last.is_some_and(|l| {
                    store
                        .mark
                        .is_some_and(|m| m.epoch == l.epoch && m.seq >= l.seq)
                        && !store.fail_writes
                })
            {
                cl.confirm_stored(now, id).unwrap();
            } else {
                cl.storage_failed(now, id).unwrap();
            }
        }
        cloud::Event::Status { stamp, .. } => {
            assert!(store.status.is_none_or(|s| stamp > s), "an older status reported");
            store.status = Some(stamp);
        }
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let key = LoggerKey::derive(&[3; 32], ID);
    let mut w = World {
        p: Program {
            bytes: data,
            pos: 0,
        },
        logger: Logger {
            key,
            epochs: vec![EpochMem {
                epoch: 0,
                previous: None,
                floor: 0,
                next: 0,
                slots: BTreeMap::new(),
            }],
            logged: BTreeMap::new(),
            dropped: Vec::new(),
        },
        store: Store::default(),
        uploads: Vec::new(),
        acks: Vec::new(),
        now: Instant::now(),
    };
    for _ in 0..MAX_OPS {
        if w.p.done() {
            break;
        }
        let op = w.p.byte();
        match op % 8 {
            0 | 1 => {
                let (n, lose) = (w.p.byte(), w.p.byte());
                w.logger.log(n, lose);
            }
            2 => {
                let abandon = w.p.byte() & 1 == 1;
                w.logger.new_epoch(abandon);
            }
            3 | 4 => {
                let mode = w.p.byte();
                w.wake(mode);
            }
            5 => {
                let stream = w.replay_stream();
                let other = w.replay_stream();
                w.run_cloud(&[stream, other]);
            }
            6 => w.store.fail_writes = !w.store.fail_writes,
            _ => {
                // Raw attacker bytes as a connection.
                let n = usize::from(w.p.byte() % 64);
                let raw: Vec<u8> = (0..n).map(|_| w.p.byte()).collect();
                w.run_cloud(&[raw]);
            }
        }
    }
    // Liveness: the attacker stops, the store works again.
    w.store.fail_writes = false;
    for _ in 0..8 {
        if w.logger.epochs.iter().all(|e| e.floor >= e.next) {
            break;
        }
        w.wake(HONEST);
    }
    assert!(
        w.logger.epochs.iter().all(|e| e.floor >= e.next),
        "honest wakes left data on the logger: store {:?} closed {:?}",
        w.store.mark,
        w.store.closed
    );
    for (slot, values) in &w.logger.logged {
        if !w.logger.dropped.contains(slot) {
            assert_eq!(w.store.readings.get(slot), Some(values), "{slot:?} never stored");
        }
    }
});
