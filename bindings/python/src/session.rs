//! `fleetwire.session`: player login and heartbeat (fleetwire-session), as conversions only.

use std::sync::Arc;
use std::time::Duration;

use fleetwire_session as fs;
use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::{ApiMisuse, Clock, FleetwireError, ParseError, array, decode_error, ms_of};

create_exception!(
    fleetwire,
    SessionError,
    FleetwireError,
    "A session ended: the peer misbehaved, timed out or closed. Subclasses name the reason."
);
create_exception!(
    fleetwire,
    BadFrame,
    SessionError,
    "The peer sent bytes that are not a valid frame or message."
);
create_exception!(
    fleetwire,
    ProtocolViolation,
    SessionError,
    "The peer sent a valid message that is not allowed in the current state."
);
create_exception!(
    fleetwire,
    VersionMismatch,
    SessionError,
    "The peer speaks another protocol version."
);
create_exception!(
    fleetwire,
    AuthFailed,
    SessionError,
    "Unknown player or wrong secret (deliberately not told apart)."
);
create_exception!(
    fleetwire,
    NotApproved,
    SessionError,
    "The player authenticated but is waiting for administrator approval."
);
create_exception!(
    fleetwire,
    LoginTimeout,
    SessionError,
    "Login did not complete within the login deadline."
);
create_exception!(
    fleetwire,
    PeerSilent,
    SessionError,
    "Nothing arrived from the peer for longer than the silence limit."
);
create_exception!(
    fleetwire,
    ConnectionLost,
    SessionError,
    "The transport ended (the peer closed it or it broke) without a close message."
);
create_exception!(
    fleetwire,
    PeerClosed,
    SessionError,
    "The peer closed the session; `code` holds its close code."
);
create_exception!(
    fleetwire,
    LocalClose,
    SessionError,
    "This side closed the session; `code` holds the close code sent."
);

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("SessionError", py.get_type::<SessionError>())?;
    m.add("BadFrame", py.get_type::<BadFrame>())?;
    m.add("ProtocolViolation", py.get_type::<ProtocolViolation>())?;
    m.add("VersionMismatch", py.get_type::<VersionMismatch>())?;
    m.add("AuthFailed", py.get_type::<AuthFailed>())?;
    m.add("NotApproved", py.get_type::<NotApproved>())?;
    m.add("LoginTimeout", py.get_type::<LoginTimeout>())?;
    m.add("PeerSilent", py.get_type::<PeerSilent>())?;
    m.add("ConnectionLost", py.get_type::<ConnectionLost>())?;
    m.add("PeerClosed", py.get_type::<PeerClosed>())?;
    m.add("LocalClose", py.get_type::<LocalClose>())?;
    m.add("PROTOCOL_VERSION", fs::PROTOCOL_VERSION)?;
    m.add("MAX_TEXT_LEN", fs::MAX_TEXT_LEN)?;
    m.add(
        "CHANNEL_BINDING_LABEL",
        PyBytes::new(py, fs::CHANNEL_BINDING_LABEL),
    )?;
    m.add_class::<PlayerId>()?;
    m.add_class::<PlayerSecret>()?;
    m.add_class::<PlayerVerifier>()?;
    m.add_class::<ConfigHash>()?;
    m.add_class::<PlayerStatus>()?;
    m.add_class::<CloseCode>()?;
    m.add_class::<Stats>()?;
    m.add_class::<Message>()?;
    m.add_class::<Client>()?;
    m.add_class::<ServerConnection>()?;
    m.add_class::<Presence>()?;
    m.add_class::<Backoff>()?;
    m.add_class::<LoggedIn>()?;
    m.add_class::<HeartbeatAcked>()?;
    m.add_class::<ConfigChanged>()?;
    m.add_class::<Closed>()?;
    m.add_class::<LookupPlayer>()?;
    m.add_class::<PlayerLoggedIn>()?;
    m.add_class::<HeartbeatReceived>()?;
    m.add_class::<PlayerOnline>()?;
    m.add_class::<PlayerOffline>()?;
    m.add_class::<OtherEvent>()?;
    Ok(())
}

/// A core `SessionError` as the matching Python exception, with the Rust message.
fn session_error(py: Python<'_>, e: &fs::SessionError) -> PyErr {
    let msg = e.to_string();
    let (err, code) = match e {
        fs::SessionError::Decode(_) => (BadFrame::new_err(msg), None),
        fs::SessionError::Unexpected(_) | fs::SessionError::HeartbeatFlood { .. } => {
            (ProtocolViolation::new_err(msg), None)
        }
        fs::SessionError::VersionMismatch { .. } => (VersionMismatch::new_err(msg), None),
        fs::SessionError::AuthFailed => (AuthFailed::new_err(msg), None),
        fs::SessionError::NotApproved(_) => (NotApproved::new_err(msg), None),
        fs::SessionError::LoginTimeout(_) => (LoginTimeout::new_err(msg), None),
        fs::SessionError::PeerSilent(_) => (PeerSilent::new_err(msg), None),
        fs::SessionError::ConnectionLost => (ConnectionLost::new_err(msg), None),
        fs::SessionError::PeerClosed { code, .. } => (PeerClosed::new_err(msg), Some(*code)),
        fs::SessionError::LocalClose { code, .. } => (LocalClose::new_err(msg), Some(*code)),
        _ => (SessionError::new_err(msg), None),
    };
    if let Some(code) = code {
        // Setting an attribute on a fresh exception instance cannot fail in practice; if it
        // did, the exception still carries its message.
        let _ = err.value(py).setattr("code", code.to_byte());
    }
    err
}

