//! Argon2id password hashing in PHC string format, with an optional pepper.
//!
//! - [`HashParams::owasp`]: m = 19 MiB, t = 2, p = 1 (the OWASP password-storage defaults).
//! - [`PasswordHasher::hash`] takes the salt's randomness from the caller.
//! - [`PasswordHasher::verify`] reports `needs_rehash` when the stored parameters differ from the
//!   current ones, so callers upgrade hashes at the next successful login.
//! - [`PasswordHasher::verify_unknown_user`] does the same work against a dummy hash, so an
//!   unknown user name takes as long as a wrong password.
//! - Passwords are hashed as the UTF-8 bytes of their NFKC form ([`crate::policy::normalize`]);
//!   for ASCII passwords this is the password itself, which keeps hashes interoperable with
//!   other Argon2 libraries such as Python's argon2-cffi.
//! - A pepper, when set, is passed to Argon2 as its secret input `K` (RFC 9106 §3.1). Peppered
//!   hashes verify only with the same pepper.

use argon2::{Algorithm, Argon2, Params, Version};
use data_encoding::BASE64_NOPAD;
use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::policy::normalize;

/// Passwords longer than this many bytes (after NFKC) are refused before hashing.
pub const MAX_PASSWORD_BYTES: usize = 4096;
/// Largest memory cost accepted from a PHC string, in KiB (1 GiB).
pub const MAX_M_COST_KIB: u32 = 1 << 20;
/// Largest time cost accepted from a PHC string.
pub const MAX_T_COST: u32 = 64;
/// Largest parallelism accepted from a PHC string.
pub const MAX_P_COST: u32 = 64;
/// Longest PHC string accepted, in bytes.
pub const MAX_PHC_LEN: usize = 512;
/// Longest pepper accepted, in bytes.
pub const MAX_PEPPER_LEN: usize = 64;

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HashParams {
    /// Memory cost in KiB.
    pub m_cost_kib: u32,
    /// Number of passes.
    pub t_cost: u32,
    /// Degree of parallelism (lanes).
    pub p_cost: u32,
    /// Length of the derived hash in bytes.
    pub output_len: u32,
    /// Length of the random salt in bytes.
    pub salt_len: u32,
}

impl HashParams {
    /// OWASP's Argon2id defaults: m = 19 MiB, t = 2, p = 1, 32-byte hash, 16-byte salt.
    pub const fn owasp() -> Self {
        Self {
            m_cost_kib: 19 * 1024,
            t_cost: 2,
            p_cost: 1,
            output_len: 32,
            salt_len: 16,
        }
    }

    /// Cheap parameters for tests only (m = 64 KiB, t = 1). Never use them for real passwords.
    pub const fn danger_insecure_for_tests() -> Self {
        Self {
            m_cost_kib: 64,
            t_cost: 1,
            p_cost: 1,
            output_len: 32,
            salt_len: 16,
        }
    }

    fn validate(&self) -> Result<(), HashError> {
        // The range checks come first: `p` from a stored PHC string can be anything, and
        // `8 * p` must not overflow (found by the fuzz smoke with p = 1999999999).
        let ok = (8..=MAX_M_COST_KIB).contains(&self.m_cost_kib)
            && (1..=MAX_T_COST).contains(&self.t_cost)
            && (1..=MAX_P_COST).contains(&self.p_cost)
            && self.m_cost_kib >= self.p_cost.saturating_mul(8)
            && (16..=64).contains(&self.output_len)
            && (8..=64).contains(&self.salt_len);
        if ok {
            Ok(())
        } else {
            Err(HashError::ParamsOutOfRange)
        }
    }
}

impl Default for HashParams {
    fn default() -> Self {
        Self::owasp()
    }
}

/// A parsed `$argon2id$v=19$m=…,t=…,p=…$salt$hash` string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhcHash {
    /// Memory cost in KiB.
    pub m_cost_kib: u32,
    /// Number of passes.
    pub t_cost: u32,
    /// Parallelism.
    pub p_cost: u32,
    /// The salt.
    pub salt: Vec<u8>,
    /// The derived hash.
    pub hash: Vec<u8>,
}

