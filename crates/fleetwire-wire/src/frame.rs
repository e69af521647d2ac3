use crate::DecodeError;

/// Bytes in a frame header: `version:u8 | type:u8 | length:u32be`.
pub const FRAME_HEADER_LEN: usize = 6;

/// The default limit on a frame body: 64 KiB.
pub const DEFAULT_MAX_FRAME_LEN: u32 = 64 * 1024;

/// A decoded frame. The body borrows either the caller's input (when the whole frame arrived in
/// one piece: no copy) or the decoder's own buffer (when it arrived split).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Protocol version from the header. The decoder reports it; the protocol decides.
    pub version: u8,
    /// Message type from the header.
    pub msg_type: u8,
    /// The body, exactly as long as the header said.
    pub body: &'a [u8],
}

/// Appends one frame to `out`.
///
/// # Panics
/// If `body` is 4 GiB or longer, which no fleetwire message is.
pub fn encode_frame(out: &mut Vec<u8>, version: u8, msg_type: u8, body: &[u8]) {
    let len = u32::try_from(body.len()).expect("INVARIANT: frame bodies are below 4 GiB");
    out.reserve(FRAME_HEADER_LEN + body.len());
    out.push(version);
    out.push(msg_type);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
}

/// An incremental decoder for `version:u8 | type:u8 | length:u32be | body` frames.
///
/// Memory is bounded by what arrived: the body buffer grows only as body bytes arrive (never to
/// the declared length up front), and a declared length above the limit is an error the moment
/// the header is complete. After an error the decoder stays failed; the connection should close.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    max_len: u32,
    header: [u8; FRAME_HEADER_LEN],
    header_len: usize,
    body: Vec<u8>,
    failed: Option<DecodeError>,
}

impl FrameDecoder {
    /// A decoder that accepts bodies up to `max_len` bytes.
    pub fn new(max_len: u32) -> Self {
        Self {
            max_len,
            header: [0; FRAME_HEADER_LEN],
            header_len: 0,
            body: Vec::new(),
            failed: None,
        }
    }

    /// The body limit.
    pub fn max_len(&self) -> u32 {
        self.max_len
    }

    /// Changes the body limit for frames whose header has not arrived yet (a protocol may allow
    /// larger frames after authentication).
    pub fn set_max_len(&mut self, max_len: u32) {
        self.max_len = max_len;
    }

    /// Bytes held for an incomplete frame (header and body so far).
    pub fn buffered(&self) -> usize {
        self.header_len + self.body.len()
    }

    /// Heap bytes the decoder holds.
    pub fn capacity(&self) -> usize {
        self.body.capacity()
    }

    /// True between frames: nothing of a next frame has arrived.
    pub fn is_idle(&self) -> bool {
        self.header_len == 0
    }

