use std::fmt;

use serde::{Deserialize, Serialize};

use crate::SpecError;

/// The largest alphabet: the ten digits and the 26 upper-case letters.
pub const MAX_ALPHABET_SIZE: usize = 36;

/// Lookup-table marker: the byte is not part of any code.
pub(crate) const INVALID: u8 = 0xFF;
/// Lookup-table marker: the byte is a separator and is skipped.
pub(crate) const SEPARATOR: u8 = 0xFE;

/// Irreducible polynomials for GF(2^k), k = 2..=5, top bit included (`x^2+x+1`, `x^3+x+1`,
/// `x^4+x+1`, `x^5+x^2+1`). Index 0 and 1 are unused.
const GF2_POLY: [u16; 6] = [0, 0, 0b111, 0b1011, 0b1_0011, 0b10_0101];

/// The symbols codes are made of, with everything parsing needs precomputed: a byte-to-symbol
/// table (case folding, separators, confusable characters) and the check-character table.
///
/// Symbols are ASCII digits and upper-case letters only, 2 to 36 of them, all distinct. Codes are
/// case-insensitive on input, so a mixed-case alphabet (and its typo trap) is impossible.
///
/// ```
/// use fleetwire_codes::Alphabet;
///
/// assert_eq!(Alphabet::alphanumeric().len(), 36);
/// assert_eq!(Alphabet::crockford().as_str(), "0123456789ABCDEFGHJKMNPQRSTVWXYZ");
/// let hex = Alphabet::new("0123456789ABCDEF")?;
/// assert!(hex.supports_check());
/// # Ok::<(), fleetwire_codes::SpecError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Alphabet {
    /// `symbols[i]` for `i < len`; the padding repeats `symbols[0]` and is never emitted.
    symbols: [u8; 64],
    len: u8,
    /// ASCII byte to symbol index, [`INVALID`] or [`SEPARATOR`].
    lookup: [u8; 128],
    /// Damm quasigroup for the check character; `None` when `len % 4 == 2`.
    damm: Option<Damm>,
}

/// A totally anti-symmetric quasigroup of order `n` as a table, with the check symbol of every
/// interim state (the `c` with `op[s][c] == 0`).
#[derive(Clone, PartialEq, Eq)]
struct Damm {
    op: [[u8; MAX_ALPHABET_SIZE]; MAX_ALPHABET_SIZE],
    check: [u8; MAX_ALPHABET_SIZE],
    /// The fold is linear in each factor: from state 0, the state after `x_0 … x_{L−1}` is
    /// `(⊕_j α^{L−1−j}·x_j, Σ_j 2^{L−1−j}·x_j mod m)`. `gf[e][x]` and `zm[e][x]` are the
    /// weighted parts of symbol `x` at distance `e` from the end, so the check of a whole code
    /// is ten independent lookups instead of a chain of ten dependent ones.
    gf: [[u8; MAX_ALPHABET_SIZE]; crate::MAX_LENGTH],
    zm: [[u8; MAX_ALPHABET_SIZE]; crate::MAX_LENGTH],
    /// The check symbol of the state `(g, z)`, at `g * m + z`.
    check_of_pair: [u8; MAX_ALPHABET_SIZE],
    /// The odd factor `m`.
    m: u8,
}

impl Alphabet {
    /// `0-9A-Z`, 36 symbols, the default (36^10 ≈ 3.66e15 ten-character codes). Every letter is
    /// a symbol, so no confusable is folded: `O` and `0` are different symbols.
    pub const fn alphanumeric() -> Self {
        match build(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ") {
            Ok(a) => a,
            Err(_) => panic!("built-in alphabet is valid"),
        }
    }

    /// Crockford's base 32 (`0-9A-Z` without `I L O U`), the unambiguous option: `O` reads as
    /// `0` and `I`, `L` read as `1`, so the confusables a person mixes up cannot make a typo.
    pub const fn crockford() -> Self {
        match build(b"0123456789ABCDEFGHJKMNPQRSTVWXYZ") {
            Ok(a) => a,
            Err(_) => panic!("built-in alphabet is valid"),
        }
    }

    /// A custom alphabet: 2 to 36 distinct ASCII digits or upper-case letters, in output order.
    ///
    /// A confusable character that is not itself a symbol is read as the symbol it looks like:
    /// `O`→`0`, `I`→`1`, `L`→`1` (and back, `0`→`O`, `1`→`I`/`L`, when only the letter is a
    /// symbol). `-`, `_`, `.` and spaces are separators.
    pub fn new(symbols: &str) -> Result<Self, SpecError> {
        build(symbols.as_bytes())
    }

