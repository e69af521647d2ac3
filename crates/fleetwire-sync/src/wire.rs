//! The sync datagram layout (docs/PROTOCOL.md, "Multi-screen sync"):
//!
//! ```text
//! version:u8=1 | type:u8 | group:u64be | key_epoch:u32be | sender[16] | seq:u64be | body | tag[16]
//! ```
//!
//! `tag` is HMAC-SHA256 under the group key over every byte before it, truncated to 16 bytes.
//! Types 0x01–0x02 travel on the clock port (16732), 0x10–0x11 and the LAN-share types
//! 0x20–0x22 on the timeline port (16733).

use fleetwire_session::PlayerId;
use fleetwire_wire::{DecodeError, Reader, Writer};

use crate::key::{GroupId, GroupKey, TAG_LEN};

/// The format version.
pub const VERSION: u8 = 1;
/// Bytes of the header.
pub const HEADER_LEN: usize = 38;
/// The largest datagram sent or accepted.
pub const MAX_DATAGRAM_LEN: usize = 1200;
/// Bytes of data in one LAN-share piece (the last piece of a chunk may be shorter).
pub const PIECE_LEN: usize = 1024;
/// Most items in an announced playlist.
pub const MAX_ITEMS: usize = 64;
/// Most piece ranges in one share request.
pub const MAX_RANGES: usize = 16;
/// Bytes of padding in a ping, so the pong that answers it is never larger.
pub const PING_PAD: usize = 24;
/// The latest group-clock time a message may carry (2⁶² ns, 146 years): far beyond any real
/// group, and far enough below `u64::MAX` that no arithmetic on it overflows.
pub const MAX_GROUP_TIME: u64 = 1 << 62;

/// Message type codes.
pub mod code {
    /// Follower → leader, clock port.
    pub const PING: u8 = 0x01;
    /// Leader → follower, clock port.
    pub const PONG: u8 = 0x02;
    /// Every member → group, timeline port.
    pub const BEACON: u8 = 0x10;
    /// Leader → group, timeline port.
    pub const TIMELINE: u8 = 0x11;
    /// Fetcher → peer, timeline port.
    pub const SHARE_REQUEST: u8 = 0x20;
    /// Peer → fetcher, timeline port.
    pub const SHARE_PIECE: u8 = 0x21;
    /// Peer → fetcher, timeline port.
    pub const SHARE_MISSING: u8 = 0x22;
}

/// Which socket a message belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Port {
    /// UDP 16732: the clock exchange (small, latency-sensitive, kept away from bulk data).
    Clock,
    /// UDP 16733: beacons, the timeline and LAN sharing.
    Timeline,
}

/// Which machine handles a datagram on the timeline port, from its type byte (for drivers
/// that feed one socket to both the member and the share machine).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Clock exchange or timeline: the `SyncMember`.
    Sync,
    /// LAN sharing: the `Share` machine.
    Share,
}

/// The machine a datagram is for, or `None` if it is not a sync datagram at all.
pub fn kind(data: &[u8]) -> Option<Kind> {
    match data.get(..2)? {
        [
            VERSION,
            code::PING | code::PONG | code::BEACON | code::TIMELINE,
        ] => Some(Kind::Sync),
        [
            VERSION,
            code::SHARE_REQUEST | code::SHARE_PIECE | code::SHARE_MISSING,
        ] => Some(Kind::Share),
        _ => None,
    }
}

/// The clear, authenticated header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The message type.
    pub msg_type: u8,
    /// The sync group.
    pub group: GroupId,
    /// The group key epoch it is signed with.
    pub epoch: u32,
    /// Who sent it.
    pub sender: PlayerId,
    /// The sender's message counter (replay check).
    pub seq: u64,
}

/// A member's role, as announced in its beacon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Following a leader (or looking for one).
    Follower,
    /// Leading the group: its clock is the group clock.
    Leader,
}

/// One playlist entry: an item and how long it shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Item {
    /// The content item (the application's id).
    pub id: u64,
    /// How long it shows, in milliseconds (at least 1).
    pub duration_ms: u32,
}

