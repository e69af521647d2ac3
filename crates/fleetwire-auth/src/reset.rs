//! Password-reset tokens: 256 random bits, stored only as a SHA-256 digest, single use, short
//! expiry, bound to the password version, replaced by a newer request, void after a password
//! change.
//!
//! The server answers a reset request the same way whether or not the account exists: it calls
//! [`ResetTokens::issue`] only for existing accounts and e-mails the token, and shows one
//! message in both cases. After [`ResetTokens::redeem`] succeeds the server sets the new
//! password, bumps the password version, ends all sessions
//! ([`crate::session::SessionStore::end_all`]) and clears the lockout
//! ([`crate::lockout::LockoutEngine::clear`]).
//!
//! Token format: `fwr1.` + base64url(32 random bytes), 48 characters.

use std::collections::BTreeMap;

use data_encoding::BASE64URL_NOPAD;
use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};

use crate::session::digest_hex;
use crate::time::UnixTime;

/// Reset-token parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetConfig {
    /// How long a token is valid.
    pub lifetime_ms: u64,
}

impl Default for ResetConfig {
    /// 20 minutes.
    fn default() -> Self {
        Self {
            lifetime_ms: 20 * 60 * 1000,
        }
    }
}

/// Why a token was refused. The messages do not say whether an account exists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResetError {
    /// Unknown, already used, replaced by a newer request or malformed.
    #[error("this reset link is invalid or was already used; request a new one")]
    Invalid,
    /// Past its expiry.
    #[error("this reset link has expired; request a new one")]
    Expired,
    /// The password changed since the token was issued.
    #[error("the password was changed since this link was sent; request a new one")]
    PasswordChanged,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Pending {
    user: String,
    expires_at: UnixTime,
    password_version: u64,
}

/// Outstanding reset tokens, serializable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetTokens {
    config: ResetConfig,
    /// Digest (hex) → pending reset.
    pending: BTreeMap<String, Pending>,
    /// User → digest of their only live token.
    by_user: BTreeMap<String, String>,
}

impl ResetTokens {
    /// No outstanding tokens.
    pub fn new(config: ResetConfig) -> Self {
        Self {
            config,
            pending: BTreeMap::new(),
            by_user: BTreeMap::new(),
        }
    }

    /// Issues a token for an existing `user` whose password is at `password_version`; any older
    /// token of the user stops working.
    pub fn issue(
        &mut self,
        user: &str,
        password_version: u64,
        now: UnixTime,
        rng: &mut impl CryptoRngCore,
    ) -> String {
        let (token, digest) = new_token(rng);
        if let Some(old) = self.by_user.insert(user.to_owned(), digest.clone()) {
            self.pending.remove(&old);
        }
        self.pending.insert(
            digest,
            Pending {
                user: user.to_owned(),
                expires_at: now.plus_millis(self.config.lifetime_ms),
                password_version,
            },
        );
        token
    }

    /// The user a token would reset, without using it (to look up the current password
    /// version before [`Self::redeem`]).
    pub fn user_of(&self, token: &str, now: UnixTime) -> Result<&str, ResetError> {
        let p = self
            .pending
            .get(&digest_hex(token))
            .ok_or(ResetError::Invalid)?;
        judge(p.expires_at, None, now)?;
        Ok(&p.user)
    }

    /// Uses a token: it never works again, whatever the result. Returns the user whose password
    /// may now be set.
    pub fn redeem(
        &mut self,
        token: &str,
        current_password_version: u64,
        now: UnixTime,
    ) -> Result<String, ResetError> {
        if token.len() > 64 {
            return Err(ResetError::Invalid);
        }
        let digest = digest_hex(token);
        let p = self.pending.remove(&digest).ok_or(ResetError::Invalid)?;
        self.by_user.remove(&p.user);
        judge(
            p.expires_at,
            Some((p.password_version, current_password_version)),
            now,
        )?;
        Ok(p.user)
    }

    /// Voids the user's token (call on every password change).
    pub fn password_changed(&mut self, user: &str) {
        if let Some(d) = self.by_user.remove(user) {
            self.pending.remove(&d);
        }
    }

    /// Drops expired tokens.
    pub fn purge(&mut self, now: UnixTime) {
        let by_user = &mut self.by_user;
        self.pending.retain(|_, p| {
            let live = now < p.expires_at;
            if !live {
                by_user.remove(&p.user);
            }
            live
        });
    }
}

/// A new reset token (`fwr1.` + 256 random bits, base64url) and its digest (lower-case hex
/// SHA-256), for a server that keeps outstanding tokens as rows shared by several nodes.
pub fn new_token(rng: &mut impl CryptoRngCore) -> (String, String) {
    let mut raw = [0u8; 32];
    rng.fill_bytes(&mut raw);
    let token = format!("fwr1.{}", BASE64URL_NOPAD.encode(&raw));
    let digest = digest_hex(&token);
    (token, digest)
}

/// Judges one outstanding token kept elsewhere, as [`ResetTokens`] does: expired at
/// `expires_at`; when it is being redeemed, `versions` is (the password version it was issued
/// for, the current one), and a change in between voids it. A row store makes the token single
/// use by deleting its row as it reads it.
pub fn judge(
    expires_at: UnixTime,
    versions: Option<(u64, u64)>,
    now: UnixTime,
) -> Result<(), ResetError> {
    if now >= expires_at {
        return Err(ResetError::Expired);
    }
    match versions {
        Some((issued, current)) if issued != current => Err(ResetError::PasswordChanged),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;

    #[test]
    fn single_use_and_replaced_by_newer() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        let mut store = ResetTokens::new(ResetConfig::default());
        let t = UnixTime::from_secs(100);
        let first = store.issue("ann", 1, t, &mut rng);
        assert_eq!(first.len(), 48);
        let second = store.issue("ann", 1, t, &mut rng);
        assert_eq!(store.redeem(&first, 1, t), Err(ResetError::Invalid));
        assert_eq!(store.user_of(&second, t), Ok("ann"));
        assert_eq!(store.redeem(&second, 1, t).as_deref(), Ok("ann"));
        assert_eq!(store.redeem(&second, 1, t), Err(ResetError::Invalid));
    }

    #[test]
    fn expiry_and_password_version() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(2);
        let mut store = ResetTokens::new(ResetConfig::default());
        let t = UnixTime::from_secs(100);
        let a = store.issue("ann", 1, t, &mut rng);
        assert_eq!(
            store.redeem(&a, 1, t.plus_secs(1200)),
            Err(ResetError::Expired)
        );
        let b = store.issue("ann", 1, t, &mut rng);
        assert_eq!(store.redeem(&b, 2, t), Err(ResetError::PasswordChanged));
        let c = store.issue("ann", 2, t, &mut rng);
        store.password_changed("ann");
        assert_eq!(store.redeem(&c, 2, t), Err(ResetError::Invalid));
    }
}
