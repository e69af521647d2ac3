//! TOTP one-time passwords (RFC 6238 over RFC 4226 HOTP), with replay protection.
//!
//! [`Totp::verify`] accepts codes within `skew_steps` of now and returns the time step used;
//! store it and pass it back as `last_used_step` so a code is accepted only once.

use std::fmt::Write as _;

use data_encoding::BASE32_NOPAD;
use rand_core::CryptoRngCore;
use ring::hmac;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::time::UnixTime;

/// The HMAC behind the codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TotpAlgorithm {
    /// HMAC-SHA-1: what authenticator apps default to.
    Sha1,
    /// HMAC-SHA-256.
    Sha256,
    /// HMAC-SHA-512.
    Sha512,
}

/// A TOTP secret and its parameters.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totp {
    secret: Vec<u8>,
    /// The HMAC.
    pub algorithm: TotpAlgorithm,
    /// Code length, 6 to 8.
    pub digits: u8,
    /// Time step in seconds (30).
    pub step_secs: u64,
    /// Steps of clock drift tolerated either way (1).
    pub skew_steps: u8,
}

impl std::fmt::Debug for Totp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Totp")
            .field("algorithm", &self.algorithm)
            .field("digits", &self.digits)
            .finish_non_exhaustive()
    }
}

/// Why a TOTP code or secret was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TotpError {
    /// The code is wrong or outside the accepted time window.
    #[error("the code is not valid; check the time on your device and try the next code")]
    Invalid,
    /// The code was already used.
    #[error("this code was already used; wait for the next one")]
    Replayed,
    /// Parameters out of range (digits 6 to 8, step at least 1 s, secret at least 16 bytes).
    #[error(
        "TOTP parameters out of range: 6 to 8 digits, a step of at least 1 s, a secret of 16 to 128 bytes"
    )]
    BadParameters,
}

impl Totp {
    /// A TOTP with an explicit secret (16 to 128 bytes).
    pub fn new(
        secret: Vec<u8>,
        algorithm: TotpAlgorithm,
        digits: u8,
        step_secs: u64,
    ) -> Result<Self, TotpError> {
        if !(6..=8).contains(&digits) || step_secs == 0 || !(16..=128).contains(&secret.len()) {
            return Err(TotpError::BadParameters);
        }
        Ok(Self {
            secret,
            algorithm,
            digits,
            step_secs,
            skew_steps: 1,
        })
    }

    /// A new random 160-bit SHA-1, 6-digit, 30-second TOTP (what authenticator apps expect).
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        let mut secret = vec![0u8; 20];
        rng.fill_bytes(&mut secret);
        Self {
            secret,
            algorithm: TotpAlgorithm::Sha1,
            digits: 6,
            step_secs: 30,
            skew_steps: 1,
        }
    }

    /// The secret in base32, for manual entry.
    pub fn secret_base32(&self) -> String {
        BASE32_NOPAD.encode(&self.secret)
    }

    /// The `otpauth://` URI for a QR code.
    pub fn provisioning_uri(&self, issuer: &str, account: &str) -> String {
        let alg = match self.algorithm {
            TotpAlgorithm::Sha1 => "SHA1",
            TotpAlgorithm::Sha256 => "SHA256",
            TotpAlgorithm::Sha512 => "SHA512",
        };
        format!(
            "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm={alg}&digits={}&period={}",
            pct(issuer),
            pct(account),
            self.secret_base32(),
            pct(issuer),
            self.digits,
            self.step_secs
        )
    }

    /// The time step that contains `now`.
    pub fn step_at(&self, now: UnixTime) -> u64 {
        now.as_secs() / self.step_secs
    }

    /// The code for time step `step`.
    pub fn code_for_step(&self, step: u64) -> String {
        let alg = match self.algorithm {
            TotpAlgorithm::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            TotpAlgorithm::Sha256 => hmac::HMAC_SHA256,
            TotpAlgorithm::Sha512 => hmac::HMAC_SHA512,
        };
        let tag = hmac::sign(&hmac::Key::new(alg, &self.secret), &step.to_be_bytes());
        let mac = tag.as_ref();
        let offset = (mac[mac.len() - 1] & 0x0f) as usize;
        let bin = u32::from_be_bytes([
            mac[offset] & 0x7f,
            mac[offset + 1],
            mac[offset + 2],
            mac[offset + 3],
        ]);
        let code = bin % 10u32.pow(u32::from(self.digits));
        format!("{code:0width$}", width = self.digits as usize)
    }

    /// The code at `now`.
    pub fn code_at(&self, now: UnixTime) -> String {
        self.code_for_step(self.step_at(now))
    }

    /// Checks `code` at `now`; returns the matched step, to be stored as `last_used_step`.
    pub fn verify(
        &self,
        code: &str,
        now: UnixTime,
        last_used_step: Option<u64>,
    ) -> Result<u64, TotpError> {
        let code = code.trim();
        if code.len() != self.digits as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(TotpError::Invalid);
        }
        let current = self.step_at(now);
        let skew = u64::from(self.skew_steps);
        let mut found = None;
        for step in current.saturating_sub(skew)..=current.saturating_add(skew) {
            let ok: bool = self
                .code_for_step(step)
                .as_bytes()
                .ct_eq(code.as_bytes())
                .into();
            if ok && found.is_none() {
                found = Some(step);
            }
        }
        let step = found.ok_or(TotpError::Invalid)?;
        if last_used_step.is_some_and(|last| step <= last) {
            return Err(TotpError::Replayed);
        }
        Ok(step)
    }
}

fn pct(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_is_refused() {
        let t = Totp::new(b"12345678901234567890".to_vec(), TotpAlgorithm::Sha1, 6, 30).unwrap();
        let now = UnixTime::from_secs(1_111_111_111);
        let code = t.code_at(now);
        let step = t.verify(&code, now, None).unwrap();
        assert_eq!(t.verify(&code, now, Some(step)), Err(TotpError::Replayed));
        assert_eq!(t.verify("000000x", now, None), Err(TotpError::Invalid));
        assert!(
            t.provisioning_uri("Fleet Wire", "a@b")
                .starts_with("otpauth://totp/Fleet%20Wire:a%40b?secret=")
        );
    }
}