fn api_misuse(e: &fs::ApiMisuse) -> PyErr {
    ApiMisuse::new_err(e.to_string())
}

fn parse_error(e: &fs::ParseIdError) -> PyErr {
    ParseError::new_err(e.to_string())
}

fn binding(bytes: Option<&[u8]>) -> PyResult<fs::ChannelBinding> {
    bytes.map_or(Ok(fs::ChannelBinding::NONE), |b| {
        array("channel_binding", b).map(fs::ChannelBinding)
    })
}

fn object<T>(py: Python<'_>, value: T) -> PyResult<Py<PyAny>>
where
    T: pyo3::PyClass + Into<pyo3::PyClassInitializer<T>>,
{
    Py::new(py, value).map(Py::into_any)
}

// ---------------------------------------------------------------------------------------------
// Identity

/// A player's 128-bit security identifier, printed as `0a1b2c3d-4e5f6071-8293a4b5-c6d7e8f9`.
#[pyclass(module = "fleetwire.session", frozen, eq, hash, str, from_py_object)]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct PlayerId {
    inner: fs::PlayerId,
}

#[pymethods]
impl PlayerId {
    /// An identifier from 16 random bytes.
    #[staticmethod]
    fn from_bytes(data: &[u8]) -> PyResult<Self> {
        Ok(Self {
            inner: fs::PlayerId::from_bytes(array("player_id", data)?),
        })
    }

    /// Parses the printed form (hex digits, `-` separators ignored).
    #[staticmethod]
    fn parse(text: &str) -> PyResult<Self> {
        let inner = text.parse().map_err(|e| parse_error(&e))?;
        Ok(Self { inner })
    }

    /// The raw 16 bytes.
    #[getter]
    fn bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.inner.as_bytes())
    }

    fn __bytes__<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        self.bytes(py)
    }

    fn __repr__(&self) -> String {
        format!("{:?}", self.inner)
    }
}

impl std::fmt::Display for PlayerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

/// The per-player secret (an Ed25519 seed). It never crosses the wire.
#[pyclass(module = "fleetwire.session", frozen, from_py_object)]
#[derive(Clone)]
pub(crate) struct PlayerSecret {
    inner: fs::PlayerSecret,
}

#[pymethods]
impl PlayerSecret {
    /// A secret from 32 random bytes.
    #[staticmethod]
    fn from_bytes(data: &[u8]) -> PyResult<Self> {
        Ok(Self {
            inner: fs::PlayerSecret::from_bytes(array("secret", data)?),
        })
    }

    /// Parses the 64-hex-digit form.
    #[staticmethod]
    fn parse(text: &str) -> PyResult<Self> {
        let inner = text.parse().map_err(|e| parse_error(&e))?;
        Ok(Self { inner })
    }

    /// The raw 32 bytes, for storing on the player.
    #[getter]
    fn bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.inner.as_bytes())
    }

    /// The hex form, to show once at provisioning.
    fn hex(&self) -> String {
        self.inner.to_hex()
    }

    /// The verifier the server keeps instead of the secret.
    fn verifier(&self) -> PlayerVerifier {
        PlayerVerifier {
            inner: self.inner.verifier(),
        }
    }

    fn __eq__(&self, other: &Self) -> bool {
        self.inner == other.inner
    }

    fn __repr__(&self) -> String {
        format!("{:?}", self.inner)
    }
}

/// What the server stores for a player: the Ed25519 public key of its secret.
#[pyclass(module = "fleetwire.session", frozen, eq, hash, str, from_py_object)]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct PlayerVerifier {
    inner: fs::PlayerVerifier,
}

#[pymethods]
impl PlayerVerifier {
    /// A verifier from its 32 stored bytes.
    #[staticmethod]
    fn from_bytes(data: &[u8]) -> PyResult<Self> {
        Ok(Self {
            inner: fs::PlayerVerifier::from_bytes(array("verifier", data)?),
        })
    }

    /// Parses the 64-hex-digit form.
    #[staticmethod]
    fn parse(text: &str) -> PyResult<Self> {
        let inner = text.parse().map_err(|e| parse_error(&e))?;
        Ok(Self { inner })
    }

    /// The raw 32 bytes.
    #[getter]
    fn bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.inner.as_bytes())
    }

    fn __bytes__<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        self.bytes(py)
    }

    fn __repr__(&self) -> String {
        format!("PlayerVerifier({})", self.inner)
    }
}

impl std::fmt::Display for PlayerVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

/// A 32-byte digest of a player's configuration.
#[pyclass(module = "fleetwire.session", frozen, eq, hash, str, from_py_object)]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ConfigHash {
    inner: fs::ConfigHash,
}

