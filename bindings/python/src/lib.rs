//! # fleetwire-python
//!
//! The `fleetwire._fleetwire` native module behind the public `fleetwire` Python package. It
//! holds no protocol logic: the sans-IO machines of the core crates cross the FFI as they are,
//! and this crate only converts types (bytes, integers, strings, exceptions) at the boundary.
//!
//! One Rust module per protocol (`session` today), each registered as a native submodule
//! (`fleetwire._fleetwire.session`) and re-exported by a public Python module
//! (`fleetwire.session`). Errors form one tree under `fleetwire.FleetwireError`.
//!
//! ## Time
//! Time crosses the FFI as integer milliseconds since an arbitrary origin chosen by the host,
//! which must be a monotonic clock (for example `time.monotonic_ns() // 1_000_000`). Every
//! object captures its own origin `Instant` when it is built and maps `now_ms` to
//! `origin + now_ms`; deadlines come back as milliseconds on the same scale (rounded up, so
//! calling `handle_timeout` with the returned value always fires). Milliseconds that go
//! backwards are clamped to the latest value seen by that object.

use std::time::{Duration, Instant};

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;

mod auth;
mod codes;
mod sensor;
mod session;
mod transfer;

create_exception!(
    fleetwire,
    FleetwireError,
    PyException,
    "The root of every exception raised by fleetwire."
);
create_exception!(
    fleetwire,
    DecodeError,
    FleetwireError,
    "Bytes were wrong: truncated, too long, or holding a value the format does not allow."
);
create_exception!(
    fleetwire,
    ApiMisuse,
    FleetwireError,
    "The caller used the API wrongly; nothing was sent and the machine is unchanged."
);
create_exception!(
    fleetwire,
    ParseError,
    FleetwireError,
    "A printable identifier, secret or verifier did not parse."
);

#[pymodule]
fn _fleetwire(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("FleetwireError", py.get_type::<FleetwireError>())?;
    m.add("DecodeError", py.get_type::<DecodeError>())?;
    m.add("ApiMisuse", py.get_type::<ApiMisuse>())?;
    m.add("ParseError", py.get_type::<ParseError>())?;

    let session = PyModule::new(py, "session")?;
    session::register(&session)?;
    m.add_submodule(&session)?;

    let auth = PyModule::new(py, "auth")?;
    auth::register(&auth)?;
    m.add_submodule(&auth)?;

    let sensor = PyModule::new(py, "sensor")?;
    sensor::register(&sensor)?;
    m.add_submodule(&sensor)?;

    let codes = PyModule::new(py, "codes")?;
    codes::register(&codes)?;
    m.add_submodule(&codes)?;

    let transfer = PyModule::new(py, "transfer")?;
    transfer::register(&transfer)?;
    m.add_submodule(&transfer)?;
    Ok(())
}

/// A core-crate `DecodeError` as `fleetwire.DecodeError`, with the Rust message.
pub(crate) fn decode_error(e: &fleetwire_wire::DecodeError) -> PyErr {
    DecodeError::new_err(e.to_string())
}

/// A per-object clock: host milliseconds to `Instant` and back.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    origin: Instant,
    last_ms: u64,
}

impl Clock {
    /// A clock whose origin is now; `now_ms` is the host's reading at this moment.
    #[allow(clippy::disallowed_methods)] // bindings touch the world: one real origin per object
    pub(crate) fn new(now_ms: u64) -> PyResult<Self> {
        let mut clock = Self {
            origin: Instant::now(),
            last_ms: 0,
        };
        clock.at(now_ms)?;
        Ok(clock)
    }

    /// The `Instant` for the host's `now_ms`, clamped so it never goes backwards.
    pub(crate) fn at(&mut self, now_ms: u64) -> PyResult<Instant> {
        let ms = now_ms.max(self.last_ms);
        let t = self
            .origin
            .checked_add(Duration::from_millis(ms))
            .ok_or_else(|| PyValueError::new_err(format!("now_ms {now_ms} is out of range")))?;
        self.last_ms = ms;
        Ok(t)
    }

    /// An `Instant` from a machine as host milliseconds, rounded up.
    pub(crate) fn ms(&self, t: Instant) -> u64 {
        let d = t.saturating_duration_since(self.origin);
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
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

/// Exactly `N` bytes from a Python `bytes`, or a `ValueError` naming the field.
pub(crate) fn array<const N: usize>(field: &str, bytes: &[u8]) -> PyResult<[u8; N]> {
    <[u8; N]>::try_from(bytes).map_err(|_| {
        PyValueError::new_err(format!("{field} must be {N} bytes, got {}", bytes.len()))
    })
}
