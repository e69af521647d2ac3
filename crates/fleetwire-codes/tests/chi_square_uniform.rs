//! No symbol and no pair of neighbouring symbols is favoured: a chi-square test over 1,000,000
//! characters per position (seeded `ChaCha12Rng`, so the run replays), and a control that shows the same
//! test catches the modulo bias this crate avoids.

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
    let mut pairs = vec![0u64; n * n];
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
        pairs[index[usize::from(bytes[0])] * n + index[usize::from(bytes[1])]] += 1;
    }
    let limit = critical((n - 1) as f64, Z);
    for (pos, counts) in single.iter().enumerate() {
        let x2 = chi_square(counts, SAMPLES as u64);
        assert!(x2 < limit, "position {pos}: chi2 {x2:.1} >= {limit:.1}");
    }
    let pair_limit = critical((n * n - 1) as f64, Z);
    let x2 = chi_square(&pairs, SAMPLES as u64);
    assert!(x2 < pair_limit, "pairs: chi2 {x2:.1} >= {pair_limit:.1}");
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
fn custom_alphabet_and_short_length_are_uniform() {
    // 20^7 ≈ 1.28e9 of 2^31: 40 % of draws are rejected, every digit must still be uniform.
    check_spec(
        &CodeSpec::new(Alphabet::new("0123456789ABCDEFGHJK").unwrap(), 7, false).unwrap(),
        0xfeed,
    );
}
