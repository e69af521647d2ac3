//! Keyed 64-bit tags for table keys (SipHash-1-3 with a secret key).
//!
//! The key is secret and random, so an attacker cannot choose user names or addresses whose tags
//! collide. Two distinct keys share a tag with probability about 2^-64 per pair; if they ever
//! did, they would share one counter (no crash, no unlock of anything else).

use std::hash::Hasher as _;

use serde::{Deserialize, Serialize};
use siphasher::sip::SipHasher13;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TagKey(pub(crate) [u8; 16]);

impl TagKey {
    /// The tag of the parts, never 0 (0 marks an empty slot).
    #[inline]
    pub(crate) fn tag(&self, parts: &[&[u8]]) -> u64 {
        let mut h = SipHasher13::new_with_key(&self.0);
        for p in parts {
            h.write_u64(p.len() as u64);
            h.write(p);
        }
        h.finish().max(1)
    }
}
