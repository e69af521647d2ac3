//! Prints bytes per reading, all-in (frame header, envelope, channels, readings, MAC), for a
//! 100-reading upload with one and with two channels, and writes the same readings to
//! `benches/sensor/readings.json` for the `SenML` comparison (`benches/sensor/senml_compare.py`).
//!
//! `cargo run -p fleetwire-sensor --example sensor_size [-- path/to/readings.json]`
// A driver's clock origin: the machines never read a clock, tests pick an arbitrary `now`.
#![allow(clippy::disallowed_methods)]

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use fleetwire_sensor::cloud::{self, CloudConfig, CloudSession, LoggerRecord};
use fleetwire_sensor::logger::{LoggerConfig, LoggerSession};
use fleetwire_sensor::{Batch, Channel, LoggerId, LoggerKey, Mark};

const START: u64 = 1_767_225_600; // 2026-01-01T00:00:00Z
const INTERVAL: u32 = 300;

/// xorshift64*: a deterministic source of noise, so every run measures the same readings.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> i32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let r = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        ((r >> 33) % 5) as i32 - 2 // -2..=2
    }
}

/// 100 readings every 5 minutes: temperature in 0.1 °C (a daily sine, ±6 °C around 21 °C, plus
/// ±0.2 °C noise) and relative humidity in 0.1 % (inverse daily swing plus ±0.2 % noise).
fn readings(channels: usize) -> Vec<Option<i32>> {
    let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
    let mut out = Vec::new();
    for i in 0..100u32 {
        let day = f64::from(i * INTERVAL) / 86_400.0 * std::f64::consts::TAU;
        let t = 210.0 + 60.0 * day.sin();
        out.push(Some(t.round() as i32 + noise.next()));
        if channels == 2 {
            let h = 450.0 - 80.0 * day.sin();
            out.push(Some(h.round() as i32 + noise.next()));
        }
    }
    out
}

fn batch(channels: usize) -> Batch {
    let mut list = vec![Channel::TEMPERATURE_DECI_C];
    if channels == 2 {
        list.push(Channel::HUMIDITY_DECI_PCT);
    }
    Batch {
        logger: LoggerId(100_234),
        epoch: 0,
        first_seq: 52_560, // half a year of 5-minute slots
        start: START,
        interval_s: INTERVAL,
        channels: list,
        values: readings(channels),
        ..Batch::default()
    }
}

/// Runs one upload; returns (uplink bytes, downlink bytes).
fn measure(batch: &Batch) -> (usize, usize) {
    let now = Instant::now();
    let key = LoggerKey::derive(&[1; 32], batch.logger);
    let mut lg = LoggerSession::new(
        Arc::new(LoggerConfig::new(batch.logger, key.clone())),
        now,
        vec![batch.clone()],
    )
    .unwrap();
    let mut cl = CloudSession::new(Arc::new(CloudConfig::default()), now);
    let mut up = Vec::new();
    while lg.poll_transmit(&mut up).is_some() {}
    cl.handle_input(now, &up).unwrap();
    while let Some(ev) = cl.poll_event() {
        match ev {
            cloud::Event::KeyNeeded { logger } => {
                // The store holds everything before this batch: it is new and follows.
                let record = LoggerRecord {
                    key: key.clone(),
                    stored: batch.first_seq.checked_sub(1).map(|seq| Mark {
                        epoch: batch.epoch,
                        seq,
                    }),
                    closed: Vec::new(),
                    status: None,
                    settings: None,
                    server_time: START + 30_000,
                };
                cl.provide_key(now, logger, Some(record)).unwrap();
            }
            cloud::Event::Batch { id, .. } => cl.confirm_stored(now, id).unwrap(),
            cloud::Event::Closed { .. } => {}
            other => panic!("the batch must be stored, got {other:?}"),
        }
    }
    let mut down = Vec::new();
    while cl.poll_transmit(&mut down).is_some() {}
    lg.handle_input(now, &down).unwrap();
    (up.len(), down.len())
}

fn main() {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "benches/sensor/readings.json".to_string());
    let mut json =
        String::from("{\n  \"start\": 1767225600,\n  \"interval_s\": 300,\n  \"cases\": [\n");
    for (n, channels) in [(1usize, 1usize), (2, 2)] {
        let b = batch(channels);
        let (up, down) = measure(&b);
        let per = f64::from(u32::try_from(up).unwrap()) / 100.0;
        println!(
            "{channels} channel(s), 100 readings: uplink {up} bytes all-in = {per:.2} bytes/reading; ack {down} bytes"
        );
        let names: Vec<&str> = b
            .channels
            .iter()
            .map(|c| {
                if *c == Channel::TEMPERATURE_DECI_C {
                    "temperature"
                } else {
                    "humidity"
                }
            })
            .collect();
        let units: Vec<&str> = names
            .iter()
            .map(|n| if *n == "temperature" { "Cel" } else { "%RH" })
            .collect();
        let values: Vec<String> = b
            .values
            .iter()
            .map(|v| v.unwrap_or_default().to_string())
            .collect();
        let _ = writeln!(
            json,
            "    {{\"channels\": {names:?}, \"units\": {units:?}, \"scale\": 0.1, \"readings\": 100, \"fleetwire_uplink_bytes\": {up}, \"fleetwire_ack_bytes\": {down}, \"values\": [{}]}}{}",
            values.join(","),
            if n == 1 { "," } else { "" }
        );
    }
    json.push_str("  ]\n}\n");
    std::fs::write(&path, json).unwrap();
    println!("readings written to {path}");
}
