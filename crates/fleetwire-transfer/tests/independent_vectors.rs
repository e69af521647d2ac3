//! Replays test-vectors/independent.json (computed by pyca/cryptography, not by fleetwire):
//! RFC 8032 Ed25519 keys for the content signer, and a manifest signature over the documented
//! `"fleetwire manifest v1\0" || body`, both the one fleetwire produces and the one it accepts.

use fleetwire_transfer::{
    ContentSigner, DEFAULT_MAX_CHUNKS, Manifest, SignedManifest, decode_unverified,
};
use serde_json::Value;

fn vectors() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../test-vectors/independent.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn bytes(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

#[test]
fn rfc8032_seeds_give_rfc8032_public_keys() {
    for v in vectors()["ed25519_rfc8032"].as_array().unwrap() {
        let seed: [u8; 32] = bytes(&v["secret_key"]).try_into().unwrap();
        assert_eq!(
            ContentSigner::from_seed(&seed).public_key().0.to_vec(),
            bytes(&v["public_key"]),
            "{}",
            v["name"]
        );
    }
}

#[test]
fn manifest_signature_matches_an_independent_one() {
    let v = &vectors()["transfer_manifest"];
    let seed: [u8; 32] = bytes(&v["signing_key_seed"]).try_into().unwrap();
    let signer = ContentSigner::from_seed(&seed);
    let mut signed = bytes(&v["body"]);
    signed.extend_from_slice(&bytes(&v["signature"]));
    // fleetwire accepts the other implementation's signature...
    let m = SignedManifest::decode(&signed, &[signer.public_key()], DEFAULT_MAX_CHUNKS).unwrap();
    // ...and signs the same manifest, built from the file, to the same bytes.
    let file = bytes(&v["file"]);
    assert_eq!(
        hex::encode(m.file_digest()),
        v["file_sha256"].as_str().unwrap()
    );
    let unverified = decode_unverified(&signed, DEFAULT_MAX_CHUNKS).unwrap();
    let ours = Manifest::build(
        unverified.kind(),
        unverified.file_id(),
        unverified.version(),
        unverified.chunk_size(),
        &file,
    )
    .unwrap()
    .sign(&signer);
    assert_eq!(ours.as_bytes(), &signed[..]);
    // A flipped signature bit is refused.
    let last = signed.len() - 1;
    signed[last] ^= 1;
    assert!(SignedManifest::decode(&signed, &[signer.public_key()], DEFAULT_MAX_CHUNKS).is_err());
}
