//! A wrong key, a tampered batch, or an unknown logger is rejected with a clear error: nothing is
//! stored, nothing is freed, and the logger is told why.
// A driver's clock origin: the machines never read a clock, tests pick an arbitrary `now`.
#![allow(clippy::disallowed_methods)]

mod common;

use std::sync::Arc;
use std::time::Instant;

use common::{Link, Memory, Store, connect, key_of};
use fleetwire_sensor::cloud::{self, CloudConfig, CloudSession, LoggerRecord};
use fleetwire_sensor::logger::{LoggerConfig, LoggerSession};
use fleetwire_sensor::{Channel, CloseReason, LoggerId, LoggerKey, RejectReason, SensorError};

fn memory() -> Memory {
    let mut mem = Memory::new(LoggerId(900), vec![Channel::TEMPERATURE_DECI_C]);
    for seq in 0..50 {
        mem.log(seq, Some(vec![Some(200 + seq as i32 % 3)]));
    }
    mem
}

#[test]
fn wrong_key_is_rejected_on_both_sides() {
    let mut mem = memory();
    let mut store = Store {
        key_override: Some(LoggerKey::from_bytes([1; 32])),
        ..Store::default()
    };
    let out = connect(&mut mem, &mut store, &Link::default());
    let err = SensorError::BadMac {
        logger: LoggerId(900),
        what: "batch",
    };
    assert_eq!(out.cloud_close, Some(CloseReason::Error(err.clone())));
    assert_eq!(
        err.to_string(),
        "batch from logger 900 failed authentication: wrong key for this logger, or the bytes were tampered with"
    );
    assert_eq!(
        out.logger_close,
        Some(CloseReason::Error(SensorError::Rejected {
            reason: RejectReason::BadMac
        }))
    );
    assert!(store.readings.is_empty());
    assert_eq!(mem.held(), 50, "nothing freed");
}

#[test]
fn unknown_logger_is_rejected() {
    let mut mem = memory();
    let mut store = Store {
        unknown: true,
        ..Store::default()
    };
    let out = connect(&mut mem, &mut store, &Link::default());
    assert_eq!(
        out.cloud_close,
        Some(CloseReason::Error(SensorError::UnknownLogger {
            logger: LoggerId(900)
        }))
    );
    assert_eq!(
        out.logger_close,
        Some(CloseReason::Error(SensorError::Rejected {
            reason: RejectReason::UnknownLogger
        }))
    );
}

#[test]
fn every_tampered_byte_of_the_body_is_rejected() {
    let now = Instant::now();
    let id = LoggerId(900);
    let mem = memory();
    let mut lg = LoggerSession::new(
        Arc::new(LoggerConfig::new(id, key_of(id))),
        now,
        mem.batches(),
    )
    .unwrap();
    let mut wire = Vec::new();
    while lg.poll_transmit(&mut wire).is_some() {}
    // Every byte after the frame header (which the framing itself checks).
    for i in 6..wire.len() {
        let mut bad = wire.clone();
        bad[i] ^= 0x10;
        let mut cl = CloudSession::new(Arc::new(CloudConfig::default()), now);
        let _ = cl.handle_input(now, &bad);
        let mut closed = None;
        while let Some(ev) = cl.poll_event() {
            match ev {
                cloud::Event::KeyNeeded { logger } => {
                    let record = LoggerRecord {
                        key: key_of(logger),
                        stored: None,
                        closed: Vec::new(),
                        status: None,
                        settings: None,
                        server_time: 0,
                    };
                    cl.provide_key(now, logger, Some(record)).unwrap();
                }
                cloud::Event::Batch { .. } => panic!("tampered byte {i} was accepted"),
                cloud::Event::Closed { reason } => closed = Some(reason),
                _ => {}
            }
        }
        assert!(
            matches!(closed, Some(CloseReason::Error(_))),
            "byte {i}: {closed:?}"
        );
    }
}
