use std::net::{IpAddr, SocketAddr};

use fleetwire_session::PlayerId;
use fleetwire_wire::DecodeError;
use thiserror::Error;

use crate::model::CommandId;

/// Why a datagram was dropped. Returned by `handle_input` for the caller's logs and counted in
/// the stats; a dropped datagram is never answered, and the machine goes on.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CommandError {
    /// The bytes are not a command datagram (too short, too long, wrong version) or its
    /// authenticated plaintext does not parse.
    #[error("command datagram dropped: {0}")]
    Decode(#[from] DecodeError),
    /// No current login has this key id: a datagram from an earlier login, another server, or
    /// a stranger.
    #[error(
        "command datagram dropped: its key id belongs to no current login (stale login or stranger)"
    )]
    UnknownKey,
    /// An authentic-looking datagram came from an address other than the player's session
    /// address (or, on the player, other than the server's).
    #[error("command datagram from {from} dropped: expected it from {expected}")]
    WrongAddress {
        /// Where it came from.
        from: SocketAddr,
        /// The address the machine expects.
        expected: IpAddr,
    },
    /// The sequence number was already seen, or is older than the replay window.
    #[error(
        "command datagram dropped: sequence number {seq} replayed or older than the replay window"
    )]
    Replay {
        /// The sequence number.
        seq: u64,
    },
    /// The authentication tag did not verify: a wrong key or tampered bytes.
    #[error("command datagram dropped: authentication failed (wrong key or tampered bytes)")]
    BadTag,
    /// The datagram authenticated but breaks the protocol (a frame for the other direction).
    #[error("command datagram dropped: protocol violation: {0}")]
    Protocol(&'static str),
    /// The machine was closed because its transport ended (`handle_close`).
    #[error("the command transport closed")]
    Closed,
}

/// The caller used the API wrongly; nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ApiMisuse {
    /// The player already has the most commands waiting that the server holds per player.
    #[error(
        "player {player} already has {max} commands waiting: wait for some to finish or cancel one"
    )]
    QueueFull {
        /// The player.
        player: PlayerId,
        /// The cap (`ServerConfig::max_pending_per_player`).
        max: usize,
    },
    /// The server already tracks the most players it is configured for.
    #[error("the command server already tracks {max} players (ServerConfig::max_players)")]
    TooManyPlayers {
        /// The cap.
        max: usize,
    },
    /// The time-to-live is zero or longer than 30 days.
    #[error("time-to-live of {millis} ms is outside 1 ms to 30 days")]
    BadTtl {
        /// The requested time-to-live in milliseconds.
        millis: u128,
    },
    /// A value is longer than the protocol allows.
    #[error("{field} is {len} bytes, the limit is {max}")]
    TooLong {
        /// The field.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A volume above 100 percent.
    #[error("volume {0} is above 100 percent")]
    BadVolume(u8),
    /// No such command (never sent, or already finished and forgotten).
    #[error("no command {id} for this player (unknown or already finished)")]
    UnknownCommand {
        /// The command.
        id: CommandId,
    },
    /// The command can no longer be cancelled or reported: it is past that point.
    #[error("command {id} is {state}: too late for that")]
    TooLate {
        /// The command.
        id: CommandId,
        /// Its state's name.
        state: &'static str,
    },
    /// The machine was closed with `handle_close`.
    #[error("the command machine is closed")]
    Closed,
}
