//! The per-login command key: derivation (HKDF-SHA256) and the AEAD seal/open of one datagram
//! (ChaCha20-Poly1305, via ring).

use core::fmt;

use fleetwire_session::{ChannelBinding, PlayerId};
use ring::aead::{self, Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use ring::hkdf;

/// The HKDF `info` label; the player id follows it.
pub const KEY_LABEL: &[u8] = b"fleetwire/command/v1\0";

/// Bytes of the Poly1305 tag.
pub const TAG_LEN: usize = 16;

/// Identifies one login's key on the wire (8 bytes derived with the keys): the server finds the
/// player from it without trying keys, and a datagram from an earlier login is recognised as
/// stale before any decryption.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 8]);

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId(")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

/// Which way a datagram travels. Each direction has its own key, so the two sequence-number
/// spaces can never produce the same (key, nonce) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Server → player: commands and result acknowledgements (wire byte 0x01).
    ToPlayer,
    /// Player → server: hellos, acknowledgements and results (wire byte 0x02).
    ToServer,
}

impl Direction {
    /// The wire byte.
    pub fn to_byte(self) -> u8 {
        match self {
            Self::ToPlayer => 0x01,
            Self::ToServer => 0x02,
        }
    }

    /// The direction of a wire byte.
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            0x01 => Some(Self::ToPlayer),
            0x02 => Some(Self::ToServer),
            _ => None,
        }
    }
}

/// The keys of one player's login: one ChaCha20-Poly1305 key per direction and the key id.
///
/// Derived on both sides from what the login already established
/// ([`CommandKey::derive`]): HKDF-SHA256 with the login nonce as salt, the TLS channel
/// binding as input keying material and `"fleetwire/command/v1\0" ‖ player_id` as info, 72
/// bytes of output: server→player key, player→server key, key id. The channel binding is the
/// TLS exporter secret only the two ends know; the nonce is fresh per login, so every new login
/// rotates the key and a datagram from an earlier login never opens.
///
/// Without TLS (`danger_plaintext`, [`ChannelBinding::NONE`]) the binding is all zeros and the
/// nonce crossed the wire in clear: the key is then known to anyone who watched the login.
#[derive(Clone, PartialEq, Eq)]
pub struct CommandKey {
    to_player: [u8; 32],
    to_server: [u8; 32],
    id: KeyId,
}

impl fmt::Debug for CommandKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommandKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

struct OutputLen(usize);

impl hkdf::KeyType for OutputLen {
    fn len(&self) -> usize {
        self.0
    }
}

