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

mod gcra;
mod time;
mod transmit;

pub use gcra::{Rate, gcra};
pub use time::UnixTime;
pub use transmit::Transmit;
