//! Signed manifests: what a file is, chunk by chunk, under the server's content-signing key.

use fleetwire_wire::{DecodeError, Reader, Writer};
use ring::digest::{Context, SHA256};
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

use crate::TransferError;

/// Bytes of a SHA-256 digest.
pub const DIGEST_LEN: usize = 32;
/// Bytes of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;
/// The largest chunk a manifest may declare (1 MiB).
pub const MAX_CHUNK_SIZE: u32 = 1 << 20;
/// The default limit on chunks in a manifest a receiver accepts (32 MiB of digests at most is
/// far too much for a player; 65,536 chunks × 32 bytes = 2 MiB).
pub const DEFAULT_MAX_CHUNKS: u32 = 1 << 16;

const MAGIC: &[u8; 4] = b"FWMF";
const FORMAT: u8 = 1;
/// Domain separation: a signature over a manifest can never be replayed as another message.
const SIGNING_CONTEXT: &[u8] = b"fleetwire manifest v1\0";
/// Fixed bytes before the digests: magic, format, kind, file id, version, length, chunk size,
/// file digest.
const FIXED_LEN: usize = 4 + 1 + 1 + 8 + 8 + 8 + 4 + DIGEST_LEN;

/// A SHA-256 digest.
pub type Digest = [u8; DIGEST_LEN];

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> Digest {
    let d = ring::digest::digest(&SHA256, data);
    let mut out = [0u8; DIGEST_LEN];
    out.copy_from_slice(d.as_ref());
    out
}

/// What a file is for. Configuration is sent before media on a shared connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FileKind {
    /// Player configuration: small, urgent, sent first.
    Configuration,
    /// Media and other content.
    Media,
}

impl FileKind {
    fn code(self) -> u8 {
        match self {
            Self::Configuration => 0,
            Self::Media => 1,
        }
    }

    fn from_code(code: u8) -> Result<Self, DecodeError> {
        match code {
            0 => Ok(Self::Configuration),
            1 => Ok(Self::Media),
            _ => Err(DecodeError::InvalidValue {
                field: "manifest kind",
                reason: "must be 0 (configuration) or 1 (media)",
            }),
        }
    }
}

/// An Ed25519 public content-signing key that players trust.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(pub [u8; 32]);

/// The server's content-signing key (Ed25519, via ring).
pub struct ContentSigner {
    pair: Ed25519KeyPair,
}

impl core::fmt::Debug for ContentSigner {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ContentSigner")
            .field("public", &self.public_key())
            .finish_non_exhaustive()
    }
}

impl ContentSigner {
    /// A signer from a 32-byte Ed25519 seed (keep it secret; generate it with a CSPRNG).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        // INVARIANT: ring accepts any 32-byte seed.
        let pair = Ed25519KeyPair::from_seed_unchecked(seed).expect("INVARIANT: 32-byte seed");
        Self { pair }
    }

    /// The public key players must trust.
    pub fn public_key(&self) -> PublicKey {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.pair.public_key().as_ref());
        PublicKey(out)
    }

    fn sign(&self, body: &[u8]) -> [u8; SIGNATURE_LEN] {
        let mut msg = Vec::with_capacity(SIGNING_CONTEXT.len() + body.len());
        msg.extend_from_slice(SIGNING_CONTEXT);
        msg.extend_from_slice(body);
        let mut out = [0u8; SIGNATURE_LEN];
        out.copy_from_slice(self.pair.sign(&msg).as_ref());
        out
    }
}

/// A description of one version of a file: its length, chunking and digests. Build it with
/// [`Manifest::build`] or [`ManifestBuilder`], sign it with [`Manifest::sign`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    kind: FileKind,
    file_id: u64,
    version: u64,
    length: u64,
    chunk_size: u32,
    file_digest: Digest,
    chunk_digests: Vec<Digest>,
}

impl Manifest {
    /// The manifest of `data`, cut into `chunk_size`-byte chunks (the last may be shorter).
    pub fn build(
        kind: FileKind,
        file_id: u64,
        version: u64,
        chunk_size: u32,
        data: &[u8],
    ) -> Result<Self, TransferError> {
        let mut b = ManifestBuilder::new(kind, file_id, version, chunk_size)?;
        b.update(data);
        Ok(b.finish())
    }