impl PhcHash {
    /// Parses a PHC string. Only Argon2id version 19 without `keyid`/`data` is accepted.
    pub fn parse(s: &str) -> Result<Self, HashError> {
        if s.len() > MAX_PHC_LEN {
            return Err(HashError::MalformedPhc("longer than 512 bytes"));
        }
        let mut parts = s.split('$');
        if parts.next() != Some("") {
            return Err(HashError::MalformedPhc("must start with '$'"));
        }
        match parts.next() {
            Some("argon2id") => {}
            Some("argon2i" | "argon2d") => return Err(HashError::UnsupportedAlgorithm),
            _ => return Err(HashError::MalformedPhc("unknown algorithm identifier")),
        }
        if parts.next() != Some("v=19") {
            return Err(HashError::MalformedPhc("version must be v=19"));
        }
        let params = parts
            .next()
            .ok_or(HashError::MalformedPhc("missing parameters"))?;
        let mut fields = params.split(',');
        let m_cost_kib = param(fields.next(), "m")?;
        let t_cost = param(fields.next(), "t")?;
        let p_cost = param(fields.next(), "p")?;
        if fields.next().is_some() {
            return Err(HashError::MalformedPhc("unexpected parameter after p"));
        }
        let salt = b64(parts.next(), "salt")?;
        let hash = b64(parts.next(), "hash")?;
        if parts.next().is_some() {
            return Err(HashError::MalformedPhc("trailing field"));
        }
        let parsed = Self {
            m_cost_kib,
            t_cost,
            p_cost,
            salt,
            hash,
        };
        parsed.params().validate()?;
        Ok(parsed)
    }

    /// The cost parameters of this hash.
    pub fn params(&self) -> HashParams {
        HashParams {
            m_cost_kib: self.m_cost_kib,
            t_cost: self.t_cost,
            p_cost: self.p_cost,
            output_len: u32::try_from(self.hash.len()).unwrap_or(u32::MAX),
            salt_len: u32::try_from(self.salt.len()).unwrap_or(u32::MAX),
        }
    }
}

impl std::fmt::Display for PhcHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "$argon2id$v=19$m={},t={},p={}${}${}",
            self.m_cost_kib,
            self.t_cost,
            self.p_cost,
            BASE64_NOPAD.encode(&self.salt),
            BASE64_NOPAD.encode(&self.hash)
        )
    }
}

/// The result of a successful verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// The stored hash uses other parameters than the current ones: hash the password again and
    /// store the new string.
    pub needs_rehash: bool,
}

/// What went wrong while hashing or verifying.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HashError {
    /// The password does not match (or the user is unknown: the two are indistinguishable).
    #[error("invalid user name or password")]
    Mismatch,
    /// The stored string is not a well-formed Argon2id PHC string.
    #[error("malformed PHC string: {0}")]
    MalformedPhc(&'static str),
    /// The PHC string names Argon2i or Argon2d; only Argon2id is accepted.
    #[error(
        "only argon2id hashes are accepted; rehash legacy argon2i/argon2d hashes at next login"
    )]
    UnsupportedAlgorithm,
    /// Cost parameters or lengths outside the accepted ranges.
    #[error(
        "Argon2 parameters out of range (m 8..=1048576 KiB, t 1..=64, p 1..=64, salt 8..=64 bytes, hash 16..=64 bytes)"
    )]
    ParamsOutOfRange,
    /// The password is longer than [`MAX_PASSWORD_BYTES`].
    #[error("password longer than 4096 bytes")]
    PasswordTooLong,
    /// The pepper is longer than [`MAX_PEPPER_LEN`].
    #[error("pepper longer than 64 bytes")]
    PepperTooLong,
    /// Argon2 itself failed (for example it could not allocate its memory).
    #[error("argon2 failed: {0}")]
    Argon2(String),
}

/// Hashes and verifies passwords with fixed current parameters and an optional pepper.
#[derive(Clone)]
pub struct PasswordHasher {
    params: HashParams,
    pepper: Option<Vec<u8>>,
    dummy: PhcHash,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", &self.params)
            .field("pepper", &self.pepper.as_ref().map(|_| ".."))
            .finish_non_exhaustive()
    }
}

impl PasswordHasher {
    /// A hasher with the given current parameters and no pepper.
    pub fn new(params: HashParams) -> Result<Self, HashError> {
        params.validate()?;
        Ok(Self {
            params,
            pepper: None,
            dummy: dummy_for(params),
        })
    }

