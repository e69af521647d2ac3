//! An attacker on the path who sees every plaintext frame (a TLS-terminating proxy, a queue,
//! `danger_plaintext`) but cannot forge a MAC: it captures every upload and every ack of many
//! sessions, and replays, reorders, drops, splits and interleaves them — on its own connections,
//! concurrently with the logger's, and into the logger's connections (old acks for the same
//! upload bytes) — while the honest logger keeps logging, changes epochs (stating where the old
//! one ended, or abandoning it) and uploads.
//!
//! After every single ack the logger accepts, every reading it frees must be in the store,
//! written exactly once, with the values it logged; the store never holds a reading twice or one
//! the logger did not log. Once the attacker stops, honest wakes store everything the logger did
//! not itself lose (liveness).
// A driver's clock origin: the machines never read a clock, tests pick an arbitrary `now`.
#![allow(clippy::disallowed_methods)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use common::{Memory, Store, key_of, temperature};
use fleetwire_sensor::cloud::{self, CloudConfig, CloudSession};
use fleetwire_sensor::logger::{self, LoggerConfig, LoggerSession};
use fleetwire_sensor::{Channel, Firmware, LoggerId, Mark, Status};
use fleetwire_wire::FrameDecoder;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

type Values = Vec<Option<i32>>;

/// The whole world of one scenario.
struct World {
    rng: ChaCha8Rng,
    mem: Memory,
    store: Store,
    /// Every reading the logger logged.
    logged: BTreeMap<(u32, u64), Values>,
    /// Readings the logger dropped itself (abandoned epochs): not owed to the store.
    dropped: BTreeSet<(u32, u64)>,
    /// Readings the logger freed because an ack covered them.
    freed: BTreeSet<(u32, u64)>,
    /// Every upload frame and every ack frame ever on the wire.
    uploads: Vec<Vec<u8>>,
    acks: Vec<Vec<u8>>,
    /// The newest status the logger sent (its counter) and what the store must end with.
    status_counter: u32,
    acks_checked: u64,
}

impl World {
    fn new(seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let channels = if rng.gen_bool(0.5) {
            vec![Channel::TEMPERATURE_DECI_C]
        } else {
            vec![Channel::TEMPERATURE_DECI_C, Channel::HUMIDITY_DECI_PCT]
        };
        let mut mem = Memory::new(LoggerId(rng.gen_range(1..1000)), channels);
        mem.batch_slots = rng.gen_range(3..25);
        Self {
            rng,
            mem,
            store: Store::default(),
            logged: BTreeMap::new(),
            dropped: BTreeSet::new(),
            freed: BTreeSet::new(),
            uploads: Vec::new(),
            acks: Vec::new(),
            status_counter: 0,
            acks_checked: 0,
        }
    }

    /// The logger logs some slots, sometimes loses its numbering, sometimes has a new status.
    fn log_some(&mut self) {
        if self.rng.gen_bool(0.08) {
            let abandon = self.rng.gen_bool(0.4);
            let before = self.held_keys();
            self.mem.new_epoch(abandon);
            let after = self.held_keys();
            self.dropped.extend(before.difference(&after).copied());
        }
        let n = self.rng.gen_range(0..30);
        let epoch = self.mem.current().epoch;
        let mut seq = self.mem.current().next;
        for _ in 0..n {
            if self.rng.gen_bool(0.04) {
                seq += self.rng.gen_range(1..4); // overwritten before upload: a gap
            }
            let mut values = vec![Some(temperature(seq, self.rng.gen_range(-2..=2)))];
            if self.mem.channels.len() == 2 {
                values.push(self.rng.gen_bool(0.9).then_some(450 + (seq % 7) as i32));
            }
            self.logged.insert((epoch, seq), values.clone());
            self.mem.log(seq, Some(values));
            seq += 1;
        }
        self.mem.status = self.rng.gen_bool(0.3).then(|| {
            self.status_counter += 1;
            Status {
                counter: self.status_counter,
                battery_mv: 3300 - u16::try_from(self.status_counter).unwrap_or(0),
                battery_percent: 90,
                firmware: Firmware {
                    major: 1,
                    minor: 0,
                    patch: 0,
                },
            }
        });
    }

    fn held_keys(&self) -> BTreeSet<(u32, u64)> {
        self.mem
            .epochs
            .iter()
            .flat_map(|e| {
                e.slots
                    .iter()
                    .filter(|(_, v)| v.is_some())
                    .map(move |(s, _)| (e.epoch, *s))
            })
            .collect()
    }

