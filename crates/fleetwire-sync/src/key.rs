//! Group identity and the group key.

use core::fmt;

use ring::hmac;
use subtle::ConstantTimeEq;

/// Bytes of the truncated HMAC-SHA256 tag on every sync message.
pub const TAG_LEN: usize = 16;

/// A sync group, as assigned by the server. Messages of other groups are dropped unread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupId(pub u64);

/// The group's message key (32 random bytes from the server, handed to each member over its
/// TLS session), with an epoch so the server can rotate it: members accept the current and
/// the previous epoch while a rotation spreads.
#[derive(Clone, PartialEq, Eq)]
pub struct GroupKey {
    /// Which key this is; carried in every message header.
    pub epoch: u32,
    /// The key bytes.
    pub bytes: [u8; 32],
}

impl fmt::Debug for GroupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupKey")
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

impl GroupKey {
    /// A key of `epoch` from 32 random bytes.
    pub fn new(epoch: u32, bytes: [u8; 32]) -> Self {
        Self { epoch, bytes }
    }

    /// HMAC-SHA256 of `data`, truncated to 16 bytes.
    pub(crate) fn tag(&self, data: &[u8]) -> [u8; TAG_LEN] {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.bytes);
        let full = hmac::sign(&key, data);
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(&full.as_ref()[..TAG_LEN]);
        out
    }

    /// Constant-time check of a tag.
    pub(crate) fn verify(&self, data: &[u8], tag: &[u8]) -> bool {
        tag.len() == TAG_LEN && bool::from(self.tag(data).ct_eq(tag))
    }
}

/// The current key and the one before it (accepted during a rotation).
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    pub(crate) current: GroupKey,
    pub(crate) previous: Option<GroupKey>,
}

impl Keys {
    pub(crate) fn new(key: GroupKey) -> Self {
        Self {
            current: key,
            previous: None,
        }
    }

    pub(crate) fn rotate(&mut self, key: GroupKey) {
        if key.epoch == self.current.epoch {
            self.current = key;
        } else {
            self.previous = Some(core::mem::replace(&mut self.current, key));
        }
    }

    pub(crate) fn for_epoch(&self, epoch: u32) -> Option<&GroupKey> {
        if self.current.epoch == epoch {
            Some(&self.current)
        } else {
            self.previous.as_ref().filter(|k| k.epoch == epoch)
        }
    }
}