#[pymethods]
impl ConfigHash {
    #[new]
    fn new(data: &[u8]) -> PyResult<Self> {
        Ok(Self {
            inner: fs::ConfigHash(array("config_hash", data)?),
        })
    }

    /// The raw 32 bytes.
    #[getter]
    fn bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.0)
    }

    fn __bytes__<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        self.bytes(py)
    }

    fn __repr__(&self) -> String {
        format!("{:?}", self.inner)
    }
}

impl std::fmt::Display for ConfigHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

fn hash_in(hash: Option<&ConfigHash>) -> Option<fs::ConfigHash> {
    hash.map(|h| h.inner)
}

fn hash_out(hash: Option<fs::ConfigHash>) -> Option<ConfigHash> {
    hash.map(|inner| ConfigHash { inner })
}

/// The status a player reports in every heartbeat.
#[pyclass(module = "fleetwire.session", eq, get_all, set_all, from_py_object)]
#[derive(Clone, PartialEq)]
pub(crate) struct PlayerStatus {
    /// What the player is showing now, at most 64 bytes.
    content: String,
    /// Free storage on the player, in bytes.
    free_storage_bytes: u64,
    /// Software versions, at most 64 bytes.
    versions: String,
    /// The configuration the player holds.
    config_hash: Option<ConfigHash>,
}

#[pymethods]
impl PlayerStatus {
    #[new]
    #[pyo3(
        signature = (content = String::new(), free_storage_bytes = 0, versions = String::new(), config_hash = None),
        text_signature = "(content='', free_storage_bytes=0, versions='', config_hash=None)"
    )]
    fn new(
        content: String,
        free_storage_bytes: u64,
        versions: String,
        config_hash: Option<ConfigHash>,
    ) -> Self {
        Self {
            content,
            free_storage_bytes,
            versions,
            config_hash,
        }
    }

    fn __repr__(&self) -> String {
        format!("{:?}", self.to_core())
    }
}

impl PlayerStatus {
    fn to_core(&self) -> fs::PlayerStatus {
        fs::PlayerStatus {
            content: self.content.clone(),
            free_storage_bytes: self.free_storage_bytes,
            versions: self.versions.clone(),
            config_hash: hash_in(self.config_hash.as_ref()),
        }
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

/// Close codes as their wire bytes (`CloseCode.AUTH_FAILED == 1`); `describe` names any byte.
#[pyclass(module = "fleetwire.session", frozen)]
pub(crate) struct CloseCode;

#[pymethods]
impl CloseCode {
    #[classattr]
    const NORMAL: u8 = 0;
    #[classattr]
    const AUTH_FAILED: u8 = 1;
    #[classattr]
    const NOT_APPROVED: u8 = 2;
    #[classattr]
    const UNSUPPORTED_VERSION: u8 = 3;
    #[classattr]
    const PROTOCOL_VIOLATION: u8 = 4;
    #[classattr]
    const LOGIN_TIMEOUT: u8 = 5;
    #[classattr]
    const SILENT: u8 = 6;
    #[classattr]
    const REPLACED: u8 = 7;
    #[classattr]
    const REVOKED: u8 = 8;
    #[classattr]
    const BUSY: u8 = 9;

    /// The human description of a close code byte.
    #[staticmethod]
    fn describe(code: u8) -> String {
        fs::CloseCode::from_byte(code).to_string()
    }
}

/// Counters for one session.
#[pyclass(module = "fleetwire.session", frozen, get_all)]
#[derive(Clone, Copy)]
pub(crate) struct Stats {
    bytes_in: u64,
    bytes_out: u64,
    messages_in: u64,
    messages_out: u64,
    heartbeats: u64,
    /// The last heartbeat round-trip time, in whole milliseconds.
    last_rtt_ms: Option<u64>,
}

#[pymethods]
impl Stats {
    fn __repr__(&self) -> String {
        format!(
            "Stats(bytes_in={}, bytes_out={}, messages_in={}, messages_out={}, heartbeats={}, last_rtt_ms={:?})",
            self.bytes_in,
            self.bytes_out,
            self.messages_in,
            self.messages_out,
            self.heartbeats,
            self.last_rtt_ms
        )
    }
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

// ---------------------------------------------------------------------------------------------
// Messages

/// One session message: build with the static constructors, `encode_frame()`, or `decode()` a
/// frame body by its type byte. Fields that the message kind does not have read as `None`.
#[pyclass(module = "fleetwire.session", frozen, eq)]
#[derive(Clone, PartialEq)]
pub(crate) struct Message {
    inner: fs::Message,
}

#[pymethods]
impl Message {
    #[staticmethod]
    fn hello(player_id: PlayerId, software: String) -> Self {
        fs::Message::Hello {
            player_id: player_id.inner,
            software,
        }
        .into()
    }

    #[staticmethod]
    fn challenge(nonce: &[u8]) -> PyResult<Self> {
        Ok(fs::Message::Challenge {
            nonce: array("nonce", nonce)?,
        }
        .into())
    }

    #[staticmethod]
    fn proof(signature: &[u8]) -> PyResult<Self> {
        Ok(fs::Message::Proof {
            signature: array("signature", signature)?,
        }
        .into())
    }

    #[staticmethod]
    #[pyo3(signature = (heartbeat_interval_ms, config_hash = None))]
    fn welcome(heartbeat_interval_ms: u32, config_hash: Option<ConfigHash>) -> Self {
        fs::Message::Welcome {
            heartbeat_interval_ms,
            config_hash: hash_in(config_hash.as_ref()),
        }
        .into()
    }

    #[staticmethod]
    fn close(code: u8, message: String) -> Self {
        fs::Message::Close {
            code: fs::CloseCode::from_byte(code),
            message,
        }
        .into()
    }

    #[staticmethod]
    fn heartbeat(seq: u64, status: PlayerStatus) -> Self {
        fs::Message::Heartbeat {
            seq,
            status: status.to_core(),
        }
        .into()
    }

    #[staticmethod]
    #[pyo3(signature = (seq, config_hash = None))]
    fn heartbeat_ack(seq: u64, config_hash: Option<ConfigHash>) -> Self {
        fs::Message::HeartbeatAck {
            seq,
            config_hash: hash_in(config_hash.as_ref()),
        }
        .into()
    }

    /// Decodes a frame body of the given message type (the frame header already removed).
    #[staticmethod]
    fn decode(msg_type: u8, body: &[u8]) -> PyResult<Self> {
        fs::Message::decode(msg_type, body)
            .map(Self::from)
            .map_err(|e| decode_error(&e))
    }

    /// The whole frame: `version:u8 | type:u8 | length:u32be | body`.
    fn encode_frame<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let mut out = Vec::new();
        self.inner.encode_frame(&mut out);
        PyBytes::new(py, &out)
    }

    /// The body alone, without the frame header.
    fn encode_body<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let mut out = Vec::new();
        self.inner.encode_body(&mut out);
        PyBytes::new(py, &out)
    }

    /// The message type byte.
    #[getter]
    fn msg_type(&self) -> u8 {
        self.inner.msg_type()
    }

    /// `hello`, `challenge`, `proof`, `welcome`, `close`, `heartbeat` or `heartbeat_ack`.
    #[getter]
    fn kind(&self) -> String {
        match &self.inner {
            fs::Message::Hello { .. } => "hello".into(),
            fs::Message::Challenge { .. } => "challenge".into(),
            fs::Message::Proof { .. } => "proof".into(),
            fs::Message::Welcome { .. } => "welcome".into(),
            fs::Message::Close { .. } => "close".into(),
            fs::Message::Heartbeat { .. } => "heartbeat".into(),
            fs::Message::HeartbeatAck { .. } => "heartbeat_ack".into(),
            other => format!("{other:?}"),
        }
    }

    #[getter]
    fn player_id(&self) -> Option<PlayerId> {
        match &self.inner {
            fs::Message::Hello { player_id, .. } => Some(PlayerId { inner: *player_id }),
            _ => None,
        }
    }

    #[getter]
    fn software(&self) -> Option<String> {
        match &self.inner {
            fs::Message::Hello { software, .. } => Some(software.clone()),
            _ => None,
        }
    }

    #[getter]
    fn nonce<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        match &self.inner {
            fs::Message::Challenge { nonce } => Some(PyBytes::new(py, nonce)),
            _ => None,
        }
    }