impl CommandKey {
    /// The key of one login, from what fleetwire-session's login established: the channel
    /// binding (`Client::channel_binding` / `ServerConnection::channel_binding`), the login
    /// nonce (`login_nonce()`, available once logged in) and the player's id.
    pub fn derive(binding: &ChannelBinding, login_nonce: &[u8; 32], player: &PlayerId) -> Self {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, login_nonce).extract(&binding.0);
        let info = [KEY_LABEL, player.as_bytes().as_slice()];
        let mut okm = [0u8; 72];
        // INVARIANT: 72 bytes is far below HKDF-SHA256's limit of 255 × 32.
        prk.expand(&info, OutputLen(okm.len()))
            .and_then(|o| o.fill(&mut okm))
            .expect("INVARIANT: HKDF output length within limit");
        let mut to_player = [0u8; 32];
        let mut to_server = [0u8; 32];
        let mut id = [0u8; 8];
        to_player.copy_from_slice(&okm[..32]);
        to_server.copy_from_slice(&okm[32..64]);
        id.copy_from_slice(&okm[64..]);
        Self {
            to_player,
            to_server,
            id: KeyId(id),
        }
    }

    /// A key from its raw parts (test vectors, or keys kept across a restart of the driver).
    pub fn from_parts(to_player: [u8; 32], to_server: [u8; 32], id: KeyId) -> Self {
        Self {
            to_player,
            to_server,
            id,
        }
    }

    /// The key id carried in every datagram.
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// The raw key for one direction (test vectors).
    pub fn raw(&self, direction: Direction) -> &[u8; 32] {
        match direction {
            Direction::ToPlayer => &self.to_player,
            Direction::ToServer => &self.to_server,
        }
    }

    /// Encrypts `buf[start..]` in place and appends the tag. `aad` is the datagram header.
    pub(crate) fn seal(
        &self,
        direction: Direction,
        seq: u64,
        aad: &[u8],
        buf: &mut Vec<u8>,
        start: usize,
    ) {
        let key = self.aead(direction);
        let mut payload = buf.split_off(start);
        // INVARIANT: sealing only fails for inputs over 256 GiB; datagrams are at most 1200 bytes.
        key.seal_in_place_append_tag(nonce(seq), Aad::from(aad), &mut payload)
            .expect("INVARIANT: datagram far below the AEAD length limit");
        buf.extend_from_slice(&payload);
    }

    /// Decrypts `sealed` (ciphertext ‖ tag) in place; returns the plaintext or `None` if the
    /// tag does not verify.
    pub(crate) fn open<'a>(
        &self,
        direction: Direction,
        seq: u64,
        aad: &[u8],
        sealed: &'a mut [u8],
    ) -> Option<&'a mut [u8]> {
        self.aead(direction)
            .open_in_place(nonce(seq), Aad::from(aad), sealed)
            .ok()
    }

    fn aead(&self, direction: Direction) -> LessSafeKey {
        // INVARIANT: a 32-byte key is the right length for ChaCha20-Poly1305.
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, self.raw(direction))
            .expect("INVARIANT: 32-byte ChaCha20-Poly1305 key");
        LessSafeKey::new(unbound)
    }
}

/// The 96-bit AEAD nonce: four zero bytes, then the 64-bit sequence number big-endian.
fn nonce(seq: u64) -> Nonce {
    let mut n = [0u8; aead::NONCE_LEN];
    n[4..].copy_from_slice(&seq.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_input_changes_the_key_and_directions_differ() {
        let p = PlayerId::from_bytes([1; 16]);
        let k = CommandKey::derive(&ChannelBinding([2; 32]), &[3; 32], &p);
        assert_ne!(k.raw(Direction::ToPlayer), k.raw(Direction::ToServer));
        assert_ne!(
            k,
            CommandKey::derive(&ChannelBinding([2; 32]), &[4; 32], &p)
        );
        assert_ne!(
            k,
            CommandKey::derive(&ChannelBinding([5; 32]), &[3; 32], &p)
        );
        assert_ne!(
            k,
            CommandKey::derive(
                &ChannelBinding([2; 32]),
                &[3; 32],
                &PlayerId::from_bytes([9; 16])
            )
        );
        assert_eq!(
            k,
            CommandKey::derive(&ChannelBinding([2; 32]), &[3; 32], &p)
        );
    }

    #[test]
    fn seal_open_round_trip_and_tamper() {
        let k = CommandKey::derive(
            &ChannelBinding([2; 32]),
            &[3; 32],
            &PlayerId::from_bytes([1; 16]),
        );
        let mut buf = b"HEADER".to_vec();
        buf.extend_from_slice(b"secret");
        k.seal(Direction::ToPlayer, 7, b"HEADER", &mut buf, 6);
        assert_eq!(buf.len(), 6 + 6 + TAG_LEN);
        let mut sealed = buf[6..].to_vec();
        assert_eq!(
            k.open(Direction::ToPlayer, 7, b"HEADER", &mut sealed)
                .map(|p| p.to_vec()),
            Some(b"secret".to_vec())
        );
        let mut sealed = buf[6..].to_vec();
        assert!(
            k.open(Direction::ToServer, 7, b"HEADER", &mut sealed)
                .is_none()
        );
        let mut sealed = buf[6..].to_vec();
        assert!(
            k.open(Direction::ToPlayer, 8, b"HEADER", &mut sealed)
                .is_none()
        );
        let mut sealed = buf[6..].to_vec();
        assert!(
            k.open(Direction::ToPlayer, 7, b"HEADEX", &mut sealed)
                .is_none()
        );
    }
}