    /// A hasher that passes `pepper` to Argon2 as its secret input.
    pub fn with_pepper(params: HashParams, pepper: &[u8]) -> Result<Self, HashError> {
        if pepper.len() > MAX_PEPPER_LEN {
            return Err(HashError::PepperTooLong);
        }
        let mut h = Self::new(params)?;
        h.pepper = Some(pepper.to_vec());
        Ok(h)
    }

    /// The current parameters.
    pub fn params(&self) -> HashParams {
        self.params
    }

    /// Hashes `password` with a fresh random salt and returns the PHC string.
    pub fn hash(&self, password: &str, rng: &mut impl CryptoRngCore) -> Result<String, HashError> {
        let mut salt = vec![0u8; self.params.salt_len as usize];
        rng.fill_bytes(&mut salt);
        self.hash_with_salt(password, &salt)
    }

    /// Hashes `password` with the given salt (8 to 64 bytes) and returns the PHC string.
    pub fn hash_with_salt(&self, password: &str, salt: &[u8]) -> Result<String, HashError> {
        let mut params = self.params;
        params.salt_len = u32::try_from(salt.len()).unwrap_or(u32::MAX);
        params.validate()?;
        let hash = self.derive(password, salt, params)?;
        Ok(PhcHash {
            m_cost_kib: params.m_cost_kib,
            t_cost: params.t_cost,
            p_cost: params.p_cost,
            salt: salt.to_vec(),
            hash,
        }
        .to_string())
    }

    /// Verifies `password` against a stored PHC string, in constant time over the hash bytes.
    pub fn verify(&self, password: &str, phc: &str) -> Result<Verified, HashError> {
        let stored = PhcHash::parse(phc)?;
        let derived = self.derive(password, &stored.salt, stored.params())?;
        if bool::from(derived.ct_eq(&stored.hash)) {
            Ok(Verified {
                needs_rehash: self.needs_rehash_parsed(&stored),
            })
        } else {
            Err(HashError::Mismatch)
        }
    }

    /// Does the work of a verification against a dummy hash with the current parameters and
    /// always returns [`HashError::Mismatch`]: call it when the user name is unknown.
    pub fn verify_unknown_user(&self, password: &str) -> HashError {
        match self.derive(password, &self.dummy.salt, self.dummy.params()) {
            Ok(derived) => {
                // The comparison is done for equal timing; its result is irrelevant.
                let _ = derived.ct_eq(&self.dummy.hash);
                HashError::Mismatch
            }
            Err(e) if e == HashError::PasswordTooLong => e,
            Err(_) => HashError::Mismatch,
        }
    }

    /// Whether a stored PHC string should be replaced by a hash with the current parameters.
    /// Unparseable strings need a rehash too.
    pub fn needs_rehash(&self, phc: &str) -> bool {
        PhcHash::parse(phc).map_or(true, |p| self.needs_rehash_parsed(&p))
    }

    fn needs_rehash_parsed(&self, stored: &PhcHash) -> bool {
        let s = stored.params();
        s.m_cost_kib != self.params.m_cost_kib
            || s.t_cost != self.params.t_cost
            || s.p_cost != self.params.p_cost
            || s.output_len != self.params.output_len
            || s.salt_len < self.params.salt_len
    }

    fn derive(
        &self,
        password: &str,
        salt: &[u8],
        params: HashParams,
    ) -> Result<Vec<u8>, HashError> {
        let normalized = normalize(password);
        if normalized.len() > MAX_PASSWORD_BYTES || password.len() > 4 * MAX_PASSWORD_BYTES {
            return Err(HashError::PasswordTooLong);
        }
        let argon_params = Params::new(
            params.m_cost_kib,
            params.t_cost,
            params.p_cost,
            Some(params.output_len as usize),
        )
        .map_err(|e| HashError::Argon2(e.to_string()))?;
        let ctx = match &self.pepper {
            Some(p) => {
                Argon2::new_with_secret(p, Algorithm::Argon2id, Version::V0x13, argon_params)
                    .map_err(|e| HashError::Argon2(e.to_string()))?
            }
            None => Argon2::new(Algorithm::Argon2id, Version::V0x13, argon_params),
        };
        let mut out = vec![0u8; params.output_len as usize];
        ctx.hash_password_into(normalized.as_bytes(), salt, &mut out)
            .map_err(|e| HashError::Argon2(e.to_string()))?;
        Ok(out)
    }
}

