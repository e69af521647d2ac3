use serde::{Deserialize, Serialize};

/// A wall-clock instant: milliseconds since the Unix epoch, supplied by the caller.
///
/// Engines whose state must survive a restart (lockout, sessions, tokens, captchas, command
/// time-to-live) take this instead of a monotonic `Instant`. They tolerate a clock that steps
/// backwards: they never panic, never unlock early and never lock forever because of it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct UnixTime(u64);

impl UnixTime {
    /// The Unix epoch.
    pub const EPOCH: Self = Self(0);

    /// An instant `millis` milliseconds after the Unix epoch.
    pub const fn from_millis(millis: u64) -> Self {
        Self(millis)
    }

    /// An instant `secs` seconds after the Unix epoch (saturating).
    pub const fn from_secs(secs: u64) -> Self {
        Self(secs.saturating_mul(1000))
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Whole seconds since the Unix epoch.
    pub const fn as_secs(self) -> u64 {
        self.0 / 1000
    }

    /// This instant plus `millis`, saturating.
    #[must_use]
    pub const fn plus_millis(self, millis: u64) -> Self {
        Self(self.0.saturating_add(millis))
    }

    /// This instant plus `secs` seconds, saturating.
    #[must_use]
    pub const fn plus_secs(self, secs: u64) -> Self {
        Self(self.0.saturating_add(secs.saturating_mul(1000)))
    }

    /// Milliseconds from `earlier` to `self`, or 0 if `earlier` is later (the clock stepped back).
    pub const fn millis_since(self, earlier: Self) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}
