//! Player login and heartbeat (fleetwire-session), as conversions only.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use fleetwire_session as fs;

use crate::{ApiMisuseError, Clock, DecodeError, InvalidInputError, array, lock, ms_of};

/// Why a session ended, thrown by `handleInput` (the same reason also arrives as the `Closed`
/// event). The message is the Rust one.
#[derive(Debug, Clone, thiserror::Error, uniffi::Error)]
#[uniffi(flat_error)]
pub enum SessionError {
    /// The peer sent bytes that are not a valid frame or message.
    #[error("{0}")]
    BadFrame(String),
    /// The peer sent a valid message not allowed in the current state.
    #[error("{0}")]
    ProtocolViolation(String),
    /// The peer speaks another protocol version.
    #[error("{0}")]
    VersionMismatch(String),
    /// Unknown player or wrong secret (deliberately not told apart).
    #[error("{0}")]
    AuthFailed(String),
    /// The player waits for administrator approval.
    #[error("{0}")]
    NotApproved(String),
    /// Login did not complete in time.
    #[error("{0}")]
    LoginTimeout(String),
    /// Nothing arrived from the peer for too long.
    #[error("{0}")]
    PeerSilent(String),
    /// The transport ended (the peer closed it or it broke) without a close message.
    #[error("{0}")]
    ConnectionLost(String),
    /// The peer closed the session.
    #[error("{0}")]
    PeerClosed(String),
    /// This side closed the session.
    #[error("{0}")]
    LocalClose(String),
    /// A reason this binding does not know yet.
    #[error("{0}")]
    Other(String),
}

/// The kind of a [`CloseReason`], one per `SessionException` subclass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum CloseKind {
    BadFrame,
    ProtocolViolation,
    VersionMismatch,
    AuthFailed,
    NotApproved,
    LoginTimeout,
    PeerSilent,
    ConnectionLost,
    PeerClosed,
    LocalClose,
    Other,
}

/// Why a session ended, as carried by the `Closed` event.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CloseReason {
    /// Which reason.
    pub kind: CloseKind,
    /// The Rust message, for people.
    pub message: String,
    /// The close code byte, for `PeerClosed` and `LocalClose`.
    pub code: Option<u8>,
}

fn close_reason(e: &fs::SessionError) -> CloseReason {
    let (kind, code) = match e {
        fs::SessionError::Decode(_) => (CloseKind::BadFrame, None),
        fs::SessionError::Unexpected(_) | fs::SessionError::HeartbeatFlood { .. } => {
            (CloseKind::ProtocolViolation, None)
        }
        fs::SessionError::VersionMismatch { .. } => (CloseKind::VersionMismatch, None),
        fs::SessionError::AuthFailed => (CloseKind::AuthFailed, None),
        fs::SessionError::NotApproved(_) => (CloseKind::NotApproved, None),
        fs::SessionError::LoginTimeout(_) => (CloseKind::LoginTimeout, None),
        fs::SessionError::PeerSilent(_) => (CloseKind::PeerSilent, None),
        fs::SessionError::ConnectionLost => (CloseKind::ConnectionLost, None),
        fs::SessionError::PeerClosed { code, .. } => (CloseKind::PeerClosed, Some(code.to_byte())),
        fs::SessionError::LocalClose { code, .. } => (CloseKind::LocalClose, Some(code.to_byte())),
        _ => (CloseKind::Other, None),
    };
    CloseReason {
        kind,
        message: e.to_string(),
        code,
    }
}

impl From<fs::SessionError> for SessionError {
    fn from(e: fs::SessionError) -> Self {
        let reason = close_reason(&e);
        let m = reason.message;
        match reason.kind {
            CloseKind::BadFrame => Self::BadFrame(m),
            CloseKind::ProtocolViolation => Self::ProtocolViolation(m),
            CloseKind::VersionMismatch => Self::VersionMismatch(m),
            CloseKind::AuthFailed => Self::AuthFailed(m),
            CloseKind::NotApproved => Self::NotApproved(m),
            CloseKind::LoginTimeout => Self::LoginTimeout(m),
            CloseKind::PeerSilent => Self::PeerSilent(m),
            CloseKind::ConnectionLost => Self::ConnectionLost(m),
            CloseKind::PeerClosed => Self::PeerClosed(m),
            CloseKind::LocalClose => Self::LocalClose(m),
            CloseKind::Other => Self::Other(m),
        }
    }
}