    #[getter]
    fn signature<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        match &self.inner {
            fs::Message::Proof { signature } => Some(PyBytes::new(py, signature)),
            _ => None,
        }
    }

    #[getter]
    fn heartbeat_interval_ms(&self) -> Option<u32> {
        match &self.inner {
            fs::Message::Welcome {
                heartbeat_interval_ms,
                ..
            } => Some(*heartbeat_interval_ms),
            _ => None,
        }
    }

    /// The configuration hash of a welcome, heartbeat (its status) or `heartbeat_ack`.
    #[getter]
    fn config_hash(&self) -> Option<ConfigHash> {
        match &self.inner {
            fs::Message::Welcome { config_hash, .. }
            | fs::Message::HeartbeatAck { config_hash, .. } => hash_out(*config_hash),
            fs::Message::Heartbeat { status, .. } => hash_out(status.config_hash),
            _ => None,
        }
    }

    /// The close code byte.
    #[getter]
    fn code(&self) -> Option<u8> {
        match &self.inner {
            fs::Message::Close { code, .. } => Some(code.to_byte()),
            _ => None,
        }
    }

    /// The close message.
    #[getter]
    fn message(&self) -> Option<String> {
        match &self.inner {
            fs::Message::Close { message, .. } => Some(message.clone()),
            _ => None,
        }
    }

    #[getter]
    fn seq(&self) -> Option<u64> {
        match &self.inner {
            fs::Message::Heartbeat { seq, .. } | fs::Message::HeartbeatAck { seq, .. } => {
                Some(*seq)
            }
            _ => None,
        }
    }

    #[getter]
    fn status(&self) -> Option<PlayerStatus> {
        match &self.inner {
            fs::Message::Heartbeat { status, .. } => Some(PlayerStatus::from_core(status.clone())),
            _ => None,
        }
    }

    fn __repr__(&self) -> String {
        format!("{:?}", self.inner)
    }
}

impl From<fs::Message> for Message {
    fn from(inner: fs::Message) -> Self {
        Self { inner }
    }
}

