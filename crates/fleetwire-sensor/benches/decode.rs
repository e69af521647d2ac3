//! Decode throughput: verify the MAC and decode upload bodies, in readings per second.
//!
//! `cargo bench -p fleetwire-sensor --bench decode`
#![allow(missing_docs)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fleetwire_sensor::codec::{Upload, decode_upload, decode_upload_unverified, encode_upload};
use fleetwire_sensor::{Batch, Channel, LoggerId, LoggerKey};
use std::hint::black_box;

fn upload(readings: usize, channels: usize) -> Upload {
    let mut list = vec![Channel::TEMPERATURE_DECI_C];
    if channels == 2 {
        list.push(Channel::HUMIDITY_DECI_PCT);
    }
    let mut values = Vec::with_capacity(readings * channels);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..readings {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let noise = (x % 5) as i32 - 2;
        let phase = i32::try_from(i % 288).unwrap_or(0);
        let base = 210 + (phase - 144).abs() / 3;
        values.push(Some(base + noise));
        if channels == 2 {
            values.push(Some(450 - base / 2 + noise));
        }
    }
    Upload {
        batch: Batch {
            logger: LoggerId(100_234),
            epoch: 0,
            first_seq: 52_560,
            start: 1_767_225_600,
            interval_s: 300,
            channels: list,
            values,
            ..Batch::default()
        },
        settings_version: 0,
        last: true,
    }
}

fn bench(c: &mut Criterion) {
    let key = LoggerKey::derive(&[1; 32], LoggerId(100_234));
    let mut group = c.benchmark_group("sensor_decode");
    for (readings, channels) in [(100usize, 1usize), (100, 2), (2016, 1)] {
        let mut frame = Vec::new();
        encode_upload(&mut frame, &key, &upload(readings, channels)).unwrap();
        let body = frame[6..].to_vec();
        group.throughput(Throughput::Elements(readings as u64));
        group.bench_function(format!("verify+decode/{readings}x{channels}ch"), |b| {
            b.iter(|| decode_upload(black_box(&body), &key).unwrap());
        });
        group.bench_function(format!("decode only/{readings}x{channels}ch"), |b| {
            b.iter(|| decode_upload_unverified(black_box(&body)).unwrap());
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
