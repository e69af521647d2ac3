use std::fmt;
use std::hash::{Hash, Hasher};

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::alphabet::{INVALID, SEPARATOR};
use crate::{Alphabet, ParseError, SpecError};

/// The shortest code: 6 random symbols (31 bits with 36 symbols).
pub const MIN_LENGTH: usize = 6;
/// The longest code: 10 random symbols (51.7 bits with 36 symbols).
pub const MAX_LENGTH: usize = 10;
/// The default number of random symbols.
pub const DEFAULT_LENGTH: usize = 10;
/// Input longer than this many characters is rejected before it is looked at further.
pub const MAX_INPUT_CHARS: usize = 64;
/// Display groups hold at most this many characters.
pub const GROUP_SIZE: usize = 5;

const CODE_CAP: usize = MAX_LENGTH + 1;

/// What codes look like: an [`Alphabet`], a number of random symbols (6..=10) and whether a check
/// character follows them.
///
/// The check character is extra: a spec of length 10 with a check character makes codes of 11
/// characters, of which 10 are random (the entropy and [`combinations`](Self::combinations)
/// count only those). [`CodeSpec::default`] is 10 random symbols from [`Alphabet::alphanumeric`]
/// plus a check character; [`CodeSpec::new`] with `check = false` gives the bare 6–10 character
/// codes of the product requirement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "SpecRepr", into = "SpecRepr")]
pub struct CodeSpec {
    alphabet: Alphabet,
    length: u8,
    check: bool,
}

impl CodeSpec {
    /// A spec of `length` random symbols from `alphabet`, followed by a check character if
    /// `check` (which needs [`Alphabet::supports_check`]).
    pub fn new(alphabet: Alphabet, length: usize, check: bool) -> Result<Self, SpecError> {
        if !(MIN_LENGTH..=MAX_LENGTH).contains(&length) {
            return Err(SpecError::Length { length });
        }
        if check && !alphabet.supports_check() {
            return Err(SpecError::CheckUnsupported {
                size: alphabet.len(),
            });
        }
        Ok(Self {
            alphabet,
            length: length as u8,
            check,
        })
    }

    /// The alphabet.
    pub fn alphabet(&self) -> &Alphabet {
        &self.alphabet
    }

    /// Random symbols per code.
    pub fn length(&self) -> usize {
        usize::from(self.length)
    }

    /// Whether codes end in a check character.
    pub fn has_check(&self) -> bool {
        self.check
    }

    /// Characters in a code, check character included, separators not.
    pub fn code_len(&self) -> usize {
        self.length() + usize::from(self.check)
    }

    /// The number of distinct codes: `alphabet.len() ^ length` (the check character adds none).
    pub fn combinations(&self) -> u64 {
        crate::combinations(self.alphabet.len(), self.length())
    }

    /// Bits of entropy per code: `length · log2(alphabet.len())`.
    #[allow(clippy::cast_precision_loss)] // both are at most 36
    pub fn entropy_bits(&self) -> f64 {
        self.length() as f64 * (self.alphabet.len() as f64).log2()
    }

