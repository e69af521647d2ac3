//! The transfer messages. One message is one datagram, one HTTP body or one frame body:
//! `version:u8 | type:u8 | fields | crc32c:u32be`. The checksum catches corruption of headers
//! and acknowledgements on carriers without one (chunk data is protected by the signed digests
//! anyway). Decoding borrows from the input and never allocates more than the input justifies.

use fleetwire_wire::{DecodeError, Reader, Writer};

use crate::ranges::ChunkSet;

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u8 = 1;
/// Most selective-acknowledgement ranges one `Ack` carries.
pub const MAX_SACK_RANGES: usize = 32;
/// Bytes a message adds around a chunk's data at most (header, varints, checksum).
pub const CHUNK_OVERHEAD: usize = 2 + 5 + 5 + 10 + 5 + 4;

/// Message type codes.
mod code {
    pub(super) const OFFER: u8 = 0x01;
    pub(super) const ACCEPT: u8 = 0x02;
    pub(super) const REJECT: u8 = 0x03;
    pub(super) const CHUNK: u8 = 0x04;
    pub(super) const ACK: u8 = 0x05;
    pub(super) const CANCEL: u8 = 0x06;
}

/// A decoded transfer message, borrowing its byte fields from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    /// Sender → receiver: a file is available. `window` is the most chunks the sender will keep
    /// unacknowledged.
    Offer {
        /// The transfer on this connection.
        transfer: u32,
        /// Proposed window (chunks).
        window: u32,
        /// The signed manifest.
        manifest: &'a [u8],
    },
    /// Receiver → sender: go ahead; `have` lists chunks already stored (resume, delta), which
    /// the sender must not send. `window` is the negotiated window (≤ the offer's).
    Accept {
        /// The transfer.
        transfer: u32,
        /// Negotiated window (chunks), at least 1.
        window: u32,
        /// Chunks the receiver already holds.
        have: ChunkSet,
    },
    /// Receiver → sender: no.
    Reject {
        /// The transfer.
        transfer: u32,
        /// Why (see [`crate::RejectReason`]).
        reason: u8,
    },
    /// Sender → receiver: one chunk. `seq` numbers the transmission (every retransmission gets
    /// a new one), so an acknowledgement names exactly which copy arrived (clean RTT samples).
    Chunk {
        /// The transfer.
        transfer: u32,
        /// Chunk index.
        index: u32,
        /// Transmission sequence number.
        seq: u64,
        /// The bytes.
        data: &'a [u8],
    },
    /// Receiver → sender: chunk `index` (transmission `seq`) is stored. `cumulative`: every
    /// chunk below it is stored; `sack`: further stored ranges above it (at most
    /// [`MAX_SACK_RANGES`]).
    Ack {
        /// The transfer.
        transfer: u32,
        /// The chunk acknowledged.
        index: u32,
        /// The transmission that carried it.
        seq: u64,
        /// All chunks below this index are stored.
        cumulative: u32,
        /// Stored ranges above `cumulative`.
        sack: ChunkSet,
    },
    /// Either way: stop this transfer.
    Cancel {
        /// The transfer.
        transfer: u32,
    },
}