impl From<fs::ApiMisuse> for ApiMisuseError {
    fn from(e: fs::ApiMisuse) -> Self {
        let m = e.to_string();
        match e {
            fs::ApiMisuse::NotOnline => Self::NotOnline(m),
            fs::ApiMisuse::NoLookupPending => Self::NoLookupPending(m),
            fs::ApiMisuse::Closed => Self::Closed(m),
            fs::ApiMisuse::TooLong { .. } => Self::TooLong(m),
            _ => Self::Other(m),
        }
    }
}

fn parse_error(e: &fs::ParseIdError) -> InvalidInputError {
    InvalidInputError::Parse(e.to_string())
}

fn binding(bytes: Option<Vec<u8>>) -> Result<fs::ChannelBinding, InvalidInputError> {
    bytes.map_or(Ok(fs::ChannelBinding::NONE), |b| {
        array("channel_binding", &b).map(fs::ChannelBinding)
    })
}

fn hash_in(hash: Option<Vec<u8>>) -> Result<Option<fs::ConfigHash>, InvalidInputError> {
    hash.map(|h| array("config_hash", &h).map(fs::ConfigHash))
        .transpose()
}

fn hash_out(hash: Option<fs::ConfigHash>) -> Option<Vec<u8>> {
    hash.map(|h| h.0.to_vec())
}

// ---------------------------------------------------------------------------------------------
// Identity

/// A player's 128-bit security identifier; `toString()` prints `0a1b2c3d-4e5f6071-...`.
#[derive(Debug, PartialEq, Eq, Hash, uniffi::Object)]
#[uniffi::export(Display, Eq, Hash)]
pub struct PlayerId {
    inner: fs::PlayerId,
}

impl std::fmt::Display for PlayerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

#[uniffi::export]
impl PlayerId {
    /// An identifier from 16 random bytes.
    #[uniffi::constructor]
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Arc<Self>, InvalidInputError> {
        Ok(Arc::new(Self {
            inner: fs::PlayerId::from_bytes(array("player_id", &bytes)?),
        }))
    }

    /// Parses the printed form.
    #[uniffi::constructor]
    pub fn parse(text: String) -> Result<Arc<Self>, InvalidInputError> {
        let inner = text.parse().map_err(|e| parse_error(&e))?;
        Ok(Arc::new(Self { inner }))
    }

    /// The raw 16 bytes.
    pub fn bytes(&self) -> Vec<u8> {
        self.inner.as_bytes().to_vec()
    }
}

/// The per-player secret (an Ed25519 seed). It never crosses the wire.
#[derive(Debug, uniffi::Object)]
pub struct PlayerSecret {
    inner: fs::PlayerSecret,
}

#[uniffi::export]
impl PlayerSecret {
    /// A secret from 32 random bytes.
    #[uniffi::constructor]
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Arc<Self>, InvalidInputError> {
        Ok(Arc::new(Self {
            inner: fs::PlayerSecret::from_bytes(array("secret", &bytes)?),
        }))
    }

    /// Parses the 64-hex-digit form.
    #[uniffi::constructor]
    pub fn parse(text: String) -> Result<Arc<Self>, InvalidInputError> {
        let inner = text.parse().map_err(|e| parse_error(&e))?;
        Ok(Arc::new(Self { inner }))
    }

    /// The raw 32 bytes, for storing on the player.
    pub fn bytes(&self) -> Vec<u8> {
        self.inner.as_bytes().to_vec()
    }

    /// The hex form, to show once at provisioning.
    pub fn hex(&self) -> String {
        self.inner.to_hex()
    }

    /// The verifier the server keeps instead of the secret.
    pub fn verifier(&self) -> Arc<PlayerVerifier> {
        Arc::new(PlayerVerifier {
            inner: self.inner.verifier(),
        })
    }
}

/// What the server stores for a player: the public key of its secret; `toString()` is hex.
#[derive(Debug, PartialEq, Eq, Hash, uniffi::Object)]
#[uniffi::export(Display, Eq, Hash)]
pub struct PlayerVerifier {
    inner: fs::PlayerVerifier,
}

impl std::fmt::Display for PlayerVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

#[uniffi::export]
impl PlayerVerifier {
    /// A verifier from its 32 stored bytes.
    #[uniffi::constructor]
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Arc<Self>, InvalidInputError> {
        Ok(Arc::new(Self {
            inner: fs::PlayerVerifier::from_bytes(array("verifier", &bytes)?),
        }))
    }

