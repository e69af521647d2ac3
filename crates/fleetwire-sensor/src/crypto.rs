//! Per-logger keys and the truncated HMAC-SHA256 tags on batches and acknowledgements.

use ring::hmac;
use subtle::ConstantTimeEq;

use crate::model::LoggerId;

/// Bytes in a tag: HMAC-SHA256 truncated to 128 bits.
pub const TAG_LEN: usize = 16;

/// A truncated HMAC-SHA256 tag.
pub type Tag = [u8; TAG_LEN];

const KEY_LABEL: &[u8] = b"fleetwire-sensor/v1 logger key";

/// A logger's 256-bit secret key. Provisioned into the logger at manufacture and held (or derived)
/// by the cloud. Its `Debug` output never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct LoggerKey([u8; 32]);

impl LoggerKey {
    /// A key from raw bytes (e.g. read from the logger's secure storage).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw bytes, for provisioning.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }

    /// The key of `logger` under a fleet master key:
    /// `HMAC-SHA256(master, "fleetwire-sensor/v1 logger key" || logger_id as u64be)`.
    /// A cloud that derives keys stores one secret; a leaked logger key reveals only that logger.
    pub fn derive(master: &[u8; 32], logger: LoggerId) -> Self {
        let key = hmac::Key::new(hmac::HMAC_SHA256, master);
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(KEY_LABEL);
        ctx.update(&logger.0.to_be_bytes());
        let tag = ctx.sign();
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        Self(out)
    }

    /// The tag over the concatenation of `parts`.
    pub(crate) fn tag(&self, parts: &[&[u8]]) -> Tag {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.0);
        let mut ctx = hmac::Context::with_key(&key);
        for part in parts {
            ctx.update(part);
        }
        let full = ctx.sign();
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(&full.as_ref()[..TAG_LEN]);
        out
    }

    /// Constant-time check of a tag.
    pub(crate) fn verify(&self, parts: &[&[u8]], tag: &[u8]) -> bool {
        let expected = self.tag(parts);
        tag.len() == TAG_LEN && bool::from(expected.ct_eq(tag))
    }
}

impl core::fmt::Debug for LoggerKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("LoggerKey(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_keys_differ_per_logger_and_hide_in_debug() {
        let master = [9u8; 32];
        let a = LoggerKey::derive(&master, LoggerId(1));
        let b = LoggerKey::derive(&master, LoggerId(2));
        assert_ne!(a, b);
        assert_eq!(format!("{a:?}"), "LoggerKey(..)");
        let tag = a.tag(&[b"x", b"y"]);
        assert!(a.verify(&[b"xy"], &tag));
        assert!(!b.verify(&[b"xy"], &tag));
        assert!(!a.verify(&[b"xy"], &tag[..15]));
    }
}
