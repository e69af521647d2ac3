use fleetwire_wire::DecodeError;
use thiserror::Error;

/// The transfer protocol failed: the peer misbehaved, sent something untrusted, timed out or
/// cancelled. Carried by the `Failed` and `Closed` events, and returned by
/// `handle_input` for a message that was dropped.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TransferError {
    /// A message's bytes were wrong (truncated, bad checksum, unknown type). The message was
    /// dropped; the connection goes on (over datagrams, garbage is normal).
    #[error("message dropped: {0}")]
    Decode(#[from] DecodeError),
    /// The manifest's signature did not verify with any trusted content-signing key.
    #[error("manifest signature does not verify with any trusted content-signing key")]
    BadSignature,
    /// The manifest was internally inconsistent (length, chunk size and digest count disagree).
    #[error("manifest is invalid: {0}")]
    BadManifest(&'static str),
    /// The offered version is older than one the receiver already holds (rollback refused).
    #[error("offered version {offered} of file {file_id} is older than held version {held}")]
    StaleVersion {
        /// The file.
        file_id: u64,
        /// The version offered.
        offered: u64,
        /// The version the receiver holds.
        held: u64,
    },
    /// The peer refused the transfer.
    #[error("peer rejected the transfer: {0}")]
    Rejected(RejectReason),
    /// The peer cancelled the transfer.
    #[error("peer cancelled the transfer")]
    PeerCancelled,
    /// The application cancelled the transfer.
    #[error("cancelled by the application")]
    Cancelled,
    /// A chunk was retransmitted more times than the limit without being acknowledged.
    #[error("chunk {index} was sent {attempts} times without an acknowledgement")]
    TooManyRetransmits {
        /// The chunk.
        index: u32,
        /// Transmissions made.
        attempts: u32,
    },
    /// The transport ended (the peer closed it or it broke) before the transfer finished. A
    /// receiver keeps its resume record ([`crate::Receiver::partial`]): a new connection
    /// resumes where this one stopped.
    #[error("the connection ended before the transfer finished; a new connection resumes it")]
    ConnectionLost,
    /// Nothing useful arrived from the peer for the idle timeout.
    #[error("no progress from the peer for {millis} ms")]
    IdleTimeout {
        /// The idle timeout in milliseconds.
        millis: u64,
    },
    /// The chunk data the application provided does not match the signed manifest (the file on
    /// the sender's disk changed or is corrupt).
    #[error("provided data for chunk {index} does not match the manifest digest")]
    SourceMismatch {
        /// The chunk.
        index: u32,
    },
    /// The peer sent a message that breaks the protocol (e.g. chunk index out of range).
    #[error("protocol violation: {0}")]
    Protocol(&'static str),
}

/// Why a receiver refused an offer (the code travels in a `Reject` message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RejectReason {
    /// The manifest signature did not verify.
    BadSignature,
    /// The manifest was malformed or exceeds the receiver's limits.
    BadManifest,
    /// The receiver holds a newer version.
    StaleVersion,
    /// The receiver has too many transfers open.
    Busy,
    /// Any other code (forward compatibility).
    Other(u8),
}

impl RejectReason {
    /// The wire code.
    pub fn code(self) -> u8 {
        match self {
            Self::BadSignature => 1,
            Self::BadManifest => 2,
            Self::StaleVersion => 3,
            Self::Busy => 4,
            Self::Other(c) => c,
        }
    }

    /// From a wire code.
    pub fn from_code(code: u8) -> Self {
        match code {
            1 => Self::BadSignature,
            2 => Self::BadManifest,
            3 => Self::StaleVersion,
            4 => Self::Busy,
            c => Self::Other(c),
        }
    }
}

impl core::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::BadSignature => f.write_str("bad manifest signature"),
            Self::BadManifest => f.write_str("bad manifest"),
            Self::StaleVersion => f.write_str("stale version"),
            Self::Busy => f.write_str("too many transfers"),
            Self::Other(c) => write!(f, "reason code {c}"),
        }
    }
}

/// The application called the machine wrongly (a caller bug, never the peer's fault).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ApiMisuse {
    /// No open transfer has this id.
    #[error("no open transfer with id {0}")]
    UnknownTransfer(u32),
    /// The chunk index is beyond the file.
    #[error("chunk index {index} is beyond the file's {count} chunks")]
    ChunkOutOfRange {
        /// The index given.
        index: u32,
        /// Chunks in the file.
        count: u32,
    },
    /// The data has the wrong length for the chunk.
    #[error("chunk {index} must be {expected} bytes, got {got}")]
    WrongChunkLength {
        /// The chunk.
        index: u32,
        /// The length the manifest gives.
        expected: usize,
        /// The length provided.
        got: usize,
    },
    /// The machine has closed.
    #[error("the machine has closed")]
    Closed,
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(&'static str),
    /// The manifest is not acceptable (bad signature or malformed).
    #[error("manifest rejected: {0}")]
    Manifest(TransferError),
}
