//! Replays test-vectors/sync.json: every message's bytes (header, body, HMAC tag), the clock
//! arithmetic of one exchange, timeline boundaries, and datagrams that must be dropped.
//! `FLEETWIRE_REGEN=1 cargo test -p fleetwire-sync --test vectors` rewrites the file.
#![allow(clippy::many_single_char_names, clippy::cast_possible_truncation)]
use std::sync::Arc;
use std::time::Instant;

use fleetwire_core::UnixTime;
use fleetwire_session::PlayerId;
use fleetwire_sync::wire::{Message, decode_body, decode_header, seal, verify};
use fleetwire_sync::*;
use serde_json::{Value, json};

const GROUP: GroupId = GroupId(0x0102_0304_0506_0708);

fn key() -> GroupKey {
    GroupKey::new(3, [0x5a; 32])
}

fn sender() -> PlayerId {
    "01234567-89abcdef-01234567-89abcdef".parse().unwrap()
}

fn leader() -> PlayerId {
    "00000000-00000000-00000000-00000001".parse().unwrap()
}

fn messages() -> Vec<(&'static str, PlayerId, u64, Message<'static>, Value)> {
    vec![
        (
            "ping",
            sender(),
            1,
            Message::Ping { t1: 1_000_000_000 },
            json!({"t1": 1_000_000_000u64, "padding": 24}),
        ),
        (
            "pong",
            leader(),
            2,
            Message::Pong {
                t1: 1_000_000_000,
                t2: 5_000_400_000,
                t3: 5_000_450_000,
                term: 7,
            },
            json!({"t1": 1_000_000_000u64, "t2": 5_000_400_000u64, "t3": 5_000_450_000u64, "term": 7}),
        ),
        (
            "beacon",
            leader(),
            3,
            Message::Beacon {
                role: Role::Leader,
                term: 7,
                clock_port: 16732,
                synced: true,
                leader: leader(),
                error_us: 0,
            },
            json!({"role": 1, "term": 7, "clock_port": 16732, "synced": 1, "leader": leader().to_string(), "error_us": 0}),
        ),
        (
            "timeline",
            leader(),
            4,
            Message::Timeline {
                term: 7,
                group_now: 5_000_000_000,
                playlist: 12,
                anchor_index: 1,
                anchor_start: 6_000_000_000,
                items: vec![
                    Item {
                        id: 100,
                        duration_ms: 10_000,
                    },
                    Item {
                        id: 200,
                        duration_ms: 5_000,
                    },
                ],
            },
            json!({"term": 7, "group_now": 5_000_000_000u64, "playlist": 12, "anchor_index": 1, "anchor_start": 6_000_000_000u64,
                   "items": [{"id": 100, "duration_ms": 10_000}, {"id": 200, "duration_ms": 5_000}]}),
        ),
        (
            "share_request",
            sender(),
            5,
            Message::ShareRequest {
                file: 42,
                version: 3,
                chunk: 9,
                ranges: vec![(0, 64), (100, 2)],
            },
            json!({"file": 42, "version": 3, "chunk": 9, "ranges": [[0, 64], [100, 2]]}),
        ),
        (
            "share_piece",
            leader(),
            6,
            Message::SharePiece {
                file: 42,
                version: 3,
                chunk: 9,
                piece: 100,
                data: b"piece bytes",
            },
            json!({"file": 42, "version": 3, "chunk": 9, "piece": 100, "data": hex::encode(b"piece bytes")}),
        ),
        (
            "share_missing",
            leader(),
            7,
            Message::ShareMissing {
                file: 42,
                version: 3,
            },
            json!({"file": 42, "version": 3}),
        ),
    ]
}

fn sealed(from: PlayerId, seq: u64, m: &Message<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    seal(&key(), GROUP, from, seq, m, &mut out);
    out
}

