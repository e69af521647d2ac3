//! Replays test-vectors/session.json: every message's frame bytes and the login signature.
//! `FLEETWIRE_REGEN=1 cargo test -p fleetwire-session --test vectors` rewrites the file.
#![allow(clippy::disallowed_methods)] // tests take a real origin for virtual time

use fleetwire_session::*;
use serde_json::{Value, json};

fn messages() -> Vec<(&'static str, Message, Value)> {
    let id =
        PlayerId::from_bytes(*b"\x01\x23\x45\x67\x89\xab\xcd\xef\x01\x23\x45\x67\x89\xab\xcd\xef");
    let secret = PlayerSecret::from_bytes([0x11; 32]);
    let nonce = [0x22; 32];
    let hash = ConfigHash([0x33; 32]);
    let signature = login_signature(&secret, &id, &nonce);
    vec![
        (
            "hello",
            Message::Hello {
                player_id: id,
                software: "player/2.4.1".into(),
            },
            json!({"player_id": id.to_string(), "software": "player/2.4.1"}),
        ),
        (
            "challenge",
            Message::Challenge { nonce },
            json!({"nonce": hex::encode(nonce)}),
        ),
        (
            "proof",
            Message::Proof { signature },
            json!({"signature": hex::encode(signature)}),
        ),
        (
            "welcome",
            Message::Welcome {
                heartbeat_interval_ms: 30_000,
                config_hash: Some(hash),
            },
            json!({"heartbeat_interval_ms": 30_000, "config_hash": hash.to_string()}),
        ),
        (
            "heartbeat",
            Message::Heartbeat {
                seq: 300,
                status: PlayerStatus {
                    content: "lobby-loop".into(),
                    free_storage_bytes: 8_000_000_000,
                    versions: "app 2.4.1; fw 7".into(),
                    config_hash: None,
                },
            },
            json!({"seq": 300, "content": "lobby-loop", "free_storage_bytes": 8_000_000_000u64,
                   "versions": "app 2.4.1; fw 7", "config_hash": null}),
        ),
        (
            "heartbeat_ack",
            Message::HeartbeatAck {
                seq: 300,
                config_hash: None,
            },
            json!({"seq": 300, "config_hash": null}),
        ),
        (
            "close",
            Message::Close {
                code: CloseCode::AuthFailed,
                message: "authentication failed".into(),
            },
            json!({"code": 1, "message": "authentication failed"}),
        ),
    ]
}

/// The client signs through the machine; drive one to get the proof bytes.
fn login_signature(secret: &PlayerSecret, id: &PlayerId, nonce: &[u8; 32]) -> [u8; 64] {
    use std::sync::Arc;
    use std::time::Instant;
    let now = Instant::now();
    let mut c = Client::new(
        Arc::new(ClientConfig::new(*id, secret.clone())),
        now,
        ChannelBinding::NONE,
    );
    let mut sink = Vec::new();
    while c.poll_transmit(&mut sink).is_some() {}
    let mut frame = Vec::new();
    Message::Challenge { nonce: *nonce }.encode_frame(&mut frame);
    c.handle_input(now, &frame).unwrap();
    let mut out = Vec::new();
    while c.poll_transmit(&mut out).is_some() {}
    match Message::decode(out[1], &out[6..]).unwrap() {
        Message::Proof { signature } => signature,
        other => panic!("{other:?}"),
    }
}

fn build() -> Value {
    let secret = PlayerSecret::from_bytes([0x11; 32]);
    let vectors: Vec<Value> = messages()
        .into_iter()
        .map(|(name, msg, fields)| {
            let mut frame = Vec::new();
            msg.encode_frame(&mut frame);
            json!({"name": name, "type": msg.msg_type(), "fields": fields, "frame": hex::encode(frame)})
        })
        .collect();
    json!({
        "description": "fleetwire-session v1 frames (version:u8 type:u8 length:u32be body). The proof signs 'fleetwire/session/v1/login\\0' || player_id || nonce || channel_binding (zeros here) with Ed25519. Written by fleetwire itself (crates/fleetwire-session/tests/vectors.rs, FLEETWIRE_REGEN=1): a regression pin for other implementations, not an independent check; independent.json holds the signature computed by another implementation.",
        "login": {
            "secret": hex::encode(secret.as_bytes()),
            "verifier": secret.verifier().to_string(),
            "player_id": "01234567-89abcdef-01234567-89abcdef",
            "nonce": hex::encode([0x22; 32]),
            "channel_binding": hex::encode([0; 32]),
        },
        "messages": vectors,
        "invalid": [
            {"name": "frame length over the limit", "frame": "0101ffffffff", "error": "frame length 4294967295 exceeds the limit 256"},
            {"name": "unknown type", "frame": "017f00000000", "error": "unknown message type 0x7f"},
            {"name": "wrong version", "frame": "020100000000", "error": "peer speaks protocol version 2, this build speaks 1: upgrade the older side"},
            {"name": "trailing byte", "frame": "01020000002122222222222222222222222222222222222222222222222222222222222222222200", "error": "1 unexpected trailing bytes after the last field"},
        ],
    })
}

#[test]
fn session_vectors_match() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../test-vectors/session.json"
    );
    let expected = build();
    if std::env::var_os("FLEETWIRE_REGEN").is_some() {
        std::fs::write(
            path,
            serde_json::to_string_pretty(&expected).unwrap() + "\n",
        )
        .unwrap();
    }
    let stored: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(
        stored, expected,
        "test-vectors/session.json is stale: regenerate and review"
    );
    // Every stored frame decodes back to its message.
    for (v, (_, msg, _)) in stored["messages"]
        .as_array()
        .unwrap()
        .iter()
        .zip(messages())
    {
        let bytes = hex::decode(v["frame"].as_str().unwrap()).unwrap();
        assert_eq!(Message::decode(bytes[1], &bytes[6..]), Ok(msg));
    }
    // Every invalid frame is refused by a fresh server with the stated reason.
    for v in stored["invalid"].as_array().unwrap() {
        let bytes = hex::decode(v["frame"].as_str().unwrap()).unwrap();
        let now = std::time::Instant::now();
        let mut s = ServerConnection::new(
            std::sync::Arc::new(ServerConfig::default()),
            now,
            [0; 32],
            ChannelBinding::NONE,
        );
        let err = match s.handle_input(now, &bytes) {
            Err(e) => e.to_string(),
            Ok(()) => panic!("{} accepted", v["name"]),
        };
        assert!(err.ends_with(v["error"].as_str().unwrap()), "{err}");
    }
}
