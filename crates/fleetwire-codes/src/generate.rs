use std::collections::HashSet;
use std::convert::Infallible;
use std::fmt;
use std::hash::BuildHasher;

use rand_core::CryptoRngCore;

use crate::{Code, CodeSpec, GenerateError, MAX_LENGTH};

/// Random bytes drawn from the generator at a time.
pub const BATCH_BYTES: usize = 256;

/// The default number of codes [`CodeGenerator::generate_unique`] tries before giving up.
pub const DEFAULT_UNIQUE_ATTEMPTS: u32 = 8;

/// Makes unbiased, non-sequential codes from an injected cryptographically secure generator.
///
/// A whole code is one number below `C = size^length` (36^10 < 2^52): a 64-bit random word is
/// masked to the bits `C` needs and thrown away if it is `≥ C` (mask and reject; at least half of
/// the draws are kept, 81 % for 36^10, all of them for 32^10), and the code is its base-`size`
/// digits. Every code is exactly equally likely, so every symbol is uniform and independent of
/// the others: no modulo bias, no counter, nothing sequential. Random bytes are drawn [`BATCH_BYTES`] at a time with `try_fill_bytes`, so an
/// expensive source (an OS generator) is asked rarely and its failure is an error, not a panic.
///
/// The generator owns its random source so the batch buffer and the source stay together: a
/// seeded `rand_chacha::ChaCha12Rng` replays exactly in tests; in production seed one from the
/// OS (`ring::rand::SystemRandom::fill` into a 32-byte seed) per process.
pub struct CodeGenerator<R> {
    spec: CodeSpec,
    rng: R,
    pool: [u8; BATCH_BYTES],
    /// Offset of the next unused 8-byte word in `pool`; `BATCH_BYTES` when empty.
    next: usize,
    /// `alphabet.len() ^ length`: a draw below this is a code.
    total: u64,
    /// `2^b − 1` for the smallest `b` with `2^b ≥ total`.
    mask: u64,
}

/// Where live codes are claimed, so that no two things share one: a database table with a unique
/// index, or a `HashSet<Code>` in memory.
///
/// `try_claim` must be atomic (insert-if-absent), not check-then-insert: two servers generating
/// the same code at once must not both win.
pub trait CodeRegistry {
    /// What the registry's failures look like.
    type Error: fmt::Display;

    /// Claims `code`: `Ok(true)` if it was free and is now taken, `Ok(false)` if it was taken.
    fn try_claim(&mut self, code: &Code) -> Result<bool, Self::Error>;
}

impl<S: BuildHasher> CodeRegistry for HashSet<Code, S> {
    type Error = Infallible;

    fn try_claim(&mut self, code: &Code) -> Result<bool, Infallible> {
        Ok(self.insert(*code))
    }
}

impl<R: CryptoRngCore> CodeGenerator<R> {
    /// A generator of codes of `spec`, drawing from `rng`.
    pub fn new(spec: CodeSpec, rng: R) -> Self {
        let total = spec.combinations();
        // INVARIANT: 36^10 < 2^52, so `total` is exact and the mask fits.
        let mask = total.next_power_of_two() - 1;
        Self {
            spec,
            rng,
            pool: [0; BATCH_BYTES],
            next: BATCH_BYTES,
            total,
            mask,
        }
    }

    /// The spec codes follow.
    pub fn spec(&self) -> &CodeSpec {
        &self.spec
    }

    /// One fresh random code (not checked for uniqueness: see
    /// [`generate_unique`](Self::generate_unique)).
    pub fn generate(&mut self) -> Result<Code, GenerateError> {
        let mut indices = [0u8; MAX_LENGTH];
        let out = &mut indices[..self.spec.length()];
        // One monomorphized digit loop per alphabet size, so the division by the size is a
        // multiplication.
        macro_rules! by_size {
            ($($n:literal)*) => {
                match self.spec.alphabet().len() {
                    $($n => self.draw::<$n>(out)?,)*
                    _ => unreachable!("alphabet sizes are 2..=36"),
                }
            };
        }
        by_size!(2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31
            32 33 34 35 36);
        Ok(self.spec.seal(out))
    }

    /// A fresh code that `registry` accepted as unused, trying up to `max_attempts` codes.
    ///
    /// With `n` live codes among `C` combinations, one attempt collides with probability `n / C`
    /// and all `k` attempts with `(n / C)^k`; [`GenerateError::Exhausted`] therefore means the
    /// space is crowded (with 36^6 ≈ 2.2e9 six-character codes and 1e9 things, 8 attempts fail
    /// with probability 0.45^8 ≈ 0.002) and longer codes are due.
    pub fn generate_unique<G: CodeRegistry>(
        &mut self,
        registry: &mut G,
        max_attempts: u32,
    ) -> Result<Code, GenerateError> {
        for _ in 0..max_attempts {
            let code = self.generate()?;
            let claimed = registry
                .try_claim(&code)
                .map_err(|e| GenerateError::Registry {
                    reason: e.to_string(),
                })?;
            if claimed {
                return Ok(code);
            }
        }
        Err(GenerateError::Exhausted {
            attempts: max_attempts,
        })
    }

    /// Gives the random source back.
    pub fn into_rng(self) -> R {
        self.rng
    }

