//! Issue 10, hole 1: a peer who sees plaintext frames (a TLS-terminating proxy, a queue,
//! `danger_plaintext`) but cannot forge a MAC replays a logger's epoch-2 upload before its
//! epoch-1 upload (or, in one epoch, a later upload before an earlier one). No acknowledgement
//! may make the logger free a reading the store does not hold, and once the logger's own flight
//! gets through, everything is stored exactly once.
//!
//! Before the fix both tests failed: the cloud took the replayed upload (a new epoch at sequence
//! 0, or anything into an empty store), then acknowledged the logger's real upload as a duplicate
//! with a mark that "covered all earlier epochs", and the logger freed readings never stored.
// A driver's clock origin: the machines never read a clock, tests pick an arbitrary `now`.
#![allow(clippy::disallowed_methods)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use common::{Store, key_of};
use fleetwire_sensor::cloud::{self, CloudConfig, CloudSession};
use fleetwire_sensor::logger::{self, LoggerConfig, LoggerSession};
use fleetwire_sensor::{Batch, Channel, EpochEnd, LoggerId};
use fleetwire_wire::FrameDecoder;

const ID: LoggerId = LoggerId(21);

fn batch(epoch: u32, first_seq: u64, n: u64) -> Batch {
    Batch {
        logger: ID,
        epoch,
        first_seq,
        start: 1_750_000_000 + first_seq * 60,
        interval_s: 60,
        channels: vec![Channel::TEMPERATURE_DECI_C],
        values: (first_seq..first_seq + n)
            .map(|s| Some(i32::try_from(s).unwrap() + 1000 * i32::try_from(epoch).unwrap()))
            .collect(),
        ..Batch::default()
    }
}

/// Runs one cloud connection over `wire` against `store`; returns the cloud's output bytes.
fn cloud_connection(store: &mut Store, wire: &[u8]) -> Vec<u8> {
    let now = Instant::now();
    let mut cl = CloudSession::new(Arc::new(CloudConfig::default()), now);
    let _ = cl.handle_input(now, wire);
    let mut out = Vec::new();
    loop {
        let mut progressed = false;
        while let Some(ev) = cl.poll_event() {
            progressed = true;
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
                    assert!(store.write(after, closes, &batch), "conditional write");
                    cl.confirm_stored(now, id).unwrap();
                }
                _ => {}
            }
        }
        while cl.poll_transmit(&mut out).is_some() {
            progressed = true;
        }
        if !progressed {
            return out;
        }
    }
}

/// Splits a flight into its frames (what an attacker on the path sees).
fn frames(flight: &[u8]) -> Vec<Vec<u8>> {
    let mut dec = FrameDecoder::default();
    let mut rest = flight;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (used, frame) = dec.decode(rest).unwrap();
        if frame.is_some() {
            out.push(rest[..used].to_vec());
        }
        rest = &rest[used..];
    }
    out
}

/// The logger sends `batches` in one flight; the attacker first replays frame `replayed` alone
/// on its own connection, then lets the logger's flight through. Checks that every reading the
/// logger frees is stored, and that all of them are stored exactly once in the end.
fn replay_one_frame_first(mut store: Store, batches: Vec<Batch>, replayed: usize) {
    let now = Instant::now();
    let mut held: BTreeMap<(u32, u64), Vec<Option<i32>>> = BTreeMap::new();
    for b in &batches {
        for r in b.readings() {
            held.insert((b.epoch, r.seq), r.values.to_vec());
        }
    }
    let mut lg =
        LoggerSession::new(Arc::new(LoggerConfig::new(ID, key_of(ID))), now, batches).unwrap();
    let mut flight = Vec::new();
    while lg.poll_transmit(&mut flight).is_some() {}

    let captured = frames(&flight);
    let _ = cloud_connection(&mut store, &captured[replayed]);
    let acks = cloud_connection(&mut store, &flight);
    let _ = lg.handle_input(now, &acks);

    // The logger frees exactly what each authenticated ack covers: slots 0..=seq of its epoch.
    let mut freed = BTreeSet::new();
    while let Some(ev) = lg.poll_event() {
        if let logger::Event::Acked {
            stored: Some(mark), ..
        } = ev
        {
            freed.extend(
                held.keys()
                    .filter(|&&(epoch, seq)| epoch == mark.epoch && seq <= mark.seq)
                    .copied(),
            );
        }
    }
    assert!(!freed.is_empty(), "the logger heard an ack");
    for slot in &freed {
        assert_eq!(
            store.readings.get(slot),
            held.get(slot),
            "the logger freed reading {slot:?}, which the store does not hold"
        );
    }
    // The logger's own flight got everything stored, once.
    assert_eq!(freed.len(), held.len(), "everything acknowledged");
    for slot in held.keys() {
        assert_eq!(store.writes.get(slot), Some(&1), "{slot:?} stored once");
    }
}

#[test]
fn a_replayed_epoch_2_upload_before_the_epoch_1_upload_frees_nothing_unstored() {
    // The store holds epoch 1 through seq 49. The logger holds epoch 1 slots 50..100 (not yet
    // acknowledged) and, after losing its numbering, epoch 2 slots 0..10; its first epoch-2
    // batch states that epoch 1 ended before seq 100.
    let mut store = Store::holding_through(10);
    store.write(
        store.mark,
        Some(EpochEnd {
            epoch: 0,
            next_seq: 10,
            abandoned: false,
        }),
        &batch(1, 0, 50),
    );
    store.writes.clear();
    let opener = Batch {
        previous: Some(EpochEnd {
            epoch: 1,
            next_seq: 100,
            abandoned: false,
        }),
        ..batch(2, 0, 10)
    };
    replay_one_frame_first(store, vec![batch(1, 50, 50), opener], 1);
}

#[test]
fn a_replayed_second_upload_before_the_first_into_an_empty_store_frees_nothing_unstored() {
    // Nothing stored yet; the logger holds epoch 0 slots 0..100 in two uploads.
    replay_one_frame_first(Store::default(), vec![batch(0, 0, 50), batch(0, 50, 50)], 1);
}