    /// Parses the 64-hex-digit form.
    #[uniffi::constructor]
    pub fn parse(text: String) -> Result<Arc<Self>, InvalidInputError> {
        let inner = text.parse().map_err(|e| parse_error(&e))?;
        Ok(Arc::new(Self { inner }))
    }

    /// The raw 32 bytes.
    pub fn bytes(&self) -> Vec<u8> {
        self.inner.as_bytes().to_vec()
    }
}

/// The status a player reports in every heartbeat. `config_hash` is 32 bytes or null.
#[derive(Debug, Clone, PartialEq, Eq, Default, uniffi::Record)]
pub struct PlayerStatus {
    /// What the player is showing now, at most 64 bytes.
    #[uniffi(default = "")]
    pub content: String,
    /// Free storage on the player, in bytes.
    #[uniffi(default = 0)]
    pub free_storage_bytes: u64,
    /// Software versions, at most 64 bytes.
    #[uniffi(default = "")]
    pub versions: String,
    /// The configuration the player holds (32 bytes).
    #[uniffi(default = None)]
    pub config_hash: Option<Vec<u8>>,
}

impl PlayerStatus {
    fn to_core(&self) -> Result<fs::PlayerStatus, InvalidInputError> {
        Ok(fs::PlayerStatus {
            content: self.content.clone(),
            free_storage_bytes: self.free_storage_bytes,
            versions: self.versions.clone(),
            config_hash: hash_in(self.config_hash.clone())?,
        })
    }

    fn from_core(s: fs::PlayerStatus) -> Self {
        Self {
            content: s.content,
            free_storage_bytes: s.free_storage_bytes,
            versions: s.versions,
            config_hash: hash_out(s.config_hash),
        }
    }
}

/// Counters for one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct Stats {
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub messages_in: u64,
    pub messages_out: u64,
    pub heartbeats: u64,
    /// The last heartbeat round-trip time, in whole ms.
    pub last_rtt_ms: Option<u64>,
}

impl From<fs::Stats> for Stats {
    fn from(s: fs::Stats) -> Self {
        Self {
            bytes_in: s.bytes_in,
            bytes_out: s.bytes_out,
            messages_in: s.messages_in,
            messages_out: s.messages_out,
            heartbeats: s.heartbeats,
            last_rtt_ms: s.last_rtt.map(ms_of),
        }
    }
}

/// The description of a close code byte (`closeCodeDescribe(7u)` is "replaced by a newer
/// connection").
#[uniffi::export]
pub fn close_code_describe(code: u8) -> String {
    fs::CloseCode::from_byte(code).to_string()
}

/// The protocol version this build speaks.
#[uniffi::export]
pub fn session_protocol_version() -> u8 {
    fs::PROTOCOL_VERSION
}

// ---------------------------------------------------------------------------------------------
// Messages

/// One session message. Byte fields have fixed lengths: `player_id` 16, `nonce` 32,
/// `signature` 64, config hashes 32. `code` is the close code byte.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum Message {
    Hello {
        player_id: Vec<u8>,
        software: String,
    },
    Challenge {
        nonce: Vec<u8>,
    },
    Proof {
        signature: Vec<u8>,
    },
    Welcome {
        heartbeat_interval_ms: u32,
        config_hash: Option<Vec<u8>>,
    },
    Close {
        code: u8,
        message: String,
    },
    Heartbeat {
        seq: u64,
        status: PlayerStatus,
    },
    HeartbeatAck {
        seq: u64,
        config_hash: Option<Vec<u8>>,
    },
}

impl Message {
    fn to_core(&self) -> Result<fs::Message, InvalidInputError> {
        Ok(match self.clone() {
            Message::Hello {
                player_id,
                software,
            } => fs::Message::Hello {
                player_id: fs::PlayerId::from_bytes(array("player_id", &player_id)?),
                software,
            },
            Message::Challenge { nonce } => fs::Message::Challenge {
                nonce: array("nonce", &nonce)?,
            },
            Message::Proof { signature } => fs::Message::Proof {
                signature: array("signature", &signature)?,
            },
            Message::Welcome {
                heartbeat_interval_ms,
                config_hash,
            } => fs::Message::Welcome {
                heartbeat_interval_ms,
                config_hash: hash_in(config_hash)?,
            },
            Message::Close { code, message } => fs::Message::Close {
                code: fs::CloseCode::from_byte(code),
                message,
            },
            Message::Heartbeat { seq, status } => fs::Message::Heartbeat {
                seq,
                status: status.to_core()?,
            },
            Message::HeartbeatAck { seq, config_hash } => fs::Message::HeartbeatAck {
                seq,
                config_hash: hash_in(config_hash)?,
            },
        })
    }

