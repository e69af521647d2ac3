//! Replays test-vectors/command.json: the key derivation, every sealed datagram (header,
//! plaintext frames, bytes), the session frame that carries one, and datagrams a machine must
//! drop with the stated reason.
//! `FLEETWIRE_REGEN=1 cargo test -p fleetwire-command --test vectors` rewrites the file.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use fleetwire_command::wire::{Frame, Header, decode_frames, seal};
use fleetwire_command::*;
use fleetwire_session::{ChannelBinding, Message, PlayerId};
use serde_json::{Value, json};

const BINDING: [u8; 32] = [0x11; 32];
const NONCE: [u8; 32] = [0x22; 32];

fn player() -> PlayerId {
    "01234567-89abcdef-01234567-89abcdef".parse().unwrap()
}

fn key() -> CommandKey {
    CommandKey::derive(&ChannelBinding(BINDING), &NONCE, &player())
}

fn cmd(id: u64, action: Action, priority: u8) -> Frame {
    Frame::Command(Command {
        id: CommandId(id),
        action,
        created: UnixTime::from_millis(1_700_000_000_000),
        ttl_remaining: Duration::from_secs(600),
        priority: Priority(priority),
    })
}

/// (name, direction, seq, frames)
fn datagrams() -> Vec<(&'static str, Direction, u64, Vec<Frame>)> {
    vec![
        (
            "command set-volume",
            Direction::ToPlayer,
            0,
            vec![cmd(42, Action::SetVolume(40), 128)],
        ),
        (
            "two commands in one datagram",
            Direction::ToPlayer,
            1,
            vec![
                cmd(43, Action::Display(false), 255),
                cmd(44, Action::Reboot, 64),
            ],
        ),
        (
            "command custom",
            Direction::ToPlayer,
            2,
            vec![cmd(45, Action::Custom(b"{\"layout\":7}".to_vec()), 128)],
        ),
        (
            "every other action",
            Direction::ToPlayer,
            3,
            vec![
                cmd(46, Action::RefreshContent, 128),
                cmd(47, Action::CollectNow, 128),
                cmd(48, Action::Screenshot, 128),
                cmd(49, Action::PurgeCache, 128),
                cmd(50, Action::Display(true), 128),
            ],
        ),
        (
            "result ack",
            Direction::ToPlayer,
            4,
            vec![Frame::ResultAck(vec![CommandId(42), CommandId(300)])],
        ),
        ("hello ack", Direction::ToPlayer, 5, vec![Frame::HelloAck]),
        ("hello", Direction::ToServer, 0, vec![Frame::Hello]),
        (
            "ack",
            Direction::ToServer,
            1,
            vec![Frame::Ack(vec![CommandId(42)])],
        ),
        (
            "results",
            Direction::ToServer,
            2,
            vec![
                Frame::Result {
                    id: CommandId(42),
                    outcome: Outcome::Succeeded,
                },
                Frame::Result {
                    id: CommandId(43),
                    outcome: Outcome::Failed {
                        message: "no display attached".into(),
                    },
                },
            ],
        ),
    ]
}

fn action_json(a: &Action) -> Value {
    let mut v = json!({"code": a.code(), "name": a.name()});
    match a {
        Action::SetVolume(x) => v["volume"] = json!(x),
        Action::Display(on) => v["on"] = json!(on),
        Action::Custom(p) => v["payload"] = json!(hex::encode(p)),
        _ => {}
    }
    v
}

fn frame_json(f: &Frame) -> Value {
    match f {
        Frame::Command(c) => json!({
            "type": "command", "code": 1, "id": c.id.0, "created_ms": c.created.as_millis(),
            "ttl_remaining_ms": c.ttl_remaining.as_millis() as u64, "priority": c.priority.0,
            "action": action_json(&c.action),
        }),
        Frame::Ack(ids) => {
            json!({"type": "ack", "code": 2, "ids": ids.iter().map(|i| i.0).collect::<Vec<_>>()})
        }
        Frame::Result { id, outcome } => match outcome {
            Outcome::Succeeded => json!({"type": "result", "code": 3, "id": id.0, "outcome": 0}),
            Outcome::Failed { message } => {
                json!({"type": "result", "code": 3, "id": id.0, "outcome": 1, "message": message})
            }
        },
        Frame::ResultAck(ids) => {
            json!({"type": "result_ack", "code": 4, "ids": ids.iter().map(|i| i.0).collect::<Vec<_>>()})
        }
        Frame::Hello => json!({"type": "hello", "code": 5}),
        Frame::HelloAck => json!({"type": "hello_ack", "code": 6}),
        _ => unreachable!(),
    }
}