    /// Consumes bytes from `input` up to the end of the next frame. Returns how many bytes were
    /// consumed and, if a frame completed, the frame. Call again with the rest of the input.
    pub fn decode<'a>(
        &'a mut self,
        input: &'a [u8],
    ) -> Result<(usize, Option<Frame<'a>>), DecodeError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let mut used = 0;
        if self.header_len < FRAME_HEADER_LEN {
            // Fast path: a whole frame sits at the start of the input.
            if self.header_len == 0 && input.len() >= FRAME_HEADER_LEN {
                let len = self.check_len(&input[..FRAME_HEADER_LEN])?;
                let end = FRAME_HEADER_LEN + len;
                if input.len() >= end {
                    let frame = Frame {
                        version: input[0],
                        msg_type: input[1],
                        body: &input[FRAME_HEADER_LEN..end],
                    };
                    return Ok((end, Some(frame)));
                }
            }
            let take = (FRAME_HEADER_LEN - self.header_len).min(input.len());
            self.header[self.header_len..self.header_len + take].copy_from_slice(&input[..take]);
            self.header_len += take;
            used += take;
            if self.header_len < FRAME_HEADER_LEN {
                return Ok((used, None));
            }
            let header = self.header;
            self.check_len(&header)?;
        }
        let len = self.body_len();
        let take = (len - self.body.len()).min(input.len() - used);
        // Grow by what arrived, not by what was declared.
        self.body.extend_from_slice(&input[used..used + take]);
        used += take;
        if self.body.len() < len {
            return Ok((used, None));
        }
        self.header_len = 0;
        let frame = Frame {
            version: self.header[0],
            msg_type: self.header[1],
            body: &self.body,
        };
        Ok((used, Some(frame)))
    }

    /// Drops the buffer of a completed frame, so an idle connection holds no body memory.
    /// Called automatically at the start of the next frame; call it by hand to shrink early.
    pub fn release(&mut self) {
        if self.header_len == 0 {
            self.body = Vec::new();
        }
    }

    fn body_len(&self) -> usize {
        u32::from_be_bytes([
            self.header[2],
            self.header[3],
            self.header[4],
            self.header[5],
        ]) as usize
    }

    fn check_len(&mut self, header: &[u8]) -> Result<usize, DecodeError> {
        let len = u32::from_be_bytes([header[2], header[3], header[4], header[5]]);
        if len > self.max_len {
            let err = DecodeError::FrameTooLong {
                len: u64::from(len),
                max: u64::from(self.max_len),
            };
            self.failed = Some(err.clone());
            return Err(err);
        }
        // A new frame starts: reuse the old buffer only if it is small.
        if self.body.capacity() > 4096 {
            self.body = Vec::new();
        } else {
            self.body.clear();
        }
        Ok(len as usize)
    }
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_all(
        decoder: &mut FrameDecoder,
        chunks: &[&[u8]],
    ) -> Result<Vec<(u8, u8, Vec<u8>)>, DecodeError> {
        let mut out = Vec::new();
        for chunk in chunks {
            let mut input = *chunk;
            while !input.is_empty() {
                let (used, frame) = decoder.decode(input)?;
                if let Some(f) = frame {
                    out.push((f.version, f.msg_type, f.body.to_vec()));
                }
                input = &input[used..];
            }
        }
        Ok(out)
    }

    #[test]
    fn huge_length_prefix_is_rejected_without_allocating() {
        let mut decoder = FrameDecoder::new(DEFAULT_MAX_FRAME_LEN);
        let header = [1, 1, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];
        let err = decoder.decode(&header).unwrap_err();
        assert_eq!(
            err,
            DecodeError::FrameTooLong {
                len: 4_294_967_295,
                max: 65_536
            }
        );
        assert_eq!(
            err.to_string(),
            "frame length 4294967295 exceeds the limit 65536"
        );
        assert_eq!(decoder.capacity(), 0);
        // Split header: same verdict, still nothing allocated.
        let mut decoder = FrameDecoder::new(DEFAULT_MAX_FRAME_LEN);
        assert!(decode_all(&mut decoder, &[&header[..3], &header[3..]]).is_err());
        assert_eq!(decoder.capacity(), 0);
        // And it stays failed.
        assert!(decoder.decode(&[0]).is_err());
    }

    #[test]
    fn body_grows_with_arrivals_not_declarations() {
        let mut decoder = FrameDecoder::new(1 << 20);
        let mut input = vec![1, 2];
        input.extend_from_slice(&(1u32 << 20).to_be_bytes());
        input.extend_from_slice(&[7; 100]);
        let out = decode_all(&mut decoder, &[&input]).unwrap();
        assert!(out.is_empty());
        assert_eq!(decoder.buffered(), 106);
        assert!(decoder.capacity() < 1024, "capacity {}", decoder.capacity());
    }

    #[test]
    fn empty_body_frames() {
        let mut stream = Vec::new();
        encode_frame(&mut stream, 1, 9, &[]);
        encode_frame(&mut stream, 1, 10, &[]);
        let mut decoder = FrameDecoder::default();
        let out = decode_all(&mut decoder, &[&stream[..4], &stream[4..]]).unwrap();
        assert_eq!(out, vec![(1, 9, vec![]), (1, 10, vec![])]);
        assert!(decoder.is_idle());
    }

    fn frames_strategy() -> impl Strategy<Value = Vec<(u8, u8, Vec<u8>)>> {
        prop::collection::vec(
            (
                any::<u8>(),
                any::<u8>(),
                prop::collection::vec(any::<u8>(), 0..300),
            ),
            0..20,
        )
    }

    proptest! {
        #[test]
        fn any_split_gives_the_same_frames(frames in frames_strategy(), cuts in prop::collection::vec(any::<usize>(), 0..40)) {
            let mut stream = Vec::new();
            for (v, t, body) in &frames {
                encode_frame(&mut stream, *v, *t, body);
            }
            let mut points: Vec<usize> = cuts.iter().map(|c| if stream.is_empty() { 0 } else { c % stream.len() }).collect();
            points.push(0);
            points.push(stream.len());
            points.sort_unstable();
            points.dedup();
            let chunks: Vec<&[u8]> = points.windows(2).map(|w| &stream[w[0]..w[1]]).collect();
            let mut decoder = FrameDecoder::new(300);
            let out = decode_all(&mut decoder, &chunks).unwrap();
            prop_assert_eq!(out, frames);
            prop_assert!(decoder.is_idle());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2000), max in 0u32..512) {
            let mut decoder = FrameDecoder::new(max);
            let _ = decode_all(&mut decoder, &[&bytes]);
            prop_assert!(decoder.capacity() <= bytes.len().max(8) * 2);
        }
    }
}