impl Message<'_> {
    /// Appends the encoded message to `out` (what `out` held is kept, as with every encoder
    /// and `poll_transmit` in the suite).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        let mut w = Writer::new(out);
        w.u8(PROTOCOL_VERSION);
        match self {
            Self::Offer {
                transfer,
                window,
                manifest,
            } => {
                w.u8(code::OFFER);
                w.varint(u64::from(*transfer));
                w.varint(u64::from(*window));
                w.bytes_varint(manifest);
            }
            Self::Accept {
                transfer,
                window,
                have,
            } => {
                w.u8(code::ACCEPT);
                w.varint(u64::from(*transfer));
                w.varint(u64::from(*window));
                have.encode(&mut w, usize::MAX, 0);
            }
            Self::Reject { transfer, reason } => {
                w.u8(code::REJECT);
                w.varint(u64::from(*transfer));
                w.u8(*reason);
            }
            Self::Chunk {
                transfer,
                index,
                seq,
                data,
            } => {
                w.u8(code::CHUNK);
                w.varint(u64::from(*transfer));
                w.varint(u64::from(*index));
                w.varint(*seq);
                w.bytes_varint(data);
            }
            Self::Ack {
                transfer,
                index,
                seq,
                cumulative,
                sack,
            } => {
                w.u8(code::ACK);
                w.varint(u64::from(*transfer));
                w.varint(u64::from(*index));
                w.varint(*seq);
                w.varint(u64::from(*cumulative));
                sack.encode(&mut w, MAX_SACK_RANGES, *cumulative);
            }
            Self::Cancel { transfer } => {
                w.u8(code::CANCEL);
                w.varint(u64::from(*transfer));
            }
        }
        let crc = crc32c(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    }

    /// Decodes one message. `max_ranges` bounds the ranges of an `Accept`.
    pub fn decode(bytes: &[u8]) -> Result<Message<'_>, DecodeError> {
        if bytes.len() < 6 {
            return Err(DecodeError::Truncated {
                field: "message",
                needed: 6,
                remaining: bytes.len(),
            });
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        if crc32c(body).to_be_bytes() != crc {
            return Err(DecodeError::InvalidValue {
                field: "message checksum",
                reason: "CRC-32C does not match (corrupted in transit)",
            });
        }
        let mut r = Reader::new(body);
        let version = r.u8("version")?;
        if version != PROTOCOL_VERSION {
            return Err(DecodeError::UnsupportedVersion {
                version,
                supported: PROTOCOL_VERSION,
            });
        }
        let msg_type = r.u8("type")?;
        let transfer = r.varint_u32("transfer id")?;
        let msg = match msg_type {
            code::OFFER => Message::Offer {
                transfer,
                window: r.varint_u32("window")?,
                manifest: r.bytes_varint("manifest")?,
            },
            code::ACCEPT => Message::Accept {
                transfer,
                window: r.varint_u32("window")?,
                have: ChunkSet::decode(&mut r, 0)?,
            },
            code::REJECT => Message::Reject {
                transfer,
                reason: r.u8("reject reason")?,
            },
            code::CHUNK => Message::Chunk {
                transfer,
                index: r.varint_u32("chunk index")?,
                seq: r.varint_named("sequence")?,
                data: r.bytes_varint("chunk data")?,
            },
            code::ACK => {
                let index = r.varint_u32("chunk index")?;
                let seq = r.varint_named("sequence")?;
                let cumulative = r.varint_u32("cumulative ack")?;
                let sack = ChunkSet::decode(&mut r, cumulative)?;
                if sack.range_count() > MAX_SACK_RANGES {
                    return Err(DecodeError::InvalidValue {
                        field: "sack",
                        reason: "more than 32 ranges",
                    });
                }
                Message::Ack {
                    transfer,
                    index,
                    seq,
                    cumulative,
                    sack,
                }
            }
            code::CANCEL => Message::Cancel { transfer },
            other => return Err(DecodeError::UnknownMessageType { msg_type: other }),
        };
        r.finish()?;
        Ok(msg)
    }
}

/// CRC-32C (Castagnoli), bitwise-table implementation.
pub(crate) fn crc32c(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    (c >> 1) ^ 0x82F6_3B78
                } else {
                    c >> 1
                };
                k += 1;
            }
            table[i] = c;
            i += 1;
        }
        table
    };
    let mut crc = !0u32;
    for &b in data {
        crc = TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn crc32c_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    fn samples() -> Vec<Message<'static>> {
        let mut sack = ChunkSet::new();
        sack.insert_range(10, 12);
        sack.insert(20);
        vec![
            Message::Offer {
                transfer: 1,
                window: 64,
                manifest: b"m",
            },
            Message::Accept {
                transfer: 1,
                window: 8,
                have: sack.clone(),
            },
            Message::Reject {
                transfer: 2,
                reason: 3,
            },
            Message::Chunk {
                transfer: 1,
                index: 7,
                seq: 300,
                data: b"data",
            },
            Message::Ack {
                transfer: 1,
                index: 20,
                seq: 301,
                cumulative: 5,
                sack,
            },
            Message::Cancel { transfer: 9 },
        ]
    }

    #[test]
    fn round_trip_and_every_bit_flip_detected() {
        let mut buf = Vec::new();
        for m in samples() {
            buf.clear();
            m.encode(&mut buf);
            assert_eq!(Message::decode(&buf).unwrap(), m);
            for bit in 0..buf.len() * 8 {
                let mut b = buf.clone();
                b[bit / 8] ^= 1 << (bit % 8);
                assert!(Message::decode(&b).is_err());
            }
        }
    }

    #[test]
    fn encode_appends_and_keeps_what_the_buffer_held() {
        let mut alone = Vec::new();
        let mut gathered = b"held".to_vec();
        for m in samples() {
            let start = gathered.len();
            alone.clear();
            m.encode(&mut alone);
            m.encode(&mut gathered);
            assert_eq!(&gathered[start..], &alone[..]);
            assert_eq!(Message::decode(&gathered[start..]).unwrap(), m);
        }
        assert_eq!(&gathered[..4], b"held");
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes: Vec<u8>) {
            let _ = Message::decode(&bytes);
            // And with a valid checksum, so the fields are exercised.
            let mut b = bytes.clone();
            let crc = crc32c(&b);
            b.extend_from_slice(&crc.to_be_bytes());
            let _ = Message::decode(&b);
        }

        #[test]
        fn chunk_round_trips(transfer: u32, index: u32, seq: u64, data: Vec<u8>) {
            let m = Message::Chunk { transfer, index, seq, data: &data };
            let mut buf = Vec::new();
            m.encode(&mut buf);
            prop_assert!(buf.len() <= data.len() + CHUNK_OVERHEAD);
            prop_assert_eq!(Message::decode(&buf).unwrap(), m);
        }
    }
}