// ---------------------------------------------------------------------------------------------
// Events

/// Client: the server accepted the login.
#[pyclass(module = "fleetwire.session", frozen, get_all)]
pub(crate) struct LoggedIn {
    heartbeat_interval_ms: u64,
}

/// Client: the server acknowledged a heartbeat.
#[pyclass(module = "fleetwire.session", frozen, get_all)]
pub(crate) struct HeartbeatAcked {
    seq: u64,
    rtt_ms: u64,
}

/// Client: the server holds another configuration; fetch it, then report it with `set_status`.
#[pyclass(module = "fleetwire.session", frozen, get_all)]
pub(crate) struct ConfigChanged {
    hash: ConfigHash,
}

/// Client or server: the session ended (always the last event, exactly once). `reason` is a
/// `SessionError` instance (not raised) carrying the Rust message.
#[pyclass(module = "fleetwire.session", frozen, get_all)]
pub(crate) struct Closed {
    reason: Py<PyAny>,
}

/// Server: look the player up and answer with `ServerConnection.resolve_player`.
#[pyclass(module = "fleetwire.session", frozen, get_all)]
pub(crate) struct LookupPlayer {
    player_id: PlayerId,
    software: String,
}

/// Server: the player proved its identity and is approved.
#[pyclass(module = "fleetwire.session", frozen, get_all)]
pub(crate) struct PlayerLoggedIn {
    player_id: PlayerId,
}

/// Server: a heartbeat arrived (already acknowledged).
#[pyclass(module = "fleetwire.session", frozen, get_all)]
pub(crate) struct HeartbeatReceived {
    player_id: PlayerId,
    seq: u64,
    status: PlayerStatus,
}

/// Presence: a player came online.
#[pyclass(module = "fleetwire.session", frozen, get_all)]
pub(crate) struct PlayerOnline {
    player_id: PlayerId,
}

/// Presence: a player went offline; `last_seen_ms` on the host's clock.
#[pyclass(module = "fleetwire.session", frozen, get_all)]
pub(crate) struct PlayerOffline {
    player_id: PlayerId,
    last_seen_ms: u64,
}

/// An event this binding does not know yet (a newer core crate); `description` is its Debug form.
#[pyclass(module = "fleetwire.session", frozen, get_all)]
pub(crate) struct OtherEvent {
    description: String,
}

macro_rules! event_kind {
    ($($ty:ident => $kind:literal),* $(,)?) => {$(
        #[pymethods]
        impl $ty {
            /// The event's kind, for dispatch without isinstance.
            #[getter]
            fn kind(&self) -> &'static str {
                $kind
            }

            fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
                let attrs = slf.getattr("__class__")?.getattr("__match_args__").ok();
                let mut parts = Vec::new();
                if let Some(names) = attrs {
                    for name in names.try_iter()? {
                        let name: String = name?.extract()?;
                        let value = slf.getattr(name.as_str())?.repr()?.to_string();
                        parts.push(format!("{name}={value}"));
                    }
                }
                Ok(format!("{}({})", stringify!($ty), parts.join(", ")))
            }
        }
    )*};
}

event_kind!(
    LoggedIn => "logged_in",
    HeartbeatAcked => "heartbeat_acked",
    ConfigChanged => "config_changed",
    Closed => "closed",
    LookupPlayer => "lookup_player",
    PlayerLoggedIn => "player_logged_in",
    HeartbeatReceived => "heartbeat",
    PlayerOnline => "online",
    PlayerOffline => "offline",
    OtherEvent => "other",
);

fn closed(py: Python<'_>, reason: &fs::SessionError) -> PyResult<Py<PyAny>> {
    let reason = session_error(py, reason).into_value(py).into_any();
    object(py, Closed { reason })
}

fn other(py: Python<'_>, event: &impl std::fmt::Debug) -> PyResult<Py<PyAny>> {
    object(
        py,
        OtherEvent {
            description: format!("{event:?}"),
        },
    )
}

// ---------------------------------------------------------------------------------------------
// Machines

/// The player's login + heartbeat machine. One per connection; on `Closed`, wait out a
/// `Backoff` delay and make a new one. Drain `poll_transmit`, `poll_event` until `None` after
/// every input, and call `handle_timeout` at `poll_timeout()`.
#[pyclass(module = "fleetwire.session")]
pub(crate) struct Client {
    inner: fs::Client,
    clock: Clock,
}

