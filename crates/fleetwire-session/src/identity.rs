//! Player identity: the public security identifier, the secret issued at provisioning and the
//! verifier the server keeps instead of the secret.

use core::fmt;
use core::str::FromStr;

use ring::signature::{self, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use thiserror::Error;

/// A player's unique security identifier (S5): 128 random bits, printed as 32 lowercase hex
/// digits in four groups (`0a1b2c3d-4e5f6071-8293a4b5-c6d7e8f9`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PlayerId([u8; 16]);

/// The per-player secret issued at provisioning: an Ed25519 seed. It never crosses the wire;
/// login proves possession by signing a fresh server nonce. Printed once as 64 hex digits.
#[derive(Clone, PartialEq, Eq)]
pub struct PlayerSecret([u8; 32]);

/// What the server stores for a player: the Ed25519 public key of its secret. A leaked store
/// lets nobody log in as the player.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct PlayerVerifier([u8; 32]);

/// A 32-byte digest of a player's configuration; a changed hash tells the player to fetch.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ConfigHash(pub [u8; 32]);

/// Keying material both ends export from the TLS connection (RFC 5705/8446 exporter), mixed into
/// the signed login transcript so a login cannot be relayed through another TLS connection.
/// [`ChannelBinding::NONE`] when there is no TLS (danger plaintext mode).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct ChannelBinding(pub [u8; 32]);

/// A printable identifier, secret or verifier did not parse.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ParseIdError {
    /// Wrong number of hex digits.
    #[error("expected {expected} hex digits, found {found}")]
    Length {
        /// Digits expected.
        expected: usize,
        /// Digits found.
        found: usize,
    },
    /// A character that is not a hex digit or a `-` separator.
    #[error("'{0}' is not a hex digit")]
    Character(char),
}

/// The label exported from TLS for [`ChannelBinding`].
pub const CHANNEL_BINDING_LABEL: &[u8] = b"EXPORTER-fleetwire-session-v1";

const TRANSCRIPT_LABEL: &[u8] = b"fleetwire/session/v1/login\0";

/// The Ed25519 public key of the seed `[0x5a; 32]`, whose secret is public: the verifier that
/// unknown players are checked against (see [`PlayerVerifier::dummy`]).
const DUMMY_VERIFIER: [u8; 32] = [
    0x0d, 0x75, 0x50, 0x75, 0x4e, 0x08, 0x00, 0xa5, 0xd2, 0x37, 0xee, 0xf5, 0x82, 0x60, 0x35, 0x76,
    0x6b, 0x9b, 0x3e, 0x5a, 0x15, 0x86, 0x8a, 0x94, 0x0a, 0xb2, 0x89, 0x95, 0x87, 0x88, 0xe3, 0xb0,
];

impl PlayerId {
    /// An identifier from 16 random bytes (use a CSPRNG, such as ring's `SystemRandom`).
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for PlayerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = hex::encode(self.0);
        write!(
            f,
            "{}-{}-{}-{}",
            &h[0..8],
            &h[8..16],
            &h[16..24],
            &h[24..32]
        )
    }
}

impl fmt::Debug for PlayerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PlayerId({self})")
    }
}

impl FromStr for PlayerId {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_hex::<16>(s).map(Self)
    }
}

impl PlayerSecret {
    /// A secret from 32 random bytes (use a CSPRNG).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw bytes, for storing on the player.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The verifier the server keeps.
    pub fn verifier(&self) -> PlayerVerifier {
        let pair = self.key_pair();
        let mut out = [0u8; 32];
        out.copy_from_slice(pair.public_key().as_ref());
        PlayerVerifier(out)
    }

    /// The hex form, to show once at provisioning.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub(crate) fn sign_login(
        &self,
        player: &PlayerId,
        nonce: &[u8; 32],
        binding: &ChannelBinding,
    ) -> [u8; 64] {
        let msg = transcript(player, nonce, binding);
        let mut out = [0u8; 64];
        out.copy_from_slice(self.key_pair().sign(&msg).as_ref());
        out
    }

    fn key_pair(&self) -> Ed25519KeyPair {
        // INVARIANT: any 32 bytes are a valid Ed25519 seed; ring only checks the length.
        Ed25519KeyPair::from_seed_unchecked(&self.0).expect("INVARIANT: 32-byte seed")
    }
}

impl fmt::Debug for PlayerSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PlayerSecret(..)")
    }
}

impl FromStr for PlayerSecret {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_hex::<32>(s).map(Self)
    }
}

