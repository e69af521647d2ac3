//! The player side of login and heartbeat.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::link::{Link, millis};
use crate::{
    ApiMisuse, ChannelBinding, CloseCode, ConfigHash, MAX_TEXT_LEN, Message, PlayerId,
    PlayerSecret, PlayerStatus, SessionError, Stats, Transmit,
};

/// How a player logs in and how patient it is.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The player's identifier.
    pub player_id: PlayerId,
    /// The player's secret (never sent).
    pub secret: PlayerSecret,
    /// The player's software version, sent at login (at most 64 bytes).
    pub software: String,
    /// How long the login may take before the client gives up. Default 10 s.
    pub login_timeout: Duration,
    /// Added to 1.5 × the heartbeat interval to get the longest server silence the client
    /// tolerates. Default 5 s.
    pub silence_grace: Duration,
    /// The largest frame body accepted from the server. Default 4096.
    pub max_frame_len: u32,
}

impl ClientConfig {
    /// A configuration with the defaults.
    pub fn new(player_id: PlayerId, secret: PlayerSecret) -> Self {
        Self {
            player_id,
            secret,
            software: String::new(),
            login_timeout: Duration::from_secs(10),
            silence_grace: Duration::from_secs(5),
            max_frame_len: 4096,
        }
    }
}

/// Where the client is in the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientState {
    /// Hello sent, waiting for the server's nonce.
    AwaitingChallenge,
    /// Proof sent, waiting for the verdict.
    AwaitingWelcome,
    /// Logged in; heartbeats flow.
    Online,
    /// Ended; see the `Closed` event.
    Closed,
}

/// What happened, for the player application.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// The server accepted the login.
    LoggedIn {
        /// The heartbeat interval the server set.
        heartbeat_interval: Duration,
    },
    /// The server acknowledged a heartbeat.
    HeartbeatAcked {
        /// The heartbeat's sequence number.
        seq: u64,
        /// Time from sending the heartbeat to its acknowledgement.
        rtt: Duration,
    },
    /// The server holds a configuration that differs from the one in the player's status: fetch
    /// it, then report its hash with [`Client::set_status`].
    ConfigChanged {
        /// The server's configuration hash.
        hash: ConfigHash,
    },
    /// A sealed command datagram arrived over the session (the UDP fallback): hand it to the
    /// fleetwire-command player machine.
    CommandDatagram {
        /// The datagram, opaque to the session.
        datagram: Vec<u8>,
    },
    /// The session ended. Always the last event, exactly once.
    Closed {
        /// Why.
        reason: SessionError,
    },
}

/// The player's login + heartbeat machine. One per connection; on `Closed`, wait out a
/// [`crate::Backoff`] delay and make a new one.
#[derive(Debug)]
pub struct Client {
    config: Arc<ClientConfig>,
    binding: ChannelBinding,
    link: Link,
    state: ClientState,
    started: Instant,
    interval: Duration,
    seq: u64,
    outstanding: Option<(u64, Instant)>,
    status: PlayerStatus,
    announced: Option<ConfigHash>,
    login_nonce: Option<[u8; 32]>,
    events: VecDeque<ClientEvent>,
}

impl Client {
    /// Starts a session: the first `poll_transmit` yields the Hello. `binding` is the TLS
    /// exporter value ([`ChannelBinding::NONE`] without TLS); both sides must use the same.
    pub fn new(config: Arc<ClientConfig>, now: Instant, binding: ChannelBinding) -> Self {
        let mut link = Link::new(now, config.max_frame_len);
        link.send(
            now,
            &Message::Hello {
                player_id: config.player_id,
                software: config.software.clone(),
            },
        );
        Self {
            config,
            binding,
            link,
            state: ClientState::AwaitingChallenge,
            started: now,
            interval: Duration::ZERO,
            seq: 0,
            outstanding: None,
            status: PlayerStatus::default(),
            announced: None,
            login_nonce: None,
            events: VecDeque::new(),
        }
    }