    /// The number of symbols.
    pub const fn len(&self) -> usize {
        self.len as usize
    }

    /// Always false: an alphabet has at least two symbols. (Here for clippy's `len_without_is_empty`.)
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The symbols, in order.
    pub fn as_str(&self) -> &str {
        // INVARIANT: `build` admits only ASCII digits and upper-case letters.
        std::str::from_utf8(&self.symbols[..self.len()]).expect("alphabet symbols are ASCII")
    }

    /// Whether this alphabet can carry a check character: every size except those with
    /// `size % 4 == 2` (a totally anti-symmetric quasigroup of order 2·odd is not built here).
    pub const fn supports_check(&self) -> bool {
        self.damm.is_some()
    }

    /// The index of a canonical symbol, or `None`.
    pub fn index_of(&self, symbol: char) -> Option<usize> {
        let b = u8::try_from(symbol).ok()?;
        if !(b.is_ascii_digit() || b.is_ascii_uppercase()) {
            return None;
        }
        let i = *self.lookup.get(usize::from(b))?;
        (usize::from(i) < self.len() && self.symbols[usize::from(i)] == b).then_some(usize::from(i))
    }

    /// The symbol table padded to 64 entries (indices `>= len` are never emitted).
    pub(crate) const fn padded_symbols(&self) -> &[u8; 64] {
        &self.symbols
    }

    /// Maps one ASCII byte to a symbol index, [`INVALID`] or [`SEPARATOR`].
    pub(crate) fn classify(&self, b: u8) -> u8 {
        self.lookup.get(usize::from(b)).copied().unwrap_or(INVALID)
    }

    /// The check symbol (an index) for a sequence of symbol indices, if supported.
    pub(crate) fn check_index(&self, indices: &[u8]) -> Option<u8> {
        let damm = self.damm.as_ref()?;
        let state = damm_fold(damm, indices);
        Some(damm.check[usize::from(state)])
    }

    /// [`check_index`](Self::check_index) by the linear form: the same value for up to
    /// `MAX_LENGTH` symbols (tested), faster because the lookups do not depend on each other.
    #[inline]
    pub(crate) fn check_index_linear(&self, indices: &[u8]) -> Option<u8> {
        let damm = self.damm.as_ref()?;
        let last = indices.len().checked_sub(1)?;
        let mut g = 0u8;
        let mut z = 0u16;
        for (j, &x) in indices.iter().enumerate() {
            let e = last - j;
            g ^= damm.gf[e][usize::from(x)];
            z += u16::from(damm.zm[e][usize::from(x)]);
        }
        let m = u16::from(damm.m);
        let pair = usize::from(g) * usize::from(damm.m) + usize::from(z % m);
        Some(damm.check_of_pair[pair])
    }

    /// Whether a sequence of symbol indices that ends in its check symbol is consistent.
    pub(crate) fn verify_indices(&self, indices: &[u8]) -> bool {
        self.damm
            .as_ref()
            .is_some_and(|damm| damm_fold(damm, indices) == 0)
    }

    /// The quasigroup operation, for the exhaustive tests.
    #[cfg(test)]
    pub(crate) fn damm_op(&self, state: u8, symbol: u8) -> Option<u8> {
        let damm = self.damm.as_ref()?;
        Some(damm.op[usize::from(state)][usize::from(symbol)])
    }
}

impl Default for Alphabet {
    fn default() -> Self {
        Self::alphanumeric()
    }
}

impl fmt::Debug for Alphabet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Alphabet").field(&self.as_str()).finish()
    }
}

impl From<Alphabet> for String {
    fn from(a: Alphabet) -> Self {
        a.as_str().to_owned()
    }
}

impl TryFrom<String> for Alphabet {
    type Error = SpecError;
    fn try_from(s: String) -> Result<Self, SpecError> {
        Self::new(&s)
    }
}

fn damm_fold(damm: &Damm, indices: &[u8]) -> u8 {
    indices
        .iter()
        .fold(0u8, |s, &x| damm.op[usize::from(s)][usize::from(x)])
}

/// Look-alikes, `(typed, read as)`, applied in order where `typed` is not a symbol.
const CONFUSABLE: [(u8, u8); 6] = [
    (b'O', b'0'),
    (b'I', b'1'),
    (b'L', b'1'),
    (b'0', b'O'),
    (b'1', b'I'),
    (b'1', b'L'),
];

