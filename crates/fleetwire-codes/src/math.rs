//! Code-space arithmetic: how many codes there are and how likely guessing is to hit one.

// Counts become f64 for probabilities: above 2^53 they lose low digits, which no probability
// printed with a few significant figures can show.
#![allow(clippy::cast_precision_loss)]

/// `alphabet_size ^ length`, saturating at `u64::MAX` (36^10 ≈ 3.66e15 fits easily).
pub fn combinations(alphabet_size: usize, length: usize) -> u64 {
    let base = alphabet_size as u64;
    (0..length).fold(1u64, |acc, _| acc.saturating_mul(base))
}

/// Above this many factors, [`guess_probability`] uses its closed-form upper bound instead of the
/// exact product.
pub const EXACT_TERMS_LIMIT: u64 = 1 << 20;

/// The chance that an attacker making `guesses` distinct guesses hits at least one of
/// `live_codes` codes out of `combinations`.
///
/// With `A` guesses, `N` live codes and `C` combinations the chance that every guess misses is
/// the hypergeometric `C(C−N, A) / C(C, A)`, which can be written over either count:
/// `Π_{i<A} (1 − N/(C−i)) = Π_{j<N} (1 − A/(C−j))`. This sums the logarithms over the smaller of
/// `A` and `N` (exact) when that is at most [`EXACT_TERMS_LIMIT`], and otherwise returns the
/// upper bound `1 − (1 − M/(C−k))^k` with `k = min(A, N)`, `M = max(A, N)`. Both keep their
/// digits for tiny probabilities (`ln_1p`, `exp_m1`). For `A·N ≪ C` the result is about `A·N/C`.
/// It is 1 when `A + N > C`.
pub fn guess_probability(combinations: u64, live_codes: u64, guesses: u64) -> f64 {
    if live_codes == 0 || guesses == 0 {
        return 0.0;
    }
    if guesses.saturating_add(live_codes) > combinations {
        return 1.0;
    }
    let (k, other) = if live_codes <= guesses {
        (live_codes, guesses as f64)
    } else {
        (guesses, live_codes as f64)
    };
    let c = combinations as f64;
    let log_miss = if k <= EXACT_TERMS_LIMIT {
        (0..k)
            .map(|j| (-other / (c - j as f64)).ln_1p())
            .sum::<f64>()
    } else {
        k as f64 * (-other / (c - k as f64)).ln_1p()
    };
    -log_miss.exp_m1()
}

/// How many distinct guesses give an attacker probability `probability` of hitting one of
/// `live_codes` out of `combinations`: `C · (1 − (1 − p)^(1/N))`, the inverse of
/// `1 − (1 − A/C)^N`. Exact for one live code, accurate for `N ≪ C`, and never below the true
/// number otherwise. `probability` is clamped to `[0, 1]`; `f64::INFINITY` with no live codes.
pub fn guesses_for_probability(combinations: u64, live_codes: u64, probability: f64) -> f64 {
    if live_codes == 0 {
        return f64::INFINITY;
    }
    let p = probability.clamp(0.0, 1.0);
    let c = combinations as f64;
    -c * ((-p).ln_1p() / live_codes as f64).exp_m1()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::float_cmp, clippy::cast_sign_loss)]
    use super::*;

    #[test]
    fn combinations_values() {
        assert_eq!(combinations(36, 10), 3_656_158_440_062_976);
        assert_eq!(combinations(32, 6), 1 << 30);
        assert_eq!(combinations(36, 30), u64::MAX);
        assert_eq!(combinations(36, 0), 1);
    }

    #[test]
    fn probability_matches_exact_product_for_small_spaces() {
        // C = 100, N = 5, A = 10: exact = 1 - prod (95-i)/(100-i); both orders agree.
        let exact = 1.0
            - (0..10)
                .map(|i| (95.0 - f64::from(i)) / (100.0 - f64::from(i)))
                .product::<f64>();
        assert!((guess_probability(100, 5, 10) - exact).abs() < 1e-12);
        // Every code but the five live ones and one more guessed: a miss needs all of them unguessed.
        assert!((1.0 - guess_probability(100, 5, 95)) < 1e-7);
        assert_eq!(guess_probability(100, 5, 96), 1.0);
        assert_eq!(guess_probability(100, 0, 10), 0.0);
        assert_eq!(guess_probability(100, 5, 0), 0.0);
    }

    #[test]
    fn probability_for_a_realistic_fleet() {
        // One million things with 10-character codes; an attacker throttled to 10 guesses per
        // minute for a year makes about 5.3 million guesses.
        let c = combinations(36, 10);
        let p = guess_probability(c, 1_000_000, 5_256_000);
        let approx = 5_256_000.0 * 1e6 / c as f64;
        assert!((p - approx).abs() / approx < 0.01, "{p} vs {approx}");
        assert!(p < 0.002);
    }

    #[test]
    fn inverse_round_trips() {
        let c = combinations(36, 8);
        for &n in &[1u64, 1000, 1_000_000] {
            for &p in &[1e-9, 1e-3, 0.5] {
                let a = guesses_for_probability(c, n, p);
                if a < 1000.0 {
                    continue; // rounding to whole guesses dominates
                }
                let back = guess_probability(c, n, a.round() as u64);
                assert!((back - p).abs() / p < 0.01, "n={n} p={p} a={a} back={back}");
            }
        }
        assert_eq!(guesses_for_probability(c, 0, 0.5), f64::INFINITY);
        // One live code: half the space for an even chance.
        assert!((guesses_for_probability(1000, 1, 0.5) - 500.0).abs() < 1e-6);
    }

    #[test]
    fn bound_beyond_the_exact_limit_is_close() {
        let c = combinations(36, 10);
        let n = EXACT_TERMS_LIMIT + 1;
        let a = 2 * EXACT_TERMS_LIMIT;
        let bound = guess_probability(c, n, a);
        let exactish = guess_probability(c, EXACT_TERMS_LIMIT, a);
        assert!(bound >= exactish);
        assert!(
            (bound - exactish) / exactish < 1e-3,
            "{bound} vs {exactish}"
        );
    }
}
