//! # fleetwire-sync
//!
//! Screens side by side on a LAN playing in step (requirement S4), with a measured sync
//! error, and LAN content sharing, as sans-IO state machines: [`SyncMember`] (one per player
//! in a sync group) and [`share::Share`] (one per player). No sockets, clocks, threads or
//! global randomness inside: the caller passes datagrams and `now` in, drains datagrams,
//! timers and events out.
//!
//! ## Ports
//! - **UDP 16732, the clock exchange** (ping/pong): small datagrams whose timing *is* the
//!   measurement, kept on their own socket so no bulk transfer queues in front of them.
//! - **UDP 16733, the timeline** (beacons, the leader's timeline) **and LAN sharing**: none of
//!   it is latency-critical (the timeline announces the future; a beacon late by a few
//!   milliseconds changes nothing). [`wire::kind`] tells a driver which machine a datagram on
//!   this port is for.
//!
//! ## Clock
//! Each follower measures `offset = group − local` against the leader with NTP's four
//! timestamps (`θ = ((t2 − t1) + (t3 − t4)) / 2`, delay `δ = (t4 − t1) − (t3 − t2)`), eight
//! exchanges 40 ms apart after joining, then four a second. Queueing only adds delay, so it
//! keeps a sliding window (64 exchanges, 16 s) and fits a line through its least-delayed third
//! (minimum-delay filtering, as NTP's clock filter): the intercept is the offset, the slope the
//! drift (two ±100 ppm crystals drift 0.2 ms a second apart). The error bound is half the
//! least round trip. The clock the application sees is *disciplined*: stepped once when first
//! synchronized, then pulled toward the estimate at a bounded slew (at most 500 ppm on top of
//! the drift), so nothing on screen ever jumps; a correction beyond 20 ms (a healed partition,
//! a new leader whose clock disagrees) is applied as a step at the next item boundary only.
//! [`SyncMember::clock`] exposes the offset, the measured offset, the drift and the error bound,
//! for benchmarks and diagnostics. A constant path asymmetry is invisible to any two-way
//! exchange; it biases the offset by half the asymmetry, within the reported bound.
//!
//! ## Leader, timeline, failover
//! Every member beacons four times a second. The leader's clock is the group clock; it
//! announces the timeline: a looping [`Playlist`] anchored at a group-clock instant ("item
//! X starts at T"). Members turn it into [`SyncEvent::Play`] events on their local clock,
//! `lead_time` ahead. When the leader is silent for `leader_timeout` (1 s), the member with the
//! lowest player id among live synchronized members takes over with the next term, continuing
//! its own estimate of the group clock at the measured drift, and the timeline goes on from
//! the last announcement: failover within 1.25 s, no gap, no repeat. Leadership is sticky (a
//! late joiner with a lower id follows); a conflict (two leaders after a partition heals) goes
//! to the higher term, then the lower id. A late joiner synchronizes, then starts at the next
//! item boundary, never mid-item.
//!
//! ## Security
//! Every datagram carries the group id and an HMAC-SHA256 tag (16 bytes) under the group key
//! the server hands out over the player's TLS session ([`GroupKey`], with an epoch for
//! rotation), plus the sender's id and a message counter checked against a per-sender replay
//! window. Other groups, strangers, tampered bytes and replays are dropped, counted and never
//! answered; a pong is never larger than its ping. Sync messages are authenticated, not
//! encrypted: timings and playlists of public screens are not secrets.
//!
//! ## LAN sharing
//! See [`share`]: a file a group peer holds is fetched from it in 1 KiB pieces under a
//! fetcher-held window, each whole chunk checked against the server-signed manifest, with a
//! fallback to the server that resumes where the peer stopped. What it reuses from
//! fleetwire-transfer, and why its transport is new, is in the module docs.
//!
//! Layout and hex examples: docs/PROTOCOL.md, "Multi-screen sync"; vectors in
//! `test-vectors/sync.json`.
//!
//! ## The contract (one shape for every fleetwire machine)
//! - Inputs: `handle_input(now, from, datagram)`, `handle_timeout(now)` (early calls are
//!   no-ops), `handle_close(now)`, and application calls (`set_playlist`, `set_key`, `fetch`, …).
//! - Outputs, drained after every input: `poll_transmit(&mut buf)` appends exactly one
//!   datagram and says where it goes (and, for the member, from which port), `poll_event()`,
//!   `poll_timeout()`.
//! - `handle_close` yields exactly one `Closed` event; later inputs are no-ops.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::{Duration, Instant};
//! use fleetwire_core::UnixTime;
//! use fleetwire_session::PlayerId;
//! use fleetwire_sync::*;
//!
//! let key = GroupKey::new(1, [7; 32]);
//! let (a_addr, b_addr) = ("10.0.0.1:16733".parse().unwrap(), "10.0.0.2:16733".parse().unwrap());
//! let members = vec![a_addr, b_addr];
//! let config = |n: u8| {
//!     Arc::new(SyncConfig::new(GroupId(1), PlayerId::from_bytes([n; 16]), members.clone()))
//! };
//! # #[allow(clippy::disallowed_methods)]
//! let t0 = Instant::now(); // a driver's clock; tests use virtual time
//! let wall = UnixTime::from_secs(1_700_000_000);
//! let mut a = SyncMember::new(config(1), t0, wall, key.clone());
//! let mut b = SyncMember::new(config(2), t0, wall, key);
//! let playlist = Playlist { id: 1, items: vec![Item { id: 10, duration_ms: 2000 }] };
//! a.set_playlist(t0, playlist.clone())?;
//! b.set_playlist(t0, playlist)?;
//!
//! // The run loop on a perfect LAN: deliver every datagram (replies too) until both sides
//! // are quiet, then jump to the next timer.
//! let port = |addr: std::net::SocketAddr, p: Port| {
//!     std::net::SocketAddr::new(addr.ip(), if p == Port::Clock { 16732 } else { 16733 })
//! };
//! let mut now = t0;
//! let mut buf = Vec::new();
//! let mut plays = (0, 0);
//! while now < t0 + Duration::from_secs(10) {
//!     loop {
//!         let mut quiet = true;
//!         while let Some(t) = a.poll_transmit(&mut buf) {
//!             if t.transmit.to.map(|d| d.ip()) == Some(b_addr.ip()) {
//!                 let _ = b.handle_input(now, port(a_addr, t.port), &buf);
//!             }
//!             buf.clear();
//!             quiet = false;
//!         }
//!         while let Some(t) = b.poll_transmit(&mut buf) {
//!             if t.transmit.to.map(|d| d.ip()) == Some(a_addr.ip()) {
//!                 let _ = a.handle_input(now, port(b_addr, t.port), &buf);
//!             }
//!             buf.clear();
//!             quiet = false;
//!         }
//!         if quiet { break }
//!     }
//!     while let Some(ev) = a.poll_event() {
//!         if let SyncEvent::Play { .. } = ev { plays.0 += 1 }
//!     }
//!     while let Some(ev) = b.poll_event() {
//!         if let SyncEvent::Play { .. } = ev { plays.1 += 1 }
//!     }
//!     now = a.poll_timeout().into_iter().chain(b.poll_timeout()).min().unwrap();
//!     a.handle_timeout(now);
//!     b.handle_timeout(now);
//! }
//! // The lower id leads; both show the same items from the same group instants.
//! assert_eq!(a.role(), Role::Leader);
//! assert_eq!(b.leader(), Some(PlayerId::from_bytes([1; 16])));
//! assert!(plays.0 >= 3 && plays.1 >= 3);
//! let error = b.clock(now).unwrap().error;
//! assert!(error < Duration::from_micros(10));
//! # Ok::<(), ApiMisuse>(())
//! ```

mod clock;
mod error;
mod key;
mod member;
pub mod share;
mod timeline;
pub mod wire;

pub use clock::offset_and_delay;
pub use error::{ApiMisuse, SyncError};
pub use key::{GroupId, GroupKey, TAG_LEN};
pub use member::{ClockStatus, SyncConfig, SyncEvent, SyncMember, SyncStats, SyncTransmit};
pub use timeline::{Playlist, next_boundary};
pub use wire::{Item, Kind, Port, Role};
