//! One round of the framing benchmark for each side: encode [`FRAMES`] frames of [`BODY`] bytes
//! into one stream buffer, decode them back, and read every body byte with the same
//! [`consume`]. All three do the same work on the same bytes; they differ only in how the
//! frames are built and taken apart:
//!
//! - [`Fleetwire`]: `encode_frame` appends a 6-byte header and the body to the caller's buffer
//!   (one copy of the body), `FrameDecoder::decode` hands out a borrowed body (no copy). No
//!   allocation per frame.
//! - [`PeerUsual`]: the usual tokio-util pattern: postcard `to_allocvec` of `{msg_type, body}`
//!   with the body serialized as bytes (an allocation and a copy), `LengthDelimitedCodec::encode` of that `Bytes` into the stream
//!   (a second copy), `decode` (splits the stream, no copy) and postcard `from_bytes` borrowing
//!   the body (no copy). One allocation per frame.
//! - [`PeerReuse`]: the same codec and serializer used without a per-frame allocation: postcard
//!   `to_io` into a reused `BytesMut` scratch, `split().freeze()` handed to the codec (the
//!   scratch's buffer is reclaimed once the frame is dropped), so two copies of the body and
//!   no allocation per frame in steady state.
//!
//! `examples/framing_allocs.rs` counts the allocations per frame of each.

use bytes::{BufMut, BytesMut};
use fleetwire_wire::{FrameDecoder, encode_frame};
use serde::{Deserialize, Serialize};
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};

/// Frames per round.
pub const FRAMES: usize = 64;
/// Body bytes per frame.
pub const BODY: usize = 1024;

/// The peer's message: a type byte and a borrowed body, serialized as bytes (what
/// `serde_bytes` does; plain serde would write a `&[u8]` one element at a time, which is slower
/// and not how a user who cares would write it). Borrowed bodies deserialize as bytes already.
#[derive(Serialize, Deserialize)]
struct Msg<'a> {
    msg_type: u8,
    #[serde(borrow, serialize_with = "as_bytes")]
    body: &'a [u8],
}

// serde's `serialize_with` hands the field by reference.
#[allow(clippy::trivially_copy_pass_by_ref)]
fn as_bytes<S: serde::Serializer>(body: &&[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_bytes(body)
}

/// What every side does with a decoded body: reads every byte.
#[inline]
pub fn consume(msg_type: u8, body: &[u8]) -> u64 {
    body.iter().fold(u64::from(msg_type), |acc, &b| {
        acc.wrapping_add(u64::from(b))
    })
}

/// fleetwire-wire, with its buffers kept across rounds.
pub struct Fleetwire {
    stream: Vec<u8>,
    decoder: FrameDecoder,
}

impl Default for Fleetwire {
    fn default() -> Self {
        Self {
            stream: Vec::with_capacity(FRAMES * (BODY + 6)),
            decoder: FrameDecoder::new(64 * 1024),
        }
    }
}

impl Fleetwire {
    /// One round; returns the sum of [`consume`] over the frames.
    pub fn round(&mut self, body: &[u8]) -> u64 {
        self.stream.clear();
        for _ in 0..FRAMES {
            encode_frame(&mut self.stream, 1, 7, body);
        }
        let mut input = &self.stream[..];
        let mut sum = 0u64;
        while !input.is_empty() {
            // INVARIANT: the stream holds whole frames this side just encoded.
            let (used, frame) = self.decoder.decode(input).expect("INVARIANT: valid frames");
            if let Some(f) = frame {
                sum = sum.wrapping_add(consume(f.msg_type, f.body));
            }
            input = &input[used..];
        }
        sum
    }
}

/// tokio-util `LengthDelimitedCodec` + postcard, the usual way (a `Vec` per frame).
pub struct PeerUsual {
    codec: LengthDelimitedCodec,
    stream: BytesMut,
}

impl Default for PeerUsual {
    fn default() -> Self {
        Self {
            codec: LengthDelimitedCodec::new(),
            stream: BytesMut::with_capacity(FRAMES * (BODY + 8)),
        }
    }
}

impl PeerUsual {
    /// One round; returns the sum of [`consume`] over the frames.
    pub fn round(&mut self, body: &[u8]) -> u64 {
        for _ in 0..FRAMES {
            let msg = Msg { msg_type: 7, body };
            // INVARIANT: serializing a byte slice into a Vec cannot fail.
            let bytes = postcard::to_allocvec(&msg).expect("INVARIANT: serializes");
            // INVARIANT: 1 KiB is under the codec's 8 MiB limit.
            self.codec
                .encode(bytes::Bytes::from(bytes), &mut self.stream)
                .expect("INVARIANT: frame within the limit");
        }
        decode_all(&mut self.codec, &mut self.stream)
    }
}

/// tokio-util `LengthDelimitedCodec` + postcard, serializing into a reused `BytesMut`.
pub struct PeerReuse {
    codec: LengthDelimitedCodec,
    stream: BytesMut,
    scratch: BytesMut,
}

impl Default for PeerReuse {
    fn default() -> Self {
        Self {
            codec: LengthDelimitedCodec::new(),
            stream: BytesMut::with_capacity(FRAMES * (BODY + 8)),
            scratch: BytesMut::with_capacity(BODY + 16),
        }
    }
}

impl PeerReuse {
    /// One round; returns the sum of [`consume`] over the frames.
    pub fn round(&mut self, body: &[u8]) -> u64 {
        for _ in 0..FRAMES {
            let msg = Msg { msg_type: 7, body };
            self.scratch.reserve(BODY + 16);
            let writer = (&mut self.scratch).writer();
            // INVARIANT: writing into a BytesMut cannot fail.
            postcard::to_io(&msg, writer).expect("INVARIANT: serializes");
            let frame = self.scratch.split().freeze();
            // INVARIANT: 1 KiB is under the codec's 8 MiB limit.
            self.codec
                .encode(frame, &mut self.stream)
                .expect("INVARIANT: frame within the limit");
        }
        decode_all(&mut self.codec, &mut self.stream)
    }
}

fn decode_all(codec: &mut LengthDelimitedCodec, stream: &mut BytesMut) -> u64 {
    let mut sum = 0u64;
    // INVARIANT: the stream holds whole frames this side just encoded.
    while let Some(frame) = codec.decode(stream).expect("INVARIANT: valid frames") {
        let msg: Msg<'_> = postcard::from_bytes(&frame).expect("INVARIANT: valid message");
        sum = sum.wrapping_add(consume(msg.msg_type, msg.body));
    }
    sum
}