#[pymethods]
impl Client {
    #[new]
    #[pyo3(signature = (player_id, secret, software, now_ms, channel_binding = None, *, login_timeout_ms = None, silence_grace_ms = None, max_frame_len = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        player_id: PlayerId,
        secret: PlayerSecret,
        software: String,
        now_ms: u64,
        channel_binding: Option<&[u8]>,
        login_timeout_ms: Option<u64>,
        silence_grace_ms: Option<u64>,
        max_frame_len: Option<u32>,
    ) -> PyResult<Self> {
        let mut config = fs::ClientConfig::new(player_id.inner, secret.inner);
        config.software = software;
        if let Some(ms) = login_timeout_ms {
            config.login_timeout = Duration::from_millis(ms);
        }
        if let Some(ms) = silence_grace_ms {
            config.silence_grace = Duration::from_millis(ms);
        }
        if let Some(len) = max_frame_len {
            config.max_frame_len = len;
        }
        let mut clock = Clock::new(now_ms)?;
        let now = clock.at(now_ms)?;
        let inner = fs::Client::new(Arc::new(config), now, binding(channel_binding)?);
        Ok(Self { inner, clock })
    }

    /// Feeds bytes from the server. Raises a `SessionError` subclass once on a fatal error
    /// (the `Closed` event is queued too); later input is ignored.
    fn handle_input(&mut self, py: Python<'_>, now_ms: u64, data: &[u8]) -> PyResult<()> {
        let now = self.clock.at(now_ms)?;
        self.inner
            .handle_input(now, data)
            .map_err(|e| session_error(py, &e))
    }

    /// Lets time pass; early calls do nothing.
    fn handle_timeout(&mut self, now_ms: u64) -> PyResult<()> {
        let now = self.clock.at(now_ms)?;
        self.inner.handle_timeout(now);
        Ok(())
    }

    /// The transport ended (the peer closed it or it broke) without a close message: the
    /// session closes, with a `Closed` event whose reason is `ConnectionLost`. No-op if already
    /// closed.
    fn handle_close(&mut self, now_ms: u64) -> PyResult<()> {
        let now = self.clock.at(now_ms)?;
        self.inner.handle_close(now);
        Ok(())
    }

    /// Sets the status carried by the next heartbeat.
    fn set_status(&mut self, status: PlayerStatus) -> PyResult<()> {
        self.inner
            .set_status(status.to_core())
            .map_err(|e| api_misuse(&e))
    }

    /// Sends a heartbeat now.
    fn heartbeat_now(&mut self, now_ms: u64) -> PyResult<()> {
        let now = self.clock.at(now_ms)?;
        self.inner.heartbeat_now(now).map_err(|e| api_misuse(&e))
    }

    /// Closes the session in an orderly way.
    #[pyo3(signature = (now_ms, message = ""))]
    fn close(&mut self, now_ms: u64, message: &str) -> PyResult<()> {
        let now = self.clock.at(now_ms)?;
        self.inner.close(now, message).map_err(|e| api_misuse(&e))
    }

    /// The bytes to send to the server, or `None`.
    fn poll_transmit<'py>(&mut self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        let mut buf = Vec::new();
        self.inner
            .poll_transmit(&mut buf)
            .map(|_| PyBytes::new(py, &buf))
    }

    /// When to call `handle_timeout` next, in host milliseconds, or `None`.
    fn poll_timeout(&self) -> Option<u64> {
        self.inner.poll_timeout().map(|t| self.clock.ms(t))
    }

    /// The next event, or `None`.
    fn poll_event(&mut self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let Some(event) = self.inner.poll_event() else {
            return Ok(None);
        };
        let obj = match &event {
            fs::ClientEvent::LoggedIn { heartbeat_interval } => object(
                py,
                LoggedIn {
                    heartbeat_interval_ms: ms_of(*heartbeat_interval),
                },
            ),
            fs::ClientEvent::HeartbeatAcked { seq, rtt } => object(
                py,
                HeartbeatAcked {
                    seq: *seq,
                    rtt_ms: ms_of(*rtt),
                },
            ),
            fs::ClientEvent::ConfigChanged { hash } => object(
                py,
                ConfigChanged {
                    hash: ConfigHash { inner: *hash },
                },
            ),
            fs::ClientEvent::Closed { reason } => closed(py, reason),
            other_event => other(py, other_event),
        }?;
        Ok(Some(obj))
    }

    /// `awaiting_challenge`, `awaiting_welcome`, `online` or `closed`.
    #[getter]
    fn state(&self) -> String {
        match self.inner.state() {
            fs::ClientState::AwaitingChallenge => "awaiting_challenge".into(),
            fs::ClientState::AwaitingWelcome => "awaiting_welcome".into(),
            fs::ClientState::Online => "online".into(),
            fs::ClientState::Closed => "closed".into(),
            other_state => format!("{other_state:?}"),
        }
    }

    #[getter]
    fn stats(&self) -> Stats {
        self.inner.stats().into()
    }

    /// The heartbeat interval set by the server, in ms (0 before login).
    #[getter]
    fn heartbeat_interval_ms(&self) -> u64 {
        ms_of(self.inner.heartbeat_interval())
    }
}

/// One player connection on the server side.
#[pyclass(module = "fleetwire.session")]
pub(crate) struct ServerConnection {
    inner: fs::ServerConnection,
    clock: Clock,
}

