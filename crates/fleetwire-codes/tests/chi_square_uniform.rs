//! No symbol and no pair of neighbouring symbols is favoured: a chi-square test over 1,000,000
//! characters per position and over every pair of neighbouring positions — including 4–5, where
//! the generator's two digit chains meet, and the last random symbol with the check character —
//! (seeded `ChaCha12Rng`, so the run replays), and controls that show the same tests catch the
//! modulo bias this crate avoids and a digit shared across the chains' join.

use fleetwire_codes::{Alphabet, CodeGenerator, CodeSpec};
use rand_chacha::ChaCha12Rng;
use rand_core::{RngCore, SeedableRng};

const SAMPLES: usize = 1_000_000;

/// Wilson–Hilferty upper quantile of chi-square with `df` degrees of freedom at normal score `z`.
fn critical(df: f64, z: f64) -> f64 {
    let a = 2.0 / (9.0 * df);
    df * (1.0 - a + z * a.sqrt()).powi(3)
}

/// z = 4.265: a false alarm once in 100,000 runs (and the seeds are fixed).
const Z: f64 = 4.265;

fn chi_square(counts: &[u64], total: u64) -> f64 {
    let expected = total as f64 / counts.len() as f64;
    counts
        .iter()
        .map(|&c| (c as f64 - expected).powi(2) / expected)
        .sum()
}

fn check_spec(spec: &CodeSpec, seed: u64) {
    let n = spec.alphabet().len();
    let len = spec.code_len();
    let mut gen_ = CodeGenerator::new(spec.clone(), ChaCha12Rng::seed_from_u64(seed));
    let mut single = vec![vec![0u64; n]; len];
    // pairs[p]: the symbols at positions p and p + 1.
    let mut pairs = vec![vec![0u64; n * n]; len - 1];
    let mut index = [usize::MAX; 128];
    for (i, c) in spec.alphabet().as_str().bytes().enumerate() {
        index[usize::from(c)] = i;
    }
    for _ in 0..SAMPLES {
        let code = gen_.generate().unwrap();
        let bytes = code.as_str().as_bytes();
        for (pos, &b) in bytes.iter().enumerate() {
            single[pos][index[usize::from(b)]] += 1;
        }
        for (p, w) in bytes.windows(2).enumerate() {
            pairs[p][index[usize::from(w[0])] * n + index[usize::from(w[1])]] += 1;
        }
    }
    let limit = critical((n - 1) as f64, Z);
    for (pos, counts) in single.iter().enumerate() {
        let x2 = chi_square(counts, SAMPLES as u64);
        assert!(x2 < limit, "position {pos}: chi2 {x2:.1} >= {limit:.1}");
    }
    let pair_limit = critical((n * n - 1) as f64, Z);
    for (p, counts) in pairs.iter().enumerate() {
        let x2 = chi_square(counts, SAMPLES as u64);
        assert!(
            x2 < pair_limit,
            "positions {p}-{}: chi2 {x2:.1} >= {pair_limit:.1}",
            p + 1
        );
    }
}

#[test]
fn alphanumeric_with_check_is_uniform_at_every_position() {
    // Ten random positions plus the check character, which is uniform too (a bijection of the
    // last interim state).
    check_spec(&CodeSpec::default(), 0x5eed);
}

#[test]
fn crockford_is_uniform_at_every_position() {
    check_spec(
        &CodeSpec::new(Alphabet::crockford(), 10, false).unwrap(),
        0xc0de,
    );
}

#[test]
fn the_test_catches_modulo_bias() {
    // `byte % 36`, the classic mistake: 256 = 7·36 + 4, so four symbols come up 8/7 as often.
    let mut rng = ChaCha12Rng::seed_from_u64(1);
    let mut counts = vec![0u64; 36];
    let mut bytes = vec![0u8; SAMPLES];
    rng.fill_bytes(&mut bytes);
    for b in bytes {
        counts[usize::from(b) % 36] += 1;
    }
    let x2 = chi_square(&counts, SAMPLES as u64);
    assert!(
        x2 > critical(35.0, Z),
        "modulo bias went unnoticed: {x2:.1}"
    );
}

#[test]
fn the_pair_test_catches_a_digit_shared_across_the_join() {
    // The mistake the pair test at 4-5 is there for: the second chain starting one digit early
    // (`v / 36^4` instead of `v / 36^5`), so position 5 repeats position 4. Every position alone
    // stays uniform; only the pair shows it.
    let mut rng = ChaCha12Rng::seed_from_u64(2);
    let mut pair45 = vec![0u64; 36 * 36];
    let mut single5 = vec![0u64; 36];
    for _ in 0..SAMPLES {
        let v = loop {
            let w = rng.next_u64() & ((1 << 52) - 1);
            if w < 36u64.pow(10) {
                break w;
            }
        };
        let d4 = (v % 36u64.pow(5)) / 36u64.pow(4);
        let d5 = (v / 36u64.pow(4)) % 36;
        pair45[(d4 * 36 + d5) as usize] += 1;
        single5[d5 as usize] += 1;
    }
    assert!(chi_square(&single5, SAMPLES as u64) < critical(35.0, Z));
    let x2 = chi_square(&pair45, SAMPLES as u64);
    assert!(
        x2 > critical(1295.0, Z),
        "a shared digit went unnoticed: {x2:.1}"
    );
}

#[test]
fn custom_alphabet_and_short_length_are_uniform() {
    // 20^7 ≈ 1.28e9 of 2^31: 40 % of draws are rejected, every digit must still be uniform.
    check_spec(
        &CodeSpec::new(Alphabet::new("0123456789ABCDEFGHJK").unwrap(), 7, false).unwrap(),
        0xfeed,
    );
}