    /// The store holds only what the logger logged, each reading once.
    fn check_store(&self) {
        for (slot, values) in &self.store.readings {
            assert_eq!(
                self.logged.get(slot),
                Some(values),
                "stored {slot:?} unlogged"
            );
            assert_eq!(self.store.writes[slot], 1, "{slot:?} written twice");
        }
    }

    /// One wake of the honest logger, with the attacker deciding what reaches whom.
    fn wake(&mut self, attacked: bool) {
        let now = Instant::now();
        let cfg = LoggerConfig::new(self.mem.logger, key_of(self.mem.logger));
        let mut lg = LoggerSession::new(Arc::new(cfg), now, self.mem.batches()).unwrap();
        let mut flight = Vec::new();
        while lg.poll_transmit(&mut flight).is_some() {}
        let own = frames(&flight);
        self.uploads.extend(own.iter().cloned());

        // Uplink: what the cloud connections get.
        let mut streams: Vec<Vec<u8>> = Vec::new();
        let mode = if attacked {
            self.rng.gen_range(0..5)
        } else {
            0
        };
        match mode {
            // The flight as sent.
            0 => streams.push(flight.clone()),
            // A random part of the flight, in a random order, mixed with old captures.
            1 => {
                let mut s = Vec::new();
                for _ in 0..self.rng.gen_range(1..6) {
                    let f = if self.rng.gen_bool(0.6) {
                        own.choose(&mut self.rng).unwrap()
                    } else {
                        self.uploads.choose(&mut self.rng).unwrap()
                    };
                    s.extend_from_slice(f);
                }
                streams.push(s);
            }
            // The flight, and a concurrent connection of replayed captures.
            2 => {
                streams.push(flight.clone());
                streams.push(self.replay_stream());
            }
            // The flight cut at a random byte.
            3 => {
                let cut = self.rng.gen_range(0..=flight.len());
                streams.push(flight[..cut].to_vec());
            }
            // Dropped: nothing reaches the cloud.
            _ => {}
        }
        // Attacker-only connections, before or concurrently.
        if attacked {
            for _ in 0..self.rng.gen_range(0..3) {
                streams.push(self.replay_stream());
            }
        }
        streams.shuffle(&mut self.rng);
        let fresh_acks = self.run_cloud(&streams);
        let honest_acks = fresh_acks.first().cloned().unwrap_or_default();
        self.acks.extend(fresh_acks.into_iter().flatten());

        // Downlink: what the logger hears.
        let downlink: Vec<Vec<u8>> = if !attacked || self.rng.gen_bool(0.5) {
            honest_acks
        } else {
            let mut d: Vec<Vec<u8>> = (0..self.rng.gen_range(0..12))
                .filter_map(|_| self.acks.choose(&mut self.rng).cloned())
                .collect();
            if self.rng.gen_bool(0.5) {
                d.extend(honest_acks);
            }
            d.shuffle(&mut self.rng);
            d
        };
        for ack in downlink {
            if self.rng.gen_bool(0.3) {
                // Split anywhere: the machine frames the stream itself.
                let at = self.rng.gen_range(0..=ack.len());
                let _ = lg.handle_input(now, &ack[..at]);
                self.drain_logger(&mut lg);
                let _ = lg.handle_input(now, &ack[at..]);
            } else {
                let _ = lg.handle_input(now, &ack);
            }
            self.drain_logger(&mut lg);
        }
        lg.handle_close(now);
        self.drain_logger(&mut lg);
    }

    /// A connection's worth of captured uploads in a random order, with repeats.
    fn replay_stream(&mut self) -> Vec<u8> {
        let mut s = Vec::new();
        if self.uploads.is_empty() {
            return s;
        }
        for _ in 0..self.rng.gen_range(1..8) {
            s.extend_from_slice(self.uploads.choose(&mut self.rng).unwrap());
        }
        s
    }

    /// Runs one cloud connection per stream, concurrently: each gets its whole input split at
    /// random points, and their events are answered round-robin against the one store (so key
    /// lookups and conditional writes interleave as on a real server). Returns each
    /// connection's ack frames.
    fn run_cloud(&mut self, streams: &[Vec<u8>]) -> Vec<Vec<Vec<u8>>> {
        let now = Instant::now();
        let mut sessions: Vec<CloudSession> = streams
            .iter()
            .map(|_| CloudSession::new(Arc::new(CloudConfig::default()), now))
            .collect();
        for (cl, input) in sessions.iter_mut().zip(streams) {
            let mut rest = &input[..];
            while !rest.is_empty() {
                let n = self.rng.gen_range(1..=rest.len());
                let _ = cl.handle_input(now, &rest[..n]);
                rest = &rest[n..];
            }
        }
        let mut outputs = vec![Vec::new(); sessions.len()];
        // Then the peers go away (a cut flight ends here too).
        for closing in [false, true] {
            if closing {
                for cl in &mut sessions {
                    cl.handle_close(now);
                }
            }
            loop {
                let mut progressed = false;
                for (i, cl) in sessions.iter_mut().enumerate() {
                    if let Some(ev) = cl.poll_event() {
                        progressed = true;
                        answer(&mut self.store, cl, ev);
                        self.check_store();
                    }
                    while cl.poll_transmit(&mut outputs[i]).is_some() {}
                }
                if !progressed {
                    break;
                }
            }
        }
        outputs.iter().map(|o| frames(o)).collect()
    }

