//! Replays `test-vectors/sensor.json`: every frame decodes to the listed fields, the fields
//! encode to exactly the frame, and the negative vectors fail with the listed error.
//! `FLEETWIRE_WRITE_VECTORS=1 cargo test -p fleetwire-sensor --test vectors` rewrites the file.

use fleetwire_sensor::codec::{
    Ack, Upload, decode_ack_unverified, decode_upload, encode_ack, encode_upload, verify_ack,
};
use fleetwire_sensor::{
    Alarm, AlarmKind, Batch, Channel, ChannelKind, EpochEnd, Firmware, Gap, LoggerId, LoggerKey,
    Mark, SensorError, Settings, Status, Threshold, Unit,
};
use serde_json::{Value, json};

const PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../test-vectors/sensor.json"
);
const MASTER: [u8; 32] = [0x11; 32];

#[allow(clippy::too_many_lines)] // one literal per vector
fn cases() -> Vec<(&'static str, Upload)> {
    let base = Batch {
        logger: LoggerId(1001),
        epoch: 0,
        first_seq: 0,
        start: 1_767_225_600,
        interval_s: 300,
        channels: vec![Channel::TEMPERATURE_DECI_C],
        values: [215, 215, 216, 214, 213].into_iter().map(Some).collect(),
        ..Batch::default()
    };
    let two = Batch {
        first_seq: 52_560,
        channels: vec![Channel::TEMPERATURE_DECI_C, Channel::HUMIDITY_DECI_PCT],
        values: vec![Some(215), Some(450), Some(216), None, Some(216), Some(447)],
        ..base.clone()
    };
    let full = Batch {
        epoch: 3,
        first_seq: 1000,
        channels: vec![
            Channel::TEMPERATURE_DECI_C,
            Channel {
                kind: ChannelKind::VOLTAGE,
                unit: Unit::VOLT,
                exponent: -3,
            },
        ],
        values: vec![
            Some(-52),
            Some(3300),
            Some(-40),
            Some(3301),
            Some(-31),
            Some(3299),
        ],
        gaps: vec![Gap {
            seq: 1001,
            count: 4,
        }],
        alarms: vec![
            Alarm {
                seq: 1005,
                channel: 0,
                kind: AlarmKind::High { value: -40 },
            },
            Alarm {
                seq: 1006,
                channel: 1,
                kind: AlarmKind::ProbeDisconnected,
            },
        ],
        status: Some(Status {
            counter: 9,
            battery_mv: 3012,
            battery_percent: 87,
            firmware: Firmware {
                major: 1,
                minor: 4,
                patch: 2,
            },
        }),
        ..base.clone()
    };
    vec![
        (
            "one channel, five readings, first upload",
            Upload {
                batch: base.clone(),
                settings_version: 0,
                last: true,
            },
        ),
        (
            "two channels, a missing humidity value",
            Upload {
                batch: two,
                settings_version: 2,
                last: false,
            },
        ),
        (
            "gap, alarms, status, explicit channel",
            Upload {
                batch: full,
                settings_version: 1,
                last: true,
            },
        ),
        (
            "first batch of epoch 4, after epoch 3 ended before seq 1007",
            Upload {
                batch: Batch {
                    epoch: 4,
                    values: vec![Some(210), Some(211)],
                    previous: Some(EpochEnd {
                        epoch: 3,
                        next_seq: 1007,
                        abandoned: false,
                    }),
                    ..base.clone()
                },
                settings_version: 1,
                last: false,
            },
        ),
        (
            "first batch of epoch 5, epoch 4 abandoned after seq 1 (a gap, one lost slot)",
            Upload {
                batch: Batch {
                    epoch: 5,
                    values: vec![Some(209)],
                    gaps: vec![Gap { seq: 0, count: 1 }],
                    previous: Some(EpochEnd {
                        epoch: 4,
                        next_seq: 2,
                        abandoned: true,
                    }),
                    ..base.clone()
                },
                settings_version: 1,
                last: false,
            },
        ),
        (
            "check-in without data",
            Upload {
                batch: Batch::empty(LoggerId(1001), 0, 5, 1_767_226_000),
                settings_version: 0,
                last: true,
            },
        ),
    ]
}

fn ack_case() -> Ack {
    Ack {
        batch_index: 0,
        stored: Some(Mark { epoch: 0, seq: 4 }),
        server_time: 1_767_227_000,
        settings: Some(Settings {
            version: 1,
            interval_s: 600,
            thresholds: vec![Threshold {
                channel: 0,
                low: Some(20),
                high: Some(80),
            }],
        }),
    }
}

