//! # fleetwire-sensor
//!
//! The sensor record format and the upload session of battery-powered Wi-Fi loggers (TCP 14354).
//! A logger wakes, connects, uploads what it logged, and turns its radio off; the cloud never
//! initiates, polls or pings. This crate does no I/O: it is the format and two sans-IO machines.
//!
//! - [`model`]: loggers, channels with unit and resolution, readings at a fixed interval, gaps,
//!   alarms, battery and firmware status, every slot numbered by ([`Mark::epoch`], [`Mark::seq`]).
//!   Values are integers in the channel's resolution: no floats on the wire.
//! - [`codec`]: the binary format. A postcard envelope, one byte per channel, readings as
//!   zigzag deltas in 4-bit varint groups (a change of -3..=3 costs half a byte), a single start
//!   time (readings are at the fixed interval), and a 16-byte HMAC-SHA256 tag per batch with a
//!   per-logger key ([`LoggerKey::derive`]). 0.96 bytes per reading all-in for a 100-reading
//!   one-channel batch (see `docs/BENCHMARKS.md`). Decoders check every count against the bytes
//!   present before allocating, and never panic.
//! - [`logger::LoggerSession`] and [`cloud::CloudSession`]: one connection each. The logger sends
//!   every batch in its first flight (the first upload is the hello); the cloud acknowledges
//!   "stored through mark N" only after the caller confirms the batch is durable; the logger frees
//!   only what is acknowledged and resumes after N next time; duplicates are acknowledged and
//!   dropped; the logger has a hard radio-on deadline; the cloud answers only uploads, and may
//!   piggyback newer [`Settings`] on an ack. One round trip per upload after the TLS handshake.
//!   An ack covers only the epoch of the upload it answers, and a new epoch opens only with an
//!   authenticated statement of how the previous one ended ([`Batch::previous`]), so replayed or
//!   reordered uploads can never make a logger free a reading the store does not hold (see
//!   [`cloud`]).
//!
//! ## The contract every machine follows
//!
//! - Inputs: `handle_input(now, bytes)`, `handle_timeout(now)` (early calls are no-ops),
//!   `handle_close(now)` when the transport ended (the peer closed it or it broke), and commands
//!   (`provide_key`, `confirm_stored`, `storage_failed`).
//! - Outputs, drained after every input until each returns `None`: `poll_transmit(&mut buf)`
//!   (appends the bytes to send to `buf`, never clears it, and returns a [`Transmit`] with
//!   their length: the suite's one `fleetwire_core::Transmit`), `poll_timeout()`,
//!   `poll_event()`.
//! - Time is a parameter (`Instant` for deadlines; wall-clock times are plain unix seconds in
//!   the data). No clock, no randomness, no threads, no callbacks: plain data in and out, so the
//!   machines cross into Python and Kotlin unchanged.
//! - A fatal error is returned once and yields exactly one `Event::Closed { reason }`; a normal
//!   end yields `Event::Closed { reason: CloseReason::Finished }`. Later inputs are no-ops.
//!   On `Closed`, flush `poll_transmit`, then close the socket.
//! - The key lookup and the durable write are events answered by calls
//!   ([`cloud::Event::KeyNeeded`] → [`cloud::CloudSession::provide_key`],
//!   [`cloud::Event::Batch`] → [`cloud::CloudSession::confirm_stored`]).
//!
//! ## Run loop
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Instant;
//! use fleetwire_sensor::{
//!     cloud::{self, CloudConfig, CloudSession, LoggerRecord},
//!     logger::{self, LoggerConfig, LoggerSession},
//!     Batch, Channel, CloseReason, LoggerId, LoggerKey, Mark,
//! };
//!
//! let now = Instant::now(); // the driver's clock; the machines never read one
//! let id = LoggerId(1001);
//! let key = LoggerKey::derive(&[42; 32], id);
//! let batch = Batch {
//!     logger: id,
//!     epoch: 0,
//!     first_seq: 0,
//!     start: 1_750_000_000,
//!     interval_s: 300,
//!     channels: vec![Channel::TEMPERATURE_DECI_C],
//!     values: (0..100).map(|i| Some(215 + (i % 7))).collect(),
//!     ..Batch::default()
//! };
//! let mut sensor =
//!     LoggerSession::new(Arc::new(LoggerConfig::new(id, key.clone())), now, vec![batch])?;
//! let mut server = CloudSession::new(Arc::new(CloudConfig::default()), now);
//! let mut stored_readings = 0; // the cloud's store
//! let mut freed_through = None; // the logger's memory
//!
//! let (mut up, mut down) = (Vec::new(), Vec::new());
//! let mut done = (false, false);
//! while !(done.0 && done.1) {
//!     // Logger side: drain outputs, then feed input.
//!     while sensor.poll_transmit(&mut up).is_some() {}
//!     while let Some(event) = sensor.poll_event() {
//!         match event {
//!             // Slots 0..=seq of that epoch (and only that epoch) are durable: free them.
//!             logger::Event::Acked { stored, .. } => freed_through = stored,
//!             logger::Event::Closed { reason } => {
//!                 assert_eq!(reason, CloseReason::Finished);
//!                 done.0 = true;
//!             }
//!             _ => {}
//!         }
//!     }
//!     server.handle_input(now, &std::mem::take(&mut up)).ok();
//!     // Cloud side.
//!     while let Some(event) = server.poll_event() {
//!         match event {
//!             cloud::Event::KeyNeeded { logger } => {
//!                 let record = LoggerRecord {
//!                     key: LoggerKey::derive(&[42; 32], logger),
//!                     stored: None, // nothing yet; a store passes its mark and closed epochs
//!                     closed: Vec::new(),
//!                     status: None,
//!                     settings: None,
//!                     server_time: 1_750_030_000,
//!                 };
//!                 server.provide_key(now, logger, Some(record))?;
//!             }
//!             cloud::Event::Batch { id, batch, .. } => {
//!                 stored_readings += batch.reading_count(); // write durably first
//!                 server.confirm_stored(now, id)?;
//!             }
//!             cloud::Event::Closed { reason } => {
//!                 assert_eq!(reason, CloseReason::Finished);
//!                 done.1 = true;
//!             }
//!             _ => {}
//!         }
//!     }
//!     while server.poll_transmit(&mut down).is_some() {}
//!     sensor.handle_input(now, &std::mem::take(&mut down)).ok();
//! }
//! assert_eq!(stored_readings, 100);
//! assert_eq!(freed_through, Some(Mark { epoch: 0, seq: 99 }));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod cloud;
pub mod codec;
mod crypto;
mod error;
pub mod logger;
pub mod model;

pub use crypto::{LoggerKey, TAG_LEN, Tag};
pub use error::{ApiMisuse, CloseReason, RejectReason, SensorError};
pub use fleetwire_core::Transmit;
pub use fleetwire_wire::DecodeError;
pub use model::{
    Alarm, AlarmKind, Batch, Channel, ChannelKind, EpochEnd, Firmware, Gap, LoggerId, Mark,
    Reading, Settings, Status, Threshold, Unit,
};
