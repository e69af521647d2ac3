//! Wall-clock time passed in by the caller: the suite's one [`UnixTime`], from
//! `fleetwire-core` (re-exported as `fleetwire_codes::UnixTime`, the same type as
//! `fleetwire_auth::UnixTime`).
//!
//! State that outlives a process (access, throttling) uses wall time; a clock that steps
//! backwards is tolerated: nothing goes wrong, deadlines just arrive later. It serializes as a
//! bare integer of milliseconds, exactly as this crate's own type did, so stored things keep
//! loading (`tests/snapshot_from_before_loads.rs`). Build one with
//! [`UnixTime::from_millis`] and read it with [`UnixTime::as_millis`] (the old type's public
//! field is gone).

pub use fleetwire_core::UnixTime;