fn dummy_for(params: HashParams) -> PhcHash {
    PhcHash {
        m_cost_kib: params.m_cost_kib,
        t_cost: params.t_cost,
        p_cost: params.p_cost,
        salt: vec![0x5a; params.salt_len as usize],
        hash: vec![0xa5; params.output_len as usize],
    }
}

fn param(field: Option<&str>, name: &'static str) -> Result<u32, HashError> {
    let field = field.ok_or(HashError::MalformedPhc("missing m, t or p"))?;
    let (key, value) = field
        .split_once('=')
        .ok_or(HashError::MalformedPhc("parameter without '='"))?;
    if key != name {
        return Err(HashError::MalformedPhc(
            "parameters must be m, t, p in that order",
        ));
    }
    if value.is_empty() || value.len() > 10 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HashError::MalformedPhc(
            "parameter value is not a decimal number",
        ));
    }
    value
        .parse()
        .map_err(|_| HashError::MalformedPhc("parameter value out of range"))
}

fn b64(field: Option<&str>, _what: &'static str) -> Result<Vec<u8>, HashError> {
    let field = field.ok_or(HashError::MalformedPhc("missing salt or hash"))?;
    BASE64_NOPAD
        .decode(field.as_bytes())
        .map_err(|_| HashError::MalformedPhc("salt or hash is not unpadded base64"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher() -> PasswordHasher {
        PasswordHasher::new(HashParams::danger_insecure_for_tests()).unwrap()
    }

    #[test]
    fn huge_parallelism_in_a_stored_hash_is_refused_not_a_panic() {
        // Found by the CI fuzz smoke (auth_phc): `8 * p` overflowed before the range check.
        let phc = "$argon2id$v=19$m=64,t=1,p=1999999999$EREYAwJuULg$oHyeGlGlHeaamgZEKx3tU3c6t/jq81oDzQXZj1EeHaamgZE";
        assert_eq!(PhcHash::parse(phc), Err(HashError::ParamsOutOfRange));
    }

    #[test]
    fn hash_then_verify() {
        let h = hasher();
        let phc = h.hash_with_salt("correct horse", &[7; 16]).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert_eq!(
            h.verify("correct horse", &phc),
            Ok(Verified {
                needs_rehash: false
            })
        );
        assert_eq!(h.verify("wrong horse", &phc), Err(HashError::Mismatch));
    }

    #[test]
    fn needs_rehash_when_params_change() {
        let old = hasher();
        let phc = old.hash_with_salt("pw", &[1; 16]).unwrap();
        let mut p = HashParams::danger_insecure_for_tests();
        p.t_cost = 2;
        let new = PasswordHasher::new(p).unwrap();
        assert!(new.needs_rehash(&phc));
        assert_eq!(new.verify("pw", &phc), Ok(Verified { needs_rehash: true }));
        assert!(!old.needs_rehash(&phc));
        assert!(new.needs_rehash("garbage"));
    }

    #[test]
    fn pepper_changes_hash() {
        let plain = hasher();
        let peppered =
            PasswordHasher::with_pepper(HashParams::danger_insecure_for_tests(), b"pepper")
                .unwrap();
        let phc = peppered.hash_with_salt("pw", &[3; 16]).unwrap();
        assert!(peppered.verify("pw", &phc).is_ok());
        assert_eq!(plain.verify("pw", &phc), Err(HashError::Mismatch));
    }

    #[test]
    fn unknown_user_is_a_mismatch() {
        assert_eq!(
            hasher().verify_unknown_user("anything"),
            HashError::Mismatch
        );
    }

    #[test]
    fn phc_round_trip_and_rejections() {
        let s = "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";
        assert_eq!(PhcHash::parse(s).unwrap().to_string(), s);
        for bad in [
            "",
            "$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            "$argon2id$v=16$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            "$argon2id$v=19$t=1,m=64,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            "$argon2id$v=19$m=99999999999,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ=$aGFzaGhhc2hoYXNoaGFzaA",
            "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA$",
            "$argon2id$v=19$m=+64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
        ] {
            assert!(PhcHash::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn too_long_password_refused() {
        let long = "a".repeat(MAX_PASSWORD_BYTES + 1);
        assert_eq!(
            hasher().hash_with_salt(&long, &[0; 16]),
            Err(HashError::PasswordTooLong)
        );
    }
}
