use fleetwire_wire::DecodeError;
use thiserror::Error;

/// Why a sync or share datagram was dropped (returned by `handle_input` for logs and counted in
/// the stats; a dropped datagram is never answered), or why a transfer from a peer ended.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SyncError {
    /// The bytes are not a sync datagram, or its authenticated body does not parse.
    #[error("sync datagram dropped: {0}")]
    Decode(#[from] DecodeError),
    /// It belongs to another sync group.
    #[error("sync datagram dropped: it belongs to group {theirs}, this member is in group {ours}")]
    OtherGroup {
        /// The group in the datagram.
        theirs: u64,
        /// This member's group.
        ours: u64,
    },
    /// Signed with a key epoch this member does not hold (neither current nor previous).
    #[error("sync datagram dropped: key epoch {epoch} is unknown here (rotation out of step?)")]
    UnknownEpoch {
        /// The epoch in the datagram.
        epoch: u32,
    },
    /// The HMAC did not verify: not a member of the group, or tampered bytes.
    #[error("sync datagram dropped: authentication failed (not the group key, or tampered)")]
    BadTag,
    /// The sender's sequence number was already seen or is too old.
    #[error("sync datagram dropped: sequence number {seq} replayed")]
    Replay {
        /// The sequence number.
        seq: u64,
    },
    /// The datagram is authentic but not valid here (our own echo, a pong nobody asked for,
    /// a timeline from a member that is not the leader).
    #[error("sync datagram ignored: {0}")]
    Unexpected(&'static str),
    /// The member table is full.
    #[error("sync datagram ignored: the group already has {max} members")]
    TooManyMembers {
        /// The cap.
        max: usize,
    },
    /// The machine was closed (`handle_close`).
    #[error("the sync transport closed")]
    Closed,
}

/// The caller used the API wrongly; nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ApiMisuse {
    /// A playlist must hold 1 to 64 items, each at least 1 ms long.
    #[error("a playlist needs 1 to 64 items of at least 1 ms; this one has {items}")]
    BadPlaylist {
        /// Items given.
        items: usize,
    },
    /// The key given belongs to another group epoch scheme (epoch went backwards).
    #[error("group key epoch {given} is older than the current epoch {current}")]
    StaleKey {
        /// The epoch given.
        given: u32,
        /// The current epoch.
        current: u32,
    },
    /// No such fetch.
    #[error("no fetch {0} (finished, fallen back or never started)")]
    UnknownFetch(u32),
    /// The file is too large to share (more chunks than the limit, or chunks over 1 MiB).
    #[error("file {file_id} cannot be shared: {reason}")]
    NotShareable {
        /// The file.
        file_id: u64,
        /// Why.
        reason: &'static str,
    },
    /// A fetch needs at least one peer.
    #[error("a fetch needs at least one peer address")]
    NoPeers,
    /// The provided chunk is not the one the manifest signs.
    #[error(
        "chunk {index} of file {file_id} does not match its signed digest (file on disk changed or corrupt)"
    )]
    ChunkMismatch {
        /// The file.
        file_id: u64,
        /// The chunk.
        index: u32,
    },
    /// The machine was closed with `handle_close`.
    #[error("the machine is closed")]
    Closed,
}
