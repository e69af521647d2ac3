//! The session messages and their byte layout (docs/PROTOCOL.md, "Player login and heartbeat").

use core::fmt;

use fleetwire_wire::{DecodeError, Reader, Writer, encode_frame};

use crate::{ConfigHash, PlayerId};

/// The protocol version this build speaks (the frame header's version byte).
pub const PROTOCOL_VERSION: u8 = 1;

/// Longest text field in a status message, in bytes.
pub const MAX_TEXT_LEN: usize = 64;

/// Longest explanation in a close message, in bytes.
pub const MAX_CLOSE_MESSAGE_LEN: usize = 255;

/// Longest sealed command datagram a `CommandDatagram` message carries, in bytes (the command
/// crate's datagrams are at most 1200; the slack is for later versions).
pub const MAX_COMMAND_DATAGRAM_LEN: usize = 2048;

/// Why a side closed the session, sent in a `Close` message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseCode {
    /// An orderly close (shutdown, player restart).
    Normal,
    /// Unknown player or wrong secret: deliberately one code for both.
    AuthFailed,
    /// The player is known but not yet approved by an administrator.
    NotApproved,
    /// The peer speaks an unsupported protocol version.
    UnsupportedVersion,
    /// The peer broke the protocol (bad frame, unexpected message).
    ProtocolViolation,
    /// The login did not finish in time.
    LoginTimeout,
    /// Nothing arrived for too long.
    Silent,
    /// Another connection logged in as the same player and replaced this one.
    Replaced,
    /// The player was removed or revoked by an administrator.
    Revoked,
    /// The server is at its connection limit; try again after a backoff.
    Busy,
    /// A code this build does not know.
    Other(u8),
}

/// The status a player reports in every heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PlayerStatus {
    /// What the player is showing now (a content or layout id), at most 64 bytes.
    pub content: String,
    /// Free storage on the player, in bytes.
    pub free_storage_bytes: u64,
    /// Software versions (player app, firmware), at most 64 bytes.
    pub versions: String,
    /// The configuration the player holds; the server replies with its own hash only when it
    /// differs.
    pub config_hash: Option<ConfigHash>,
}

/// One session message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Message {
    /// Player → server: who I am (type 0x01).
    Hello {
        /// The player's identifier.
        player_id: PlayerId,
        /// The player's software version, at most 64 bytes.
        software: String,
    },
    /// Server → player: a fresh nonce to sign (type 0x02).
    Challenge {
        /// 32 random bytes, new for every connection.
        nonce: [u8; 32],
    },
    /// Player → server: Ed25519 signature over the login transcript (type 0x03).
    Proof {
        /// The signature.
        signature: [u8; 64],
    },
    /// Server → player: logged in (type 0x04).
    Welcome {
        /// How often the player must send a heartbeat when otherwise idle, in milliseconds.
        heartbeat_interval_ms: u32,
        /// The player's current configuration hash, if the server has one.
        config_hash: Option<ConfigHash>,
    },
    /// Either way: the sender is closing, and why (type 0x05).
    Close {
        /// The reason code.
        code: CloseCode,
        /// A message a person can act on, at most 255 bytes.
        message: String,
    },
    /// Player → server: I am alive (type 0x06).
    Heartbeat {
        /// Increments with every heartbeat of the session.
        seq: u64,
        /// The player's status.
        status: PlayerStatus,
    },
    /// Server → player: heartbeat received (type 0x07).
    HeartbeatAck {
        /// The heartbeat's sequence number.
        seq: u64,
        /// The configuration hash, present only when it differs from the player's.
        config_hash: Option<ConfigHash>,
    },
    /// Either way, after login: one sealed fleetwire-command datagram, carried opaquely when
    /// UDP 4700 does not get through (type 0x08). The body is the datagram itself, at most
    /// [`MAX_COMMAND_DATAGRAM_LEN`] bytes.
    CommandDatagram {
        /// The sealed datagram, exactly as it would travel over UDP.
        datagram: Vec<u8>,
    },
}

impl Message {
    /// The message type byte.
    pub fn msg_type(&self) -> u8 {
        match self {
            Message::Hello { .. } => 0x01,
            Message::Challenge { .. } => 0x02,
            Message::Proof { .. } => 0x03,
            Message::Welcome { .. } => 0x04,
            Message::Close { .. } => 0x05,
            Message::Heartbeat { .. } => 0x06,
            Message::HeartbeatAck { .. } => 0x07,
            Message::CommandDatagram { .. } => 0x08,
        }
    }