const fn build(symbols: &[u8]) -> Result<Alphabet, SpecError> {
    let n = symbols.len();
    if n < 2 || n > MAX_ALPHABET_SIZE {
        return Err(SpecError::AlphabetSize { size: n });
    }
    let mut lookup = [INVALID; 128];
    let mut padded = [symbols[0]; 64];
    let mut i = 0;
    while i < n {
        let c = symbols[i];
        if !(c.is_ascii_digit() || c.is_ascii_uppercase()) {
            return Err(SpecError::AlphabetSymbol { symbol: c as char });
        }
        if lookup[c as usize] != INVALID {
            return Err(SpecError::AlphabetDuplicate { symbol: c as char });
        }
        lookup[c as usize] = i as u8;
        lookup[c.to_ascii_lowercase() as usize] = i as u8;
        padded[i] = c;
        i += 1;
    }
    // Confusables: a look-alike that is not a symbol reads as the symbol it resembles.
    let mut j = 0;
    while j < CONFUSABLE.len() {
        let (from, to) = CONFUSABLE[j];
        if lookup[from as usize] == INVALID && lookup[to as usize] != INVALID {
            lookup[from as usize] = lookup[to as usize];
            lookup[from.to_ascii_lowercase() as usize] = lookup[to as usize];
        }
        j += 1;
    }
    lookup[b'-' as usize] = SEPARATOR;
    lookup[b'_' as usize] = SEPARATOR;
    lookup[b'.' as usize] = SEPARATOR;
    lookup[b' ' as usize] = SEPARATOR;
    lookup[b'\t' as usize] = SEPARATOR;

    let damm = if n % 4 == 2 {
        None
    } else {
        Some(damm_table(n))
    };
    Ok(Alphabet {
        symbols: padded,
        len: n as u8,
        lookup,
        damm,
    })
}

/// Builds the quasigroup of order `n = 2^k · m` (`m` odd, `k != 1`) as the direct product of
/// GF(2^k) with `s * x = α·s + x` (α the field generator, so α ∉ {0, 1}) and `Z_m` with
/// `s * x = 2s + x mod m`. Symbol `i` is the pair `(i mod 2^k, i mod m)` (CRT).
#[allow(clippy::many_single_char_names)] // the names of the math in the crate docs
const fn damm_table(n: usize) -> Damm {
    let k = n.trailing_zeros() as usize;
    let p2 = 1usize << k;
    let m = n >> k;
    // Pair (a, b) -> index, the inverse of the CRT map.
    let mut inv = [0u8; MAX_ALPHABET_SIZE];
    let mut i = 0;
    while i < n {
        inv[(i % p2) * m + (i % m)] = i as u8;
        i += 1;
    }
    let mut op = [[0u8; MAX_ALPHABET_SIZE]; MAX_ALPHABET_SIZE];
    let mut check = [0u8; MAX_ALPHABET_SIZE];
    let mut s = 0;
    while s < n {
        let s2 = s % p2;
        let sm = s % m;
        let a_s = gf_mul_alpha(s2, k);
        let mut x = 0;
        while x < n {
            let r2 = a_s ^ (x % p2);
            let rm = (2 * sm + x % m) % m;
            let r = inv[r2 * m + rm];
            op[s][x] = r;
            if r == 0 {
                check[s] = x as u8;
            }
            x += 1;
        }
        s += 1;
    }
    // Linear weights: α^e in GF(2^k) applied to x mod 2^k, 2^e mod m applied to x mod m.
    let mut gf = [[0u8; MAX_ALPHABET_SIZE]; crate::MAX_LENGTH];
    let mut zm = [[0u8; MAX_ALPHABET_SIZE]; crate::MAX_LENGTH];
    let mut e = 0;
    let mut two_e = 1 % m; // 2^e mod m
    while e < crate::MAX_LENGTH {
        let mut x = 0;
        while x < n {
            let mut v = x % p2;
            let mut t = 0;
            while t < e {
                v = gf_mul_alpha(v, k);
                t += 1;
            }
            gf[e][x] = v as u8;
            zm[e][x] = ((two_e * (x % m)) % m) as u8;
            x += 1;
        }
        two_e = (2 * two_e) % m;
        e += 1;
    }
    // The check symbol of a state given as a pair: the state's index is `inv[g * m + z]`.
    let mut check_of_pair = [0u8; MAX_ALPHABET_SIZE];
    let mut pair = 0;
    while pair < n {
        check_of_pair[pair] = check[inv[pair] as usize];
        pair += 1;
    }
    Damm {
        op,
        check,
        gf,
        zm,
        check_of_pair,
        m: m as u8,
    }
}