    /// Reads a code as a user typed it.
    ///
    /// Case is ignored; `-`, `_`, `.`, spaces, Unicode dashes and no-break spaces are skipped
    /// anywhere; full-width forms read as ASCII; a confusable look-alike that is not a symbol of
    /// the alphabet reads as the symbol it resembles (see [`Alphabet::new`]). Then the number of
    /// symbols and the check character are verified. The work is bounded by
    /// [`MAX_INPUT_CHARS`].
    ///
    /// ```
    /// use fleetwire_codes::{Alphabet, CodeSpec};
    ///
    /// let spec = CodeSpec::new(Alphabet::crockford(), 10, false)?;
    /// let code = spec.parse(" abcde-fgh1o ")?;
    /// assert_eq!(code.as_str(), "ABCDEFGH10");
    /// assert_eq!(code.to_string(), "ABCDE-FGH10");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn parse(&self, input: &str) -> Result<Code, ParseError> {
        let expected = self.code_len();
        let mut indices = [0u8; CODE_CAP];
        let mut found = 0usize;
        for (position, ch) in input.chars().enumerate() {
            if position >= MAX_INPUT_CHARS {
                return Err(ParseError::TooLong {
                    max: MAX_INPUT_CHARS,
                });
            }
            let class = match fold(ch) {
                Folded::Ascii(b) => self.alphabet.classify(b),
                Folded::Separator => SEPARATOR,
                Folded::Other => INVALID,
            };
            match class {
                SEPARATOR => {}
                INVALID => return Err(ParseError::InvalidCharacter { ch, position }),
                index => {
                    if let Some(slot) = indices.get_mut(found) {
                        *slot = index;
                    }
                    found += 1;
                }
            }
        }
        if found == 0 {
            return Err(ParseError::Empty);
        }
        if found != expected {
            return Err(ParseError::WrongLength { expected, found });
        }
        let indices = &indices[..expected];
        if self.check && !self.alphabet.verify_indices(indices) {
            return Err(ParseError::CheckMismatch);
        }
        Ok(self.code_from_indices(indices))
    }

    /// The check character for `body`, a string of exactly [`length`](Self::length) canonical
    /// symbols (for test vectors and for printing codes made elsewhere). `None` without a check
    /// character or if `body` is not `length` canonical symbols.
    pub fn check_character(&self, body: &str) -> Option<char> {
        if !self.check || body.len() != self.length() {
            return None;
        }
        let mut indices = [0u8; MAX_LENGTH];
        for (slot, ch) in indices.iter_mut().zip(body.chars()) {
            *slot = u8::try_from(self.alphabet.index_of(ch)?).ok()?;
        }
        let c = self.alphabet.check_index(&indices[..self.length()])?;
        Some(char::from(self.alphabet.padded_symbols()[usize::from(c)]))
    }

    /// Builds a code from `length` symbol indices (each below the alphabet size), appending the
    /// check character if the spec has one.
    pub(crate) fn seal(&self, indices: &[u8]) -> Code {
        debug_assert_eq!(indices.len(), self.length());
        let mut code = self.code_from_indices(indices);
        if self.check {
            // INVARIANT: `new` refuses `check` unless the alphabet supports it.
            let c = self
                .alphabet
                .check_index_linear(indices)
                .expect("spec with check has a check table");
            code.buf[code.len()] = self.alphabet.padded_symbols()[usize::from(c)];
            code.len += 1;
        }
        code
    }

    fn code_from_indices(&self, indices: &[u8]) -> Code {
        let symbols = self.alphabet.padded_symbols();
        let mut buf = [0u8; CODE_CAP];
        for (b, &i) in buf.iter_mut().zip(indices) {
            *b = symbols[usize::from(i)];
        }
        Code {
            buf,
            len: indices.len() as u8,
        }
    }
}

