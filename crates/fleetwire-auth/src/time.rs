//! Wall-clock time passed in by the caller: the suite's one [`UnixTime`], from
//! `fleetwire-core` (re-exported as `fleetwire_auth::UnixTime`).
//!
//! It serializes as a bare integer of milliseconds (`#[serde(transparent)]`), exactly as this
//! crate's own type did before it moved to the core crate, so persisted engines keep loading
//! (`tests/snapshot_from_before_loads.rs` pins a snapshot written by the old type).

pub use fleetwire_core::UnixTime;

/// Seconds since the Unix epoch as `u32`, saturating (valid until the year 2106): the lockout
/// table's compact time.
pub(crate) fn secs_u32(t: UnixTime) -> u32 {
    u32::try_from(t.as_secs()).unwrap_or(u32::MAX)
}