/// A decoded message, borrowing piece data from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Message<'a> {
    /// Clock request: `t1` is the follower's clock at send (nanoseconds, its own timebase).
    Ping {
        /// Follower's send time.
        t1: u64,
    },
    /// Clock reply: `t1` echoed, `t2`/`t3` the leader's group clock at receive and send.
    Pong {
        /// The ping's `t1`.
        t1: u64,
        /// Group time the ping arrived.
        t2: u64,
        /// Group time the pong left.
        t3: u64,
        /// The leader's term.
        term: u64,
    },
    /// Who I am, whom I follow, whether I am synchronized.
    Beacon {
        /// My role.
        role: Role,
        /// The highest leadership term I know.
        term: u64,
        /// My clock port (pings go to the beacon's source address with this port).
        clock_port: u16,
        /// True if my clock is synchronized to the group (leaders always are).
        synced: bool,
        /// The leader I follow (the zero id if none).
        leader: PlayerId,
        /// My current synchronization error bound, in microseconds.
        error_us: u32,
    },
    /// The leader's timeline: the playlist loops; item `anchor_index` starts at group time
    /// `anchor_start`, each later item when the one before ends.
    Timeline {
        /// The leader's term.
        term: u64,
        /// Group time when this was sent (a coarse hint for members not yet synchronized).
        group_now: u64,
        /// The playlist's id (a newer playlist has a higher id).
        playlist: u64,
        /// The item the anchor names.
        anchor_index: u16,
        /// Group time the anchor item starts.
        anchor_start: u64,
        /// The playlist (1 to 64 items).
        items: Vec<Item>,
    },
    /// LAN share: send me these pieces of chunk `chunk` of file `file` version `version`.
    ShareRequest {
        /// File id.
        file: u64,
        /// File version.
        version: u64,
        /// Chunk index.
        chunk: u32,
        /// (first piece, number of pieces), 1 to 16 ranges.
        ranges: Vec<(u16, u16)>,
    },
    /// LAN share: one piece.
    SharePiece {
        /// File id.
        file: u64,
        /// File version.
        version: u64,
        /// Chunk index.
        chunk: u32,
        /// Piece index within the chunk.
        piece: u16,
        /// The bytes (1 to [`PIECE_LEN`]).
        data: &'a [u8],
    },
    /// LAN share: I do not hold that file version.
    ShareMissing {
        /// File id.
        file: u64,
        /// File version.
        version: u64,
    },
}

impl Message<'_> {
    /// The type byte.
    pub fn msg_type(&self) -> u8 {
        match self {
            Self::Ping { .. } => code::PING,
            Self::Pong { .. } => code::PONG,
            Self::Beacon { .. } => code::BEACON,
            Self::Timeline { .. } => code::TIMELINE,
            Self::ShareRequest { .. } => code::SHARE_REQUEST,
            Self::SharePiece { .. } => code::SHARE_PIECE,
            Self::ShareMissing { .. } => code::SHARE_MISSING,
        }
    }

    /// The socket it travels on.
    pub fn port(&self) -> Port {
        match self {
            Self::Ping { .. } | Self::Pong { .. } => Port::Clock,
            _ => Port::Timeline,
        }
    }

    fn encode_body(&self, w: &mut Writer<'_>) {
        match self {
            Self::Ping { t1 } => {
                w.u64(*t1);
                w.bytes(&[0; PING_PAD]);
            }
            Self::Pong { t1, t2, t3, term } => {
                w.u64(*t1);
                w.u64(*t2);
                w.u64(*t3);
                w.u64(*term);
            }
            Self::Beacon {
                role,
                term,
                clock_port,
                synced,
                leader,
                error_us,
            } => {
                w.u8(match role {
                    Role::Follower => 0,
                    Role::Leader => 1,
                });
                w.u64(*term);
                w.u16(*clock_port);
                w.u8(u8::from(*synced));
                w.bytes(leader.as_bytes());
                w.u32(*error_us);
            }
            Self::Timeline {
                term,
                group_now,
                playlist,
                anchor_index,
                anchor_start,
                items,
            } => {
                w.u64(*term);
                w.u64(*group_now);
                w.u64(*playlist);
                w.u16(*anchor_index);
                w.u64(*anchor_start);
                let items = &items[..items.len().min(MAX_ITEMS)];
                w.u8(items.len() as u8);
                for it in items {
                    w.u64(it.id);
                    w.u32(it.duration_ms);
                }
            }
            Self::ShareRequest {
                file,
                version,
                chunk,
                ranges,
            } => {
                w.u64(*file);
                w.u64(*version);
                w.u32(*chunk);
                let ranges = &ranges[..ranges.len().min(MAX_RANGES)];
                w.u8(ranges.len() as u8);
                for (first, n) in ranges {
                    w.u16(*first);
                    w.u16(*n);
                }
            }
            Self::SharePiece {
                file,
                version,
                chunk,
                piece,
                data,
            } => {
                w.u64(*file);
                w.u64(*version);
                w.u32(*chunk);
                w.u16(*piece);
                w.bytes(&data[..data.len().min(PIECE_LEN)]);
            }
            Self::ShareMissing { file, version } => {
                w.u64(*file);
                w.u64(*version);
            }
        }
    }
}

