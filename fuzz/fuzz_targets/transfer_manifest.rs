#![no_main]
//! Arbitrary bytes into the manifest decoder (unverified and verified): no panic, and what
//! decodes re-encodes to the same body.
use fleetwire_transfer::{ContentSigner, SignedManifest, decode_unverified};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = decode_unverified(data, 4096) {
        assert_eq!(m.chunk_digests().len() as u64, m.length().div_ceil(u64::from(m.chunk_size())));
        // Re-signing gives the same body followed by a (different) signature.
        let signed = m.sign(&ContentSigner::from_seed(&[1; 32]));
        assert_eq!(&signed.as_bytes()[..data.len() - 64], &data[..data.len() - 64]);
    }
    let key = ContentSigner::from_seed(&[1; 32]).public_key();
    let _ = SignedManifest::decode(data, &[key], 4096);
});
