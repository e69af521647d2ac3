//! The server side of login and heartbeat, one machine per connection.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleetwire_core::{Rate, gcra};

use crate::link::{Link, millis};
use crate::{
    ApiMisuse, ChannelBinding, CloseCode, ConfigHash, Message, PlayerId, PlayerStatus,
    PlayerVerifier, SessionError, Stats, Transmit,
};

/// Frame limit before login: a Hello is 87 bytes at most, so a stranger gets no more than this.
const PRE_AUTH_MAX_FRAME: u32 = 256;

/// Server policy for player sessions.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The heartbeat interval the server sets at login. Default 30 s.
    pub heartbeat_interval: Duration,
    /// Added to 1.5 × the interval to get the silence after which a player is offline and its
    /// connection closed. Default 5 s.
    pub silence_grace: Duration,
    /// How long a connection may take to log in (slowloris bound). Default 10 s.
    pub login_timeout: Duration,
    /// The largest frame body accepted after login. Default 4096.
    pub max_frame_len: u32,
    /// The most heartbeats a logged-in player may send per heartbeat interval, sustained (and
    /// in a burst); more closes the session with a protocol violation. A player sends one per
    /// interval when idle and one per status change. Default 20.
    pub max_heartbeats_per_interval: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(30),
            silence_grace: Duration::from_secs(5),
            login_timeout: Duration::from_secs(10),
            max_frame_len: 4096,
            max_heartbeats_per_interval: 20,
        }
    }
}

impl ServerConfig {
    /// The silence after which a player counts as offline: 1.5 × interval + grace.
    pub fn silence_limit(&self) -> Duration {
        self.heartbeat_interval * 3 / 2 + self.silence_grace
    }
}

/// What the store knows of a player that said Hello, given back with
/// [`ServerConnection::resolve_player`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlayerLookup {
    /// No such player. The login fails exactly as with a wrong secret, after the same work.
    Unknown,
    /// A provisioned player.
    Known {
        /// The verifier stored at provisioning.
        verifier: PlayerVerifier,
        /// False while the player waits for an administrator.
        approved: bool,
        /// The player's current configuration hash, if any.
        config_hash: Option<ConfigHash>,
    },
}

/// Where the connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerState {
    /// Waiting for the player's Hello.
    AwaitingHello,
    /// Challenge sent; waiting for the proof and the player lookup.
    AwaitingProof,
    /// Logged in.
    Online,
    /// Ended; see the `Closed` event.
    Closed,
}

/// What happened, for the server application.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerEvent {
    /// Look this player up and answer with [`ServerConnection::resolve_player`].
    LookupPlayer {
        /// The identifier the peer claims.
        player_id: PlayerId,
        /// The software version it reported.
        software: String,
    },
    /// The player proved its identity and is approved.
    LoggedIn {
        /// The player.
        player_id: PlayerId,
    },
    /// A sealed command datagram arrived over the session (the UDP fallback): hand it to the
    /// fleetwire-command server machine.
    CommandDatagram {
        /// The player.
        player_id: PlayerId,
        /// The datagram, opaque to the session.
        datagram: Vec<u8>,
    },
    /// A heartbeat arrived (it has been acknowledged).
    Heartbeat {
        /// The player.
        player_id: PlayerId,
        /// Its sequence number.
        seq: u64,
        /// The status it carried.
        status: PlayerStatus,
    },
    /// The connection ended. Always the last event, exactly once.
    Closed {
        /// Why.
        reason: SessionError,
    },
}

/// One player connection, from the server's side.
#[derive(Debug)]
pub struct ServerConnection {
    config: Arc<ServerConfig>,
    binding: ChannelBinding,
    nonce: [u8; 32],
    link: Link,
    state: ServerState,
    started: Instant,
    player: Option<PlayerId>,
    lookup: Option<PlayerLookup>,
    proof: Option<[u8; 64]>,
    config_hash: Option<ConfigHash>,
    events: VecDeque<ServerEvent>,
    /// The heartbeat limiter's theoretical arrival time, in µs since `started`.
    heartbeat_tat_us: u64,
}

impl ServerConnection {
    /// A new connection. `nonce` must be 32 fresh random bytes (a CSPRNG such as ring's
    /// `SystemRandom`); `binding` the TLS exporter value, [`ChannelBinding::NONE`] without TLS.
    pub fn new(
        config: Arc<ServerConfig>,
        now: Instant,
        nonce: [u8; 32],
        binding: ChannelBinding,
    ) -> Self {
        Self {
            config,
            binding,
            nonce,
            link: Link::new(now, PRE_AUTH_MAX_FRAME),
            state: ServerState::AwaitingHello,
            started: now,
            player: None,
            lookup: None,
            proof: None,
            config_hash: None,
            events: VecDeque::new(),
            heartbeat_tat_us: 0,
        }
    }

