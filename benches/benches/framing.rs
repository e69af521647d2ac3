//! 1 KiB frames through fleetwire-wire vs tokio-util's `LengthDelimitedCodec` + postcard, in one
//! run. Each iteration encodes a stream of 64 frames and decodes it back, touching every body.
#![allow(missing_docs, clippy::missing_panics_doc)]

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fleetwire_wire::{FrameDecoder, encode_frame};
use serde::{Deserialize, Serialize};
use std::hint::black_box;
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};

const FRAMES: usize = 64;
const BODY: usize = 1024;

#[derive(Serialize, Deserialize)]
struct Msg<'a> {
    msg_type: u8,
    #[serde(borrow)]
    body: &'a [u8],
}

fn bench(c: &mut Criterion) {
    let body: Vec<u8> = (0..BODY).map(|i| i as u8).collect();
    let mut group = c.benchmark_group("frames_1KiB");
    group.throughput(Throughput::Bytes((FRAMES * BODY) as u64));

    group.bench_function("fleetwire-wire", |b| {
        let mut stream = Vec::with_capacity(FRAMES * (BODY + 6));
        let mut decoder = FrameDecoder::new(64 * 1024);
        b.iter(|| {
            stream.clear();
            for _ in 0..FRAMES {
                encode_frame(&mut stream, 1, 7, black_box(&body));
            }
            let mut input = &stream[..];
            let mut sum = 0usize;
            while !input.is_empty() {
                let (used, frame) = decoder.decode(input).unwrap();
                if let Some(f) = frame {
                    sum += f.body.len() + usize::from(f.body[BODY - 1]);
                }
                input = &input[used..];
            }
            black_box(sum)
        });
    });

    group.bench_function("tokio-util LengthDelimitedCodec + postcard", |b| {
        let mut codec = LengthDelimitedCodec::new();
        let mut stream = BytesMut::with_capacity(FRAMES * (BODY + 8));
        b.iter(|| {
            for _ in 0..FRAMES {
                let msg = Msg {
                    msg_type: 7,
                    body: black_box(&body),
                };
                // The usual pattern: serialize into a fresh buffer, hand it to the codec.
                let bytes = postcard::to_allocvec(&msg).unwrap();
                codec
                    .encode(bytes::Bytes::from(bytes), &mut stream)
                    .unwrap();
            }
            let mut sum = 0usize;
            while let Some(frame) = codec.decode(&mut stream).unwrap() {
                let msg: Msg<'_> = postcard::from_bytes(&frame).unwrap();
                sum += msg.body.len() + usize::from(msg.body[BODY - 1]) + usize::from(msg.msg_type);
            }
            black_box(sum)
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
