//! Replays test-vectors/independent.json (computed by pyca/cryptography, not by fleetwire):
//! RFC 8032 Ed25519 keys, and the login proof signed over the documented transcript, both the
//! one a `Client` produces and the one a `ServerConnection` accepts.
#![allow(clippy::disallowed_methods)] // a real origin for virtual time

use std::sync::Arc;
use std::time::Instant;

use fleetwire_session::*;
use serde_json::Value;

fn vectors() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../test-vectors/independent.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn bytes<const N: usize>(v: &Value) -> [u8; N] {
    hex::decode(v.as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap()
}

#[test]
fn rfc8032_secret_keys_give_rfc8032_public_keys() {
    for v in vectors()["ed25519_rfc8032"].as_array().unwrap() {
        let secret = PlayerSecret::from_bytes(bytes(&v["secret_key"]));
        assert_eq!(
            secret.verifier().as_bytes(),
            &bytes::<32>(&v["public_key"]),
            "{}",
            v["name"]
        );
    }
}

#[test]
fn login_proof_matches_an_independent_signature() {
    for v in vectors()["session_login"].as_array().unwrap() {
        let secret = PlayerSecret::from_bytes(bytes(&v["secret"]));
        let id = PlayerId::from_bytes(bytes(&v["player_id"]));
        let nonce: [u8; 32] = bytes(&v["nonce"]);
        let binding = ChannelBinding(bytes(&v["channel_binding"]));
        let expected: [u8; 64] = bytes(&v["signature"]);
        assert_eq!(secret.verifier().as_bytes(), &bytes::<32>(&v["verifier"]));

        // The player signs exactly what the other implementation signed (Ed25519 is
        // deterministic).
        let now = Instant::now();
        let mut client = Client::new(Arc::new(ClientConfig::new(id, secret)), now, binding);
        let mut out = Vec::new();
        while client.poll_transmit(&mut out).is_some() {}
        let hello = out.clone();
        let mut challenge = Vec::new();
        Message::Challenge { nonce }.encode_frame(&mut challenge);
        client.handle_input(now, &challenge).unwrap();
        out.clear();
        while client.poll_transmit(&mut out).is_some() {}
        assert_eq!(
            Message::decode(out[1], &out[6..]),
            Ok(Message::Proof {
                signature: expected
            })
        );

        // The server accepts the other implementation's signature.
        let mut server =
            ServerConnection::new(Arc::new(ServerConfig::default()), now, nonce, binding);
        let mut proof = Vec::new();
        Message::Proof {
            signature: expected,
        }
        .encode_frame(&mut proof);
        server.handle_input(now, &hello).unwrap();
        server.handle_input(now, &proof).unwrap();
        let verifier = PlayerVerifier::from_bytes(bytes(&v["verifier"]));
        let lookup = PlayerLookup::Known {
            verifier,
            approved: true,
            config_hash: None,
        };
        server.resolve_player(now, lookup).unwrap();
        assert!(server.is_authenticated());
    }
}