    fn from_core(m: fs::Message) -> Result<Self, DecodeError> {
        Ok(match m {
            fs::Message::Hello {
                player_id,
                software,
            } => Message::Hello {
                player_id: player_id.as_bytes().to_vec(),
                software,
            },
            fs::Message::Challenge { nonce } => Message::Challenge {
                nonce: nonce.to_vec(),
            },
            fs::Message::Proof { signature } => Message::Proof {
                signature: signature.to_vec(),
            },
            fs::Message::Welcome {
                heartbeat_interval_ms,
                config_hash,
            } => Message::Welcome {
                heartbeat_interval_ms,
                config_hash: hash_out(config_hash),
            },
            fs::Message::Close { code, message } => Message::Close {
                code: code.to_byte(),
                message,
            },
            fs::Message::Heartbeat { seq, status } => Message::Heartbeat {
                seq,
                status: PlayerStatus::from_core(status),
            },
            fs::Message::HeartbeatAck { seq, config_hash } => Message::HeartbeatAck {
                seq,
                config_hash: hash_out(config_hash),
            },
            other => {
                return Err(DecodeError::Malformed(format!(
                    "message {other:?} is not supported by this binding"
                )));
            }
        })
    }
}

/// The whole frame of a message: `version:u8 | type:u8 | length:u32be | body`.
#[uniffi::export]
pub fn message_encode_frame(message: Message) -> Result<Vec<u8>, InvalidInputError> {
    let mut out = Vec::new();
    message.to_core()?.encode_frame(&mut out);
    Ok(out)
}

/// The body of a message, without the frame header.
#[uniffi::export]
pub fn message_encode_body(message: Message) -> Result<Vec<u8>, InvalidInputError> {
    let mut out = Vec::new();
    message.to_core()?.encode_body(&mut out);
    Ok(out)
}

/// The type byte of a message.
#[uniffi::export]
pub fn message_type(message: Message) -> Result<u8, InvalidInputError> {
    Ok(message.to_core()?.msg_type())
}

/// Decodes a frame body of the given message type (the frame header already removed).
#[uniffi::export]
pub fn message_decode(msg_type: u8, body: Vec<u8>) -> Result<Message, DecodeError> {
    let m =
        fs::Message::decode(msg_type, &body).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    Message::from_core(m)
}

// ---------------------------------------------------------------------------------------------
// Events

/// What happened, for the player application.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum ClientEvent {
    /// The server accepted the login.
    LoggedIn { heartbeat_interval_ms: u64 },
    /// The server acknowledged a heartbeat.
    HeartbeatAcked { seq: u64, rtt_ms: u64 },
    /// The server holds another configuration (32-byte hash): fetch it, then `setStatus`.
    ConfigChanged { hash: Vec<u8> },
    /// The session ended; always the last event, exactly once.
    Closed { reason: CloseReason },
    /// An event this binding does not know yet.
    Other { description: String },
}

/// What happened, for the server application.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum ServerEvent {
    /// Look the player (16-byte id) up and answer with `resolvePlayer`.
    LookupPlayer {
        player_id: Vec<u8>,
        software: String,
    },
    /// The player proved its identity and is approved.
    LoggedIn { player_id: Vec<u8> },
    /// A heartbeat arrived (already acknowledged).
    Heartbeat {
        player_id: Vec<u8>,
        seq: u64,
        status: PlayerStatus,
    },
    /// The connection ended; always the last event, exactly once.
    Closed { reason: CloseReason },
    /// An event this binding does not know yet.
    Other { description: String },
}

/// Presence changes.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum PresenceEvent {
    Online {
        player_id: Vec<u8>,
    },
    Offline {
        player_id: Vec<u8>,
        last_seen_ms: u64,
    },
    Other {
        description: String,
    },
}

/// Where a client or server connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum SessionState {
    /// Client: Hello sent, waiting for the challenge.
    AwaitingChallenge,
    /// Client: proof sent, waiting for the verdict.
    AwaitingWelcome,
    /// Server: waiting for the Hello.
    AwaitingHello,
    /// Server: challenge sent, waiting for the proof and the lookup.
    AwaitingProof,
    Online,
    Closed,
    /// A state this binding does not know yet.
    Other,
}

