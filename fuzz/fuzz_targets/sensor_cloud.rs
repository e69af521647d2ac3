#![no_main]
//! Arbitrary bytes, split at arbitrary points, into the cloud machine, which answers its own
//! events (key lookup, storage) as a real driver would: no panic, at most one Closed event, and
//! nothing stored that did not authenticate. The first input byte picks whether a valid upload
//! is prepended so that the fuzzer also explores what follows a good first flight.
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleetwire_sensor::cloud::{CloudConfig, CloudSession, Event, LoggerRecord};
use fleetwire_sensor::codec::{Upload, encode_upload};
use fleetwire_sensor::{Batch, Channel, LoggerId, LoggerKey, Mark};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (mode, split) = (data[0], usize::from(data[1]));
    let key = LoggerKey::derive(&[3; 32], LoggerId(1));
    let mut stream = Vec::new();
    if mode & 1 == 1 {
        let upload = Upload {
            batch: Batch {
                logger: LoggerId(1),
                start: 1_750_000_000,
                interval_s: 60,
                channels: vec![Channel::TEMPERATURE_DECI_C],
                values: vec![Some(1), Some(2), None],
                ..Batch::default()
            },
            settings_version: 0,
            last: mode & 2 == 2,
        };
        encode_upload(&mut stream, &key, &upload).unwrap();
    }
    stream.extend_from_slice(&data[2..]);
    let now = Instant::now();
    let mut cl = CloudSession::new(Arc::new(CloudConfig::default()), now);
    let cut = split.min(stream.len());
    let mut closed = 0;
    for chunk in [&stream[..cut], &stream[cut..]] {
        let _ = cl.handle_input(now, chunk);
        while let Some(ev) = cl.poll_event() {
            match ev {
                Event::KeyNeeded { logger } => {
                    let record = LoggerRecord {
                        key: LoggerKey::derive(&[3; 32], logger),
                        stored: (mode & 4 == 4).then_some(Mark { epoch: 0, seq: 1 }),
                        settings: None,
                        server_time: 0,
                    };
                    cl.provide_key(now, logger, Some(record)).unwrap();
                }
                Event::Batch { id, batch, .. } => {
                    assert_eq!(batch.logger, LoggerId(1));
                    if mode & 8 == 8 {
                        cl.storage_failed(now, id).unwrap();
                    } else {
                        cl.confirm_stored(now, id).unwrap();
                    }
                }
                Event::Closed { .. } => closed += 1,
                _ => {}
            }
        }
        let mut out = Vec::new();
        while cl.poll_transmit(&mut out).is_some() {}
    }
    cl.handle_timeout(now + Duration::from_secs(3600));
    while let Some(ev) = cl.poll_event() {
        if matches!(ev, Event::Closed { .. }) {
            closed += 1;
        }
    }
    assert_eq!(closed, 1);
});