/// Appends one signed datagram: header, `msg`, tag. Returns its length.
pub fn seal(
    key: &GroupKey,
    group: GroupId,
    sender: PlayerId,
    seq: u64,
    msg: &Message<'_>,
    out: &mut Vec<u8>,
) -> usize {
    let start = out.len();
    let mut w = Writer::new(out);
    w.u8(VERSION);
    w.u8(msg.msg_type());
    w.u64(group.0);
    w.u32(key.epoch);
    w.bytes(sender.as_bytes());
    w.u64(seq);
    msg.encode_body(&mut w);
    let tag = key.tag(&out[start..]);
    out.extend_from_slice(&tag);
    out.len() - start
}

/// Reads the header without checking the tag (the machines look up the key by epoch, then
/// call [`verify`]). Returns the header, the signed bytes and the tag.
pub fn decode_header(data: &[u8]) -> Result<(Header, &[u8], &[u8]), DecodeError> {
    if data.len() > MAX_DATAGRAM_LEN {
        return Err(DecodeError::InvalidValue {
            field: "sync datagram",
            reason: "longer than 1200 bytes",
        });
    }
    if data.len() < HEADER_LEN + TAG_LEN {
        return Err(DecodeError::Truncated {
            field: "sync header and tag",
            needed: HEADER_LEN + TAG_LEN,
            remaining: data.len(),
        });
    }
    let (signed, tag) = data.split_at(data.len() - TAG_LEN);
    let mut r = Reader::new(signed);
    let version = r.u8("sync version")?;
    if version != VERSION {
        return Err(DecodeError::UnsupportedVersion {
            version,
            supported: VERSION,
        });
    }
    let header = Header {
        msg_type: r.u8("sync type")?,
        group: GroupId(r.u64("group")?),
        epoch: r.u32("key epoch")?,
        sender: PlayerId::from_bytes(r.array("sender")?),
        seq: r.u64("seq")?,
    };
    Ok((header, signed, tag))
}

/// True if `tag` is the group key's tag over `signed`.
pub fn verify(key: &GroupKey, signed: &[u8], tag: &[u8]) -> bool {
    key.verify(signed, tag)
}

