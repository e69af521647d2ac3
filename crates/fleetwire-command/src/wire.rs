//! The datagram layout (docs/PROTOCOL.md, "Remote commands"):
//!
//! ```text
//! version:u8=1 | direction:u8 | key_id[8] | seq:u64be | ChaCha20-Poly1305(frames) | tag[16]
//! ```
//!
//! The 18-byte header is the AEAD's associated data; the nonce is `0x00000000 ‖ seq`. The
//! plaintext is one or more frames, each a type byte and its fields.

use std::time::Duration;

use fleetwire_core::UnixTime;
use fleetwire_wire::{DecodeError, Reader, Writer};

use crate::key::{CommandKey, Direction, KeyId, TAG_LEN};
use crate::model::{
    Action, Command, CommandId, MAX_CUSTOM_PAYLOAD, MAX_FAILURE_MESSAGE, Outcome, Priority,
};

/// The datagram format version.
pub const VERSION: u8 = 1;
/// Bytes before the ciphertext.
pub const HEADER_LEN: usize = 18;
/// The largest datagram either side sends or accepts (fits any path's MTU, IPv6 included).
pub const MAX_DATAGRAM_LEN: usize = 1200;
/// The largest plaintext in one datagram.
pub const MAX_PLAINTEXT_LEN: usize = MAX_DATAGRAM_LEN - HEADER_LEN - TAG_LEN;
/// Most ids in one `Ack` or `ResultAck` frame.
pub const MAX_IDS_PER_FRAME: usize = 255;

mod code {
    pub(super) const COMMAND: u8 = 0x01;
    pub(super) const ACK: u8 = 0x02;
    pub(super) const RESULT: u8 = 0x03;
    pub(super) const RESULT_ACK: u8 = 0x04;
    pub(super) const HELLO: u8 = 0x05;
    pub(super) const HELLO_ACK: u8 = 0x06;
}

/// The clear header of a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Which way it travels.
    pub direction: Direction,
    /// The login key it is sealed under.
    pub key_id: KeyId,
    /// Its sequence number (the AEAD nonce, checked against the replay window).
    pub seq: u64,
}

impl Header {
    /// Appends the 18 header bytes.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut w = Writer::new(out);
        w.u8(VERSION);
        w.u8(self.direction.to_byte());
        w.bytes(&self.key_id.0);
        w.u64(self.seq);
    }

    /// Reads the header of a datagram; returns it and the sealed rest (ciphertext ‖ tag).
    /// Checks only the sizes, version and direction: nothing here is authenticated yet.
    pub fn decode(data: &[u8]) -> Result<(Self, &[u8]), DecodeError> {
        if data.len() > MAX_DATAGRAM_LEN {
            return Err(DecodeError::InvalidValue {
                field: "command datagram",
                reason: "longer than 1200 bytes",
            });
        }
        let mut r = Reader::new(data);
        let version = r.u8("command version")?;
        if version != VERSION {
            return Err(DecodeError::UnsupportedVersion {
                version,
                supported: VERSION,
            });
        }
        let direction =
            Direction::from_byte(r.u8("direction")?).ok_or(DecodeError::InvalidValue {
                field: "direction",
                reason: "must be 1 (to player) or 2 (to server)",
            })?;
        let key_id = KeyId(r.array("key id")?);
        let seq = r.u64("seq")?;
        if r.remaining() < TAG_LEN + 1 {
            return Err(DecodeError::Truncated {
                field: "sealed frames",
                needed: TAG_LEN + 1,
                remaining: r.remaining(),
            });
        }
        Ok((
            Self {
                direction,
                key_id,
                seq,
            },
            r.rest(),
        ))
    }
}

/// One frame of a datagram's plaintext.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Frame {
    /// Server → player: run this (type 0x01).
    Command(Command),
    /// Player → server: these commands arrived (type 0x02).
    Ack(Vec<CommandId>),
    /// Player → server: how a command ended (type 0x03).
    Result {
        /// The command.
        id: CommandId,
        /// Its outcome.
        outcome: Outcome,
    },
    /// Server → player: these results arrived; stop resending them (type 0x04).
    ResultAck(Vec<CommandId>),
    /// Player → server: I am here, at this address (type 0x05). Sent at start, after a new
    /// login and as a keepalive, so the server learns the player's UDP port through NAT.
    Hello,
    /// Server → player: your Hello arrived (type 0x06); the same size as the Hello, so never
    /// an amplifier. Until it comes, the player repeats its Hello with backoff.
    HelloAck,
}

impl Frame {
    /// The direction this frame may travel in.
    pub fn direction(&self) -> Direction {
        match self {
            Self::Command(_) | Self::ResultAck(_) | Self::HelloAck => Direction::ToPlayer,
            Self::Ack(_) | Self::Result { .. } | Self::Hello => Direction::ToServer,
        }
    }