    /// Configuration or media.
    pub fn kind(&self) -> FileKind {
        self.kind
    }
    /// The file's id.
    pub fn file_id(&self) -> u64 {
        self.file_id
    }
    /// The file's version; a higher version supersedes a lower one.
    pub fn version(&self) -> u64 {
        self.version
    }
    /// The file's length in bytes.
    pub fn length(&self) -> u64 {
        self.length
    }
    /// Bytes per chunk (the last chunk may be shorter).
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }
    /// SHA-256 of the whole file (what `sha256sum` prints).
    pub fn file_digest(&self) -> &Digest {
        &self.file_digest
    }
    /// SHA-256 of each chunk.
    pub fn chunk_digests(&self) -> &[Digest] {
        &self.chunk_digests
    }
    /// Number of chunks.
    pub fn chunk_count(&self) -> u32 {
        // INVARIANT: construction bounds the count to u32 (checked in the builder and decoder).
        u32::try_from(self.chunk_digests.len()).expect("INVARIANT: chunk count fits u32")
    }
    /// Byte offset of chunk `index`.
    pub fn chunk_offset(&self, index: u32) -> u64 {
        u64::from(index) * u64::from(self.chunk_size)
    }
    /// Length of chunk `index` (0 if out of range).
    pub fn chunk_len(&self, index: u32) -> usize {
        let start = self.chunk_offset(index);
        if start >= self.length {
            return 0;
        }
        (self.length - start).min(u64::from(self.chunk_size)) as usize
    }
    /// True if `data` is chunk `index` of this file.
    pub fn chunk_matches(&self, index: u32, data: &[u8]) -> bool {
        self.chunk_digests
            .get(index as usize)
            .is_some_and(|d| data.len() == self.chunk_len(index) && sha256(data) == *d)
    }

    /// Checks a whole file at rest against this manifest: every chunk and the whole-file digest.
    /// Returns the first bad chunk, or `Err(None)` if only the length or whole digest is wrong.
    pub fn verify_file(&self, data: &[u8]) -> Result<(), Option<u32>> {
        if data.len() as u64 != self.length {
            return Err(None);
        }
        for index in 0..self.chunk_count() {
            let start = self.chunk_offset(index) as usize;
            if !self.chunk_matches(index, &data[start..start + self.chunk_len(index)]) {
                return Err(Some(index));
            }
        }
        if sha256(data) == self.file_digest {
            Ok(())
        } else {
            Err(None)
        }
    }

    /// Signs the manifest with the server's content-signing key.
    pub fn sign(&self, signer: &ContentSigner) -> SignedManifest {
        let mut bytes = self.encode_body();
        let signature = signer.sign(&bytes);
        bytes.extend_from_slice(&signature);
        SignedManifest {
            manifest: self.clone(),
            bytes,
        }
    }

    fn encode_body(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(FIXED_LEN + self.chunk_digests.len() * DIGEST_LEN);
        let mut w = Writer::new(&mut out);
        w.bytes(MAGIC);
        w.u8(FORMAT);
        w.u8(self.kind.code());
        w.u64(self.file_id);
        w.u64(self.version);
        w.u64(self.length);
        w.u32(self.chunk_size);
        w.bytes(&self.file_digest);
        for d in &self.chunk_digests {
            w.bytes(d);
        }
        out
    }
}

/// Builds a manifest from a file streamed in pieces of any size (the server need not hold the
/// whole file).
#[derive(Clone)]
pub struct ManifestBuilder {
    kind: FileKind,
    file_id: u64,
    version: u64,
    chunk_size: u32,
    length: u64,
    whole: Context,
    chunk: Context,
    in_chunk: usize,
    digests: Vec<Digest>,
}

impl core::fmt::Debug for ManifestBuilder {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ManifestBuilder")
            .field("file_id", &self.file_id)
            .field("version", &self.version)
            .field("length", &self.length)
            .finish_non_exhaustive()
    }
}