// ---------------------------------------------------------------------------------------------
// Machines

/// Optional client settings; null keeps the core default.
#[derive(Debug, Clone, Default, uniffi::Record)]
pub struct ClientOptions {
    #[uniffi(default = None)]
    pub login_timeout_ms: Option<u64>,
    #[uniffi(default = None)]
    pub silence_grace_ms: Option<u64>,
    #[uniffi(default = None)]
    pub max_frame_len: Option<u32>,
}

struct ClientInner {
    machine: fs::Client,
    clock: Clock,
}

/// The player's login + heartbeat machine, one per connection. After every input drain
/// `pollTransmit` and `pollEvent` until null; call `handleTimeout` at `pollTimeout()`.
#[derive(uniffi::Object)]
pub struct Client {
    inner: Mutex<ClientInner>,
}

#[uniffi::export]
impl Client {
    /// Starts a session; the first `pollTransmit` yields the Hello. `channelBinding` is the
    /// 32-byte TLS exporter value, null without TLS.
    #[uniffi::constructor(default(channel_binding = None, options = None))]
    pub fn new(
        player_id: Arc<PlayerId>,
        secret: Arc<PlayerSecret>,
        software: String,
        now_ms: u64,
        channel_binding: Option<Vec<u8>>,
        options: Option<ClientOptions>,
    ) -> Result<Arc<Self>, InvalidInputError> {
        let mut config = fs::ClientConfig::new(player_id.inner, secret.inner.clone());
        config.software = software;
        let options = options.unwrap_or_default();
        if let Some(ms) = options.login_timeout_ms {
            config.login_timeout = Duration::from_millis(ms);
        }
        if let Some(ms) = options.silence_grace_ms {
            config.silence_grace = Duration::from_millis(ms);
        }
        if let Some(len) = options.max_frame_len {
            config.max_frame_len = len;
        }
        let mut clock = Clock::new(now_ms);
        let now = clock.at(now_ms);
        let machine = fs::Client::new(Arc::new(config), now, binding(channel_binding)?);
        Ok(Arc::new(Self {
            inner: Mutex::new(ClientInner { machine, clock }),
        }))
    }

    /// Feeds bytes from the server; throws once on a fatal error (a `Closed` event follows).
    pub fn handle_input(&self, now_ms: u64, data: Vec<u8>) -> Result<(), SessionError> {
        let mut g = lock(&self.inner);
        let now = g.clock.at(now_ms);
        g.machine
            .handle_input(now, &data)
            .map_err(SessionError::from)
    }

    /// Lets time pass; early calls do nothing.
    pub fn handle_timeout(&self, now_ms: u64) {
        let mut g = lock(&self.inner);
        let now = g.clock.at(now_ms);
        g.machine.handle_timeout(now);
    }

    /// The transport ended (the peer closed it or it broke) without a close message: the
    /// session closes with `ConnectionLost` (no-op if already closed).
    pub fn handle_close(&self, now_ms: u64) {
        let mut g = lock(&self.inner);
        let now = g.clock.at(now_ms);
        g.machine.handle_close(now);
    }

    /// Sets the status carried by the next heartbeat.
    pub fn set_status(&self, status: PlayerStatus) -> Result<(), ApiMisuseError> {
        let status = status
            .to_core()
            .map_err(|e| ApiMisuseError::Other(e.to_string()))?;
        lock(&self.inner)
            .machine
            .set_status(status)
            .map_err(ApiMisuseError::from)
    }

    /// Sends a heartbeat now.
    pub fn heartbeat_now(&self, now_ms: u64) -> Result<(), ApiMisuseError> {
        let mut g = lock(&self.inner);
        let now = g.clock.at(now_ms);
        g.machine.heartbeat_now(now).map_err(ApiMisuseError::from)
    }

    /// Closes the session in an orderly way.
    #[uniffi::method(default(message = ""))]
    pub fn close_session(&self, now_ms: u64, message: String) -> Result<(), ApiMisuseError> {
        let mut g = lock(&self.inner);
        let now = g.clock.at(now_ms);
        g.machine.close(now, &message).map_err(ApiMisuseError::from)
    }

    /// The bytes to send to the server, or null.
    pub fn poll_transmit(&self) -> Option<Vec<u8>> {
        let mut buf = Vec::new();
        lock(&self.inner)
            .machine
            .poll_transmit(&mut buf)
            .map(|_| buf)
    }