/// Decodes the body of an authenticated datagram (`signed` as returned by
/// [`decode_header`]).
pub fn decode_body<'a>(header: &Header, signed: &'a [u8]) -> Result<Message<'a>, DecodeError> {
    let mut r = Reader::new(&signed[HEADER_LEN..]);
    let msg = match header.msg_type {
        code::PING => {
            let t1 = r.u64("t1")?;
            if r.take(PING_PAD, "ping padding")?.iter().any(|&b| b != 0) {
                return Err(DecodeError::InvalidValue {
                    field: "ping padding",
                    reason: "must be zero",
                });
            }
            Message::Ping { t1 }
        }
        code::PONG => Message::Pong {
            t1: r.u64("t1")?,
            t2: group_time(&mut r, "t2")?,
            t3: group_time(&mut r, "t3")?,
            term: r.u64("term")?,
        },
        code::BEACON => {
            let role = match r.u8("role")? {
                0 => Role::Follower,
                1 => Role::Leader,
                _ => {
                    return Err(DecodeError::InvalidValue {
                        field: "role",
                        reason: "must be 0 (follower) or 1 (leader)",
                    });
                }
            };
            Message::Beacon {
                role,
                term: r.u64("term")?,
                clock_port: r.u16("clock port")?,
                synced: flag(&mut r, "synced")?,
                leader: PlayerId::from_bytes(r.array("leader")?),
                error_us: r.u32("error")?,
            }
        }
        code::TIMELINE => decode_timeline(&mut r)?,
        code::SHARE_REQUEST => decode_request(&mut r)?,
        code::SHARE_PIECE => {
            let file = r.u64("file")?;
            let version = r.u64("version")?;
            let chunk = r.u32("chunk")?;
            let piece = r.u16("piece")?;
            let data = r.rest();
            if data.is_empty() || data.len() > PIECE_LEN {
                return Err(DecodeError::InvalidValue {
                    field: "piece data",
                    reason: "1 to 1024 bytes",
                });
            }
            r.take(data.len(), "piece data")?;
            Message::SharePiece {
                file,
                version,
                chunk,
                piece,
                data,
            }
        }
        code::SHARE_MISSING => Message::ShareMissing {
            file: r.u64("file")?,
            version: r.u64("version")?,
        },
        msg_type => return Err(DecodeError::UnknownMessageType { msg_type }),
    };
    r.finish()?;
    Ok(msg)
}

fn decode_timeline(r: &mut Reader<'_>) -> Result<Message<'static>, DecodeError> {
    let term = r.u64("term")?;
    let group_now = group_time(r, "group now")?;
    let playlist = r.u64("playlist")?;
    let anchor_index = r.u16("anchor index")?;
    let anchor_start = group_time(r, "anchor start")?;
    let count = usize::from(r.u8("item count")?);
    if count == 0 || count > MAX_ITEMS || usize::from(anchor_index) >= count {
        return Err(DecodeError::InvalidValue {
            field: "playlist",
            reason: "1 to 64 items, anchor index inside",
        });
    }
    let mut items = Vec::with_capacity(count);
    for _ in 0..count {
        let id = r.u64("item id")?;
        let duration_ms = r.u32("item duration")?;
        if duration_ms == 0 {
            return Err(DecodeError::InvalidValue {
                field: "item duration",
                reason: "must be at least 1 ms",
            });
        }
        items.push(Item { id, duration_ms });
    }
    Ok(Message::Timeline {
        term,
        group_now,
        playlist,
        anchor_index,
        anchor_start,
        items,
    })
}

fn decode_request(r: &mut Reader<'_>) -> Result<Message<'static>, DecodeError> {
    let file = r.u64("file")?;
    let version = r.u64("version")?;
    let chunk = r.u32("chunk")?;
    let count = usize::from(r.u8("range count")?);
    if count == 0 || count > MAX_RANGES {
        return Err(DecodeError::InvalidValue {
            field: "range count",
            reason: "1 to 16 ranges",
        });
    }
    let mut ranges = Vec::with_capacity(count);
    for _ in 0..count {
        let first = r.u16("range start")?;
        let n = r.u16("range length")?;
        if n == 0 {
            return Err(DecodeError::InvalidValue {
                field: "range length",
                reason: "must be at least 1",
            });
        }
        ranges.push((first, n));
    }
    Ok(Message::ShareRequest {
        file,
        version,
        chunk,
        ranges,
    })
}

fn group_time(r: &mut Reader<'_>, field: &'static str) -> Result<u64, DecodeError> {
    let t = r.u64(field)?;
    if t > MAX_GROUP_TIME {
        return Err(DecodeError::InvalidValue {
            field,
            reason: "group time beyond 2^62 ns",
        });
    }
    Ok(t)
}

fn flag(r: &mut Reader<'_>, field: &'static str) -> Result<bool, DecodeError> {
    match r.u8(field)? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(DecodeError::InvalidValue {
            field,
            reason: "must be 0 or 1",
        }),
    }
}

/// A per-sender replay check over the last 64 sequence numbers (LAN reordering is shallow).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SeqWindow {
    top: u64,
    bits: u64,
}

