//! Replays test-vectors/independent.json (computed with Python's hmac, not by fleetwire): the
//! logger key derivation and the upload and acknowledgement tags, as the documented
//! HMAC-SHA-256 constructions.

use fleetwire_sensor::codec::{decode_upload, decode_upload_unverified, encode_upload, verify_ack};
use fleetwire_sensor::{LoggerId, LoggerKey};
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
fn keys_and_tags_match_an_independent_hmac() {
    let v = &vectors()["sensor"];
    let master: [u8; 32] = bytes(&v["master_key"]).try_into().unwrap();
    let key = LoggerKey::derive(&master, LoggerId(v["logger"].as_u64().unwrap()));
    assert_eq!(key.to_bytes().to_vec(), bytes(&v["logger_key"]));
    for u in v["uploads"].as_array().unwrap() {
        let mut body = bytes(&u["body_without_tag"]);
        body.extend_from_slice(&bytes(&u["tag"]));
        // fleetwire accepts the independent tag...
        let (upload, tag) = decode_upload(&body, &key).unwrap();
        assert_eq!(tag.to_vec(), bytes(&u["tag"]), "{}", u["name"]);
        // ...and computes the same one when it encodes the upload.
        let mut frame = Vec::new();
        encode_upload(&mut frame, &key, &upload).unwrap();
        assert_eq!(&frame[6..], &body[..], "{}", u["name"]);
        // A flipped tag bit is refused.
        let last = body.len() - 1;
        body[last] ^= 1;
        assert!(decode_upload(&body, &key).is_err());
        assert!(decode_upload_unverified(&body).is_ok());
    }
    for a in v["acks"].as_array().unwrap() {
        let mut body = bytes(&a["body_without_tag"]);
        body.extend_from_slice(&bytes(&a["tag"]));
        let answers: [u8; 16] = bytes(&a["answers_tag"]).try_into().unwrap();
        assert!(verify_ack(&body, &key, &answers), "{}", a["name"]);
        let last = body.len() - 1;
        body[last] ^= 1;
        assert!(!verify_ack(&body, &key, &answers));
    }
}