    /// When to call `handleTimeout` next, in host ms, or null.
    pub fn poll_timeout(&self) -> Option<u64> {
        let g = lock(&self.inner);
        g.machine.poll_timeout().map(|t| g.clock.ms(t))
    }

    /// The next event, or null.
    pub fn poll_event(&self) -> Option<ClientEvent> {
        let event = lock(&self.inner).machine.poll_event()?;
        Some(match event {
            fs::ClientEvent::LoggedIn { heartbeat_interval } => ClientEvent::LoggedIn {
                heartbeat_interval_ms: ms_of(heartbeat_interval),
            },
            fs::ClientEvent::HeartbeatAcked { seq, rtt } => ClientEvent::HeartbeatAcked {
                seq,
                rtt_ms: ms_of(rtt),
            },
            fs::ClientEvent::ConfigChanged { hash } => ClientEvent::ConfigChanged {
                hash: hash.0.to_vec(),
            },
            fs::ClientEvent::Closed { reason } => ClientEvent::Closed {
                reason: close_reason(&reason),
            },
            other => ClientEvent::Other {
                description: format!("{other:?}"),
            },
        })
    }

    pub fn state(&self) -> SessionState {
        match lock(&self.inner).machine.state() {
            fs::ClientState::AwaitingChallenge => SessionState::AwaitingChallenge,
            fs::ClientState::AwaitingWelcome => SessionState::AwaitingWelcome,
            fs::ClientState::Online => SessionState::Online,
            fs::ClientState::Closed => SessionState::Closed,
            _ => SessionState::Other,
        }
    }

    pub fn stats(&self) -> Stats {
        lock(&self.inner).machine.stats().into()
    }

    /// The heartbeat interval set by the server, in ms (0 before login).
    pub fn heartbeat_interval_ms(&self) -> u64 {
        ms_of(lock(&self.inner).machine.heartbeat_interval())
    }
}

/// Optional server settings; null keeps the core default.
#[derive(Debug, Clone, Default, uniffi::Record)]
pub struct ServerOptions {
    #[uniffi(default = None)]
    pub heartbeat_interval_ms: Option<u64>,
    #[uniffi(default = None)]
    pub silence_grace_ms: Option<u64>,
    #[uniffi(default = None)]
    pub login_timeout_ms: Option<u64>,
    #[uniffi(default = None)]
    pub max_frame_len: Option<u32>,
}

struct ServerInner {
    machine: fs::ServerConnection,
    clock: Clock,
}

/// One player connection on the server side.
#[derive(uniffi::Object)]
pub struct ServerConnection {
    inner: Mutex<ServerInner>,
}

#[uniffi::export]
impl ServerConnection {
    /// `nonce` must be 32 fresh random bytes (`SecureRandom`).
    #[uniffi::constructor(default(channel_binding = None, options = None))]
    pub fn new(
        nonce: Vec<u8>,
        now_ms: u64,
        channel_binding: Option<Vec<u8>>,
        options: Option<ServerOptions>,
    ) -> Result<Arc<Self>, InvalidInputError> {
        let mut config = fs::ServerConfig::default();
        let options = options.unwrap_or_default();
        if let Some(ms) = options.heartbeat_interval_ms {
            config.heartbeat_interval = Duration::from_millis(ms);
        }
        if let Some(ms) = options.silence_grace_ms {
            config.silence_grace = Duration::from_millis(ms);
        }
        if let Some(ms) = options.login_timeout_ms {
            config.login_timeout = Duration::from_millis(ms);
        }
        if let Some(len) = options.max_frame_len {
            config.max_frame_len = len;
        }
        let mut clock = Clock::new(now_ms);
        let now = clock.at(now_ms);
        let machine = fs::ServerConnection::new(
            Arc::new(config),
            now,
            array("nonce", &nonce)?,
            binding(channel_binding)?,
        );
        Ok(Arc::new(Self {
            inner: Mutex::new(ServerInner { machine, clock }),
        }))
    }

    /// Feeds bytes from the player; throws once on a fatal error (a `Closed` event follows).
    pub fn handle_input(&self, now_ms: u64, data: Vec<u8>) -> Result<(), SessionError> {
        let mut g = lock(&self.inner);
        let now = g.clock.at(now_ms);
        g.machine
            .handle_input(now, &data)
            .map_err(SessionError::from)
    }