    /// Appends the frame.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut w = Writer::new(out);
        match self {
            Self::Command(c) => {
                w.u8(code::COMMAND);
                w.varint(c.id.0);
                w.varint(c.created.as_millis());
                w.varint(u64::try_from(c.ttl_remaining.as_millis()).unwrap_or(u64::MAX));
                w.u8(c.priority.0);
                encode_action(&mut w, &c.action);
            }
            Self::Ack(ids) => {
                w.u8(code::ACK);
                encode_ids(&mut w, ids);
            }
            Self::Result { id, outcome } => {
                w.u8(code::RESULT);
                w.varint(id.0);
                match outcome {
                    Outcome::Succeeded => w.u8(0),
                    Outcome::Failed { message } => {
                        w.u8(1);
                        w.str_u8(clip(message, MAX_FAILURE_MESSAGE));
                    }
                }
            }
            Self::ResultAck(ids) => {
                w.u8(code::RESULT_ACK);
                encode_ids(&mut w, ids);
            }
            Self::Hello => w.u8(code::HELLO),
            Self::HelloAck => w.u8(code::HELLO_ACK),
        }
    }

    /// Bytes [`Frame::encode`] appends.
    pub fn encoded_len(&self) -> usize {
        let mut v = Vec::new();
        self.encode(&mut v);
        v.len()
    }
}

/// Decodes a whole plaintext: one or more frames, nothing left over.
pub fn decode_frames(plaintext: &[u8]) -> Result<Vec<Frame>, DecodeError> {
    let mut r = Reader::new(plaintext);
    let mut frames = Vec::new();
    if r.remaining() == 0 {
        return Err(DecodeError::Truncated {
            field: "frame type",
            needed: 1,
            remaining: 0,
        });
    }
    while r.remaining() > 0 {
        frames.push(decode_frame(&mut r)?);
    }
    Ok(frames)
}

/// Seals `plaintext` as one datagram appended to `out`; returns its length.
pub fn seal(key: &CommandKey, header: Header, plaintext: &[u8], out: &mut Vec<u8>) -> usize {
    let start = out.len();
    header.encode(out);
    let body = out.len();
    out.extend_from_slice(plaintext);
    let mut aad = [0u8; HEADER_LEN];
    aad.copy_from_slice(&out[start..body]);
    key.seal(header.direction, header.seq, &aad, out, body);
    out.len() - start
}

/// Opens a datagram with `key` without any replay check (vectors, fuzzing, diagnostics; the
/// machines check the replay window first). `None` if the header is not for this key or the
/// tag does not verify.
pub fn open(key: &CommandKey, data: &[u8]) -> Result<Option<(Header, Vec<u8>)>, DecodeError> {
    let (header, sealed) = Header::decode(data)?;
    if header.key_id != key.id() {
        return Ok(None);
    }
    let mut sealed = sealed.to_vec();
    let aad = &data[..HEADER_LEN];
    Ok(key
        .open(header.direction, header.seq, aad, &mut sealed)
        .map(|p| (header, p.to_vec())))
}

fn decode_frame(r: &mut Reader<'_>) -> Result<Frame, DecodeError> {
    Ok(match r.u8("frame type")? {
        code::COMMAND => {
            let id = CommandId(r.varint_named("command id")?);
            let created = UnixTime::from_millis(r.varint_named("created")?);
            let ttl = r.varint_named("ttl")?;
            if ttl == 0 {
                return Err(DecodeError::InvalidValue {
                    field: "ttl",
                    reason: "must be at least 1 ms",
                });
            }
            let priority = Priority(r.u8("priority")?);
            let action = decode_action(r)?;
            Frame::Command(Command {
                id,
                action,
                created,
                ttl_remaining: Duration::from_millis(ttl),
                priority,
            })
        }
        code::ACK => Frame::Ack(decode_ids(r)?),
        code::RESULT => {
            let id = CommandId(r.varint_named("command id")?);
            let outcome = match r.u8("outcome")? {
                0 => Outcome::Succeeded,
                1 => {
                    let message = r.str_u8_named("failure message")?;
                    if message.len() > MAX_FAILURE_MESSAGE {
                        return Err(DecodeError::InvalidValue {
                            field: "failure message",
                            reason: "longer than 128 bytes",
                        });
                    }
                    Outcome::Failed {
                        message: message.to_owned(),
                    }
                }
                _ => {
                    return Err(DecodeError::InvalidValue {
                        field: "outcome",
                        reason: "must be 0 (succeeded) or 1 (failed)",
                    });
                }
            };
            Frame::Result { id, outcome }
        }
        code::RESULT_ACK => Frame::ResultAck(decode_ids(r)?),
        code::HELLO => Frame::Hello,
        code::HELLO_ACK => Frame::HelloAck,
        msg_type => return Err(DecodeError::UnknownMessageType { msg_type }),
    })
}

fn encode_action(w: &mut Writer<'_>, action: &Action) {
    w.u8(action.code());
    match action {
        Action::SetVolume(v) => w.u8(*v),
        Action::Display(on) => w.u8(u8::from(*on)),
        Action::Custom(payload) => {
            w.bytes_varint(&payload[..payload.len().min(MAX_CUSTOM_PAYLOAD)]);
        }
        _ => {}
    }
}

