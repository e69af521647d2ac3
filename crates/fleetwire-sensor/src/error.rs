use fleetwire_wire::DecodeError;
use thiserror::Error;

use crate::model::LoggerId;

/// The peer misbehaved, the bytes did not authenticate, time ran out, or the connection ended
/// early. Every one of these closes the session with exactly one [`CloseReason::Error`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SensorError {
    /// The bytes were malformed.
    #[error("malformed message: {0}")]
    Decode(#[from] DecodeError),
    /// A batch or acknowledgement failed its MAC check: the key is wrong or the bytes were changed.
    #[error(
        "{what} from logger {logger} failed authentication: wrong key for this logger, or the bytes were tampered with"
    )]
    BadMac {
        /// The logger the message claims to belong to.
        logger: LoggerId,
        /// Which message failed ("batch" or "acknowledgement").
        what: &'static str,
    },
    /// The cloud has no key for this logger (the caller answered `provide_key` with `None`).
    #[error("logger {logger} is not registered with the cloud (no key)")]
    UnknownLogger {
        /// The logger named in the upload.
        logger: LoggerId,
    },
    /// A later batch in the same connection named a different logger.
    #[error("batch names logger {got} but this connection belongs to logger {expected}")]
    LoggerMismatch {
        /// The logger of the first batch.
        expected: LoggerId,
        /// The logger of the offending batch.
        got: LoggerId,
    },
    /// A message arrived that this side never accepts, or at a moment it does not fit.
    #[error("unexpected message type 0x{msg_type:02x}: {context}")]
    UnexpectedMessage {
        /// The frame's type byte.
        msg_type: u8,
        /// Why it does not fit.
        context: &'static str,
    },
    /// An acknowledgement named a batch this logger never sent, or arrived out of order.
    #[error("acknowledgement for batch {index} does not match the {sent} batches sent in order")]
    AckOutOfOrder {
        /// The batch index in the acknowledgement.
        index: u32,
        /// Batches sent on this connection.
        sent: u32,
    },
    /// The cloud refused the upload and said why (unauthenticated: advisory only).
    #[error("the cloud rejected the upload: {reason}")]
    Rejected {
        /// The reason the cloud gave.
        reason: RejectReason,
    },
    /// The logger's radio-on deadline passed before every batch was acknowledged.
    #[error(
        "radio-on deadline reached with {unacked} batches unacknowledged; they stay in memory for the next wake"
    )]
    RadioDeadline {
        /// Batches sent but not acknowledged.
        unacked: u32,
    },
    /// The cloud's per-connection deadline passed.
    #[error("connection deadline reached while {waiting_for}")]
    Timeout {
        /// What the machine was waiting for.
        waiting_for: &'static str,
    },
    /// The peer closed the connection before the exchange finished.
    #[error("the peer closed the connection before the upload finished")]
    PeerClosed,
    /// The caller reported that a batch could not be stored.
    #[error("the store could not write batch {id}; nothing was acknowledged for it")]
    StorageFailed {
        /// The batch the caller could not store.
        id: u64,
    },
    /// More upload bytes were waiting for the key lookup than the configured limit allows.
    #[error("{buffered} upload bytes buffered while waiting for the key, above the limit {max}")]
    TooMuchBuffered {
        /// Bytes buffered.
        buffered: usize,
        /// The configured limit.
        max: usize,
    },
}

/// Why a session ended. Delivered once, in [`crate::logger::Event::Closed`] or
/// [`crate::cloud::Event::Closed`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The exchange completed: every batch was acknowledged (logger) or the final acknowledgement
    /// was queued (cloud). Flush `poll_transmit`, then close the socket.
    Finished,
    /// The session failed.
    Error(SensorError),
}

/// The caller used the API wrongly. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ApiMisuse {
    /// The batch breaks a rule of the data model.
    #[error("invalid batch: {reason}")]
    InvalidBatch {
        /// The rule that was broken.
        reason: &'static str,
    },
    /// The settings break a rule of the data model.
    #[error("invalid settings: {reason}")]
    InvalidSettings {
        /// The rule that was broken.
        reason: &'static str,
    },
    /// A logger session needs at least one batch (send [`crate::Batch::empty`] to only check in).
    #[error("a logger session needs at least one batch; use Batch::empty to check in without data")]
    NoBatches,
    /// A batch belongs to a logger other than the configured one.
    #[error("batch belongs to logger {got}, the session is for logger {expected}")]
    WrongLogger {
        /// The configured logger.
        expected: LoggerId,
        /// The batch's logger.
        got: LoggerId,
    },
    /// `provide_key` was called when no key was asked for, or for another logger.
    #[error("no key lookup is pending for logger {logger}")]
    NoKeyPending {
        /// The logger passed in.
        logger: LoggerId,
    },
    /// `confirm_stored` or `storage_failed` named a batch that is not waiting for storage.
    #[error("batch {id} is not waiting for storage")]
    UnknownBatch {
        /// The id passed in.
        id: u64,
    },
}

/// A reason code in a `Reject` message (cloud to logger). Unauthenticated, so a logger only uses
/// it to report and to stop; it never frees data because of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectReason {
    /// The cloud does not know this logger.
    UnknownLogger,
    /// A batch failed authentication.
    BadMac,
    /// A message was malformed.
    Malformed,
    /// The cloud could not store the data; try again later.
    StorageFailed,
    /// A reason code this build does not know.
    Other(u8),
}

impl RejectReason {
    /// The wire code.
    pub fn code(self) -> u8 {
        match self {
            Self::UnknownLogger => 1,
            Self::BadMac => 2,
            Self::Malformed => 3,
            Self::StorageFailed => 4,
            Self::Other(code) => code,
        }
    }

    /// The reason for a wire code.
    pub fn from_code(code: u8) -> Self {
        match code {
            1 => Self::UnknownLogger,
            2 => Self::BadMac,
            3 => Self::Malformed,
            4 => Self::StorageFailed,
            other => Self::Other(other),
        }
    }
}

impl core::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::UnknownLogger => f.write_str("unknown logger"),
            Self::BadMac => f.write_str("authentication failed (wrong key or tampered batch)"),
            Self::Malformed => f.write_str("malformed message"),
            Self::StorageFailed => f.write_str("storage failed, retry later"),
            Self::Other(code) => write!(f, "reason code {code}"),
        }
    }
}
