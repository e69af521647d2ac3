//! Single-use recovery codes for when the second factor is lost.
//!
//! Each code is 80 random bits written as `XXXX-XXXX-XXXX-XXXX` in Crockford-style base32
//! (no I, L, O, U); only SHA-256 digests are stored. Input is case-insensitive and ignores
//! spaces and dashes.

use rand_core::CryptoRngCore;
use ring::digest;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Why a recovery code was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecoveryError {
    /// Not one of the account's unused codes.
    #[error("this recovery code is not valid or was already used")]
    Invalid,
}

/// The stored digests of an account's recovery codes; used ones are `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryCodes {
    digests: Vec<Option<[u8; 32]>>,
}

impl RecoveryCodes {
    /// Generates `count` codes: show the returned strings to the user once, store the
    /// [`RecoveryCodes`].
    pub fn generate(count: usize, rng: &mut impl CryptoRngCore) -> (Vec<String>, Self) {
        let mut plain = Vec::with_capacity(count);
        let mut digests = Vec::with_capacity(count);
        for _ in 0..count {
            let mut raw = [0u8; 10];
            rng.fill_bytes(&mut raw);
            let mut bits: u128 = 0;
            for b in raw {
                bits = bits << 8 | u128::from(b);
            }
            let mut code = String::with_capacity(19);
            for i in 0..16 {
                if i > 0 && i % 4 == 0 {
                    code.push('-');
                }
                code.push(ALPHABET[((bits >> (75 - 5 * i)) & 31) as usize] as char);
            }
            digests.push(Some(digest_of(&canonical(&code))));
            plain.push(code);
        }
        (plain, Self { digests })
    }

    /// Uses a code; returns how many unused codes remain.
    pub fn redeem(&mut self, code: &str) -> Result<usize, RecoveryError> {
        if code.len() > 64 {
            return Err(RecoveryError::Invalid);
        }
        let d = digest_of(&canonical(code));
        let mut hit = None;
        for (i, slot) in self.digests.iter().enumerate() {
            if let Some(s) = slot {
                if bool::from(s.ct_eq(&d)) {
                    hit = Some(i);
                }
            }
        }
        let i = hit.ok_or(RecoveryError::Invalid)?;
        self.digests[i] = None;
        Ok(self.remaining())
    }

    /// Unused codes left.
    pub fn remaining(&self) -> usize {
        self.digests.iter().filter(|d| d.is_some()).count()
    }
}

fn canonical(code: &str) -> String {
    code.chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| match c.to_ascii_uppercase() {
            'O' => '0',
            'I' | 'L' => '1',
            other => other,
        })
        .collect()
}

fn digest_of(s: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, s.as_bytes()).as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;

    #[test]
    fn codes_are_single_use() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
        let (plain, mut store) = RecoveryCodes::generate(10, &mut rng);
        assert_eq!(plain.len(), 10);
        assert_eq!(plain[0].len(), 19);
        assert_eq!(
            store.redeem(&plain[3].to_lowercase().replace('-', " ")),
            Ok(9)
        );
        assert_eq!(store.redeem(&plain[3]), Err(RecoveryError::Invalid));
        assert_eq!(store.redeem("nonsense"), Err(RecoveryError::Invalid));
    }
}
