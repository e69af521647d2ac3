//! Thing codes (fleetwire-codes): parse what a user typed, check character, display grouping.
//! Conversions only.

use std::sync::Arc;

use fleetwire_codes as fc;

/// A code could not be read, or a code specification is not allowed. The message is the Rust
/// one (for a typo: "this code contains a typo: check the characters and try again").
#[derive(Debug, Clone, thiserror::Error, uniffi::Error)]
#[uniffi(flat_error)]
pub enum CodesError {
    /// Nothing but separators and spaces was typed.
    #[error("{0}")]
    Empty(String),
    /// The input is longer than any code could be.
    #[error("{0}")]
    TooLong(String),
    /// A character that cannot appear in a code (the message names it and its position).
    #[error("{0}")]
    InvalidCharacter(String),
    /// The number of code symbols is wrong.
    #[error("{0}")]
    WrongLength(String),
    /// The check character does not match: a typo or two swapped characters.
    #[error("{0}")]
    CheckMismatch(String),
    /// The alphabet, length or check option of a spec is not allowed.
    #[error("{0}")]
    InvalidSpec(String),
    /// Something this binding does not know yet (a newer core crate).
    #[error("{0}")]
    Other(String),
}

impl From<fc::ParseError> for CodesError {
    fn from(e: fc::ParseError) -> Self {
        let m = e.to_string();
        match e {
            fc::ParseError::Empty => Self::Empty(m),
            fc::ParseError::TooLong { .. } => Self::TooLong(m),
            fc::ParseError::InvalidCharacter { .. } => Self::InvalidCharacter(m),
            fc::ParseError::WrongLength { .. } => Self::WrongLength(m),
            fc::ParseError::CheckMismatch => Self::CheckMismatch(m),
            _ => Self::Other(m),
        }
    }
}

impl From<fc::SpecError> for CodesError {
    fn from(e: fc::SpecError) -> Self {
        Self::InvalidSpec(e.to_string())
    }
}

/// A code in canonical form (upper case, check character last, no separators) and its
/// display form (`K7Q2-M9XW-4PC`). Compare `canonical` in constant time where it matters
/// (`MessageDigest.isEqual` on the bytes).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ThingCode {
    pub canonical: String,
    pub display: String,
}

/// What codes look like: an alphabet, a number of random symbols (6..=10), and whether a check
/// character follows them.
#[derive(Debug, uniffi::Object)]
pub struct CodeSpec {
    inner: fc::CodeSpec,
}

#[uniffi::export]
impl CodeSpec {
    /// A spec of `length` random symbols from `alphabet` (2 to 36 distinct ASCII digits or
    /// upper-case letters, in order), followed by a check character if `check`.
    #[uniffi::constructor]
    pub fn new(alphabet: String, length: u32, check: bool) -> Result<Arc<Self>, CodesError> {
        let alphabet = fc::Alphabet::new(&alphabet)?;
        let inner = fc::CodeSpec::new(alphabet, length as usize, check)?;
        Ok(Arc::new(Self { inner }))
    }

    /// The default: 10 random symbols of `0-9A-Z` plus a check character.
    #[uniffi::constructor]
    pub fn default_spec() -> Arc<Self> {
        Arc::new(Self {
            inner: fc::CodeSpec::default(),
        })
    }

    /// Reads a code as a user typed it (case, separators and look-alikes forgiven), verifying
    /// the length and the check character.
    pub fn parse(&self, input: String) -> Result<ThingCode, CodesError> {
        let code = self.inner.parse(&input)?;
        Ok(ThingCode {
            canonical: code.as_str().to_owned(),
            display: code.grouped(),
        })
    }

    /// The check character for `body` (exactly `length()` canonical symbols), or null without
    /// a check character or for a body that is not canonical.
    pub fn check_character(&self, body: String) -> Option<String> {
        self.inner.check_character(&body).map(String::from)
    }

    /// The alphabet's symbols, in order.
    pub fn alphabet(&self) -> String {
        self.inner.alphabet().as_str().to_owned()
    }

    /// Random symbols per code.
    pub fn length(&self) -> u32 {
        u32::try_from(self.inner.length()).unwrap_or(u32::MAX)
    }

    /// Whether codes end in a check character.
    pub fn has_check(&self) -> bool {
        self.inner.has_check()
    }

    /// Characters in a code, check character included, separators not.
    pub fn code_len(&self) -> u32 {
        u32::try_from(self.inner.code_len()).unwrap_or(u32::MAX)
    }

    /// The number of distinct codes (saturating).
    pub fn combinations(&self) -> u64 {
        self.inner.combinations()
    }

    /// Bits of entropy per code.
    pub fn entropy_bits(&self) -> f64 {
        self.inner.entropy_bits()
    }
}

/// Whether an alphabet of these symbols can carry a check character (every size except 4k+2).
#[uniffi::export]
pub fn codes_alphabet_supports_check(alphabet: String) -> Result<bool, CodesError> {
    Ok(fc::Alphabet::new(&alphabet)?.supports_check())
}
