//! # fleetwire-tokio
//!
//! Thin drivers that run fleetwire's sans-IO machines over tokio sockets with rustls on the ring
//! provider. The machines decide everything; a driver only moves bytes, reads the clock, draws
//! randomness and looks things up. One module per protocol, each behind a feature.
//!
//! - [`tls`]: TLS 1.3 preferred, 1.2 minimum (rustls cannot speak older versions, so a TLS 1.0 or
//!   1.1 client gets a `protocol_version` alert), players that pin the server's certificate
//!   fingerprint, and the exporter for channel binding.
//! - [`session`] (feature `session`): the player login + heartbeat server ([`session::SessionServer`])
//!   with per-connection limits — a login deadline against slowloris, the frame limit, a maximum
//!   number of connections — and the player side ([`session::run_player`]). A slow or hostile
//!   peer only ever occupies its own task. A [`session::SourceGate`] can refuse sources at
//!   accept; [`login_gate::LockoutGate`] (feature `login-gate`) refuses those that keep failing.
//! - [`transfer`] (feature `transfer`): chunked transfer — the framed stream driver pair
//!   ([`transfer::send_framed`], [`transfer::receive_framed`]), the HTTP(S) download client
//!   ([`transfer::fetch_http`]) with signed player requests, and the resumable `.part` file that
//!   only ever appears under its final name once the whole file verified.
//! - `framed` (features `session` + `transfer`): the framed transfer connection (TCP 4702 in
//!   the example server) — the session login, then every file assigned to the player pushed
//!   over the same TLS stream (`framed::accept_player` + `framed::send_framed_many` on the
//!   server, `framed::connect_player` + `framed::receive_framed_many` on the player).
//! - [`sensor`] (feature `sensor`): sensor uploads on TCP 14354 — the cloud server
//!   ([`sensor::SensorServer`], one `CloudSession` per connection, keys and exactly-once writes
//!   through [`sensor::LoggerStore`], one deadline from accept through TLS and the exchange) and
//!   the logger side ([`sensor::upload`]: connect, one flight, acks, close).
//!
//! - [`command`] (feature `command`): remote commands on UDP 4700 — the server task
//!   ([`command::CommandServerTask`]) and the player task ([`command::CommandPlayerTask`]), each
//!   owning its socket and machine behind a handle; datagrams routed into the TCP session
//!   fallback are handed out as events for the session owner to carry.
//! - [`sync`] (feature `sync`): multi-screen sync on UDP 16732/16733 — one task per member
//!   ([`sync::MemberTask`]) with the clock and timeline sockets and, optionally, LAN sharing.
//!
//! - [`source`]: [`source::Source`], the one key of every per-source limit (an IPv4 address or
//!   an IPv6 /64).
//!
//! Plaintext is possible only through options named `danger_…`.

#![allow(clippy::disallowed_methods)] // drivers are where the clock is read

pub mod source;
pub mod tls;

#[cfg(feature = "session")]
pub mod session;

#[cfg(feature = "login-gate")]
pub mod login_gate;

#[cfg(feature = "sensor")]
pub mod sensor;

#[cfg(feature = "transfer")]
pub mod transfer;

#[cfg(all(feature = "session", feature = "transfer"))]
pub mod framed;

#[cfg(feature = "command")]
pub mod command;

#[cfg(feature = "sync")]
pub mod sync;
