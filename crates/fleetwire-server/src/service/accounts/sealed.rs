//! TOTP secrets encrypted at rest (A2): the `mfa` and `mfa_pending` columns hold
//! `enc1:` + hex(nonce (12 bytes) ‖ AES-256-GCM ciphertext and tag) of the `Totp` JSON, with the
//! account id in the associated data, so a sealed value copied to another account does not open.
//! The key is `totp.key` in the data directory (32 bytes, mode 0600, created on first start),
//! beside the other server keys: a copy of the database alone (a backup, a read through some
//! other hole) does not give the secrets; a copy of the whole data directory does.
//!
//! Rows written in clear by earlier versions are sealed at start ([`migrate`]).

use crate::store::Store;
use crate::store::accounts::ClearTotp;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

use rand_core::{OsRng, RngCore};

/// The key file, in the data directory.
pub(super) const KEY_FILE: &str = "totp.key";
const PREFIX: &str = "enc1:";

/// Seals and opens TOTP secrets.
pub(crate) struct Sealer {
    key: LessSafeKey,
}

fn aad(user: &str) -> Aad<Vec<u8>> {
    let mut a = b"fleetwire-totp-v1\0".to_vec();
    a.extend_from_slice(user.as_bytes());
    Aad::from(a)
}

impl Sealer {
    /// A sealer with this key.
    pub(super) fn new(key: &[u8; 32]) -> Result<Self, String> {
        let key = UnboundKey::new(&AES_256_GCM, key).map_err(|_| "bad TOTP key")?;
        Ok(Self {
            key: LessSafeKey::new(key),
        })
    }

    /// The stored form of `plain` for account `user`.
    pub(crate) fn seal(&self, user: &str, plain: &str) -> Result<String, String> {
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let mut buf = plain.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), aad(user), &mut buf)
            .map_err(|_| "sealing the TOTP secret failed")?;
        Ok(format!(
            "{PREFIX}{}{}",
            hex::encode(nonce),
            hex::encode(buf)
        ))
    }

    /// The plain form of a stored value of account `user`; `None` if it is not a sealed value
    /// of this account under this key.
    pub(crate) fn open(&self, user: &str, stored: &str) -> Option<String> {
        let raw = hex::decode(stored.strip_prefix(PREFIX)?).ok()?;
        if raw.len() < NONCE_LEN {
            return None;
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = sealed.to_vec();
        let plain = self.key.open_in_place(nonce, aad(user), &mut buf).ok()?;
        String::from_utf8(plain.to_vec()).ok()
    }
}

/// Seals every TOTP secret still stored in clear; returns how many values were sealed. Each row
/// is replaced only if it is still as read (another node may be sealing it too).
pub(super) async fn migrate(store: &Store, sealer: &Sealer) -> Result<usize, String> {
    let repo = store.accounts();
    let rows = repo.clear_totp().await.map_err(|e| e.to_string())?;
    let mut n = 0;
    for before in rows {
        let mut seal = |v: &Option<String>| -> Result<Option<String>, String> {
            match v {
                Some(v) if !v.starts_with(PREFIX) => {
                    n += 1;
                    sealer.seal(&before.id, v).map(Some)
                }
                other => Ok(other.clone()),
            }
        };
        let after = ClearTotp {
            id: before.id.clone(),
            secret: seal(&before.secret)?,
            pending: seal(&before.pending)?,
        };
        repo.seal_totp(before, after)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_for_their_account_and_key() {
        let s = Sealer::new(&[7; 32]).unwrap();
        let v = s.seal("u_1", "{\"secret\":[1,2,3]}").unwrap();
        assert!(v.starts_with("enc1:") && !v.contains("secret"));
        assert_eq!(s.open("u_1", &v).as_deref(), Some("{\"secret\":[1,2,3]}"));
        assert_eq!(s.open("u_2", &v), None, "bound to the account");
        assert_eq!(Sealer::new(&[8; 32]).unwrap().open("u_1", &v), None);
        assert_eq!(s.open("u_1", "{\"secret\":[1,2,3]}"), None, "clear text");
        assert_eq!(s.open("u_1", "enc1:00"), None);
        let mut tampered = v.clone();
        tampered.pop();
        tampered.push(if v.ends_with('0') { '1' } else { '0' });
        assert_eq!(s.open("u_1", &tampered), None);
    }
}