impl Default for CodeSpec {
    fn default() -> Self {
        Self {
            alphabet: Alphabet::alphanumeric(),
            length: DEFAULT_LENGTH as u8,
            check: true,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct SpecRepr {
    alphabet: Alphabet,
    length: usize,
    check: bool,
}

impl TryFrom<SpecRepr> for CodeSpec {
    type Error = SpecError;
    fn try_from(r: SpecRepr) -> Result<Self, SpecError> {
        Self::new(r.alphabet, r.length, r.check)
    }
}

impl From<CodeSpec> for SpecRepr {
    fn from(s: CodeSpec) -> Self {
        Self {
            length: s.length(),
            check: s.check,
            alphabet: s.alphabet,
        }
    }
}

/// A thing code in canonical form: upper-case symbols, check character last (if the spec has
/// one), no separators. Made only by [`CodeSpec::parse`] and the generator (or deserialized).
///
/// `==` runs in constant time (`subtle`), so comparing a presented code with a thing's stored
/// code reveals nothing through timing. `Display` groups it for people: `ABCDE-FGHIJ` (groups
/// of at most [`GROUP_SIZE`], as even as possible; 11 characters show as `ABCD-EFGH-IJK`), and
/// [`CodeSpec::parse`] reads that form back.
#[derive(Clone, Copy)]
pub struct Code {
    buf: [u8; CODE_CAP],
    len: u8,
}

impl Code {
    /// The canonical form, e.g. `"ABCDEFGHIJ"`.
    pub fn as_str(&self) -> &str {
        // INVARIANT: every constructor stores ASCII digits and upper-case letters only.
        std::str::from_utf8(&self.buf[..self.len()]).expect("code symbols are ASCII")
    }

    /// Characters in the code, check character included.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Always false: a code has at least 6 characters.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The display form with `-` between groups, e.g. `"ABCDE-FGHIJ"`.
    pub fn grouped(&self) -> String {
        self.to_string()
    }
}

impl PartialEq for Code {
    fn eq(&self, other: &Self) -> bool {
        // Unused bytes are zero in every constructor, so the whole buffer is compared.
        (self.buf.ct_eq(&other.buf) & self.len.ct_eq(&other.len)).into()
    }
}

impl Eq for Code {}

impl Hash for Code {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Code").field(&self.as_str()).finish()
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.as_str();
        let groups = s.len().div_ceil(GROUP_SIZE).max(1);
        let base = s.len() / groups;
        let longer = s.len() % groups;
        let mut start = 0;
        for g in 0..groups {
            let end = start + base + usize::from(g < longer);
            if g > 0 {
                f.write_str("-")?;
            }
            f.write_str(&s[start..end])?;
            start = end;
        }
        Ok(())
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Code {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let bytes = s.as_bytes();
        if !(MIN_LENGTH..=CODE_CAP).contains(&bytes.len())
            || !bytes
                .iter()
                .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
        {
            return Err(serde::de::Error::custom(
                "a stored code is 6 to 11 ASCII digits or upper-case letters",
            ));
        }
        let mut buf = [0u8; CODE_CAP];
        buf[..bytes.len()].copy_from_slice(bytes);
        Ok(Self {
            buf,
            len: bytes.len() as u8,
        })
    }
}

enum Folded {
    Ascii(u8),
    Separator,
    Other,
}

/// Maps one typed character to ASCII: full-width forms to ASCII, Unicode dashes and spaces to
/// separators.
fn fold(ch: char) -> Folded {
    match ch {
        '\0'..='\x7f' => Folded::Ascii(ch as u8),
        // Full-width ASCII (U+FF01..U+FF5E) as typed with East Asian input methods.
        '\u{ff01}'..='\u{ff5e}' => Folded::Ascii((u32::from(ch) - 0xfee0) as u8),
        // Hyphens and dashes, minus sign, no-break and other spaces, ideographic space.
        '\u{2010}'..='\u{2015}'
        | '\u{2212}'
        | '\u{00a0}'
        | '\u{2000}'..='\u{200a}'
        | '\u{202f}'
        | '\u{3000}' => Folded::Separator,
        _ => Folded::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(check: bool) -> CodeSpec {
        CodeSpec::new(Alphabet::alphanumeric(), 10, check).unwrap()
    }

    fn sealed(s: &CodeSpec, body: &str) -> Code {
        let indices: Vec<u8> = body.bytes().map(|b| s.alphabet.classify(b)).collect();
        s.seal(&indices)
    }

    #[test]
    fn grouping_is_balanced() {
        let s = spec(false);
        assert_eq!(s.parse("abcdefghij").unwrap().to_string(), "ABCDE-FGHIJ");
        let s7 = CodeSpec::new(Alphabet::alphanumeric(), 7, false).unwrap();
        assert_eq!(s7.parse("ABCDEFG").unwrap().to_string(), "ABCD-EFG");
        let s6 = CodeSpec::new(Alphabet::alphanumeric(), 6, false).unwrap();
        assert_eq!(s6.parse("ABCDEF").unwrap().to_string(), "ABC-DEF");
        let c = sealed(&spec(true), "ABCDEFGHIJ");
        assert_eq!(c.len(), 11);
        assert_eq!(c.to_string().len(), 13);
        assert_eq!(&c.to_string()[..10], "ABCD-EFGH-");
    }

    #[test]
    fn parse_errors_in_order() {
        let s = spec(false);
        assert_eq!(s.parse(""), Err(ParseError::Empty));
        assert_eq!(s.parse(" - "), Err(ParseError::Empty));
        assert_eq!(
            s.parse("ABCDE!FGHIJ"),
            Err(ParseError::InvalidCharacter {
                ch: '!',
                position: 5
            })
        );
        assert_eq!(
            s.parse("ABCDEFGHI"),
            Err(ParseError::WrongLength {
                expected: 10,
                found: 9
            })
        );
        assert_eq!(
            s.parse("ABCDEFGHIJKLMNOP"),
            Err(ParseError::WrongLength {
                expected: 10,
                found: 16
            })
        );
        assert_eq!(
            s.parse(&"-".repeat(65)),
            Err(ParseError::TooLong {
                max: MAX_INPUT_CHARS
            })
        );
        assert_eq!(
            s.parse("ABCDEéFGHIJ"),
            Err(ParseError::InvalidCharacter {
                ch: 'é',
                position: 5
            })
        );
    }

    #[test]
    fn unicode_separators_and_fullwidth() {
        let s = spec(false);
        let want = s.parse("ABCDE-12345").unwrap();
        assert_eq!(s.parse("ＡＢＣＤＥ—１２３４５").unwrap(), want);
        assert_eq!(s.parse("abcde\u{00a0}12345").unwrap(), want);
        assert_eq!(s.parse("a.b_c d-e 1 2 3 4 5").unwrap(), want);
    }

    #[test]
    fn check_character_is_verified() {
        let s = spec(true);
        let code = sealed(&s, "K7Q2M9XW4P");
        assert_eq!(s.parse(code.as_str()).unwrap(), code);
        assert_eq!(
            s.check_character("K7Q2M9XW4P"),
            code.as_str().chars().last()
        );
        let mut typo = code.as_str().to_owned();
        typo.replace_range(0..1, "J");
        assert_eq!(s.parse(&typo), Err(ParseError::CheckMismatch));
        assert_eq!(s.check_character("K7Q2"), None);
        assert_eq!(spec(false).check_character("K7Q2M9XW4P"), None);
    }

    #[test]
    fn equality_and_serde() {
        let s = spec(false);
        let a = s.parse("ABCDEFGHIJ").unwrap();
        let b = s.parse("abcde-fghij").unwrap();
        let c = s.parse("ABCDEFGHIK").unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, "\"ABCDEFGHIJ\"");
        assert_eq!(serde_json::from_str::<Code>(&json).unwrap(), a);
        assert!(serde_json::from_str::<Code>("\"abcdefghij\"").is_err());
        assert!(serde_json::from_str::<Code>("\"ABC\"").is_err());
        let spec_json = serde_json::to_string(&CodeSpec::default()).unwrap();
        assert_eq!(
            serde_json::from_str::<CodeSpec>(&spec_json).unwrap(),
            CodeSpec::default()
        );
        assert!(
            serde_json::from_str::<CodeSpec>(
                r#"{"alphabet":"0123456789","length":10,"check":true}"#
            )
            .is_err()
        );
    }

    #[test]
    fn spec_limits() {
        assert_eq!(
            CodeSpec::new(Alphabet::alphanumeric(), 5, false),
            Err(SpecError::Length { length: 5 })
        );
        assert_eq!(
            CodeSpec::new(Alphabet::alphanumeric(), 11, false),
            Err(SpecError::Length { length: 11 })
        );
        let a34 = Alphabet::new("0123456789ABCDEFGHIJKLMNOPQRSTUVWX").unwrap();
        assert_eq!(
            CodeSpec::new(a34, 10, true),
            Err(SpecError::CheckUnsupported { size: 34 })
        );
        assert_eq!(CodeSpec::default().combinations(), 36u64.pow(10));
        assert!((CodeSpec::default().entropy_bits() - 51.699).abs() < 0.01);
    }
}
