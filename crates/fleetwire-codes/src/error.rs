use thiserror::Error;

use crate::{MAX_ALPHABET_SIZE, MAX_LENGTH, MIN_LENGTH};

/// A code specification or alphabet the caller asked for is not allowed (a caller bug, found
/// when the configuration is built, never while serving).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SpecError {
    /// The alphabet has fewer than 2 or more than 36 symbols.
    #[error("an alphabet needs 2 to {MAX_ALPHABET_SIZE} symbols, got {size}")]
    AlphabetSize {
        /// The number of symbols given.
        size: usize,
    },
    /// A symbol is not an ASCII digit or upper-case letter.
    #[error("alphabet symbol {symbol:?} is not an ASCII digit or upper-case letter")]
    AlphabetSymbol {
        /// The offending symbol.
        symbol: char,
    },
    /// A symbol appears twice.
    #[error("alphabet symbol {symbol:?} appears more than once")]
    AlphabetDuplicate {
        /// The repeated symbol.
        symbol: char,
    },
    /// The code length is outside 6..=10.
    #[error("code length {length} is outside {MIN_LENGTH}..={MAX_LENGTH}")]
    Length {
        /// The length asked for.
        length: usize,
    },
    /// A check character was asked for with an alphabet whose size is 2 modulo 4.
    #[error(
        "no check character for an alphabet of {size} symbols (sizes of the form 4k+2 are not \
         supported): add or remove a symbol, or turn the check character off"
    )]
    CheckUnsupported {
        /// The alphabet size.
        size: usize,
    },
}

/// What a user typed is not a code of this specification. Every variant is a typo or a wrong
/// code shape, found before any lookup, so none should cost the user a throttle token.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ParseError {
    /// Nothing but separators and spaces was typed.
    #[error("no code was entered")]
    Empty,
    /// The input is longer than any code could be, even with separators.
    #[error("input longer than {max} characters cannot be a code")]
    TooLong {
        /// The input limit, in characters.
        max: usize,
    },
    /// A character that is neither a code symbol, a look-alike of one, nor a separator.
    #[error("character {ch:?} at position {position} cannot appear in a code")]
    InvalidCharacter {
        /// The character as typed.
        ch: char,
        /// Its 0-based position in the input, in characters.
        position: usize,
    },
    /// The number of code symbols is wrong (separators not counted).
    #[error("a code has {expected} characters, {found} were entered")]
    WrongLength {
        /// Symbols a code of this specification has, check character included.
        expected: usize,
        /// Symbols entered.
        found: usize,
    },
    /// The check character does not match: a character was mistyped or two were swapped.
    #[error("this code contains a typo: check the characters and try again")]
    CheckMismatch,
}

/// A code could not be generated.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum GenerateError {
    /// The random number generator failed (for an OS generator: the OS refused entropy).
    #[error("random number generator failed: {reason}")]
    Rng {
        /// The generator's own message.
        reason: String,
    },
    /// The registry failed while claiming a code.
    #[error("code registry failed: {reason}")]
    Registry {
        /// The registry's own message.
        reason: String,
    },
    /// Every attempt collided with a live code: the code space is too full for this length.
    #[error(
        "all {attempts} generated codes were already taken: the code space is nearly full, \
         use longer codes"
    )]
    Exhausted {
        /// How many codes were tried.
        attempts: u32,
    },
}