    /// Lets time pass; early calls do nothing.
    pub fn handle_timeout(&self, now_ms: u64) {
        let mut g = lock(&self.inner);
        let now = g.clock.at(now_ms);
        g.machine.handle_timeout(now);
    }

    /// The transport ended (the peer closed it or it broke) without a close message: the
    /// session closes with `ConnectionLost` (no-op if already closed).
    pub fn handle_close(&self, now_ms: u64) {
        let mut g = lock(&self.inner);
        let now = g.clock.at(now_ms);
        g.machine.handle_close(now);
    }

    /// Answers a `LookupPlayer` event; a null verifier means unknown player (the login then
    /// fails exactly as with a wrong secret).
    #[uniffi::method(default(config_hash = None))]
    pub fn resolve_player(
        &self,
        now_ms: u64,
        verifier: Option<Arc<PlayerVerifier>>,
        approved: bool,
        config_hash: Option<Vec<u8>>,
    ) -> Result<(), ApiMisuseError> {
        let config_hash = hash_in(config_hash).map_err(|e| ApiMisuseError::Other(e.to_string()))?;
        let lookup = match verifier {
            None => fs::PlayerLookup::Unknown,
            Some(v) => fs::PlayerLookup::Known {
                verifier: v.inner,
                approved,
                config_hash,
            },
        };
        let mut g = lock(&self.inner);
        let now = g.clock.at(now_ms);
        g.machine
            .resolve_player(now, lookup)
            .map_err(ApiMisuseError::from)
    }

    /// Sets the configuration hash (32 bytes or null) announced from now on.
    pub fn set_config_hash(&self, hash: Option<Vec<u8>>) -> Result<(), InvalidInputError> {
        let hash = hash_in(hash)?;
        lock(&self.inner).machine.set_config_hash(hash);
        Ok(())
    }

    /// Closes the connection, telling the player why (a close code byte).
    #[uniffi::method(default(message = ""))]
    pub fn close_session(
        &self,
        now_ms: u64,
        code: u8,
        message: String,
    ) -> Result<(), ApiMisuseError> {
        let mut g = lock(&self.inner);
        let now = g.clock.at(now_ms);
        g.machine
            .close(now, fs::CloseCode::from_byte(code), &message)
            .map_err(ApiMisuseError::from)
    }

    /// The bytes to send to the player, or null.
    pub fn poll_transmit(&self) -> Option<Vec<u8>> {
        let mut buf = Vec::new();
        lock(&self.inner)
            .machine
            .poll_transmit(&mut buf)
            .map(|_| buf)
    }

    /// When to call `handleTimeout` next, in host ms, or null.
    pub fn poll_timeout(&self) -> Option<u64> {
        let g = lock(&self.inner);
        g.machine.poll_timeout().map(|t| g.clock.ms(t))
    }

    /// The next event, or null.
    pub fn poll_event(&self) -> Option<ServerEvent> {
        let event = lock(&self.inner).machine.poll_event()?;
        Some(match event {
            fs::ServerEvent::LookupPlayer {
                player_id,
                software,
            } => ServerEvent::LookupPlayer {
                player_id: player_id.as_bytes().to_vec(),
                software,
            },
            fs::ServerEvent::LoggedIn { player_id } => ServerEvent::LoggedIn {
                player_id: player_id.as_bytes().to_vec(),
            },
            fs::ServerEvent::Heartbeat {
                player_id,
                seq,
                status,
            } => ServerEvent::Heartbeat {
                player_id: player_id.as_bytes().to_vec(),
                seq,
                status: PlayerStatus::from_core(status),
            },
            fs::ServerEvent::Closed { reason } => ServerEvent::Closed {
                reason: close_reason(&reason),
            },
            other => ServerEvent::Other {
                description: format!("{other:?}"),
            },
        })
    }

    pub fn state(&self) -> SessionState {
        match lock(&self.inner).machine.state() {
            fs::ServerState::AwaitingHello => SessionState::AwaitingHello,
            fs::ServerState::AwaitingProof => SessionState::AwaitingProof,
            fs::ServerState::Online => SessionState::Online,
            fs::ServerState::Closed => SessionState::Closed,
            _ => SessionState::Other,
        }
    }

    pub fn stats(&self) -> Stats {
        lock(&self.inner).machine.stats().into()
    }

    /// The player this connection claims to be (after Hello) or is (after login).
    pub fn player_id(&self) -> Option<Arc<PlayerId>> {
        lock(&self.inner)
            .machine
            .player_id()
            .map(|inner| Arc::new(PlayerId { inner }))
    }

