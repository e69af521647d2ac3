//! # fleetwire-command
//!
//! Remote commands from the server to signage players over UDP 4700 (requirement S3) as
//! sans-IO state machines: [`CommandServer`] holds every player's queue, [`CommandPlayer`]
//! runs on the player. No sockets, clocks, threads or global randomness inside: the caller
//! passes datagrams, the wall-clock time ([`UnixTime`], so time-to-live survives restarts) and
//! a jitter seed in, and drains datagrams, timers and events out.
//!
//! ## What it guarantees
//! - **Authenticated and private.** Every datagram is sealed with ChaCha20-Poly1305 (ring)
//!   under a key derived from the player's login ([`CommandKey::derive`]: HKDF-SHA256 over the
//!   TLS channel binding, salted with the login nonce, the player id in the info), one key per
//!   direction. A new login rotates the key; the 8-byte key id in the clear header names the
//!   login, so a datagram of an earlier login is dropped before any decryption.
//!   ChaCha20-Poly1305 rather than AES-GCM: the ARM players this runs on often lack AES
//!   instructions, where `ChaCha20` is both faster and constant-time.
//! - **Replay-proof.** A 64-bit sequence number per key and direction is the AEAD nonce, and a
//!   1,984-datagram anti-replay window (RFC 6479, as in `WireGuard`) is checked *before*
//!   decrypting and marked only *after* the tag verified, so forged datagrams cannot move it.
//!   An old datagram re-sent hours later is either below the window, already marked, or under
//!   a rotated key.
//! - **Acknowledged and retried.** Each command moves `Pending → Sent → Delivered` (the
//!   player's acknowledgement) `→ Succeeded | Failed` (the player's result), or `Expired`
//!   (time-to-live over before delivery) or `Cancelled` ([`CommandState`]). It is resent with
//!   an RFC 6298 timeout from measured round trips, doubled per attempt, capped and jittered
//!   (injected seed), until acknowledged or expired. A player that was offline gets what is
//!   still within its time-to-live when its session comes back
//!   ([`CommandServer::player_online`]).
//! - **Run once.** The player gives each command id out once ([`PlayerEvent::Execute`]),
//!   however often it arrives, remembering ids for their time-to-live plus a grace, in bounded
//!   memory (4,096 ids by default; beyond that, ids below the oldest remembered are refused,
//!   never run twice). [`CommandPlayer::remembered`] persists that memory across a restart.
//! - **UDP blocked → TCP.** With [`RoutePolicy::Auto`], a command that went unacknowledged
//!   [`ServerConfig::fallback_after`] times over UDP moves the player to its TCP 4701 session:
//!   the same sealed datagram travels as fleetwire-session's `CommandDatagram` message
//!   (a `Transmit` with `to: None`); the player answers on the path a command came by. An
//!   operator can pin a player to either route ([`CommandServer::set_route_policy`]).
//! - **Never a reflector.** Datagrams that fail any check are dropped, counted in the stats and
//!   never answered. A datagram is accepted only from the player's current session IP address
//!   (its UDP port is learned from its authenticated Hello, so NAT works). The only direct
//!   replies are acknowledgements (the player's `Ack` of commands, the server's `ResultAck` of
//!   results), each smaller than the datagram that caused it. Commands themselves are sent on
//!   the server's own schedule, only to the address of an authenticated player.
//! - **Bounded.** At most [`ServerConfig::max_pending_per_player`] unfinished commands per
//!   player ([`ApiMisuse::QueueFull`] beyond), about 400 bytes per idle player, one timer
//!   entry per player with work, so 10,000+ players fit easily (docs/BENCHMARKS.md).
//!
//! Layout and hex examples: docs/PROTOCOL.md, "Remote commands"; vectors in
//! `test-vectors/command.json`.
//!
//! ## The contract (one shape for every fleetwire machine)
//! - Inputs: `handle_input(now, from, datagram)` for UDP, `handle_session_input(now, ..)` for a
//!   datagram that came inside the session, `handle_timeout(now)` (early calls are no-ops),
//!   `handle_close(now)` when the socket is gone, and application calls (`send`, `cancel`,
//!   `player_online`, `report`, `rekey`, …).
//! - Outputs, drained after every input until each returns `None`: `poll_transmit(&mut buf)`
//!   (appends exactly one datagram; `to` is its UDP destination, or `None` for the session),
//!   `poll_event()`, `poll_timeout()`.
//! - `handle_close` yields exactly one `Closed` event; later inputs are no-ops.
//! - The wall clock may step back: timers then pause, nothing panics.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use fleetwire_command::*;
//! use fleetwire_core::UnixTime;
//! use fleetwire_session::{ChannelBinding, PlayerId};
//!
//! let player_id = PlayerId::from_bytes([1; 16]);
//! // Both sides derive the key from the same login (binding and nonce from fleetwire-session).
//! let key = CommandKey::derive(&ChannelBinding([7; 32]), &[9; 32], &player_id);
//! let server_addr = "192.0.2.1:4700".parse().unwrap();
//! let player_addr = "198.51.100.7:4700".parse().unwrap();
//! let mut now = UnixTime::from_secs(1_700_000_000);
//!
//! let mut server = CommandServer::new(Arc::new(ServerConfig::default()), now, 1);
//! let mut player = CommandPlayer::new(Arc::new(PlayerConfig::new(server_addr)), now, key.clone(), 2);
//! server.player_online(now, player_id, key, "198.51.100.7:50123".parse().unwrap())?;
//! let id = server.send(now, player_id, CommandSpec::new(Action::SetVolume(40), Duration::from_secs(600)))?;
//!
//! let mut buf = Vec::new();
//! let mut done = false;
//! for _ in 0..20 {
//!     // Server → player (here straight across; a driver sends to `t.transmit.to`).
//!     while let Some(t) = server.poll_transmit(&mut buf) {
//!         let _ = player.handle_input(now, server_addr, &buf[buf.len() - t.transmit.len..]);
//!     }
//!     buf.clear();
//!     // The player application runs what it is given and reports.
//!     while let Some(PlayerEvent::Execute(cmd)) = player.poll_event() {
//!         assert_eq!(cmd.action, Action::SetVolume(40));
//!         player.report(now, cmd.id, Outcome::Succeeded)?;
//!     }
//!     while let Some(t) = player.poll_transmit(&mut buf) {
//!         let _ = server.handle_input(now, player_addr, &buf[buf.len() - t.len..]);
//!     }
//!     buf.clear();
//!     while let Some(ev) = server.poll_event() {
//!         if ev == (ServerEvent::StateChanged { player: player_id, id, state: CommandState::Succeeded }) {
//!             done = true;
//!         }
//!     }
//!     // Time passes to the next timer.
//!     now = [server.poll_timeout(), player.poll_timeout()].into_iter().flatten().min().unwrap_or(now);
//!     server.handle_timeout(now);
//!     player.handle_timeout(now);
//! }
//! assert!(done);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
mod key;
mod model;
mod player;
mod replay;
mod rng;
mod server;
pub mod wire;

pub use error::{ApiMisuse, CommandError};
pub use fleetwire_core::UnixTime;
pub use key::{CommandKey, Direction, KEY_LABEL, KeyId, TAG_LEN};
pub use model::{
    Action, Command, CommandId, CommandSpec, CommandState, Failure, MAX_CUSTOM_PAYLOAD,
    MAX_FAILURE_MESSAGE, MAX_TTL, Outcome, Priority, Route, RoutePolicy,
};
pub use player::{CommandPlayer, PlayerConfig, PlayerEvent, PlayerStats};
pub use replay::REPLAY_WINDOW;
pub use server::{
    CommandInfo, CommandServer, ServerConfig, ServerEvent, ServerStats, ServerTransmit,
};
pub use wire::{MAX_DATAGRAM_LEN, decode_frames};

// The session carries these datagrams whole.
const _: () = assert!(MAX_DATAGRAM_LEN <= fleetwire_session::MAX_COMMAND_DATAGRAM_LEN);
