use thiserror::Error;

/// The bytes were wrong: truncated, too long, or holding a value the format does not allow.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended before a field was complete.
    #[error("truncated {field}: needed {needed} more bytes, {remaining} remain")]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes left in the input.
        remaining: usize,
    },
    /// A frame header declared a body longer than the decoder's limit.
    #[error("frame length {len} exceeds the limit {max}")]
    FrameTooLong {
        /// The declared body length.
        len: u64,
        /// The configured limit.
        max: u64,
    },
    /// A varint ran past 10 bytes or past the range of `u64`.
    #[error("varint in {field} overflows 64 bits")]
    VarintOverflow {
        /// The field being read.
        field: &'static str,
    },
    /// A varint used more bytes than its value needs (the encoding must be canonical).
    #[error("varint in {field} is not minimally encoded")]
    VarintNotCanonical {
        /// The field being read.
        field: &'static str,
    },
    /// A message body had bytes left over after its last field.
    #[error("{count} unexpected trailing bytes after the last field")]
    TrailingBytes {
        /// How many bytes were left.
        count: usize,
    },
    /// A field held a value outside its allowed range.
    #[error("invalid {field}: {reason}")]
    InvalidValue {
        /// The field being read.
        field: &'static str,
        /// Why the value is not allowed.
        reason: &'static str,
    },
    /// A string field was not valid UTF-8.
    #[error("{field} is not valid UTF-8")]
    InvalidUtf8 {
        /// The field being read.
        field: &'static str,
    },
    /// The frame's message type is not one this protocol knows.
    #[error("unknown message type 0x{msg_type:02x}")]
    UnknownMessageType {
        /// The type byte that arrived.
        msg_type: u8,
    },
    /// The frame's protocol version is not one this build speaks.
    #[error("unsupported protocol version {version} (this build speaks {supported})")]
    UnsupportedVersion {
        /// The version byte that arrived.
        version: u8,
        /// The version this build speaks.
        supported: u8,
    },
}