impl ManifestBuilder {
    /// A builder for a file of `kind`, id and version, cut into `chunk_size`-byte chunks.
    pub fn new(
        kind: FileKind,
        file_id: u64,
        version: u64,
        chunk_size: u32,
    ) -> Result<Self, TransferError> {
        if chunk_size == 0 || chunk_size > MAX_CHUNK_SIZE {
            return Err(TransferError::BadManifest(
                "chunk size must be 1 byte to 1 MiB",
            ));
        }
        Ok(Self {
            kind,
            file_id,
            version,
            chunk_size,
            length: 0,
            whole: Context::new(&SHA256),
            chunk: Context::new(&SHA256),
            in_chunk: 0,
            digests: Vec::new(),
        })
    }

    /// Adds the next bytes of the file.
    pub fn update(&mut self, mut data: &[u8]) {
        self.whole.update(data);
        self.length += data.len() as u64;
        while !data.is_empty() {
            let take = (self.chunk_size as usize - self.in_chunk).min(data.len());
            self.chunk.update(&data[..take]);
            self.in_chunk += take;
            data = &data[take..];
            if self.in_chunk == self.chunk_size as usize {
                self.close_chunk();
            }
        }
    }

    /// The finished manifest.
    pub fn finish(mut self) -> Manifest {
        if self.in_chunk > 0 {
            self.close_chunk();
        }
        let mut file_digest = [0u8; DIGEST_LEN];
        file_digest.copy_from_slice(self.whole.finish().as_ref());
        Manifest {
            kind: self.kind,
            file_id: self.file_id,
            version: self.version,
            length: self.length,
            chunk_size: self.chunk_size,
            file_digest,
            chunk_digests: self.digests,
        }
    }

    fn close_chunk(&mut self) {
        let ctx = core::mem::replace(&mut self.chunk, Context::new(&SHA256));
        let mut d = [0u8; DIGEST_LEN];
        d.copy_from_slice(ctx.finish().as_ref());
        self.digests.push(d);
        self.in_chunk = 0;
    }
}

/// A manifest together with its signed encoding. Obtained only by signing
/// ([`Manifest::sign`]) or by decoding bytes whose signature verified
/// ([`SignedManifest::decode`]), so holding one means the content is the server's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedManifest {
    manifest: Manifest,
    bytes: Vec<u8>,
}

