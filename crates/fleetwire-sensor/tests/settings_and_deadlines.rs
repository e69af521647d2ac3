//! The cloud piggybacks newer settings on its acks (never unsolicited), the logger applies each
//! version once, the radio-on deadline closes the logger, and after `Closed` inputs are no-ops.
// A driver's clock origin: the machines never read a clock, tests pick an arbitrary `now`.
#![allow(clippy::disallowed_methods)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Link, Memory, Store, connect, key_of};
use fleetwire_sensor::cloud::{self, CloudConfig, CloudSession};
use fleetwire_sensor::logger::{self, LoggerConfig, LoggerSession, State};
use fleetwire_sensor::{Batch, Channel, CloseReason, LoggerId, SensorError, Settings, Threshold};

#[test]
fn settings_ride_on_the_ack_and_apply_once() {
    let settings = Settings {
        version: 7,
        interval_s: 600,
        thresholds: vec![Threshold {
            channel: 0,
            low: Some(20),
            high: Some(80),
        }],
    };
    let mut mem = Memory::new(LoggerId(11), vec![Channel::TEMPERATURE_DECI_C]);
    mem.batch_slots = 5;
    for seq in 0..12 {
        mem.log(seq, Some(vec![Some(50)]));
    }
    let mut store = Store {
        settings: Some(settings.clone()),
        ..Store::default()
    };
    let out = connect(&mut mem, &mut store, &Link::default());
    let applied: Vec<_> = out
        .logger_events
        .iter()
        .filter(|e| matches!(e, logger::Event::Settings(_)))
        .collect();
    assert_eq!(applied, vec![&logger::Event::Settings(settings)]);
    assert_eq!(mem.settings_version, 7);
    // Next time the logger reports version 7: no settings in the acks.
    mem.log(12, Some(vec![Some(51)]));
    let before = out.down_bytes;
    let out = connect(&mut mem, &mut store, &Link::default());
    assert!(
        !out.logger_events
            .iter()
            .any(|e| matches!(e, logger::Event::Settings(_)))
    );
    assert!(out.down_bytes < before);
}

#[test]
fn the_cloud_sends_nothing_before_an_upload() {
    let now = Instant::now();
    let mut cl = CloudSession::new(Arc::new(CloudConfig::default()), now);
    let mut buf = Vec::new();
    assert!(cl.poll_transmit(&mut buf).is_none());
    cl.handle_timeout(now + Duration::from_secs(5));
    assert!(cl.poll_transmit(&mut buf).is_none());
    cl.handle_timeout(now + Duration::from_secs(31));
    assert!(cl.poll_transmit(&mut buf).is_none());
    assert!(matches!(
        cl.poll_event(),
        Some(cloud::Event::Closed {
            reason: CloseReason::Error(SensorError::Timeout { .. })
        })
    ));
    assert_eq!(cl.poll_event(), None);
}

#[test]
fn radio_deadline_closes_the_logger_once_and_later_input_is_ignored() {
    let now = Instant::now();
    let id = LoggerId(12);
    let mut cfg = LoggerConfig::new(id, key_of(id));
    cfg.radio_deadline = Duration::from_secs(10);
    let mut lg = LoggerSession::new(Arc::new(cfg), now, vec![Batch::empty(id, 0, 0, 0)]).unwrap();
    let mut buf = Vec::new();
    assert!(lg.poll_transmit(&mut buf).is_some());
    assert_eq!(lg.poll_timeout(), Some(now + Duration::from_secs(10)));
    lg.handle_timeout(now + Duration::from_secs(9));
    assert_eq!(lg.state(), State::AwaitingAcks);
    lg.handle_timeout(now + Duration::from_secs(10));
    assert_eq!(lg.state(), State::Closed);
    assert_eq!(
        lg.poll_event(),
        Some(logger::Event::Closed {
            reason: CloseReason::Error(SensorError::RadioDeadline { unacked: 1 })
        })
    );
    assert_eq!(lg.handle_input(now, b"garbage"), Ok(()));
    lg.handle_timeout(now + Duration::from_secs(99));
    assert_eq!(lg.poll_event(), None);
    assert_eq!(lg.poll_timeout(), None);
}

#[test]
fn garbage_closes_the_cloud_once() {
    let now = Instant::now();
    let mut cl = CloudSession::new(Arc::new(CloudConfig::default()), now);
    assert!(
        cl.handle_input(now, &[1, 0x01, 0xff, 0xff, 0xff, 0xff])
            .is_err()
    );
    assert!(matches!(cl.poll_event(), Some(cloud::Event::Closed { .. })));
    assert_eq!(cl.handle_input(now, &[1, 2, 3]), Ok(()));
    assert_eq!(cl.poll_event(), None);
}