#[pymethods]
impl ServerConnection {
    /// `nonce` must be 32 fresh random bytes (`secrets.token_bytes(32)`).
    #[new]
    #[pyo3(signature = (nonce, now_ms, channel_binding = None, *, heartbeat_interval_ms = None, silence_grace_ms = None, login_timeout_ms = None, max_frame_len = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        nonce: &[u8],
        now_ms: u64,
        channel_binding: Option<&[u8]>,
        heartbeat_interval_ms: Option<u64>,
        silence_grace_ms: Option<u64>,
        login_timeout_ms: Option<u64>,
        max_frame_len: Option<u32>,
    ) -> PyResult<Self> {
        let mut config = fs::ServerConfig::default();
        if let Some(ms) = heartbeat_interval_ms {
            config.heartbeat_interval = Duration::from_millis(ms);
        }
        if let Some(ms) = silence_grace_ms {
            config.silence_grace = Duration::from_millis(ms);
        }
        if let Some(ms) = login_timeout_ms {
            config.login_timeout = Duration::from_millis(ms);
        }
        if let Some(len) = max_frame_len {
            config.max_frame_len = len;
        }
        let mut clock = Clock::new(now_ms)?;
        let now = clock.at(now_ms)?;
        let inner = fs::ServerConnection::new(
            Arc::new(config),
            now,
            array("nonce", nonce)?,
            binding(channel_binding)?,
        );
        Ok(Self { inner, clock })
    }

    /// Feeds bytes from the player. Raises a `SessionError` subclass once on a fatal error.
    fn handle_input(&mut self, py: Python<'_>, now_ms: u64, data: &[u8]) -> PyResult<()> {
        let now = self.clock.at(now_ms)?;
        self.inner
            .handle_input(now, data)
            .map_err(|e| session_error(py, &e))
    }

    /// Lets time pass; early calls do nothing.
    fn handle_timeout(&mut self, now_ms: u64) -> PyResult<()> {
        let now = self.clock.at(now_ms)?;
        self.inner.handle_timeout(now);
        Ok(())
    }

    /// The transport ended (the peer closed it or it broke) without a close message: the
    /// session closes, with a `Closed` event whose reason is `ConnectionLost`. No-op if already
    /// closed.
    fn handle_close(&mut self, now_ms: u64) -> PyResult<()> {
        let now = self.clock.at(now_ms)?;
        self.inner.handle_close(now);
        Ok(())
    }

    /// Answers a `LookupPlayer` event: `verifier=None` means unknown player (the login then
    /// fails exactly as with a wrong secret).
    #[pyo3(signature = (now_ms, verifier, approved, config_hash = None))]
    fn resolve_player(
        &mut self,
        now_ms: u64,
        verifier: Option<PlayerVerifier>,
        approved: bool,
        config_hash: Option<ConfigHash>,
    ) -> PyResult<()> {
        let now = self.clock.at(now_ms)?;
        let lookup = match verifier {
            None => fs::PlayerLookup::Unknown,
            Some(v) => fs::PlayerLookup::Known {
                verifier: v.inner,
                approved,
                config_hash: hash_in(config_hash.as_ref()),
            },
        };
        self.inner
            .resolve_player(now, lookup)
            .map_err(|e| api_misuse(&e))
    }

    /// Sets the configuration hash announced in heartbeat replies from now on.
    fn set_config_hash(&mut self, hash: Option<ConfigHash>) {
        self.inner.set_config_hash(hash_in(hash.as_ref()));
    }

    /// Closes the connection, telling the player why (a `CloseCode` byte).
    #[pyo3(signature = (now_ms, code, message = ""))]
    fn close(&mut self, now_ms: u64, code: u8, message: &str) -> PyResult<()> {
        let now = self.clock.at(now_ms)?;
        self.inner
            .close(now, fs::CloseCode::from_byte(code), message)
            .map_err(|e| api_misuse(&e))
    }

    /// The bytes to send to the player, or `None`.
    fn poll_transmit<'py>(&mut self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        let mut buf = Vec::new();
        self.inner
            .poll_transmit(&mut buf)
            .map(|_| PyBytes::new(py, &buf))
    }

    /// When to call `handle_timeout` next, in host milliseconds, or `None`.
    fn poll_timeout(&self) -> Option<u64> {
        self.inner.poll_timeout().map(|t| self.clock.ms(t))
    }

    /// The next event, or `None`.
    fn poll_event(&mut self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let Some(event) = self.inner.poll_event() else {
            return Ok(None);
        };
        let obj = match event {
            fs::ServerEvent::LookupPlayer {
                player_id,
                software,
            } => object(
                py,
                LookupPlayer {
                    player_id: PlayerId { inner: player_id },
                    software,
                },
            ),
            fs::ServerEvent::LoggedIn { player_id } => object(
                py,
                PlayerLoggedIn {
                    player_id: PlayerId { inner: player_id },
                },
            ),
            fs::ServerEvent::Heartbeat {
                player_id,
                seq,
                status,
            } => object(
                py,
                HeartbeatReceived {
                    player_id: PlayerId { inner: player_id },
                    seq,
                    status: PlayerStatus::from_core(status),
                },
            ),
            fs::ServerEvent::Closed { reason } => closed(py, &reason),
            other_event => other(py, &other_event),
        }?;
        Ok(Some(obj))
    }

    /// `awaiting_hello`, `awaiting_proof`, `online` or `closed`.
    #[getter]
    fn state(&self) -> String {
        match self.inner.state() {
            fs::ServerState::AwaitingHello => "awaiting_hello".into(),
            fs::ServerState::AwaitingProof => "awaiting_proof".into(),
            fs::ServerState::Online => "online".into(),
            fs::ServerState::Closed => "closed".into(),
            other_state => format!("{other_state:?}"),
        }
    }

    #[getter]
    fn stats(&self) -> Stats {
        self.inner.stats().into()
    }

    /// The player this connection claims to be (after Hello) or is (after login).
    #[getter]
    fn player_id(&self) -> Option<PlayerId> {
        self.inner.player_id().map(|inner| PlayerId { inner })
    }

    /// True once the player has proved its identity and is approved.
    #[getter]
    fn is_authenticated(&self) -> bool {
        self.inner.is_authenticated()
    }
}

