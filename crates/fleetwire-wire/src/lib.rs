//! # fleetwire-wire
//!
//! The codec kit every fleetwire protocol shares. It does no I/O: callers hand it bytes and get
//! frames and values back.
//!
//! - [`Reader`] and [`Writer`]: bounds-checked big-endian integers, LEB128 varints, length-prefixed
//!   byte strings. A [`Reader`] never allocates: it returns slices of the input.
//! - [`FrameDecoder`]: an incremental decoder for the stream framing
//!   `version:u8 | type:u8 | length:u32be | body`. It rejects a declared length above its limit
//!   (64 KiB by default) as soon as the header arrives, and it never reserves memory for bytes that
//!   have not arrived: a peer that announces 4 GiB and sends ten bytes costs ten bytes.
//!   However the byte stream is split, the same frames come out.
//! - [`DecodeError`]: what was wrong with the bytes, with a message a person can act on.
//!
//! ```
//! use fleetwire_wire::{encode_frame, FrameDecoder, Reader, Writer};
//!
//! // Encode a frame of type 7 carrying a varint and a string.
//! let mut body = Vec::new();
//! let mut w = Writer::new(&mut body);
//! w.varint(300);
//! w.str_u8("hello");
//! let mut stream = Vec::new();
//! encode_frame(&mut stream, 1, 7, &body);
//!
//! // Feed it back one byte at a time, as a slow network might.
//! let mut decoder = FrameDecoder::new(64 * 1024);
//! let mut frames = Vec::new();
//! for byte in &stream {
//!     let mut input: &[u8] = std::slice::from_ref(byte);
//!     while !input.is_empty() {
//!         let (used, frame) = decoder.decode(input)?;
//!         if let Some(frame) = frame {
//!             frames.push((frame.msg_type, frame.body.to_vec()));
//!         }
//!         input = &input[used..];
//!     }
//! }
//! assert_eq!(frames.len(), 1);
//! let mut r = Reader::new(&frames[0].1);
//! assert_eq!(r.varint()?, 300);
//! assert_eq!(r.str_u8()?, "hello");
//! r.finish()?;
//! # Ok::<(), fleetwire_wire::DecodeError>(())
//! ```

mod error;
mod frame;
mod reader;
mod writer;

pub use error::DecodeError;
pub use frame::{DEFAULT_MAX_FRAME_LEN, FRAME_HEADER_LEN, Frame, FrameDecoder, encode_frame};
pub use reader::Reader;
pub use writer::{Writer, varint_len};
