#![no_main]
//! Arbitrary bytes, split at arbitrary points, into the logger machine after its first flight:
//! no panic, exactly one Closed event by the deadline, and no acknowledgement accepted that the
//! key did not sign (the fuzzer cannot forge the 16-byte tag).
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleetwire_sensor::logger::{Event, LoggerConfig, LoggerSession};
use fleetwire_sensor::{Batch, Channel, LoggerId, LoggerKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    let split = usize::from(data[0]);
    let id = LoggerId(1);
    let key = LoggerKey::derive(&[3; 32], id);
    let now = Instant::now();
    let batch = Batch {
        logger: id,
        start: 1_750_000_000,
        interval_s: 60,
        channels: vec![Channel::TEMPERATURE_DECI_C],
        values: vec![Some(1), Some(2)],
        ..Batch::default()
    };
    let mut lg = LoggerSession::new(Arc::new(LoggerConfig::new(id, key)), now, vec![batch]).unwrap();
    let mut out = Vec::new();
    while lg.poll_transmit(&mut out).is_some() {}
    let input = &data[1..];
    let cut = split.min(input.len());
    let mut closed = 0;
    for chunk in [&input[..cut], &input[cut..]] {
        let _ = lg.handle_input(now, chunk);
        while let Some(ev) = lg.poll_event() {
            match ev {
                Event::Acked { .. } | Event::Settings(_) => panic!("forged ack accepted"),
                Event::Closed { .. } => closed += 1,
                _ => {}
            }
        }
    }
    lg.handle_timeout(now + Duration::from_secs(3600));
    while let Some(ev) = lg.poll_event() {
        if matches!(ev, Event::Closed { .. }) {
            closed += 1;
        }
    }
    assert_eq!(closed, 1);
});
