//! 1 KiB frames through fleetwire-wire vs tokio-util's `LengthDelimitedCodec` + postcard (the
//! usual way, and without a per-frame allocation), in one run. Each iteration encodes a stream
//! of 64 frames and decodes it back, and every side reads every body byte with the same
//! function; see `fleetwire_benches::framing` for exactly what each side does.
//!
//! `benches/criterion.sh fleetwire-benches framing 3`
#![allow(missing_docs, clippy::missing_panics_doc)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fleetwire_benches::framing::{BODY, FRAMES, Fleetwire, PeerReuse, PeerUsual};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let body: Vec<u8> = (0..BODY).map(|i| i as u8).collect();
    let expected = Fleetwire::default().round(&body);
    assert_eq!(PeerUsual::default().round(&body), expected);
    assert_eq!(PeerReuse::default().round(&body), expected);
    let mut group = c.benchmark_group("frames_1KiB");
    group.throughput(Throughput::Bytes((FRAMES * BODY) as u64));
    let mut fw = Fleetwire::default();
    group.bench_function("fleetwire-wire", |b| {
        b.iter(|| black_box(fw.round(black_box(&body))));
    });
    let mut usual = PeerUsual::default();
    group.bench_function(
        "tokio-util LengthDelimitedCodec + postcard to_allocvec",
        |b| {
            b.iter(|| black_box(usual.round(black_box(&body))));
        },
    );
    let mut reuse = PeerReuse::default();
    group.bench_function(
        "tokio-util LengthDelimitedCodec + postcard into reused BytesMut",
        |b| {
            b.iter(|| black_box(reuse.round(black_box(&body))));
        },
    );
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
