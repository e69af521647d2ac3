//! # fleetwire-codes (draft)

mod access;
mod alphabet;
mod code;
mod error;
mod generate;
pub mod math;
pub mod throttle;
mod time;

pub use alphabet::{Alphabet, MAX_ALPHABET_SIZE};
pub use code::{Code, CodeSpec, DEFAULT_LENGTH, GROUP_SIZE, MAX_INPUT_CHARS, MAX_LENGTH, MIN_LENGTH};
pub use error::{GenerateError, ParseError, SpecError};
pub use generate::{BATCH_BYTES, CodeGenerator, CodeRegistry, DEFAULT_UNIQUE_ATTEMPTS};
pub use math::{EXACT_TERMS_LIMIT, combinations, guess_probability, guesses_for_probability};
pub use time::UnixTime;
pub use access::{
    AccessError, AccessMode, AuditEvent, AuditKind, Connected, MAX_QUEUED_EVENTS, Role,
    ThingAccess, UserId,
};
pub use throttle::{AttemptGuard, GcraGuard, Throttled};