impl SeqWindow {
    /// Accepts `seq` once: above the highest seen, or within the 64 below it and not yet seen.
    pub(crate) fn accept(&mut self, seq: u64) -> bool {
        if self.top == 0 && self.bits == 0 {
            self.top = seq;
            self.bits = 1;
            return true;
        }
        if seq > self.top {
            let shift = seq - self.top;
            self.bits = if shift >= 64 { 0 } else { self.bits << shift };
            self.bits |= 1;
            self.top = seq;
            return true;
        }
        let back = self.top - seq;
        if back >= 64 || self.bits & (1 << back) != 0 {
            return false;
        }
        self.bits |= 1 << back;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key() -> GroupKey {
        GroupKey::new(3, [9; 32])
    }

    fn round_trip(msg: &Message<'_>) {
        let mut out = Vec::new();
        let sender = PlayerId::from_bytes([4; 16]);
        seal(&key(), GroupId(7), sender, 99, msg, &mut out);
        let (h, signed, tag) = decode_header(&out).unwrap();
        assert_eq!(
            h,
            Header {
                msg_type: msg.msg_type(),
                group: GroupId(7),
                epoch: 3,
                sender,
                seq: 99
            }
        );
        assert!(verify(&key(), signed, tag));
        assert!(!verify(&GroupKey::new(3, [8; 32]), signed, tag));
        assert_eq!(&decode_body(&h, signed).unwrap(), msg);
        assert!(kind(&out).is_some());
    }

    #[test]
    fn every_message_round_trips_and_pong_is_no_larger_than_ping() {
        let ping = Message::Ping { t1: 5 };
        let pong = Message::Pong {
            t1: 5,
            t2: 6,
            t3: 7,
            term: 8,
        };
        for m in [
            ping.clone(),
            pong.clone(),
            Message::Beacon {
                role: Role::Leader,
                term: 3,
                clock_port: 16732,
                synced: true,
                leader: PlayerId::from_bytes([1; 16]),
                error_us: 250,
            },
            Message::Timeline {
                term: 3,
                group_now: 10,
                playlist: 2,
                anchor_index: 1,
                anchor_start: 1_000,
                items: vec![
                    Item {
                        id: 1,
                        duration_ms: 5000,
                    },
                    Item {
                        id: 2,
                        duration_ms: 7000,
                    },
                ],
            },
            Message::ShareRequest {
                file: 1,
                version: 2,
                chunk: 3,
                ranges: vec![(0, 4), (9, 1)],
            },
            Message::SharePiece {
                file: 1,
                version: 2,
                chunk: 3,
                piece: 4,
                data: &[7; 100],
            },
            Message::ShareMissing {
                file: 1,
                version: 2,
            },
        ] {
            round_trip(&m);
        }
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let s = PlayerId::from_bytes([4; 16]);
        seal(&key(), GroupId(1), s, 1, &ping, &mut a);
        seal(&key(), GroupId(1), s, 1, &pong, &mut b);
        assert!(b.len() <= a.len());
    }

    #[test]
    fn seq_window() {
        let mut w = SeqWindow::default();
        assert!(w.accept(100));
        assert!(!w.accept(100));
        assert!(w.accept(98));
        assert!(w.accept(200));
        assert!(!w.accept(136));
        assert!(w.accept(137));
        assert!(!w.accept(137));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..1300)) {
            if let Ok((h, signed, _)) = decode_header(&bytes) {
                let _ = decode_body(&h, signed);
            }
            let _ = kind(&bytes);
        }
    }
}