/// `α·v` in GF(2^k): shift left, reduce by the field polynomial (0 in the trivial field, k = 0).
const fn gf_mul_alpha(v: usize, k: usize) -> usize {
    if k == 0 {
        return 0;
    }
    let r = v << 1;
    if r & (1 << k) != 0 {
        r ^ GF2_POLY[k] as usize
    } else {
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Exhaustive over every supported alphabet size: the table is a Latin square (so a single
    /// substitution anywhere changes every later interim state and the final one), and it is
    /// totally anti-symmetric (so an adjacent swap changes the state right after it).
    #[test]
    fn every_supported_size_is_a_totally_antisymmetric_quasigroup() {
        let all = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
        let mut checked = 0;
        for n in 2..=MAX_ALPHABET_SIZE {
            let a = build(&all[..n]).unwrap();
            assert_eq!(a.supports_check(), n % 4 != 2, "size {n}");
            if !a.supports_check() {
                continue;
            }
            checked += 1;
            let n = n as u8;
            for s in 0..n {
                for x in 0..n {
                    for y in 0..n {
                        if x == y {
                            continue;
                        }
                        let sx = a.damm_op(s, x).unwrap();
                        let sy = a.damm_op(s, y).unwrap();
                        assert_ne!(sx, sy, "row {s} repeats for size {n}");
                        // Columns: distinct states stay distinct under the same symbol.
                        assert_ne!(a.damm_op(x, s), a.damm_op(y, s), "column {s}, size {n}");
                        assert_ne!(
                            a.damm_op(sx, y),
                            a.damm_op(sy, x),
                            "swap of {x},{y} after state {s} undetected for size {n}"
                        );
                    }
                }
                // Every state has exactly one check symbol.
                let zeros = (0..n).filter(|&c| a.damm_op(s, c) == Some(0)).count();
                assert_eq!(zeros, 1);
            }
            // The fold starts at state 0, whose check symbol is symbol 0.
            assert_eq!(a.check_index(&[]), Some(0));
        }
        assert_eq!(checked, 26);
    }

    #[test]
    fn linear_check_equals_the_fold() {
        let all = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for n in (3..=MAX_ALPHABET_SIZE).filter(|n| n % 4 != 2) {
            let a = build(&all[..n]).unwrap();
            for len in 1..=crate::MAX_LENGTH {
                for _ in 0..200 {
                    let indices: Vec<u8> = (0..len)
                        .map(|_| {
                            x ^= x << 13;
                            x ^= x >> 7;
                            x ^= x << 17;
                            (x % n as u64) as u8
                        })
                        .collect();
                    assert_eq!(
                        a.check_index_linear(&indices),
                        a.check_index(&indices),
                        "size {n}, {indices:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn rejects_bad_alphabets() {
        assert_eq!(Alphabet::new("A"), Err(SpecError::AlphabetSize { size: 1 }));
        assert_eq!(
            Alphabet::new("ABCa"),
            Err(SpecError::AlphabetSymbol { symbol: 'a' })
        );
        assert_eq!(
            Alphabet::new("ABCA"),
            Err(SpecError::AlphabetDuplicate { symbol: 'A' })
        );
        assert_eq!(
            Alphabet::new("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ0"),
            Err(SpecError::AlphabetSize { size: 37 })
        );
    }

    #[test]
    fn confusables_fold_only_where_unambiguous() {
        let c = Alphabet::crockford();
        assert_eq!(c.classify(b'O'), c.classify(b'0'));
        assert_eq!(c.classify(b'o'), c.classify(b'0'));
        assert_eq!(c.classify(b'I'), c.classify(b'1'));
        assert_eq!(c.classify(b'l'), c.classify(b'1'));
        assert_eq!(c.classify(b'U'), INVALID);
        let a = Alphabet::alphanumeric();
        assert_ne!(a.classify(b'O'), a.classify(b'0'));
        assert_eq!(a.classify(b'z'), 35);
        assert_eq!(a.classify(b'-'), SEPARATOR);
        assert_eq!(a.classify(b'!'), INVALID);
        assert_eq!(a.classify(200), INVALID);
        // Letter-only alphabet: the digits read as the letters they resemble.
        let l = Alphabet::new("ABCDEFGHIJKLMNOPQRSTUVWXYZ").unwrap();
        assert_eq!(l.classify(b'0'), l.classify(b'O'));
        assert_eq!(l.classify(b'1'), l.classify(b'I'));
    }

    #[test]
    fn index_of_only_canonical_symbols() {
        let c = Alphabet::crockford();
        assert_eq!(c.index_of('Z'), Some(31));
        assert_eq!(c.index_of('O'), None);
        assert_eq!(c.index_of('z'), None);
    }
}