fn sealed(direction: Direction, seq: u64, frames: &[Frame]) -> (Vec<u8>, Vec<u8>) {
    let k = key();
    let mut plain = Vec::new();
    for f in frames {
        f.encode(&mut plain);
    }
    let mut dg = Vec::new();
    seal(
        &k,
        Header {
            direction,
            key_id: k.id(),
            seq,
        },
        &plain,
        &mut dg,
    );
    (plain, dg)
}

fn dir_name(d: Direction) -> &'static str {
    match d {
        Direction::ToPlayer => "to_player",
        Direction::ToServer => "to_server",
    }
}

fn invalid() -> Vec<Value> {
    let (_, good) = sealed(
        Direction::ToPlayer,
        0,
        &[cmd(42, Action::SetVolume(40), 128)],
    );
    let mut tampered = good.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x01;
    let mut wrong_version = good.clone();
    wrong_version[0] = 2;
    let mut unknown_key = good.clone();
    unknown_key[2] ^= 0xff;
    let mut wrong_direction = good.clone();
    wrong_direction[1] = 2;
    let other = CommandKey::derive(&ChannelBinding(BINDING), &[0x33; 32], &player());
    let mut plain = Vec::new();
    Frame::Hello.encode(&mut plain);
    let mut wrong_key = Vec::new();
    seal(
        &other,
        Header {
            direction: Direction::ToPlayer,
            key_id: key().id(),
            seq: 9,
        },
        &plain,
        &mut wrong_key,
    );
    let (_, frame_for_server) = sealed(Direction::ToPlayer, 7, &[Frame::Hello]);
    vec![
        json!({"name": "tag flipped", "receiver": "player", "datagram": hex::encode(&tampered), "error": "authentication failed (wrong key or tampered bytes)"}),
        json!({"name": "sealed with another login's key", "receiver": "player", "datagram": hex::encode(&wrong_key), "error": "authentication failed (wrong key or tampered bytes)"}),
        json!({"name": "unknown key id", "receiver": "player", "datagram": hex::encode(&unknown_key), "error": "key id belongs to no current login"}),
        json!({"name": "version 2", "receiver": "player", "datagram": hex::encode(&wrong_version), "error": "unsupported protocol version 2 (this build speaks 1)"}),
        json!({"name": "player-bound datagram sent to the server", "receiver": "server", "datagram": hex::encode(&good), "error": "a datagram meant for a player"}),
        json!({"name": "server-bound direction byte on a player-bound datagram", "receiver": "player", "datagram": hex::encode(&wrong_direction), "error": "a datagram meant for the server"}),
        json!({"name": "hello frame inside a player-bound datagram", "receiver": "player", "datagram": hex::encode(&frame_for_server), "error": "a frame meant for the server"}),
        json!({"name": "header only", "receiver": "player", "datagram": hex::encode(&good[..18]), "error": "truncated sealed frames"}),
        json!({"name": "replay of the first datagram", "receiver": "player", "datagram": hex::encode(&good), "replay": true, "error": "sequence number 0 replayed"}),
    ]
}

fn build() -> Value {
    let k = key();
    let vectors: Vec<Value> = datagrams()
        .iter()
        .map(|(name, dir, seq, frames)| {
            let (plain, dg) = sealed(*dir, *seq, frames);
            json!({
                "name": name, "direction": dir_name(*dir), "seq": seq,
                "frames": frames.iter().map(frame_json).collect::<Vec<_>>(),
                "plaintext": hex::encode(&plain), "datagram": hex::encode(&dg),
            })
        })
        .collect();
    let (_, first) = sealed(
        Direction::ToPlayer,
        0,
        &[cmd(42, Action::SetVolume(40), 128)],
    );
    let mut frame = Vec::new();
    Message::CommandDatagram {
        datagram: first.clone(),
    }
    .encode_frame(&mut frame);
    json!({
        "description": "fleetwire-command v1 datagrams (UDP 4700). Layout: version:u8=1 | direction:u8 (1 to player, 2 to server) | key_id[8] | seq:u64be | ChaCha20-Poly1305 ciphertext of the frames | tag[16]. AAD = the 18 header bytes; nonce = 00000000 || seq (big-endian). The key for direction 1 is to_player_key, for direction 2 to_server_key. Frames (varint = LEB128): 0x01 command id:varint created_ms:varint ttl_remaining_ms:varint priority:u8 action:u8 [0x05 volume:u8 | 0x06 on:u8 | 0x08 payload:varint-length bytes]; 0x02 ack count:u8 id:varint*count; 0x03 result id:varint outcome:u8 (0 ok, 1 failed + message:str8); 0x04 result_ack count:u8 id:varint*count; 0x05 hello (player, at start and as keepalive); 0x06 hello_ack (server, answers a hello; same size).",
        "key_derivation": {
            "algorithm": "HKDF-SHA256, salt = login_nonce, ikm = channel_binding, info = label || player_id (16 bytes), 72 bytes out = to_player_key[32] || to_server_key[32] || key_id[8]",
            "channel_binding": hex::encode(BINDING),
            "login_nonce": hex::encode(NONCE),
            "player_id": player().to_string(),
            "player_id_bytes": hex::encode(player().as_bytes()),
            "label": hex::encode(KEY_LABEL),
            "to_player_key": hex::encode(k.raw(Direction::ToPlayer)),
            "to_server_key": hex::encode(k.raw(Direction::ToServer)),
            "key_id": hex::encode(k.id().0),
        },
        "datagrams": vectors,
        "session_frame": {
            "description": "the first datagram carried over the TCP 4701 session when UDP does not get through: a fleetwire-session frame of type 0x08 whose body is the datagram",
            "frame": hex::encode(&frame),
        },
        "invalid": invalid(),
    })
}

