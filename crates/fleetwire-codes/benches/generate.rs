//! Codes per second for 10-character codes on one core, side by side with nanoid (36-symbol
//! alphabet, length 10) and rand on `rand::thread_rng()` (the same 36 symbols, and
//! `Alphanumeric`'s 62).
//!
//! Every peer runs in its fastest correct configuration, the one a user who cares would pick:
//! nanoid with its thread-local generator (`nanoid::rngs::thread_local`: rand 0.9's `ThreadRng`,
//! `ChaCha12` reseeded from the OS) rather than its default, which seeds a fresh `StdRng` from the
//! OS on every call (also measured, as `nanoid_36_default_rng`, because it is what `nanoid!(n,
//! alphabet)` does). nanoid always returns a `String`, so fleetwire is measured both returning
//! its stack `Code` and returning a `String`.
//!
//! `benches/criterion.sh fleetwire-codes generate 3` (three runs, medians and ratios), or once:
//! `cargo bench -p fleetwire-codes --bench generate -- --warm-up-time 1 --measurement-time 3`
#![allow(clippy::disallowed_methods, missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fleetwire_codes::{Alphabet, CodeGenerator, CodeSpec};
use rand::Rng;
use rand::distributions::{Alphanumeric, Uniform};
use rand_chacha::{ChaCha8Rng, ChaCha12Rng};
use rand_core::{RngCore, SeedableRng};
use ring::rand::{SecureRandom, SystemRandom};

const ALPHABET36: [char; 36] = [
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I',
    'J', 'K', 'L', 'M', 'N', 'O', 'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z',
];

fn os_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    SystemRandom::new().fill(&mut seed).expect("OS entropy");
    seed
}

fn codes(c: &mut Criterion) {
    let bare = CodeSpec::new(Alphabet::alphanumeric(), 10, false).unwrap();
    let mut group = c.benchmark_group("codes_10_chars");
    group.throughput(Throughput::Elements(1));

    let mut g12 = CodeGenerator::new(bare.clone(), ChaCha12Rng::from_seed(os_seed()));
    group.bench_function("fleetwire_chacha12", |b| {
        b.iter(|| black_box(g12.generate().unwrap()));
    });
    let mut g8 = CodeGenerator::new(bare.clone(), ChaCha8Rng::from_seed(os_seed()));
    group.bench_function("fleetwire_chacha8", |b| {
        b.iter(|| black_box(g8.generate().unwrap()));
    });
    let mut gs = CodeGenerator::new(bare, ChaCha12Rng::from_seed(os_seed()));
    group.bench_function("fleetwire_chacha12_to_string", |b| {
        b.iter(|| black_box(gs.generate().unwrap().as_str().to_owned()));
    });
    let mut gc = CodeGenerator::new(CodeSpec::default(), ChaCha12Rng::from_seed(os_seed()));
    group.bench_function("fleetwire_chacha12_with_check_char", |b| {
        b.iter(|| black_box(gc.generate().unwrap()));
    });
    group.bench_function("nanoid_36_thread_local", |b| {
        b.iter(|| black_box(nanoid::nanoid!(10, &ALPHABET36, nanoid::rngs::thread_local)));
    });
    group.bench_function("nanoid_36_default_rng", |b| {
        b.iter(|| black_box(nanoid::nanoid!(10, &ALPHABET36)));
    });
    let uniform36 = Uniform::from(0..36usize);
    group.bench_function("rand_uniform36_thread_rng", |b| {
        b.iter(|| {
            let s: String = rand::thread_rng()
                .sample_iter(uniform36)
                .take(10)
                .map(|i| ALPHABET36[i])
                .collect();
            black_box(s)
        });
    });
    group.bench_function("rand_uniform36_thread_rng_array", |b| {
        let mut rng = rand::thread_rng();
        b.iter(|| {
            let mut out = [0u8; 10];
            for x in &mut out {
                *x = ALPHABET36[rng.sample(uniform36)] as u8;
            }
            black_box(out)
        });
    });
    group.bench_function("rand_alphanumeric_thread_rng", |b| {
        b.iter(|| {
            let s: String = rand::thread_rng()
                .sample_iter(&Alphanumeric)
                .take(10)
                .map(char::from)
                .collect();
            black_box(s)
        });
    });
    group.bench_function("rand_alphanumeric_thread_rng_array", |b| {
        let mut rng = rand::thread_rng();
        b.iter(|| {
            let mut out = [0u8; 10];
            for x in &mut out {
                *x = rng.sample(Alphanumeric);
            }
            black_box(out)
        });
    });
    group.finish();

    // Diagnostics: the generator's share of the cost (a 10-character code uses about 10 bytes).
    let mut rng_group = c.benchmark_group("rng_256_bytes");
    rng_group.throughput(Throughput::Bytes(256));
    let mut r12 = ChaCha12Rng::from_seed(os_seed());
    rng_group.bench_function("chacha12", |b| {
        let mut buf = [0u8; 256];
        b.iter(|| {
            r12.fill_bytes(&mut buf);
            black_box(buf[0])
        });
    });
    let mut r8 = ChaCha8Rng::from_seed(os_seed());
    rng_group.bench_function("chacha8", |b| {
        let mut buf = [0u8; 256];
        b.iter(|| {
            r8.fill_bytes(&mut buf);
            black_box(buf[0])
        });
    });
    rng_group.finish();
}

criterion_group!(benches, codes);
criterion_main!(benches);
