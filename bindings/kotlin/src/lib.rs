//! # fleetwire-kotlin
//!
//! uniffi bindings (proc-macros, no UDL) for Kotlin on the JVM and Android, package
//! `org.fleetwire`. No protocol logic lives here: the sans-IO machines of the core crates cross
//! the FFI as uniffi Objects (a `Mutex` inside; in Kotlin they are `AutoCloseable`), and this
//! crate only converts types. Errors are uniffi flat error enums carrying the Rust `Display`
//! message; in Kotlin they are sealed exception classes (`SessionException.AuthFailed`, ...).
//!
//! One Rust module per protocol: `session` (login + heartbeat), `transfer` (signed manifests,
//! the receiver and sender machines, resume records, the watchdog), `sensor` (record codec,
//! logger and cloud upload machines) and `codes` (thing codes). Each has its own sealed
//! exception class (`SessionException`, `TransferException`, `SensorException`,
//! `CodesException`).
//!
//! ## Time
//! Time crosses the FFI as integer milliseconds since an arbitrary origin chosen by the host,
//! which must be monotonic (for example `System.nanoTime() / 1_000_000`, or
//! `SystemClock.elapsedRealtime()` on Android). Every object captures its own origin `Instant`
//! when it is built and maps `nowMs` to `origin + nowMs`; deadlines come back on the same scale
//! (rounded up). Milliseconds that go backwards are clamped to the latest value seen.
//!
//! Generate the Kotlin source with the bundled bindgen:
//! `cargo build -p fleetwire-kotlin --features cli --bin uniffi-bindgen`, then
//! `target/debug/uniffi-bindgen generate --no-format --library target/debug/libfleetwire_kotlin.so
//! --language kotlin --out-dir target/kotlin-gen` (see `scripts/test-kotlin.sh`).

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

pub mod codes;
pub mod sensor;
pub mod session;
pub mod transfer;

uniffi::setup_scaffolding!();

/// Bytes were wrong: truncated, too long, or holding a value the format does not allow.
#[derive(Debug, Clone, thiserror::Error, uniffi::Error)]
#[uniffi(flat_error)]
pub enum DecodeError {
    /// The bytes did not decode; the message says why.
    #[error("{0}")]
    Malformed(String),
}

/// The caller used the API wrongly; nothing was sent and the machine is unchanged.
#[derive(Debug, Clone, thiserror::Error, uniffi::Error)]
#[uniffi(flat_error)]
pub enum ApiMisuseError {
    /// The call needs a logged-in session.
    #[error("{0}")]
    NotOnline(String),
    /// No player lookup is pending.
    #[error("{0}")]
    NoLookupPending(String),
    /// The session has already closed.
    #[error("{0}")]
    Closed(String),
    /// A text field is too long.
    #[error("{0}")]
    TooLong(String),
    /// Another misuse (a newer core crate).
    #[error("{0}")]
    Other(String),
}

/// An argument did not convert: a wrong byte length, or text that does not parse.
#[derive(Debug, Clone, thiserror::Error, uniffi::Error)]
#[uniffi(flat_error)]
pub enum InvalidInputError {
    /// A byte array had the wrong length.
    #[error("{0}")]
    WrongLength(String),
    /// An identifier, secret or verifier did not parse.
    #[error("{0}")]
    Parse(String),
}

/// Exactly `N` bytes, or an error naming the field.
pub(crate) fn array<const N: usize>(
    field: &str,
    bytes: &[u8],
) -> Result<[u8; N], InvalidInputError> {
    <[u8; N]>::try_from(bytes).map_err(|_| {
        InvalidInputError::WrongLength(format!("{field} must be {N} bytes, got {}", bytes.len()))
    })
}

/// Locks a machine. A panic inside a core machine is a bug there; the state is still the last
/// one it wrote, so a poisoned lock is recovered rather than turned into a second panic.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Host milliseconds beyond this (about 285,000 years) are treated as this.
const MAX_MS: u64 = 1 << 53;

/// A per-object clock: host milliseconds to `Instant` and back.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    origin: Instant,
    last_ms: u64,
}

impl Clock {
    /// A clock whose origin is now; `now_ms` is the host's reading at this moment.
    #[allow(clippy::disallowed_methods)] // bindings touch the world: one real origin per object
    pub(crate) fn new(now_ms: u64) -> Self {
        Self {
            origin: Instant::now(),
            last_ms: now_ms.min(MAX_MS),
        }
    }

    /// The `Instant` for the host's `now_ms`, clamped so it never goes backwards.
    pub(crate) fn at(&mut self, now_ms: u64) -> Instant {
        self.last_ms = now_ms.min(MAX_MS).max(self.last_ms);
        self.origin + Duration::from_millis(self.last_ms)
    }

    /// An `Instant` from a machine as host milliseconds, rounded up.
    pub(crate) fn ms(&self, t: Instant) -> u64 {
        let d = t.saturating_duration_since(self.origin);
        let ms = ms_of(d);
        if d.subsec_nanos() % 1_000_000 == 0 {
            ms
        } else {
            ms.saturating_add(1)
        }
    }
}

/// A duration as whole milliseconds (floor), saturating.
pub(crate) fn ms_of(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
