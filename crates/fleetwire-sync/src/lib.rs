//! # fleetwire-sync
//!
//! Screens side by side on a LAN playing in step (requirement S4), and LAN content sharing,
//! as sans-IO state machines. TODO: docs.

mod clock;
mod error;
mod key;
mod member;
pub mod share;
mod timeline;
pub mod wire;

pub use error::{ApiMisuse, SyncError};
pub use key::{GroupId, GroupKey, TAG_LEN};
pub use member::{ClockStatus, SyncConfig, SyncEvent, SyncMember, SyncStats, SyncTransmit};
pub use timeline::Playlist;
pub use wire::{Item, Kind, Port, Role};