fn build() -> Value {
    let msgs: Vec<Value> = messages()
        .into_iter()
        .map(|(name, from, seq, m, fields)| {
            let d = sealed(from, seq, &m);
            json!({
                "name": name, "type": m.msg_type(),
                "port": if m.port() == Port::Clock { 16732 } else { 16733 },
                "sender": from.to_string(), "seq": seq, "fields": fields,
                "datagram": hex::encode(&d),
            })
        })
        .collect();
    let ping = sealed(sender(), 1, &messages()[0].3);
    let mut tampered = ping.clone();
    let n = tampered.len();
    tampered[n - 1] ^= 1;
    let mut other_group = Vec::new();
    seal(
        &key(),
        GroupId(9),
        sender(),
        1,
        &messages()[0].3,
        &mut other_group,
    );
    let mut other_epoch = Vec::new();
    seal(
        &GroupKey::new(4, [0x5a; 32]),
        GROUP,
        sender(),
        1,
        &messages()[0].3,
        &mut other_epoch,
    );
    json!({
        "description": "fleetwire-sync v1 datagrams (UDP 16732: ping/pong; UDP 16733: beacon, timeline, LAN share). Layout: version:u8=1 | type:u8 | group:u64be | key_epoch:u32be | sender[16] | seq:u64be | body | tag[16], where tag = HMAC-SHA256(group key, every byte before the tag) truncated to 16 bytes. Bodies (integers big-endian): ping t1:u64 + 24 zero bytes; pong t1 t2 t3 term (u64 each); beacon role:u8 (0 follower, 1 leader) term:u64 clock_port:u16 synced:u8 leader[16] error_us:u32; timeline term:u64 group_now:u64 playlist:u64 anchor_index:u16 anchor_start:u64 count:u8 (id:u64 duration_ms:u32)*count; share_request file:u64 version:u64 chunk:u32 count:u8 (first:u16 n:u16)*count; share_piece file:u64 version:u64 chunk:u32 piece:u16 data (1..1024 bytes, to the tag); share_missing file:u64 version:u64. Times are nanoseconds: t1/t4 on the follower's clock, t2/t3 and every timeline instant on the group (leader's) clock.",
        "group": GROUP.0,
        "key": {"epoch": 3, "bytes": hex::encode([0x5a; 32])},
        "messages": msgs,
        "clock_exchange": {
            "description": "offset = ((t2 - t1) + (t3 - t4)) / 2 (group minus local), delay = (t4 - t1) - (t3 - t2)",
            "t1": 1_000_000_000u64, "t2": 5_000_400_000u64, "t3": 5_000_450_000u64, "t4": 1_000_850_000u64,
            "offset_ns": 4_000_000_000u64, "delay_ns": 800_000,
        },
        "timeline_boundaries": {
            "description": "the playlist loops from the anchor: item anchor_index starts at anchor_start, each next item when the previous ends; the first start at or after `group` is (index, start)",
            "anchor_index": 1, "anchor_start": 6_000_000_000u64,
            "items": [{"id": 100, "duration_ms": 10_000}, {"id": 200, "duration_ms": 5_000}],
            "queries": [
                {"group": 0, "index": 1, "start": 6_000_000_000u64},
                {"group": 6_000_000_001u64, "index": 0, "start": 11_000_000_000u64},
                {"group": 21_000_000_000u64, "index": 1, "start": 21_000_000_000u64},
                {"group": 21_000_000_001u64, "index": 0, "start": 26_000_000_000u64},
            ],
        },
        "invalid": [
            {"name": "tag flipped", "datagram": hex::encode(&tampered), "error": "authentication failed"},
            {"name": "another group", "datagram": hex::encode(&other_group), "error": "belongs to group 9"},
            {"name": "unknown key epoch", "datagram": hex::encode(&other_epoch), "error": "key epoch 4 is unknown"},
            {"name": "truncated", "datagram": hex::encode(&ping[..40]), "error": "truncated sync header and tag"},
        ],
    })
}

#[test]
fn sync_vectors_match() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../test-vectors/sync.json");
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
        "test-vectors/sync.json is stale: regenerate and review"
    );

    // Every datagram authenticates with the stored key and decodes to its message.
    let k = GroupKey::new(
        3,
        hex::decode(stored["key"]["bytes"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap(),
    );
    for (v, (_, from, seq, m, _)) in stored["messages"]
        .as_array()
        .unwrap()
        .iter()
        .zip(messages())
    {
        let d = hex::decode(v["datagram"].as_str().unwrap()).unwrap();
        let (h, signed, tag) = decode_header(&d).unwrap();
        assert!(verify(&k, signed, tag));
        assert_eq!((h.group, h.epoch, h.sender, h.seq), (GROUP, 3, from, seq));
        assert_eq!(decode_body(&h, signed).unwrap(), m);
        assert!(wire::kind(&d).is_some());
    }
    // The clock arithmetic.
    let c = &stored["clock_exchange"];
    let t = |f: &str| c[f].as_u64().unwrap();
    assert_eq!(
        offset_and_delay(t("t1"), t("t2"), t("t3"), t("t4")),
        Some((c["offset_ns"].as_i64().unwrap(), t("delay_ns")))
    );
    // Timeline boundaries.
    let tb = &stored["timeline_boundaries"];
    let items: Vec<Item> = tb["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| Item {
            id: i["id"].as_u64().unwrap(),
            duration_ms: i["duration_ms"].as_u64().unwrap() as u32,
        })
        .collect();
    for q in tb["queries"].as_array().unwrap() {
        let got = next_boundary(
            &items,
            tb["anchor_index"].as_u64().unwrap() as u16,
            tb["anchor_start"].as_u64().unwrap(),
            q["group"].as_u64().unwrap(),
        );
        assert_eq!(
            got,
            Some((
                q["index"].as_u64().unwrap() as u16,
                q["start"].as_u64().unwrap()
            )),
            "{q}"
        );
    }
    // Ping and pong are the same size (no amplification).
    let len = |i: usize| stored["messages"][i]["datagram"].as_str().unwrap().len();
    assert_eq!(len(0), len(1));

    // Invalid datagrams are dropped by a member with the stated reason.
    #[allow(clippy::disallowed_methods)]
    let now = Instant::now();
    for v in stored["invalid"].as_array().unwrap() {
        let d = hex::decode(v["datagram"].as_str().unwrap()).unwrap();
        let mut m = SyncMember::new(
            Arc::new(SyncConfig::new(GROUP, leader(), vec![])),
            now,
            UnixTime::from_secs(1),
            key(),
        );
        let err = m
            .handle_input(now, "10.0.0.9:16732".parse().unwrap(), &d)
            .unwrap_err();
        assert!(
            err.to_string().contains(v["error"].as_str().unwrap()),
            "{}: {err}",
            v["name"]
        );
    }
}
