//! # fleetwire-session
//!
//! Signage player login and heartbeat (TCP 4701) as sans-IO state machines: [`Client`] on the
//! player, [`ServerConnection`] per connection on the server, and [`Presence`], the fleet-wide
//! registry of who is online. No sockets, clocks, threads or global randomness inside: the
//! caller passes bytes, `now` and random bytes in, and drains bytes and events out.
//!
//! ## Identity and login
//! Every player has a [`PlayerId`] (128 random bits, its security identifier) and a
//! [`PlayerSecret`] (an Ed25519 seed) issued at provisioning. The server stores only the
//! [`PlayerVerifier`] (the public key), so a leaked store lets nobody log in. Login is
//! challenge-response: `Hello(id)` → `Challenge(nonce)` → `Proof(signature)` → `Welcome`. The
//! signature covers the id, the server's fresh 32-byte nonce and the TLS channel binding, so the
//! secret never crosses the wire and a recorded login cannot be replayed or relayed. An unknown
//! player is checked against a dummy verifier: same work, same answer as a wrong secret.
//!
//! ## Heartbeat and presence
//! `Welcome` sets the heartbeat interval. The client sends a heartbeat when it has sent nothing
//! for one interval, carrying a [`PlayerStatus`]; the reply carries the server's configuration
//! hash only when it differs from the player's ([`ClientEvent::ConfigChanged`]). A player silent
//! for 1.5 × interval + grace is offline ([`Presence`]) and its connection closes.
//!
//! ## The contract (one shape for every fleetwire machine)
//! - Inputs: `handle_input(now, bytes)`, `handle_timeout(now)` (early calls are no-ops),
//!   `handle_close(now)` when the transport ended (the peer closed it or it broke), and
//!   application calls.
//! - Outputs, drained after every input until each returns `None`: `poll_transmit(&mut buf)`
//!   (appends the bytes to send to `buf`, never clears it, and returns a [`Transmit`] with
//!   their length: the suite's one `fleetwire_core::Transmit`), `poll_timeout()`,
//!   `poll_event()`.
//! - A fatal condition ends in exactly one `Closed { reason }` event; later inputs are ignored.
//! - Reconnect after a [`Backoff`] delay (exponential, full jitter) with a new machine.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::{Duration, Instant};
//! use fleetwire_session::*;
//!
//! let secret = PlayerSecret::from_bytes([7; 32]);
//! let id = PlayerId::from_bytes([1; 16]);
//! let t0 = Instant::now();
//! let mut client = Client::new(Arc::new(ClientConfig::new(id, secret.clone())), t0, ChannelBinding::NONE);
//! let mut server = ServerConnection::new(Arc::new(ServerConfig::default()), t0, [9; 32], ChannelBinding::NONE);
//!
//! // The run loop: move bytes both ways, answer lookups, until both sides are idle.
//! let (mut to_server, mut to_client) = (Vec::new(), Vec::new());
//! loop {
//!     while client.poll_transmit(&mut to_server).is_some() {}
//!     server.handle_input(t0, &std::mem::take(&mut to_server))?;
//!     while let Some(event) = server.poll_event() {
//!         if let ServerEvent::LookupPlayer { .. } = event {
//!             let known = PlayerLookup::Known { verifier: secret.verifier(), approved: true, config_hash: None };
//!             server.resolve_player(t0, known).unwrap();
//!         }
//!     }
//!     while server.poll_transmit(&mut to_client).is_some() {}
//!     if to_client.is_empty() { break; }
//!     client.handle_input(t0, &std::mem::take(&mut to_client))?;
//! }
//! assert_eq!(client.state(), ClientState::Online);
//! assert_eq!(client.poll_event(), Some(ClientEvent::LoggedIn { heartbeat_interval: Duration::from_secs(30) }));
//! // The next thing the client must do is send a heartbeat, one interval from now.
//! assert_eq!(client.poll_timeout(), Some(t0 + Duration::from_secs(30)));
//! # Ok::<(), SessionError>(())
//! ```

mod backoff;
mod client;
mod error;
mod identity;
mod link;
mod message;
mod presence;
mod server;

pub use backoff::Backoff;
pub use client::{Client, ClientConfig, ClientEvent, ClientState};
pub use error::{ApiMisuse, SessionError};
pub use fleetwire_core::Transmit;
pub use identity::{
    CHANNEL_BINDING_LABEL, ChannelBinding, ConfigHash, ParseIdError, PlayerId, PlayerSecret,
    PlayerVerifier,
};
pub use link::Stats;
pub use message::{
    CloseCode, MAX_CLOSE_MESSAGE_LEN, MAX_COMMAND_DATAGRAM_LEN, MAX_TEXT_LEN, Message,
    PROTOCOL_VERSION, PlayerStatus,
};
pub use presence::{Presence, PresenceConfig, PresenceEvent};
pub use server::{PlayerLookup, ServerConfig, ServerConnection, ServerEvent, ServerState};
