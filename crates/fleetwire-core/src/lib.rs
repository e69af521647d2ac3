//! # fleetwire-core
//!
//! The vocabulary every fleetwire protocol machine and policy engine shares, defined once so
//! that the machines speak one dialect (docs: ARCHITECTURE, "One API shape"):
//!
//! - [`Transmit`]: what `poll_transmit(&mut buf)` returns. It **always appends** to the caller's
//!   buffer and says how many bytes it appended (and, for datagram machines, where they go), so
//!   a caller can gather several transmits into one write.
//! - [`UnixTime`]: wall-clock milliseconds passed in by the caller, for engines whose state
//!   outlives a process (lockout, sessions, tokens, command time-to-live). Monotonic machines
//!   take `std::time::Instant`.
//! - [`gcra`]: one step of the generic cell rate algorithm, the one rate limiter of the suite.
//!
//! The one API shape, for reference (every machine in the suite follows it):
//!
//! ```text
//! fn new(config: Arc<Config>, now: Instant, ..) -> Self;
//! fn handle_input(&mut self, now: Instant, data: &[u8]) -> Result<(), ProtocolError>;
//! fn handle_timeout(&mut self, now: Instant);     // early or spurious calls are no-ops
//! fn handle_close(&mut self, now: Instant);       // the transport ended (peer closed or broke)
//! fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<Transmit>;
//! fn poll_timeout(&self) -> Option<Instant>;
//! fn poll_event(&mut self) -> Option<Event>;
//! ```
//!
//! No I/O happens here: no sockets, clocks, threads or global randomness.
//!
//! ## Where each piece is used, and what moving onto it taught
//!
//! - **One `Transmit`, always appending.** `fleetwire-session`, `-sensor` and `-transfer`
//!   re-export this type (`fleetwire_session::Transmit` and so on are the same type). Transfer's
//!   used to clear the caller's buffer and carry a transfer id; it now appends one whole message
//!   and the id is inside the message. Encoders follow the same rule
//!   (`fleetwire_transfer::Message::encode` appends too): a driver that sends one message per
//!   write clears its buffer after each, or slices `buf[buf.len() - len..]`.
//! - **One close input, `handle_close(now)`, on every transport machine**: session client and
//!   server (was `connection_lost`), sensor logger and cloud (was `handle_peer_closed`),
//!   transfer sender and receiver (new). A machine that multiplexes work on one connection
//!   (transfer) ends each open piece of work with its own terminal event carrying the
//!   connection's reason, then emits its one `Closed`, for every way the connection ends (close
//!   input, idle timeout): an application that tracks work per item never has to infer that a
//!   `Closed` ended it. What outlives the connection (transfer's resume record) stays readable
//!   after the close. Machines without a transport (presence, the transfer watchdog, the auth
//!   engines) have no close input.
//! - **One `UnixTime`**: `fleetwire-auth` and `fleetwire-codes` re-export it at their old paths.
//!   The serde form (a bare integer of milliseconds) is what both crates' own types wrote, so
//!   persisted engines load unchanged (each crate pins a snapshot written by the old type). The
//!   field is private: build with [`UnixTime::from_millis`], read with
//!   [`UnixTime::as_millis`].
//! - **One GCRA**: session's heartbeat limit, auth's per-source and global throttles and codes'
//!   guess guard all step [`gcra`]. On a clock that only moves forward they decide exactly as
//!   their old implementations did. On a clock that stepped back, the decision is unchanged too
//!   (a refusal stores nothing, so a saturated key stays refused until the clock catches up);
//!   only the reported wait is capped at one interval. Bounding how long a step back can hold a
//!   key would need the caller to store the clamped TAT on a refusal: a contract change, not
//!   made here.

mod gcra;
mod time;
mod transmit;

pub use gcra::{Rate, gcra};
pub use time::UnixTime;
pub use transmit::Transmit;