    /// Appends the message as one frame.
    pub fn encode_frame(&self, out: &mut Vec<u8>) {
        let mut body = Vec::with_capacity(96);
        self.encode_body(&mut body);
        encode_frame(out, PROTOCOL_VERSION, self.msg_type(), &body);
    }

    /// Appends the message body (without the frame header).
    pub fn encode_body(&self, out: &mut Vec<u8>) {
        let mut w = Writer::new(out);
        match self {
            Message::Hello {
                player_id,
                software,
            } => {
                w.bytes(player_id.as_bytes());
                w.str_u8(clip(software, MAX_TEXT_LEN));
            }
            Message::Challenge { nonce } => w.bytes(nonce),
            Message::Proof { signature } => w.bytes(signature),
            Message::Welcome {
                heartbeat_interval_ms,
                config_hash,
            } => {
                w.varint(u64::from(*heartbeat_interval_ms));
                write_hash(&mut w, config_hash.as_ref());
            }
            Message::Close { code, message } => {
                w.u8(code.to_byte());
                w.str_u8(clip(message, MAX_CLOSE_MESSAGE_LEN));
            }
            Message::Heartbeat { seq, status } => {
                w.varint(*seq);
                w.varint(status.free_storage_bytes);
                w.str_u8(clip(&status.content, MAX_TEXT_LEN));
                w.str_u8(clip(&status.versions, MAX_TEXT_LEN));
                write_hash(&mut w, status.config_hash.as_ref());
            }
            Message::HeartbeatAck { seq, config_hash } => {
                w.varint(*seq);
                write_hash(&mut w, config_hash.as_ref());
            }
            Message::CommandDatagram { datagram } => w.bytes(datagram),
        }
    }

    /// Decodes a message body of the given type. Every field is bounds-checked; trailing bytes
    /// are an error.
    pub fn decode(msg_type: u8, body: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body);
        let msg = match msg_type {
            0x01 => Message::Hello {
                player_id: PlayerId::from_bytes(r.array("player_id")?),
                software: text(&mut r, "software")?,
            },
            0x02 => Message::Challenge {
                nonce: r.array("nonce")?,
            },
            0x03 => Message::Proof {
                signature: r.array("signature")?,
            },
            0x04 => Message::Welcome {
                heartbeat_interval_ms: r.varint_u32("heartbeat_interval_ms")?,
                config_hash: read_hash(&mut r)?,
            },
            0x05 => Message::Close {
                code: CloseCode::from_byte(r.u8("close code")?),
                message: r.str_u8_named("close message")?.to_owned(),
            },
            0x06 => {
                let seq = r.varint_named("seq")?;
                let free_storage_bytes = r.varint_named("free_storage_bytes")?;
                let content = text(&mut r, "content")?;
                let versions = text(&mut r, "versions")?;
                let config_hash = read_hash(&mut r)?;
                Message::Heartbeat {
                    seq,
                    status: PlayerStatus {
                        content,
                        free_storage_bytes,
                        versions,
                        config_hash,
                    },
                }
            }
            0x07 => Message::HeartbeatAck {
                seq: r.varint_named("seq")?,
                config_hash: read_hash(&mut r)?,
            },
            0x08 => {
                if r.remaining() > MAX_COMMAND_DATAGRAM_LEN {
                    return Err(DecodeError::InvalidValue {
                        field: "command datagram",
                        reason: "longer than 2048 bytes",
                    });
                }
                Message::CommandDatagram {
                    datagram: r.take(r.remaining(), "command datagram")?.to_vec(),
                }
            }
            msg_type => return Err(DecodeError::UnknownMessageType { msg_type }),
        };
        r.finish()?;
        Ok(msg)
    }
}

impl CloseCode {
    /// The wire byte.
    pub fn to_byte(self) -> u8 {
        match self {
            CloseCode::Normal => 0,
            CloseCode::AuthFailed => 1,
            CloseCode::NotApproved => 2,
            CloseCode::UnsupportedVersion => 3,
            CloseCode::ProtocolViolation => 4,
            CloseCode::LoginTimeout => 5,
            CloseCode::Silent => 6,
            CloseCode::Replaced => 7,
            CloseCode::Revoked => 8,
            CloseCode::Busy => 9,
            CloseCode::Other(b) => b,
        }
    }