    /// True once the player has proved its identity and is approved.
    pub fn is_authenticated(&self) -> bool {
        lock(&self.inner).machine.is_authenticated()
    }
}

struct PresenceInner {
    registry: fs::Presence,
    clock: Clock,
}

/// The fleet-wide registry of who is online.
#[derive(uniffi::Object)]
pub struct Presence {
    inner: Mutex<PresenceInner>,
}

#[uniffi::export]
impl Presence {
    /// A player silent for `timeoutMs` goes offline (within one `granularityMs` tick).
    #[uniffi::constructor(default(granularity_ms = None))]
    pub fn new(timeout_ms: u64, now_ms: u64, granularity_ms: Option<u64>) -> Arc<Self> {
        let mut config = fs::PresenceConfig::new(Duration::from_millis(timeout_ms));
        if let Some(ms) = granularity_ms {
            config.granularity = Duration::from_millis(ms);
        }
        let mut clock = Clock::new(now_ms);
        let now = clock.at(now_ms);
        Arc::new(Self {
            inner: Mutex::new(PresenceInner {
                registry: fs::Presence::new(config, now),
                clock,
            }),
        })
    }

    /// The player was heard from.
    pub fn seen(&self, now_ms: u64, player_id: Arc<PlayerId>) {
        let mut g = lock(&self.inner);
        let now = g.clock.at(now_ms);
        g.registry.seen(now, player_id.inner);
    }

    /// The player's connection closed.
    pub fn gone(&self, now_ms: u64, player_id: Arc<PlayerId>) {
        let mut g = lock(&self.inner);
        let now = g.clock.at(now_ms);
        g.registry.gone(now, player_id.inner);
    }

    /// Lets time pass.
    pub fn handle_timeout(&self, now_ms: u64) {
        let mut g = lock(&self.inner);
        let now = g.clock.at(now_ms);
        g.registry.handle_timeout(now);
    }

    /// When to call `handleTimeout` next, in host ms, or null.
    pub fn poll_timeout(&self) -> Option<u64> {
        let g = lock(&self.inner);
        g.registry.poll_timeout().map(|t| g.clock.ms(t))
    }

    /// The next event, or null.
    pub fn poll_event(&self) -> Option<PresenceEvent> {
        let mut g = lock(&self.inner);
        let event = g.registry.poll_event()?;
        Some(match event {
            fs::PresenceEvent::Online { player_id } => PresenceEvent::Online {
                player_id: player_id.as_bytes().to_vec(),
            },
            fs::PresenceEvent::Offline {
                player_id,
                last_seen,
            } => PresenceEvent::Offline {
                player_id: player_id.as_bytes().to_vec(),
                last_seen_ms: g.clock.ms(last_seen),
            },
            other => PresenceEvent::Other {
                description: format!("{other:?}"),
            },
        })
    }

    pub fn is_online(&self, player_id: Arc<PlayerId>) -> bool {
        lock(&self.inner).registry.is_online(&player_id.inner)
    }

    pub fn online_count(&self) -> u64 {
        lock(&self.inner).registry.online_count() as u64
    }
}

/// Reconnect delays: exponential with full jitter; `random` is 64 random bits from the host.
#[derive(uniffi::Object)]
pub struct Backoff {
    inner: Mutex<fs::Backoff>,
}

#[uniffi::export]
impl Backoff {
    /// Bounds in ms.
    #[uniffi::constructor]
    pub fn new(base_ms: u64, cap_ms: u64) -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(fs::Backoff::new(
                Duration::from_millis(base_ms),
                Duration::from_millis(cap_ms),
            )),
        })
    }

    /// The defaults (1 s doubling to 300 s).
    #[uniffi::constructor]
    pub fn with_defaults() -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(fs::Backoff::default()),
        })
    }

    /// The delay before the next attempt in whole ms (at most `ceilingMs()`); counts an attempt.
    pub fn next_delay_ms(&self, random: u64) -> u64 {
        ms_of(lock(&self.inner).next_delay(random))
    }

    /// The upper bound of the next delay, in ms.
    pub fn ceiling_ms(&self) -> u64 {
        ms_of(lock(&self.inner).ceiling())
    }

    pub fn attempts(&self) -> u32 {
        lock(&self.inner).attempts()
    }

    pub fn reset(&self) {
        lock(&self.inner).reset();
    }
}