fn batch_json(u: &Upload) -> Value {
    let b = &u.batch;
    json!({
        "logger": b.logger.0,
        "epoch": b.epoch,
        "first_seq": b.first_seq,
        "start": b.start,
        "interval_s": b.interval_s,
        "channels": b.channels.iter().map(|c| json!([c.kind.0, c.unit.0, c.exponent])).collect::<Vec<_>>(),
        "values": b.values,
        "gaps": b.gaps.iter().map(|g| json!([g.seq, g.count])).collect::<Vec<_>>(),
        "alarms": b.alarms.iter().map(|a| {
            let (kind, value) = match a.kind {
                AlarmKind::High { value } => ("high", Some(value)),
                AlarmKind::Low { value } => ("low", Some(value)),
                AlarmKind::Cleared => ("cleared", None),
                AlarmKind::ProbeFault => ("probe_fault", None),
                AlarmKind::ProbeDisconnected => ("probe_disconnected", None),
            };
            json!([a.seq, a.channel, kind, value])
        }).collect::<Vec<_>>(),
        "status": b.status.map(|s| json!({
            "counter": s.counter,
            "battery_mv": s.battery_mv,
            "battery_percent": s.battery_percent,
            "firmware": [s.firmware.major, s.firmware.minor, s.firmware.patch],
        })),
        "previous": b.previous.map(|p| json!({
            "epoch": p.epoch,
            "next_seq": p.next_seq,
            "abandoned": p.abandoned,
        })),
        "settings_version": u.settings_version,
        "last": u.last,
    })
}

fn generate() -> Value {
    let key = LoggerKey::derive(&MASTER, LoggerId(1001));
    let mut uploads = Vec::new();
    let mut first_tag = None;
    for (name, upload) in cases() {
        let mut frame = Vec::new();
        let tag = encode_upload(&mut frame, &key, &upload).unwrap();
        first_tag.get_or_insert(tag);
        uploads.push(json!({
            "name": name,
            "fields": batch_json(&upload),
            "frame": hex::encode(&frame),
            "tag": hex::encode(tag),
        }));
    }
    let tag = first_tag.unwrap();
    let mut ack_frame = Vec::new();
    encode_ack(&mut ack_frame, &key, &tag, &ack_case()).unwrap();
    let mut tampered = hex::decode(uploads[0]["frame"].as_str().unwrap()).unwrap();
    tampered[12] ^= 0x01;
    json!({
        "description": "fleetwire-sensor protocol version 2 vectors. Keys: logger_key = HMAC-SHA256(master, \"fleetwire-sensor/v1 logger key\" || logger_id u64be) (the key label did not change). Frames are version|type|len32be|body with version 2; upload tag = HMAC-SHA256(key, \"fleetwire-sensor/v2 batch\" || body without tag)[..16]; ack tag = HMAC-SHA256(key, \"fleetwire-sensor/v2 ack\" || upload tag || body without tag)[..16]. An ack's stored mark covers slots 0..=seq of the answered upload's epoch only. Values are integers in the channel's resolution; null = no value.",
        "master_key": hex::encode(MASTER),
        "logger": 1001,
        "logger_key": hex::encode(key.to_bytes()),
        "uploads": uploads,
        "acks": [{
            "name": "ack of the first upload, with settings",
            "answers_tag": hex::encode(tag),
            "fields": {
                "batch_index": 0, "stored": [0, 4], "server_time": 1_767_227_000u64,
                "settings": {"version": 1, "interval_s": 600, "thresholds": [[0, 20, 80]]}
            },
            "frame": hex::encode(&ack_frame),
        }],
        "invalid": [
            {"name": "first upload with one body byte flipped", "frame": hex::encode(&tampered), "key": hex::encode(key.to_bytes()), "error": "bad_mac"},
            {"name": "first upload under another logger's key", "frame": uploads[0]["frame"], "key": hex::encode(LoggerKey::derive(&MASTER, LoggerId(1002)).to_bytes()), "error": "bad_mac"},
        ],
    })
}

#[test]
fn vectors_replay() {
    let generated = generate();
    if std::env::var_os("FLEETWIRE_WRITE_VECTORS").is_some() {
        let text = serde_json::to_string_pretty(&generated).unwrap() + "\n";
        std::fs::write(PATH, text).unwrap();
    }
    let text = std::fs::read_to_string(PATH).expect("test-vectors/sensor.json");
    let file: Value = serde_json::from_str(&text).unwrap();
    let key = LoggerKey::from_bytes(
        hex::decode(file["logger_key"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap(),
    );
    assert_eq!(key, LoggerKey::derive(&MASTER, LoggerId(1001)));
    // Encoding the fields gives the frames; decoding the frames gives the fields.
    assert_eq!(file["uploads"], generated["uploads"]);
    for (case, (_, upload)) in file["uploads"].as_array().unwrap().iter().zip(cases()) {
        let frame = hex::decode(case["frame"].as_str().unwrap()).unwrap();
        let (decoded, tag) = decode_upload(&frame[6..], &key).unwrap();
        assert_eq!(decoded, upload);
        assert_eq!(batch_json(&decoded), case["fields"]);
        assert_eq!(hex::encode(tag), case["tag"].as_str().unwrap());
    }
    let ack = &file["acks"][0];
    assert_eq!(ack, &generated["acks"][0]);
    let frame = hex::decode(ack["frame"].as_str().unwrap()).unwrap();
    let tag: [u8; 16] = hex::decode(ack["answers_tag"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    assert!(verify_ack(&frame[6..], &key, &tag));
    assert_eq!(decode_ack_unverified(&frame[6..]).unwrap().0, ack_case());
    for case in file["invalid"].as_array().unwrap() {
        let frame = hex::decode(case["frame"].as_str().unwrap()).unwrap();
        let k = LoggerKey::from_bytes(
            hex::decode(case["key"].as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap(),
        );
        let err = decode_upload(&frame[6..], &k).unwrap_err();
        assert!(
            matches!(err, SensorError::BadMac { .. }),
            "{}: {err}",
            case["name"]
        );
    }
}