impl SignedManifest {
    /// Decodes `bytes` and verifies the signature with any of `trusted`. At most `max_chunks`
    /// chunks are accepted; nothing is allocated before the bytes are known to be present.
    pub fn decode(
        bytes: &[u8],
        trusted: &[PublicKey],
        max_chunks: u32,
    ) -> Result<Self, TransferError> {
        let manifest = decode_unverified(bytes, max_chunks)?;
        let (body, sig) = bytes.split_at(bytes.len() - SIGNATURE_LEN);
        let mut msg = Vec::with_capacity(SIGNING_CONTEXT.len() + body.len());
        msg.extend_from_slice(SIGNING_CONTEXT);
        msg.extend_from_slice(body);
        let ok = trusted.iter().any(|k| {
            UnparsedPublicKey::new(&ED25519, k.0)
                .verify(&msg, sig)
                .is_ok()
        });
        if !ok {
            return Err(TransferError::BadSignature);
        }
        Ok(Self {
            manifest,
            bytes: bytes.to_vec(),
        })
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The signed encoding (what travels in an offer and what a player stores).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl core::ops::Deref for SignedManifest {
    type Target = Manifest;
    fn deref(&self) -> &Manifest {
        &self.manifest
    }
}

/// Decodes a manifest without checking its signature (fuzzing and diagnostics only: never trust
/// the result).
pub fn decode_unverified(bytes: &[u8], max_chunks: u32) -> Result<Manifest, TransferError> {
    let mut r = Reader::new(bytes);
    if r.array::<4>("manifest magic")? != *MAGIC {
        return Err(DecodeError::InvalidValue {
            field: "manifest magic",
            reason: "must be \"FWMF\"",
        }
        .into());
    }
    let format = r.u8("manifest format")?;
    if format != FORMAT {
        return Err(DecodeError::UnsupportedVersion {
            version: format,
            supported: FORMAT,
        }
        .into());
    }
    let kind = FileKind::from_code(r.u8("manifest kind")?)?;
    let file_id = r.u64("file id")?;
    let version = r.u64("file version")?;
    let length = r.u64("file length")?;
    let chunk_size = r.u32("chunk size")?;
    if chunk_size == 0 || chunk_size > MAX_CHUNK_SIZE {
        return Err(TransferError::BadManifest(
            "chunk size must be 1 byte to 1 MiB",
        ));
    }
    let file_digest = r.array::<DIGEST_LEN>("file digest")?;
    let count = length.div_ceil(u64::from(chunk_size));
    if count > u64::from(max_chunks) {
        return Err(TransferError::BadManifest(
            "more chunks than the receiver accepts",
        ));
    }
    let count = count as usize;
    let expected = count * DIGEST_LEN + SIGNATURE_LEN;
    if r.remaining() != expected {
        return Err(if r.remaining() < expected {
            DecodeError::Truncated {
                field: "chunk digests and signature",
                needed: expected,
                remaining: r.remaining(),
            }
            .into()
        } else {
            DecodeError::TrailingBytes {
                count: r.remaining() - expected,
            }
            .into()
        });
    }
    let digests = r.take(count * DIGEST_LEN, "chunk digests")?;
    let chunk_digests = digests
        .chunks_exact(DIGEST_LEN)
        .map(|c| {
            let mut d = [0u8; DIGEST_LEN];
            d.copy_from_slice(c);
            d
        })
        .collect();
    Ok(Manifest {
        kind,
        file_id,
        version,
        length,
        chunk_size,
        file_digest,
        chunk_digests,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> ContentSigner {
        ContentSigner::from_seed(&[7; 32])
    }

    #[test]
    fn sign_decode_round_trip() {
        let data: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let m = Manifest::build(FileKind::Media, 9, 3, 4096, &data).unwrap();
        assert_eq!(m.chunk_count(), 3);
        assert_eq!(m.chunk_len(2), 10_000 - 8192);
        let s = m.sign(&signer());
        let d = SignedManifest::decode(s.as_bytes(), &[signer().public_key()], 100).unwrap();
        assert_eq!(d.manifest(), &m);
        assert_eq!(m.verify_file(&data), Ok(()));
        let mut bad = data.clone();
        bad[5000] ^= 1;
        assert_eq!(m.verify_file(&bad), Err(Some(1)));
    }

    #[test]
    fn any_flipped_bit_fails() {
        let m = Manifest::build(FileKind::Configuration, 1, 1, 16, b"hello, players").unwrap();
        let s = m.sign(&signer());
        let key = [signer().public_key()];
        for bit in 0..s.as_bytes().len() * 8 {
            let mut b = s.as_bytes().to_vec();
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(SignedManifest::decode(&b, &key, 100).is_err(), "bit {bit}");
        }
        let other = ContentSigner::from_seed(&[8; 32]).public_key();
        assert_eq!(
            SignedManifest::decode(s.as_bytes(), &[other], 100),
            Err(TransferError::BadSignature)
        );
    }

    #[test]
    fn streaming_builder_matches_one_shot() {
        let data = vec![0xabu8; 5000];
        let mut b = ManifestBuilder::new(FileKind::Media, 1, 1, 1000).unwrap();
        for piece in data.chunks(333) {
            b.update(piece);
        }
        assert_eq!(
            b.finish(),
            Manifest::build(FileKind::Media, 1, 1, 1000, &data).unwrap()
        );
        let empty = Manifest::build(FileKind::Media, 1, 1, 1000, &[]).unwrap();
        assert_eq!(empty.chunk_count(), 0);
        assert_eq!(empty.verify_file(&[]), Ok(()));
    }

    #[test]
    fn huge_declared_length_is_rejected_before_allocating() {
        let m = Manifest::build(FileKind::Media, 1, 1, 1, b"x").unwrap();
        let mut b = m.sign(&signer()).as_bytes().to_vec();
        // length field at offset 4+1+1+8+8 = 22
        b[22..30].copy_from_slice(&(1u64 << 30).to_be_bytes());
        assert!(matches!(
            decode_unverified(&b, u32::MAX),
            Err(TransferError::Decode(DecodeError::Truncated { .. }))
        ));
        assert!(matches!(
            decode_unverified(&b, 10),
            Err(TransferError::BadManifest(_))
        ));
    }

    proptest::proptest! {
        #[test]
        fn decoder_never_panics(bytes: Vec<u8>) {
            let _ = decode_unverified(&bytes, 1000);
            let _ = SignedManifest::decode(&bytes, &[signer().public_key()], 1000);
        }
    }
}