    fn drain_logger(&mut self, lg: &mut LoggerSession) {
        while let Some(ev) = lg.poll_event() {
            if let logger::Event::Acked {
                stored: Some(mark), ..
            } = ev
            {
                self.free(mark);
            }
        }
    }

    /// The logger frees what an ack covers; each freed reading must be stored, once, as logged.
    fn free(&mut self, mark: Mark) {
        let freed: Vec<(u32, u64)> = self
            .held_keys()
            .into_iter()
            .filter(|&(e, s)| e == mark.epoch && s <= mark.seq)
            .collect();
        for slot in &freed {
            assert_eq!(
                self.store.readings.get(slot),
                self.logged.get(slot),
                "an ack {mark:?} freed {slot:?}, which the store does not hold"
            );
            assert_eq!(self.store.writes.get(slot), Some(&1));
        }
        self.acks_checked += 1;
        self.freed.extend(freed);
        self.mem.free(mark);
    }
}

/// What a driver does with a cloud event (the same policy as fleetwire-tokio's `SensorServer`):
/// store conditionally; on a conflict, acknowledge only if the store already holds the batch's
/// last slot in the batch's own epoch.
fn answer(store: &mut Store, cl: &mut CloudSession, ev: cloud::Event) {
    let now = Instant::now();
    match ev {
        cloud::Event::KeyNeeded { logger } => {
            cl.provide_key(now, logger, store.record(logger)).unwrap();
        }
        cloud::Event::Batch {
            id,
            after,
            closes,
            batch,
        } => {
            let last = batch.last().unwrap();
            if store.write(after, closes, &batch)
                || store
                    .mark
                    .is_some_and(|m| m.epoch == last.epoch && m.seq >= last.seq)
            {
                cl.confirm_stored(now, id).unwrap();
            } else {
                cl.storage_failed(now, id).unwrap();
            }
        }
        cloud::Event::Status { stamp, status, .. } => store.write_status(stamp, status),
        _ => {}
    }
}

/// Splits a byte stream into whole frames (what an attacker on the path sees).
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

#[test]
fn no_replay_or_reordering_of_captured_flights_frees_an_unstored_reading() {
    let mut epochs_opened = 0;
    let mut abandoned = 0;
    let mut acks = 0;
    let mut resisted = 0;
    for seed in 0..300u64 {
        let mut w = World::new(0x5e45_0a00 + seed);
        for _ in 0..25 {
            w.log_some();
            let attacked = w.rng.gen_bool(0.8);
            w.wake(attacked);
        }
        let attacked_acks = w.acks_checked;
        // The attacker stops: honest wakes store everything the logger did not lose.
        for _ in 0..12 {
            if w.mem.is_empty() {
                break;
            }
            w.wake(false);
        }
        assert!(
            w.mem.is_empty(),
            "seed {seed}: the logger still holds data after honest wakes: {:?}",
            w.mem.epochs
        );
        for (slot, values) in &w.logged {
            if w.dropped.contains(slot) {
                continue;
            }
            assert_eq!(
                w.store.readings.get(slot),
                Some(values),
                "seed {seed} {slot:?}"
            );
            assert_eq!(w.store.writes.get(slot), Some(&1), "seed {seed} {slot:?}");
        }
        // The newest status the logger sent before its last wake won, whatever was replayed.
        if let Some((stamp, _)) = w.store.status {
            assert!(stamp.counter <= w.status_counter);
        }
        w.check_store();
        epochs_opened += w.store.closed.len();
        abandoned += w.store.closed.iter().filter(|c| c.abandoned).count();
        acks += w.acks_checked;
        resisted += u64::from(attacked_acks > 0);
    }
    // The scenarios really exercised what they claim to.
    println!("{epochs_opened} epochs opened ({abandoned} abandoned), {acks} acks checked");
    assert!(epochs_opened > 300, "{epochs_opened} epochs opened");
    assert!(abandoned > 100, "{abandoned} abandoned");
    assert!(acks > 10_000, "{acks} acks checked");
    assert!(resisted > 250, "{resisted}");
}