fn decode_action(r: &mut Reader<'_>) -> Result<Action, DecodeError> {
    Ok(match r.u8("action")? {
        0x01 => Action::Reboot,
        0x02 => Action::RefreshContent,
        0x03 => Action::CollectNow,
        0x04 => Action::Screenshot,
        0x05 => {
            let v = r.u8("volume")?;
            if v > 100 {
                return Err(DecodeError::InvalidValue {
                    field: "volume",
                    reason: "must be 0 to 100",
                });
            }
            Action::SetVolume(v)
        }
        0x06 => match r.u8("display")? {
            0 => Action::Display(false),
            1 => Action::Display(true),
            _ => {
                return Err(DecodeError::InvalidValue {
                    field: "display",
                    reason: "must be 0 (off) or 1 (on)",
                });
            }
        },
        0x07 => Action::PurgeCache,
        0x08 => {
            let payload = r.bytes_varint("custom payload")?;
            if payload.len() > MAX_CUSTOM_PAYLOAD {
                return Err(DecodeError::InvalidValue {
                    field: "custom payload",
                    reason: "longer than 256 bytes",
                });
            }
            Action::Custom(payload.to_vec())
        }
        _ => {
            return Err(DecodeError::InvalidValue {
                field: "action",
                reason: "unknown action code",
            });
        }
    })
}

fn encode_ids(w: &mut Writer<'_>, ids: &[CommandId]) {
    let ids = &ids[..ids.len().min(MAX_IDS_PER_FRAME)];
    w.u8(ids.len() as u8);
    for id in ids {
        w.varint(id.0);
    }
}

fn decode_ids(r: &mut Reader<'_>) -> Result<Vec<CommandId>, DecodeError> {
    let count = r.u8("id count")?;
    if count == 0 {
        return Err(DecodeError::InvalidValue {
            field: "id count",
            reason: "must be at least 1",
        });
    }
    let mut ids = Vec::with_capacity(usize::from(count).min(r.remaining()));
    for _ in 0..count {
        ids.push(CommandId(r.varint_named("command id")?));
    }
    Ok(ids)
}

fn clip(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn action() -> impl Strategy<Value = Action> {
        prop_oneof![
            Just(Action::Reboot),
            Just(Action::RefreshContent),
            Just(Action::CollectNow),
            Just(Action::Screenshot),
            (0u8..=100).prop_map(Action::SetVolume),
            any::<bool>().prop_map(Action::Display),
            Just(Action::PurgeCache),
            prop::collection::vec(any::<u8>(), 0..=MAX_CUSTOM_PAYLOAD).prop_map(Action::Custom),
        ]
    }

    fn frame() -> impl Strategy<Value = Frame> {
        let ids = prop::collection::vec(any::<u64>().prop_map(CommandId), 1..20);
        prop_oneof![
            (
                any::<u64>(),
                any::<u64>(),
                1u64..u64::MAX,
                any::<u8>(),
                action()
            )
                .prop_map(|(id, created, ttl, p, action)| Frame::Command(Command {
                    id: CommandId(id),
                    action,
                    created: UnixTime::from_millis(created),
                    ttl_remaining: Duration::from_millis(ttl),
                    priority: Priority(p),
                })),
            ids.clone().prop_map(Frame::Ack),
            (any::<u64>(), prop::option::of("[a-z ]{0,40}")).prop_map(|(id, m)| Frame::Result {
                id: CommandId(id),
                outcome: m.map_or(Outcome::Succeeded, |message| Outcome::Failed { message }),
            }),
            ids.prop_map(Frame::ResultAck),
            Just(Frame::Hello),
            Just(Frame::HelloAck),
        ]
    }

    proptest! {
        #[test]
        fn frames_round_trip(frames in prop::collection::vec(frame(), 1..4)) {
            let mut buf = Vec::new();
            for f in &frames {
                f.encode(&mut buf);
            }
            prop_assert_eq!(decode_frames(&buf), Ok(frames));
        }

        #[test]
        fn arbitrary_plaintext_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_frames(&bytes);
            let _ = Header::decode(&bytes);
        }
    }

    #[test]
    fn sealed_datagram_opens_and_every_flipped_bit_fails() {
        let key = CommandKey::from_parts([1; 32], [2; 32], KeyId([3; 8]));
        let mut plain = Vec::new();
        Frame::Hello.encode(&mut plain);
        let header = Header {
            direction: Direction::ToServer,
            key_id: key.id(),
            seq: 9,
        };
        let mut dg = Vec::new();
        let n = seal(&key, header, &plain, &mut dg);
        assert_eq!(n, HEADER_LEN + plain.len() + TAG_LEN);
        assert_eq!(open(&key, &dg), Ok(Some((header, plain.clone()))));
        for bit in 0..dg.len() * 8 {
            let mut bad = dg.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(!matches!(open(&key, &bad), Ok(Some(_))), "bit {bit}");
        }
    }
}