impl PlayerVerifier {
    /// A verifier from its stored bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The stored bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Checks a login signature. Always does the same work, whatever the outcome.
    pub(crate) fn verify_login(
        &self,
        player: &PlayerId,
        nonce: &[u8; 32],
        binding: &ChannelBinding,
        sig: &[u8; 64],
    ) -> bool {
        let msg = transcript(player, nonce, binding);
        UnparsedPublicKey::new(&signature::ED25519, &self.0)
            .verify(&msg, sig)
            .is_ok()
    }

    /// A fixed verifier for unknown players, so they cost the same work as known ones: one
    /// signature verification, nothing more. It is a constant (the Ed25519 public key of the
    /// seed `[0x5a; 32]`, checked by a test), not derived per login: deriving a key pair costs
    /// about as much again as the verification and would make an unknown player measurably
    /// slower than a known one.
    pub(crate) const fn dummy() -> Self {
        Self(DUMMY_VERIFIER)
    }
}

impl FromStr for PlayerVerifier {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_hex::<32>(s).map(Self)
    }
}

impl fmt::Display for PlayerVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Display for ConfigHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for ConfigHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConfigHash({})", &hex::encode(self.0)[..16])
    }
}

impl ChannelBinding {
    /// No channel binding (plaintext transport).
    pub const NONE: Self = Self([0; 32]);
}

/// The bytes a player signs at login: a domain label, its id, the server's fresh nonce and the
/// channel binding.
fn transcript(player: &PlayerId, nonce: &[u8; 32], binding: &ChannelBinding) -> Vec<u8> {
    let mut msg = Vec::with_capacity(TRANSCRIPT_LABEL.len() + 16 + 32 + 32);
    msg.extend_from_slice(TRANSCRIPT_LABEL);
    msg.extend_from_slice(&player.0);
    msg.extend_from_slice(nonce);
    msg.extend_from_slice(&binding.0);
    msg
}

fn parse_hex<const N: usize>(s: &str) -> Result<[u8; N], ParseIdError> {
    let mut digits = Vec::with_capacity(N * 2);
    for c in s.trim().chars() {
        match c {
            '-' => {}
            c if c.is_ascii_hexdigit() => digits.push(c as u8),
            c => return Err(ParseIdError::Character(c)),
        }
    }
    if digits.len() != N * 2 {
        return Err(ParseIdError::Length {
            expected: N * 2,
            found: digits.len(),
        });
    }
    let mut out = [0u8; N];
    // INVARIANT: only ASCII hex digits were kept, in an even count.
    hex::decode_to_slice(&digits, &mut out).expect("INVARIANT: validated hex");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_prints_and_parses() {
        let id = PlayerId::from_bytes([0xab; 16]);
        let s = id.to_string();
        assert_eq!(s, "abababab-abababab-abababab-abababab");
        assert_eq!(s.parse::<PlayerId>(), Ok(id));
        assert_eq!(s.to_uppercase().parse::<PlayerId>(), Ok(id));
        assert_eq!(
            "abc".parse::<PlayerId>(),
            Err(ParseIdError::Length {
                expected: 32,
                found: 3
            })
        );
        assert_eq!("zz".parse::<PlayerId>(), Err(ParseIdError::Character('z')));
    }

    #[test]
    fn signature_binds_every_input() {
        let secret = PlayerSecret::from_bytes([7; 32]);
        let v = secret.verifier();
        let id = PlayerId::from_bytes([1; 16]);
        let nonce = [2; 32];
        let sig = secret.sign_login(&id, &nonce, &ChannelBinding::NONE);
        assert!(v.verify_login(&id, &nonce, &ChannelBinding::NONE, &sig));
        assert!(!v.verify_login(
            &PlayerId::from_bytes([9; 16]),
            &nonce,
            &ChannelBinding::NONE,
            &sig
        ));
        assert!(!v.verify_login(&id, &[3; 32], &ChannelBinding::NONE, &sig));
        assert!(!v.verify_login(&id, &nonce, &ChannelBinding([1; 32]), &sig));
        assert!(!PlayerVerifier::dummy().verify_login(&id, &nonce, &ChannelBinding::NONE, &sig));
    }

    #[test]
    fn dummy_verifier_is_the_public_key_of_its_seed() {
        // The constant must stay a real public key (a malformed one could make ring reject it
        // early, i.e. faster than a known player's verification).
        assert_eq!(
            PlayerVerifier::dummy(),
            PlayerSecret::from_bytes([0x5a; 32]).verifier()
        );
        // And it verifies what its (public) seed signs, so the full verification runs.
        let seed = PlayerSecret::from_bytes([0x5a; 32]);
        let id = PlayerId::from_bytes([4; 16]);
        let sig = seed.sign_login(&id, &[5; 32], &ChannelBinding::NONE);
        assert!(PlayerVerifier::dummy().verify_login(&id, &[5; 32], &ChannelBinding::NONE, &sig));
    }
}
