//! What a command is: its id, action, priority, time-to-live, and the states it moves through.

use core::fmt;
use std::time::Duration;

use fleetwire_core::UnixTime;

/// Longest custom payload, in bytes.
pub const MAX_CUSTOM_PAYLOAD: usize = 256;
/// Longest failure message a player reports, in bytes.
pub const MAX_FAILURE_MESSAGE: usize = 128;
/// Longest time-to-live accepted (30 days).
pub const MAX_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// A command's id, unique per server for ever (the server persists the next id), so a player
/// can tell a retransmission from a new command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommandId(pub u64);

impl fmt::Display for CommandId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// What the player is asked to do.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Action {
    /// Restart the player (wire 0x01).
    Reboot,
    /// Fetch the current content and configuration now (wire 0x02).
    RefreshContent,
    /// Collect and upload logs and statistics now (wire 0x03).
    CollectNow,
    /// Take a screenshot and upload it (wire 0x04).
    Screenshot,
    /// Set the audio volume, 0 to 100 percent (wire 0x05).
    SetVolume(u8),
    /// Turn the display on (`true`) or off (wire 0x06).
    Display(bool),
    /// Delete cached content (wire 0x07).
    PurgeCache,
    /// An application-defined command: at most [`MAX_CUSTOM_PAYLOAD`] opaque bytes (wire 0x08).
    Custom(Vec<u8>),
}

impl Action {
    /// The wire code.
    pub fn code(&self) -> u8 {
        match self {
            Self::Reboot => 0x01,
            Self::RefreshContent => 0x02,
            Self::CollectNow => 0x03,
            Self::Screenshot => 0x04,
            Self::SetVolume(_) => 0x05,
            Self::Display(_) => 0x06,
            Self::PurgeCache => 0x07,
            Self::Custom(_) => 0x08,
        }
    }

    /// A short name for logs and the command line (`reboot`, `set-volume`, …).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Reboot => "reboot",
            Self::RefreshContent => "refresh-content",
            Self::CollectNow => "collect-now",
            Self::Screenshot => "screenshot",
            Self::SetVolume(_) => "set-volume",
            Self::Display(_) => "display",
            Self::PurgeCache => "purge-cache",
            Self::Custom(_) => "custom",
        }
    }
}

/// How urgent a command is: higher goes first when several wait for one player.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Priority(pub u8);

impl Priority {
    /// Background work.
    pub const LOW: Self = Self(64);
    /// The default.
    pub const NORMAL: Self = Self(128);
    /// Ahead of normal commands.
    pub const HIGH: Self = Self(192);
    /// First of all.
    pub const URGENT: Self = Self(255);
}

impl Default for Priority {
    fn default() -> Self {
        Self::NORMAL
    }
}

/// What the operator asks for: the action, how long it stays worth doing, how urgent it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSpec {
    /// The action.
    pub action: Action,
    /// How long after creation the command may still be delivered (1 ms to [`MAX_TTL`]). A
    /// player offline for longer never receives it; its state becomes `Expired`.
    pub ttl: Duration,
    /// Its priority.
    pub priority: Priority,
}

impl CommandSpec {
    /// A command with normal priority.
    pub fn new(action: Action, ttl: Duration) -> Self {
        Self {
            action,
            ttl,
            priority: Priority::NORMAL,
        }
    }
}

/// A command as the player receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// Its id.
    pub id: CommandId,
    /// The action.
    pub action: Action,
    /// When the operator created it (server's wall clock).
    pub created: UnixTime,
    /// How much of its time-to-live was left when this copy was sent.
    pub ttl_remaining: Duration,
    /// Its priority.
    pub priority: Priority,
}

/// What the player reports after running a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It worked.
    Succeeded,
    /// It did not; `message` (at most [`MAX_FAILURE_MESSAGE`] bytes) says why.
    Failed {
        /// Why, for the operator.
        message: String,
    },
}

/// Why a command failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// The player ran it and reported a failure.
    Player {
        /// The player's message.
        message: String,
    },
    /// The player acknowledged it but reported no result within the result timeout.
    NoResult,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Player { message } => write!(f, "player reported: {message:?}"),
            Self::NoResult => f.write_str("no result reported within the result timeout"),
        }
    }
}

/// Where a command is on the server: `Pending → Sent → Delivered → Succeeded | Failed`, or
/// `Expired` (not delivered within its time-to-live) or `Cancelled`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommandState {
    /// Created; not sent yet (the player is offline or unreachable).
    Pending,
    /// Sent at least once; not acknowledged yet.
    Sent,
    /// The player acknowledged it (it runs once, whatever the retransmissions).
    Delivered,
    /// The player reported success.
    Succeeded,
    /// It failed.
    Failed(Failure),
    /// Its time-to-live ran out before the player acknowledged it.
    Expired,
    /// The operator cancelled it before delivery.
    Cancelled,
}

impl CommandState {
    /// True for the states a command never leaves.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed(_) | Self::Expired | Self::Cancelled
        )
    }

    /// A short name (`pending`, `sent`, …).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Succeeded => "succeeded",
            Self::Failed(_) => "failed",
            Self::Expired => "expired",
            Self::Cancelled => "cancelled",
        }
    }
}

/// The path a datagram takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// UDP (port 4700).
    Udp,
    /// Inside the player's TCP 4701 session (`CommandDatagram` message), when UDP does not get
    /// through.
    Session,
}

/// How the server chooses the route to a player (an operator setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RoutePolicy {
    /// UDP first; the session after [`crate::ServerConfig::fallback_after`] unacknowledged
    /// tries, for [`crate::ServerConfig::fallback_hold`], then UDP again.
    #[default]
    Auto,
    /// Always the session (a site whose firewall drops UDP 4700).
    SessionOnly,
    /// Always UDP, never the session.
    UdpOnly,
}
