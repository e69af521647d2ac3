use fleetwire_wire::DecodeError;
use thiserror::Error;

use crate::CloseCode;

/// Why a session ended. Every session ends with exactly one `Closed { reason }` event carrying one
/// of these.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The peer sent bytes that are not a valid frame or message.
    #[error("bad frame from peer: {0}")]
    Decode(#[from] DecodeError),
    /// The peer sent a message that is valid but not allowed in the current state.
    #[error("protocol violation: {0}")]
    Unexpected(&'static str),
    /// The peer speaks another protocol version.
    #[error(
        "peer speaks protocol version {theirs}, this build speaks {ours}: upgrade the older side"
    )]
    VersionMismatch {
        /// The version the peer sent.
        theirs: u8,
        /// The version this build speaks.
        ours: u8,
    },
    /// Login failed: the player is unknown or its secret is wrong (deliberately not told apart).
    #[error("authentication failed: unknown player id or wrong secret")]
    AuthFailed,
    /// The player authenticated but an administrator has not approved it yet.
    #[error("player {0} is waiting for administrator approval (fleetwire-server player approve)")]
    NotApproved(String),
    /// Login did not complete within the login deadline.
    #[error("login did not complete within {0} ms")]
    LoginTimeout(u64),
    /// Nothing arrived from the peer for longer than the silence limit.
    #[error("peer silent for {0} ms (limit exceeded)")]
    PeerSilent(u64),
    /// The transport ended (TCP reset or end of stream) without a `Close` message.
    #[error("connection lost without a close message")]
    ConnectionLost,
    /// A logged-in player sent heartbeats faster than the server allows: a misbehaving or
    /// hostile player, cut so it cannot make the server work or write without bound.
    #[error("heartbeats arrive faster than {max} per heartbeat interval")]
    HeartbeatFlood {
        /// The most heartbeats allowed per interval (`ServerConfig::max_heartbeats_per_interval`).
        max: u32,
    },
    /// The peer closed the session and said why. The peer's text is shown quoted and escaped
    /// (`{message:?}`): it may hold newlines or terminal escapes meant to forge log lines.
    #[error("peer closed the session ({code}): {message:?}")]
    PeerClosed {
        /// The peer's reason code.
        code: CloseCode,
        /// The peer's explanation.
        message: String,
    },
    /// This side closed the session.
    #[error("closed locally ({code}): {message}")]
    LocalClose {
        /// The reason code sent to the peer.
        code: CloseCode,
        /// The explanation sent to the peer.
        message: String,
    },
}

/// The caller used the API wrongly; nothing was sent and the session is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ApiMisuse {
    /// The call needs a logged-in session.
    #[error("the session is not online")]
    NotOnline,
    /// The call is only valid while the server waits for the player lookup.
    #[error("no player lookup is pending")]
    NoLookupPending,
    /// The session has already closed.
    #[error("the session is closed")]
    Closed,
    /// A text field is longer than the protocol allows.
    #[error("{field} is {len} bytes, the limit is {max}")]
    TooLong {
        /// The field.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
}