#[test]
fn command_vectors_match() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../test-vectors/command.json"
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
        "test-vectors/command.json is stale: regenerate and review"
    );

    // The key derivation from the stored inputs.
    let kd = &stored["key_derivation"];
    let hexarr = |f: &str| -> [u8; 32] {
        hex::decode(kd[f].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap()
    };
    let player: PlayerId = kd["player_id"].as_str().unwrap().parse().unwrap();
    let k = CommandKey::derive(
        &ChannelBinding(hexarr("channel_binding")),
        &hexarr("login_nonce"),
        &player,
    );
    assert_eq!(hex::encode(k.raw(Direction::ToPlayer)), kd["to_player_key"]);
    assert_eq!(hex::encode(k.raw(Direction::ToServer)), kd["to_server_key"]);
    assert_eq!(hex::encode(k.id().0), kd["key_id"]);

    // Every datagram opens to its plaintext, which decodes to its frames.
    for (v, (_, dir, seq, frames)) in stored["datagrams"]
        .as_array()
        .unwrap()
        .iter()
        .zip(datagrams())
    {
        let dg = hex::decode(v["datagram"].as_str().unwrap()).unwrap();
        let (header, plain) = wire::open(&k, &dg).unwrap().unwrap();
        assert_eq!((header.direction, header.seq), (dir, seq));
        assert_eq!(hex::encode(&plain), v["plaintext"]);
        assert_eq!(decode_frames(&plain).unwrap(), frames);
    }

    // A fresh player machine fed the player-bound datagrams in order runs each command once.
    let server: SocketAddr = "192.0.2.1:4700".parse().unwrap();
    let now = UnixTime::from_millis(1_700_000_000_000);
    let mut p = CommandPlayer::new(Arc::new(PlayerConfig::new(server)), now, k.clone(), 0);
    let mut ran = Vec::new();
    for v in stored["datagrams"].as_array().unwrap() {
        if v["direction"] == "to_player" {
            let dg = hex::decode(v["datagram"].as_str().unwrap()).unwrap();
            p.handle_input(now, server, &dg).unwrap();
        }
    }
    while let Some(PlayerEvent::Execute(c)) = p.poll_event() {
        ran.push(c.id.0);
    }
    assert_eq!(ran, vec![42, 43, 44, 45, 46, 47, 48, 49, 50]);

    // The session frame is type 0x08 carrying the first datagram whole.
    let frame = hex::decode(stored["session_frame"]["frame"].as_str().unwrap()).unwrap();
    assert_eq!(&frame[..2], &[1, 8]);
    assert_eq!(hex::encode(&frame[6..]), stored["datagrams"][0]["datagram"]);

    // Invalid datagrams are dropped by a fresh machine with the stated reason.
    for v in stored["invalid"].as_array().unwrap() {
        let dg = hex::decode(v["datagram"].as_str().unwrap()).unwrap();
        let err = if v["receiver"] == "player" {
            let mut p = CommandPlayer::new(Arc::new(PlayerConfig::new(server)), now, k.clone(), 0);
            if v["replay"] == true {
                p.handle_input(now, server, &dg).unwrap();
            }
            p.handle_input(now, server, &dg).unwrap_err()
        } else {
            let mut s = CommandServer::new(Arc::new(ServerConfig::default()), now, 0);
            s.player_online(now, player, k.clone(), "198.51.100.7:5000".parse().unwrap())
                .unwrap();
            s.handle_input(now, "198.51.100.7:4700".parse().unwrap(), &dg)
                .unwrap_err()
        };
        let msg = err.to_string();
        assert!(
            msg.contains(v["error"].as_str().unwrap()),
            "{}: {msg}",
            v["name"]
        );
    }
}