    /// The code for a wire byte; unknown bytes are kept as [`CloseCode::Other`].
    pub fn from_byte(b: u8) -> Self {
        match b {
            0 => CloseCode::Normal,
            1 => CloseCode::AuthFailed,
            2 => CloseCode::NotApproved,
            3 => CloseCode::UnsupportedVersion,
            4 => CloseCode::ProtocolViolation,
            5 => CloseCode::LoginTimeout,
            6 => CloseCode::Silent,
            7 => CloseCode::Replaced,
            8 => CloseCode::Revoked,
            9 => CloseCode::Busy,
            b => CloseCode::Other(b),
        }
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            CloseCode::Normal => "normal",
            CloseCode::AuthFailed => "authentication failed",
            CloseCode::NotApproved => "not approved",
            CloseCode::UnsupportedVersion => "unsupported version",
            CloseCode::ProtocolViolation => "protocol violation",
            CloseCode::LoginTimeout => "login timeout",
            CloseCode::Silent => "silent",
            CloseCode::Replaced => "replaced by a newer connection",
            CloseCode::Revoked => "revoked",
            CloseCode::Busy => "server busy",
            CloseCode::Other(b) => return write!(f, "code {b}"),
        };
        f.write_str(s)
    }
}

/// Cuts a string to at most `max` bytes on a character boundary. Only used for values this side
/// produced; the API rejects over-long inputs before they get here.
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

fn text(r: &mut Reader<'_>, field: &'static str) -> Result<String, DecodeError> {
    let s = r.str_u8_named(field)?;
    if s.len() > MAX_TEXT_LEN {
        return Err(DecodeError::InvalidValue {
            field,
            reason: "longer than 64 bytes",
        });
    }
    Ok(s.to_owned())
}

fn write_hash(w: &mut Writer<'_>, hash: Option<&ConfigHash>) {
    match hash {
        None => w.u8(0),
        Some(h) => {
            w.u8(1);
            w.bytes(&h.0);
        }
    }
}

fn read_hash(r: &mut Reader<'_>) -> Result<Option<ConfigHash>, DecodeError> {
    match r.u8("config_hash flag")? {
        0 => Ok(None),
        1 => Ok(Some(ConfigHash(r.array("config_hash")?))),
        _ => Err(DecodeError::InvalidValue {
            field: "config_hash flag",
            reason: "must be 0 or 1",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn text_strategy() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9 ._éü-]{0,20}"
    }

    fn hash_strategy() -> impl Strategy<Value = Option<ConfigHash>> {
        prop::option::of(any::<[u8; 32]>().prop_map(ConfigHash))
    }

    fn message_strategy() -> impl Strategy<Value = Message> {
        prop_oneof![
            (any::<[u8; 16]>(), text_strategy()).prop_map(|(id, software)| Message::Hello {
                player_id: PlayerId::from_bytes(id),
                software
            }),
            any::<[u8; 32]>().prop_map(|nonce| Message::Challenge { nonce }),
            (any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(a, b)| {
                let mut signature = [0u8; 64];
                signature[..32].copy_from_slice(&a);
                signature[32..].copy_from_slice(&b);
                Message::Proof { signature }
            }),
            (any::<u32>(), hash_strategy()).prop_map(|(i, h)| Message::Welcome {
                heartbeat_interval_ms: i,
                config_hash: h
            }),
            (0u8..=255, text_strategy()).prop_map(|(c, message)| Message::Close {
                code: CloseCode::from_byte(c),
                message
            }),
            (
                any::<u64>(),
                any::<u64>(),
                text_strategy(),
                text_strategy(),
                hash_strategy()
            )
                .prop_map(|(seq, free, content, versions, config_hash)| {
                    Message::Heartbeat {
                        seq,
                        status: PlayerStatus {
                            content,
                            free_storage_bytes: free,
                            versions,
                            config_hash,
                        },
                    }
                }),
            (any::<u64>(), hash_strategy())
                .prop_map(|(seq, config_hash)| Message::HeartbeatAck { seq, config_hash }),
            prop::collection::vec(any::<u8>(), 0..300)
                .prop_map(|datagram| Message::CommandDatagram { datagram }),
        ]
    }

    proptest! {
        #[test]
        fn messages_round_trip(msg in message_strategy()) {
            let mut body = Vec::new();
            msg.encode_body(&mut body);
            prop_assert_eq!(Message::decode(msg.msg_type(), &body), Ok(msg));
        }

        #[test]
        fn arbitrary_bodies_never_panic(t: u8, body in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = Message::decode(t, &body);
        }
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut body = Vec::new();
        Message::Challenge { nonce: [0; 32] }.encode_body(&mut body);
        body.push(0);
        assert_eq!(
            Message::decode(0x02, &body),
            Err(DecodeError::TrailingBytes { count: 1 })
        );
    }
}