    /// Feeds bytes received from the player. On a fatal error, returns it once, queues the
    /// `Closed` event and ignores later input.
    pub fn handle_input(&mut self, now: Instant, data: &[u8]) -> Result<(), SessionError> {
        let mut input = data;
        while !input.is_empty() && self.link.closed.is_none() {
            let step = self.link.next_message(now, input).and_then(|(used, msg)| {
                input = &input[used..];
                match msg {
                    Some(msg) => self.on_message(now, msg),
                    None => Ok(()),
                }
            });
            if let Err(reason) = step {
                self.close_with(now, reason.clone());
                return Err(reason);
            }
        }
        Ok(())
    }

    /// Lets time pass: ends the connection when the login deadline passes or the player falls
    /// silent. Early calls do nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            ServerState::Closed => {}
            ServerState::AwaitingHello | ServerState::AwaitingProof => {
                if now >= self.started + self.config.login_timeout {
                    let ms = millis(self.config.login_timeout);
                    self.close_with(now, SessionError::LoginTimeout(ms));
                }
            }
            ServerState::Online => {
                let limit = self.config.silence_limit();
                if now >= self.link.last_rx + limit {
                    self.close_with(now, SessionError::PeerSilent(millis(limit)));
                }
            }
        }
    }

    /// Answers a [`ServerEvent::LookupPlayer`].
    pub fn resolve_player(&mut self, now: Instant, lookup: PlayerLookup) -> Result<(), ApiMisuse> {
        if self.state == ServerState::Closed {
            return Err(ApiMisuse::Closed);
        }
        if self.state != ServerState::AwaitingProof || self.lookup.is_some() {
            return Err(ApiMisuse::NoLookupPending);
        }
        if let PlayerLookup::Known { config_hash, .. } = &lookup {
            self.config_hash = *config_hash;
        }
        self.lookup = Some(lookup);
        if let Some(signature) = self.proof.take() {
            if let Err(reason) = self.decide(now, &signature) {
                self.close_with(now, reason);
            }
        }
        Ok(())
    }

    /// Sets the configuration hash announced in heartbeat replies from now on.
    pub fn set_config_hash(&mut self, hash: Option<ConfigHash>) {
        self.config_hash = hash;
    }

    /// Closes the connection, telling the player why (for example [`CloseCode::Replaced`] or
    /// [`CloseCode::Revoked`]).
    pub fn close(&mut self, now: Instant, code: CloseCode, message: &str) -> Result<(), ApiMisuse> {
        if message.len() > crate::MAX_CLOSE_MESSAGE_LEN {
            return Err(ApiMisuse::TooLong {
                field: "message",
                len: message.len(),
                max: crate::MAX_CLOSE_MESSAGE_LEN,
            });
        }
        if self.state == ServerState::Closed {
            return Err(ApiMisuse::Closed);
        }
        let message = message.to_owned();
        self.close_with(now, SessionError::LocalClose { code, message });
        Ok(())
    }

    /// The transport ended (the peer closed it or it broke) without a `Close` message: ends
    /// the session with [`SessionError::ConnectionLost`] (no-op if already closed).
    pub fn handle_close(&mut self, now: Instant) {
        self.close_with(now, SessionError::ConnectionLost);
    }

    /// Appends the bytes to send to `buf`.
    #[must_use]
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<Transmit> {
        self.link.poll_transmit(buf)
    }

    /// When to call [`ServerConnection::handle_timeout`] next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            ServerState::Closed => None,
            ServerState::Online => Some(self.link.last_rx + self.config.silence_limit()),
            _ => Some(self.started + self.config.login_timeout),
        }
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// Where the connection is.
    pub fn state(&self) -> ServerState {
        self.state
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.link.stats
    }

    /// The player this connection claims to be (after Hello) or is (after login).
    pub fn player_id(&self) -> Option<PlayerId> {
        self.player
    }

    /// True once the player has proved its identity and is approved.
    pub fn is_authenticated(&self) -> bool {
        self.state == ServerState::Online
    }

    /// The login nonce this connection sent, once the player is logged in (`None` before):
    /// with [`ServerConnection::channel_binding`] it keys the per-login command key
    /// (fleetwire-command's `CommandKey::derive`), so every new login rotates that key.
    pub fn login_nonce(&self) -> Option<[u8; 32]> {
        self.is_authenticated().then_some(self.nonce)
    }

    /// The channel binding this connection was created with.
    pub fn channel_binding(&self) -> ChannelBinding {
        self.binding
    }

    /// Sends one sealed command datagram over the session (the UDP fallback; at most
    /// [`crate::MAX_COMMAND_DATAGRAM_LEN`] bytes).
    pub fn send_command_datagram(
        &mut self,
        now: Instant,
        datagram: &[u8],
    ) -> Result<(), ApiMisuse> {
        crate::client::check_datagram(datagram)?;
        match self.state {
            ServerState::Online => {
                self.link.send(
                    now,
                    &Message::CommandDatagram {
                        datagram: datagram.to_vec(),
                    },
                );
                Ok(())
            }
            ServerState::Closed => Err(ApiMisuse::Closed),
            _ => Err(ApiMisuse::NotOnline),
        }
    }

    fn on_message(&mut self, now: Instant, msg: Message) -> Result<(), SessionError> {
        match (self.state, msg) {
            (_, Message::Close { code, message }) => {
                Err(SessionError::PeerClosed { code, message })
            }
            (
                ServerState::AwaitingHello,
                Message::Hello {
                    player_id,
                    software,
                },
            ) => {
                self.player = Some(player_id);
                self.state = ServerState::AwaitingProof;
                self.link
                    .send(now, &Message::Challenge { nonce: self.nonce });
                self.events.push_back(ServerEvent::LookupPlayer {
                    player_id,
                    software,
                });
                Ok(())
            }
            (ServerState::AwaitingProof, Message::Proof { signature }) if self.proof.is_none() => {
                if self.lookup.is_some() {
                    self.decide(now, &signature)
                } else {
                    self.proof = Some(signature);
                    Ok(())
                }
            }
            (ServerState::Online, Message::Heartbeat { seq, status }) => {
                self.heartbeat_allowed(now)?;
                // INVARIANT: Online is only reached with a player set.
                let player_id = self.player.expect("INVARIANT: online implies a player");
                let config_hash = match self.config_hash {
                    Some(h) if Some(h) != status.config_hash => Some(h),
                    _ => None,
                };
                self.link
                    .send(now, &Message::HeartbeatAck { seq, config_hash });
                self.link.stats.heartbeats += 1;
                self.events.push_back(ServerEvent::Heartbeat {
                    player_id,
                    seq,
                    status,
                });
                Ok(())
            }
            (ServerState::Online, Message::CommandDatagram { datagram }) => {
                // INVARIANT: Online is only reached with a player set.
                let player_id = self.player.expect("INVARIANT: online implies a player");
                self.events.push_back(ServerEvent::CommandDatagram {
                    player_id,
                    datagram,
                });
                Ok(())
            }
            (ServerState::AwaitingHello, _) => Err(SessionError::Unexpected(
                "expected a hello before anything else",
            )),
            (ServerState::AwaitingProof, _) => Err(SessionError::Unexpected(
                "expected one proof after the challenge",
            )),
            _ => Err(SessionError::Unexpected("message not valid while online")),
        }
    }

    /// Counts one heartbeat against `max_heartbeats_per_interval` (the one GCRA of the suite).
    fn heartbeat_allowed(&mut self, now: Instant) -> Result<(), SessionError> {
        let max = self.config.max_heartbeats_per_interval.max(1);
        let rate = Rate {
            burst: max,
            per_period: max,
            period_ms: millis(self.config.heartbeat_interval).max(1),
        };
        let now_us = u64::try_from(now.saturating_duration_since(self.started).as_micros())
            .unwrap_or(u64::MAX);
        self.heartbeat_tat_us = gcra(rate, self.heartbeat_tat_us, now_us)
            .map_err(|_| SessionError::HeartbeatFlood { max })?;
        Ok(())
    }

    /// Checks the proof. Unknown players are checked against a dummy verifier, so they cost the
    /// same work and get the same answer as a wrong secret.
    fn decide(&mut self, now: Instant, signature: &[u8; 64]) -> Result<(), SessionError> {
        // INVARIANT: decide runs only after Hello (player set) and with a lookup.
        let player = self.player.expect("INVARIANT: hello came first");
        let (verifier, known, approved) = match self.lookup.as_ref() {
            Some(PlayerLookup::Known {
                verifier, approved, ..
            }) => (*verifier, true, *approved),
            _ => (PlayerVerifier::dummy(), false, false),
        };
        let valid = verifier.verify_login(&player, &self.nonce, &self.binding, signature);
        if !(valid && known) {
            return Err(SessionError::AuthFailed);
        }
        if !approved {
            return Err(SessionError::NotApproved(player.to_string()));
        }
        self.state = ServerState::Online;
        self.link.set_max_frame_len(self.config.max_frame_len);
        let interval = u32::try_from(millis(self.config.heartbeat_interval)).unwrap_or(u32::MAX);
        self.link.send(
            now,
            &Message::Welcome {
                heartbeat_interval_ms: interval.max(1),
                config_hash: self.config_hash,
            },
        );
        self.events
            .push_back(ServerEvent::LoggedIn { player_id: player });
        Ok(())
    }

    fn close_with(&mut self, now: Instant, reason: SessionError) {
        if self.link.close(now, reason.clone()) {
            self.state = ServerState::Closed;
            self.events.push_back(ServerEvent::Closed { reason });
        }
    }
}
