//! Replays `test-vectors/transfer.json`: manifest, message and partial encodings under a fixed
//! Ed25519 test key. Regenerate with `FLEETWIRE_WRITE_VECTORS=1 cargo test -p
//! fleetwire-transfer --test vectors` (only when the format changes on purpose).
#![allow(clippy::wildcard_imports)]

use fleetwire_testkit::vectors;
use fleetwire_transfer::*;
use serde_json::{Value, json};

const KEY_SEED: [u8; 32] = [
    0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec, 0x2c, 0xc4,
    0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60,
];

#[allow(clippy::too_many_lines)] // one literal JSON document, read top to bottom
fn build() -> Value {
    let signer = ContentSigner::from_seed(&KEY_SEED);
    let file = b"fleetwire test file: forty bytes long!!\n".to_vec();
    let manifest = Manifest::build(FileKind::Configuration, 0x0102, 3, 16, &file)
        .unwrap()
        .sign(&signer);
    let mut sack = ChunkSet::new();
    sack.insert(5);
    sack.insert_range(8, 10);
    let mut have = ChunkSet::new();
    have.insert_range(0, 2);
    let msgs = [
        (
            "offer",
            Message::Offer {
                transfer: 1,
                window: 64,
                manifest: manifest.as_bytes(),
            },
        ),
        (
            "accept",
            Message::Accept {
                transfer: 1,
                window: 32,
                have,
            },
        ),
        (
            "reject_bad_signature",
            Message::Reject {
                transfer: 2,
                reason: 1,
            },
        ),
        (
            "chunk",
            Message::Chunk {
                transfer: 1,
                index: 2,
                seq: 300,
                data: &file[32..],
            },
        ),
        (
            "ack",
            Message::Ack {
                transfer: 1,
                index: 2,
                seq: 300,
                cumulative: 3,
                sack,
            },
        ),
        ("cancel", Message::Cancel { transfer: 1 }),
    ];
    let messages: Vec<Value> = msgs
        .iter()
        .map(|(name, m)| {
            let mut buf = Vec::new();
            m.encode(&mut buf);
            json!({ "name": name, "debug": format!("{m:?}").replace(&hex::encode(manifest.as_bytes()), "<manifest>"), "hex": hex::encode(&buf) })
        })
        .collect();
    let keys = [signer.public_key()];
    let mut receiver = Receiver::new(
        std::sync::Arc::new(ReceiverConfig::new(keys.to_vec())),
        fleetwire_testkit::VirtualClock::new().now(),
    );
    let now = fleetwire_testkit::VirtualClock::new().now();
    let mut offer = Vec::new();
    msgs[0].1.encode(&mut offer);
    receiver.handle_input(now, &offer).unwrap();
    while let Some(ev) = receiver.poll_event() {
        if let ReceiverEvent::Offered { transfer, .. } = ev {
            let mut chunk = Vec::new();
            msgs[3].1.encode(&mut chunk);
            receiver.handle_input(now, &chunk).unwrap();
            receiver.chunk_stored(now, transfer, 2).unwrap();
        }
    }
    let partial = receiver.partial(TransferId(1)).unwrap();
    let mut bad_manifest = manifest.as_bytes().to_vec();
    let n = bad_manifest.len();
    bad_manifest[n - 1] ^= 1;
    let mut bad_msg = Vec::new();
    msgs[5].1.encode(&mut bad_msg);
    let n = bad_msg.len();
    bad_msg[n - 1] ^= 1;
    json!({
        "description": "fleetwire-transfer encodings. Ed25519 key from the seed below (RFC 8032 test 1 secret key). Messages are version|type|fields|crc32c; manifests are body|signature over 'fleetwire manifest v1\\0'||body.",
        "signing_key_seed": hex::encode(KEY_SEED),
        "public_key": hex::encode(signer.public_key().0),
        "file": hex::encode(&file),
        "manifest": {
            "kind": "configuration", "file_id": 0x0102, "version": 3, "chunk_size": 16,
            "length": file.len(), "file_sha256": hex::encode(manifest.file_digest()),
            "hex": hex::encode(manifest.as_bytes()),
        },
        "messages": messages,
        "partial_after_chunk_2": { "hex": hex::encode(partial.encode()) },
        "invalid": [
            { "name": "manifest_bad_signature", "hex": hex::encode(&bad_manifest) },
            { "name": "message_bad_crc", "hex": hex::encode(&bad_msg) },
        ],
    })
}

#[test]
fn vectors_replay() {
    let built = build();
    if std::env::var_os("FLEETWIRE_WRITE_VECTORS").is_some() {
        let text = serde_json::to_string_pretty(&built).unwrap() + "\n";
        std::fs::write(vectors::dir().join("transfer.json"), text).unwrap();
    }
    let v = vectors::load("transfer.json");
    assert_eq!(
        v, built,
        "encodings changed: update test-vectors/transfer.json on purpose only"
    );
    // Decoding side, from the file alone.
    let key = PublicKey(vectors::hex_field(&v, "public_key").try_into().unwrap());
    let m =
        SignedManifest::decode(&vectors::hex_field(&v["manifest"], "hex"), &[key], 100).unwrap();
    assert_eq!(m.version(), 3);
    assert_eq!(m.verify_file(&vectors::hex_field(&v, "file")), Ok(()));
    for msg in v["messages"].as_array().unwrap() {
        let bytes = vectors::hex_field(msg, "hex");
        let decoded = Message::decode(&bytes).unwrap();
        let mut again = Vec::new();
        decoded.encode(&mut again);
        assert_eq!(again, bytes);
    }
    let p = Partial::decode(
        &vectors::hex_field(&v["partial_after_chunk_2"], "hex"),
        &[key],
        100,
    )
    .unwrap();
    assert_eq!(p.stored().count(), 1);
    assert!(
        SignedManifest::decode(&vectors::hex_field(&v["invalid"][0], "hex"), &[key], 100).is_err()
    );
    assert!(Message::decode(&vectors::hex_field(&v["invalid"][1], "hex")).is_err());
}