    /// Feeds bytes received from the server. On a fatal error, returns it once, queues the
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

    /// Lets time pass: sends a due heartbeat, or ends the session on a timeout. Early calls do
    /// nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            ClientState::Closed => {}
            ClientState::AwaitingChallenge | ClientState::AwaitingWelcome => {
                if now >= self.started + self.config.login_timeout {
                    let ms = millis(self.config.login_timeout);
                    self.close_with(now, SessionError::LoginTimeout(ms));
                }
            }
            ClientState::Online => {
                let limit = self.silence_limit();
                if now >= self.link.last_rx + limit {
                    self.close_with(now, SessionError::PeerSilent(millis(limit)));
                } else if now >= self.link.last_tx + self.interval {
                    self.send_heartbeat(now);
                }
            }
        }
    }

    /// Sets the status carried by the next heartbeat. Text fields are at most 64 bytes.
    pub fn set_status(&mut self, status: PlayerStatus) -> Result<(), ApiMisuse> {
        check_text("content", &status.content)?;
        check_text("versions", &status.versions)?;
        if status.config_hash.is_some() && status.config_hash == self.announced {
            self.announced = None;
        }
        self.status = status;
        Ok(())
    }

    /// Sends a heartbeat now (for example right after the status changed).
    pub fn heartbeat_now(&mut self, now: Instant) -> Result<(), ApiMisuse> {
        match self.state {
            ClientState::Online => {
                self.send_heartbeat(now);
                Ok(())
            }
            ClientState::Closed => Err(ApiMisuse::Closed),
            _ => Err(ApiMisuse::NotOnline),
        }
    }

    /// Closes the session in an orderly way (shutdown, restart).
    pub fn close(&mut self, now: Instant, message: &str) -> Result<(), ApiMisuse> {
        if message.len() > crate::MAX_CLOSE_MESSAGE_LEN {
            return Err(ApiMisuse::TooLong {
                field: "message",
                len: message.len(),
                max: crate::MAX_CLOSE_MESSAGE_LEN,
            });
        }
        if self.state == ClientState::Closed {
            return Err(ApiMisuse::Closed);
        }
        self.close_with(
            now,
            SessionError::LocalClose {
                code: CloseCode::Normal,
                message: message.to_owned(),
            },
        );
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

    /// When to call [`Client::handle_timeout`] next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            ClientState::Closed => None,
            ClientState::Online => Some(
                (self.link.last_tx + self.interval).min(self.link.last_rx + self.silence_limit()),
            ),
            _ => Some(self.started + self.config.login_timeout),
        }
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// Where the session is.
    pub fn state(&self) -> ClientState {
        self.state
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.link.stats
    }

    /// The heartbeat interval set by the server (zero before login).
    pub fn heartbeat_interval(&self) -> Duration {
        self.interval
    }

    /// The server's login nonce, once logged in (`None` before): with
    /// [`Client::channel_binding`] it keys the per-login command key (fleetwire-command's
    /// `CommandKey::derive`), so every new login rotates that key.
    pub fn login_nonce(&self) -> Option<[u8; 32]> {
        self.login_nonce
            .filter(|_| self.state == ClientState::Online)
    }

    /// The channel binding this session was created with.
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
        check_datagram(datagram)?;
        match self.state {
            ClientState::Online => {
                self.link.send(
                    now,
                    &Message::CommandDatagram {
                        datagram: datagram.to_vec(),
                    },
                );
                Ok(())
            }
            ClientState::Closed => Err(ApiMisuse::Closed),
            _ => Err(ApiMisuse::NotOnline),
        }
    }

    fn silence_limit(&self) -> Duration {
        self.interval * 3 / 2 + self.config.silence_grace
    }

    fn on_message(&mut self, now: Instant, msg: Message) -> Result<(), SessionError> {
        match (self.state, msg) {
            (_, Message::Close { code, message }) => Err(match code {
                CloseCode::AuthFailed => SessionError::AuthFailed,
                CloseCode::NotApproved => {
                    SessionError::NotApproved(self.config.player_id.to_string())
                }
                code => SessionError::PeerClosed { code, message },
            }),
            (ClientState::AwaitingChallenge, Message::Challenge { nonce }) => {
                let signature =
                    self.config
                        .secret
                        .sign_login(&self.config.player_id, &nonce, &self.binding);
                self.login_nonce = Some(nonce);
                self.link.send(now, &Message::Proof { signature });
                self.state = ClientState::AwaitingWelcome;
                Ok(())
            }
            (
                ClientState::AwaitingWelcome,
                Message::Welcome {
                    heartbeat_interval_ms,
                    config_hash,
                },
            ) => {
                if heartbeat_interval_ms == 0 {
                    return Err(SessionError::Unexpected("heartbeat interval of zero"));
                }
                self.interval = Duration::from_millis(u64::from(heartbeat_interval_ms));
                self.state = ClientState::Online;
                self.link.last_tx = now;
                self.events.push_back(ClientEvent::LoggedIn {
                    heartbeat_interval: self.interval,
                });
                self.note_config(config_hash);
                Ok(())
            }
            (ClientState::Online, Message::HeartbeatAck { seq, config_hash }) => {
                if let Some((sent_seq, sent_at)) = self.outstanding {
                    if sent_seq == seq {
                        let rtt = now.saturating_duration_since(sent_at);
                        self.link.stats.last_rtt = Some(rtt);
                        self.outstanding = None;
                        self.events
                            .push_back(ClientEvent::HeartbeatAcked { seq, rtt });
                    }
                }
                if seq > self.seq {
                    return Err(SessionError::Unexpected(
                        "acknowledgement of an unsent heartbeat",
                    ));
                }
                self.note_config(config_hash);
                Ok(())
            }
            (ClientState::Online, Message::CommandDatagram { datagram }) => {
                self.events
                    .push_back(ClientEvent::CommandDatagram { datagram });
                Ok(())
            }
            (ClientState::AwaitingChallenge, _) => Err(SessionError::Unexpected(
                "expected a challenge before anything else",
            )),
            (ClientState::AwaitingWelcome, _) => Err(SessionError::Unexpected(
                "expected a welcome or a close after the proof",
            )),
            _ => Err(SessionError::Unexpected("message not valid while online")),
        }
    }

    fn note_config(&mut self, hash: Option<ConfigHash>) {
        if let Some(hash) = hash {
            if Some(hash) != self.status.config_hash && Some(hash) != self.announced {
                self.announced = Some(hash);
                self.events.push_back(ClientEvent::ConfigChanged { hash });
            }
        }
    }

    fn send_heartbeat(&mut self, now: Instant) {
        self.seq += 1;
        self.outstanding = Some((self.seq, now));
        self.link.stats.heartbeats += 1;
        let msg = Message::Heartbeat {
            seq: self.seq,
            status: self.status.clone(),
        };
        self.link.send(now, &msg);
    }

    fn close_with(&mut self, now: Instant, reason: SessionError) {
        if self.link.close(now, reason.clone()) {
            self.state = ClientState::Closed;
            self.events.push_back(ClientEvent::Closed { reason });
        }
    }
}

pub(crate) fn check_datagram(datagram: &[u8]) -> Result<(), ApiMisuse> {
    if datagram.len() > crate::MAX_COMMAND_DATAGRAM_LEN {
        return Err(ApiMisuse::TooLong {
            field: "command datagram",
            len: datagram.len(),
            max: crate::MAX_COMMAND_DATAGRAM_LEN,
        });
    }
    Ok(())
}

pub(crate) fn check_text(field: &'static str, s: &str) -> Result<(), ApiMisuse> {
    if s.len() > MAX_TEXT_LEN {
        return Err(ApiMisuse::TooLong {
            field,
            len: s.len(),
            max: MAX_TEXT_LEN,
        });
    }
    Ok(())
}