    /// Writes `out.len()` (6..=10) uniform symbol indices: masks a 64-bit word to `b` bits,
    /// rejects it unless it is below `N^len`, and writes its base-`N` digits. A uniform value
    /// below `N^len` has independent uniform digits.
    #[inline]
    fn draw<const N: u64>(&mut self, out: &mut [u8]) -> Result<(), GenerateError> {
        let v = loop {
            let w = self.next_word()? & self.mask;
            if w < self.total {
                break w;
            }
        };
        // Split at five digits (N^5 ≤ 36^5 < 2^32 and length ≥ 6): two independent chains of
        // 32-bit divisions by a constant run side by side instead of one chain of ten.
        let p5 = N.pow(5);
        let n = N as u32;
        let mut lo = (v % p5) as u32;
        let mut hi = (v / p5) as u32;
        let (first, rest) = out.split_at_mut(5);
        for slot in first {
            *slot = (lo % n) as u8;
            lo /= n;
        }
        for slot in rest {
            *slot = (hi % n) as u8;
            hi /= n;
        }
        Ok(())
    }

    #[inline]
    fn next_word(&mut self) -> Result<u64, GenerateError> {
        if self.next == BATCH_BYTES {
            self.rng
                .try_fill_bytes(&mut self.pool)
                .map_err(|e| GenerateError::Rng {
                    reason: e.to_string(),
                })?;
            self.next = 0;
        }
        let mut word = [0u8; 8];
        word.copy_from_slice(&self.pool[self.next..self.next + 8]);
        self.next += 8;
        Ok(u64::from_le_bytes(word))
    }
}

impl<R> fmt::Debug for CodeGenerator<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The pool holds future codes: never print it.
        f.debug_struct("CodeGenerator")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha12Rng;
    use rand_core::{CryptoRng, RngCore, SeedableRng};

    use super::*;
    use crate::Alphabet;

    fn generator(spec: CodeSpec, seed: u64) -> CodeGenerator<ChaCha12Rng> {
        CodeGenerator::new(spec, ChaCha12Rng::seed_from_u64(seed))
    }

    #[test]
    fn seeded_generators_replay() {
        let mut a = generator(CodeSpec::default(), 7);
        let mut b = generator(CodeSpec::default(), 7);
        let mut c = generator(CodeSpec::default(), 8);
        for _ in 0..100 {
            let x = a.generate().unwrap();
            assert_eq!(x, b.generate().unwrap());
            assert_ne!(x, c.generate().unwrap());
        }
    }

    #[test]
    fn uses_every_symbol_and_no_other() {
        for alphabet in [
            Alphabet::alphanumeric(),
            Alphabet::crockford(),
            Alphabet::new("AB").unwrap(),
            Alphabet::new("ABC").unwrap(),
        ] {
            let spec = CodeSpec::new(alphabet.clone(), 6, false).unwrap();
            let mut g = generator(spec, 1);
            let mut seen = HashSet::new();
            for _ in 0..2000 {
                seen.extend(g.generate().unwrap().as_str().chars());
            }
            let want: HashSet<char> = alphabet.as_str().chars().collect();
            assert_eq!(seen, want);
        }
    }

    /// A registry that reports the first `taken` claims as collisions.
    struct Crowded {
        taken: u32,
        seen: Vec<Code>,
    }

    impl CodeRegistry for Crowded {
        type Error = &'static str;
        fn try_claim(&mut self, code: &Code) -> Result<bool, &'static str> {
            self.seen.push(*code);
            if self.taken == 0 {
                return Ok(true);
            }
            self.taken -= 1;
            Ok(false)
        }
    }

    #[test]
    fn unique_retries_on_collision() {
        let mut g = generator(CodeSpec::default(), 3);
        let mut reg = Crowded {
            taken: 3,
            seen: Vec::new(),
        };
        let code = g.generate_unique(&mut reg, 8).unwrap();
        assert_eq!(reg.seen.len(), 4);
        assert_eq!(reg.seen[3], code);
        let mut full = Crowded {
            taken: 100,
            seen: Vec::new(),
        };
        assert_eq!(
            g.generate_unique(&mut full, 5),
            Err(GenerateError::Exhausted { attempts: 5 })
        );
    }

    #[test]
    fn unique_in_a_set() {
        let spec = CodeSpec::new(Alphabet::new("AB").unwrap(), 6, false).unwrap();
        let mut g = generator(spec, 5);
        let mut set = HashSet::new();
        // 64 combinations: the set fills up, every code is new, and then generation gives up.
        while let Ok(code) = g.generate_unique(&mut set, 10_000) {
            assert!(set.contains(&code));
        }
        assert_eq!(set.len(), 64);
    }

    struct Broken;
    impl RngCore for Broken {
        fn next_u32(&mut self) -> u32 {
            unreachable!()
        }
        fn next_u64(&mut self) -> u64 {
            unreachable!()
        }
        fn fill_bytes(&mut self, _: &mut [u8]) {
            unreachable!()
        }
        fn try_fill_bytes(&mut self, _: &mut [u8]) -> Result<(), rand_core::Error> {
            Err(rand_core::Error::new("no entropy"))
        }
    }
    impl CryptoRng for Broken {}

    #[test]
    fn rng_failure_is_an_error() {
        let mut g = CodeGenerator::new(CodeSpec::default(), Broken);
        assert!(matches!(g.generate(), Err(GenerateError::Rng { .. })));
    }

    #[test]
    fn debug_hides_the_pool() {
        let g = generator(CodeSpec::default(), 1);
        assert!(!format!("{g:?}").contains("pool"));
    }
}