/// The fleet-wide registry of who is online (a timing wheel).
#[pyclass(module = "fleetwire.session")]
pub(crate) struct Presence {
    inner: fs::Presence,
    clock: Clock,
}

#[pymethods]
impl Presence {
    /// A player silent for `timeout_ms` goes offline (within one `granularity_ms` tick).
    #[new]
    #[pyo3(signature = (timeout_ms, now_ms, granularity_ms = None))]
    fn new(timeout_ms: u64, now_ms: u64, granularity_ms: Option<u64>) -> PyResult<Self> {
        let mut config = fs::PresenceConfig::new(Duration::from_millis(timeout_ms));
        if let Some(ms) = granularity_ms {
            config.granularity = Duration::from_millis(ms);
        }
        let mut clock = Clock::new(now_ms)?;
        let now = clock.at(now_ms)?;
        Ok(Self {
            inner: fs::Presence::new(config, now),
            clock,
        })
    }

    /// The player was heard from (login or heartbeat).
    fn seen(&mut self, now_ms: u64, player_id: PlayerId) -> PyResult<()> {
        let now = self.clock.at(now_ms)?;
        self.inner.seen(now, player_id.inner);
        Ok(())
    }

    /// The player's connection closed.
    fn gone(&mut self, now_ms: u64, player_id: PlayerId) -> PyResult<()> {
        let now = self.clock.at(now_ms)?;
        self.inner.gone(now, player_id.inner);
        Ok(())
    }

    /// Lets time pass; early calls do nothing.
    fn handle_timeout(&mut self, now_ms: u64) -> PyResult<()> {
        let now = self.clock.at(now_ms)?;
        self.inner.handle_timeout(now);
        Ok(())
    }

    /// When to call `handle_timeout` next, in host milliseconds, or `None`.
    fn poll_timeout(&self) -> Option<u64> {
        self.inner.poll_timeout().map(|t| self.clock.ms(t))
    }

    /// The next `PlayerOnline` / `PlayerOffline` event, or `None`.
    fn poll_event(&mut self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let Some(event) = self.inner.poll_event() else {
            return Ok(None);
        };
        let obj = match event {
            fs::PresenceEvent::Online { player_id } => object(
                py,
                PlayerOnline {
                    player_id: PlayerId { inner: player_id },
                },
            ),
            fs::PresenceEvent::Offline {
                player_id,
                last_seen,
            } => object(
                py,
                PlayerOffline {
                    player_id: PlayerId { inner: player_id },
                    last_seen_ms: self.clock.ms(last_seen),
                },
            ),
            other_event => other(py, &other_event),
        }?;
        Ok(Some(obj))
    }

    fn is_online(&self, player_id: PlayerId) -> bool {
        self.inner.is_online(&player_id.inner)
    }

    fn online_count(&self) -> usize {
        self.inner.online_count()
    }

    fn __len__(&self) -> usize {
        self.inner.online_count()
    }

    /// The players online now, in no particular order.
    fn online(&self) -> Vec<PlayerId> {
        self.inner
            .online()
            .map(|&inner| PlayerId { inner })
            .collect()
    }
}

/// Reconnect delays: exponential with full jitter. `random` is 64 random bits from the host
/// (`secrets.randbits(64)`).
#[pyclass(module = "fleetwire.session")]
pub(crate) struct Backoff {
    inner: fs::Backoff,
}

#[pymethods]
impl Backoff {
    /// `Backoff()` uses the defaults (1 s doubling to 300 s); otherwise give both bounds.
    #[new]
    #[pyo3(signature = (base_ms = None, cap_ms = None))]
    fn new(base_ms: Option<u64>, cap_ms: Option<u64>) -> PyResult<Self> {
        let inner = match (base_ms, cap_ms) {
            (None, None) => fs::Backoff::default(),
            (Some(base), Some(cap)) => {
                fs::Backoff::new(Duration::from_millis(base), Duration::from_millis(cap))
            }
            _ => {
                return Err(PyValueError::new_err(
                    "give both base_ms and cap_ms, or neither for the defaults",
                ));
            }
        };
        Ok(Self { inner })
    }

    /// The delay before the next attempt, in whole ms (at most `ceiling_ms()`); counts an attempt.
    fn next_delay_ms(&mut self, random: u64) -> u64 {
        ms_of(self.inner.next_delay(random))
    }

    /// The upper bound of the next delay, in ms.
    fn ceiling_ms(&self) -> u64 {
        ms_of(self.inner.ceiling())
    }

    /// Attempts so far.
    #[getter]
    fn attempts(&self) -> u32 {
        self.inner.attempts()
    }

    /// Back to the first delay (after a session that lasted).
    fn reset(&mut self) {
        self.inner.reset();
    }
}
