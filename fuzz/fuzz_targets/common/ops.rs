//! The byte interpreter the structured targets share: a reader that yields zeros once the input
//! is used up (so every input is a valid program), and a splitter that feeds a byte stream in
//! pieces whose sizes come from the input (every stream is cut at many points, not one).
#![allow(dead_code)] // each target uses part of it

/// Reads operands from the fuzz input.
pub struct Ops<'a> {
    data: &'a [u8],
}

impl<'a> Ops<'a> {
    /// Over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    /// True once every byte was read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// One byte (0 past the end).
    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// Two bytes, big-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    /// Eight bytes, big-endian.
    pub fn u64(&mut self) -> u64 {
        u64::from_be_bytes(std::array::from_fn(|_| self.u8()))
    }

    /// Up to `n` bytes (fewer at the end of the input).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }

    /// A length byte, then that many bytes.
    pub fn blob(&mut self) -> &'a [u8] {
        let n = usize::from(self.u8());
        self.bytes(n)
    }

    /// A string of at most `max` bytes (lossy UTF-8, cut at a character boundary).
    pub fn text(&mut self, max: usize) -> String {
        let mut s = String::from_utf8_lossy(self.blob()).into_owned();
        while s.len() > max {
            s.pop();
        }
        s
    }
}

/// Piece sizes for cutting streams, read from the front of the input: a count (0–7) and that
/// many sizes (1–64 bytes each). No sizes: streams go in whole.
pub struct Splitter {
    sizes: Vec<usize>,
    next: usize,
}

impl Splitter {
    /// Reads the sizes.
    pub fn read(ops: &mut Ops<'_>) -> Self {
        let n = ops.u8() % 8;
        let sizes = (0..n).map(|_| usize::from(ops.u8() % 64) + 1).collect();
        Self { sizes, next: 0 }
    }

    /// Calls `feed` with consecutive pieces of `stream`, sizes taken in turn.
    pub fn feed(&mut self, stream: &[u8], mut feed: impl FnMut(&[u8])) {
        if self.sizes.is_empty() {
            if !stream.is_empty() {
                feed(stream);
            }
            return;
        }
        let mut rest = stream;
        while !rest.is_empty() {
            let n = self.sizes[self.next % self.sizes.len()].min(rest.len());
            self.next += 1;
            let (piece, tail) = rest.split_at(n);
            feed(piece);
            rest = tail;
        }
    }
}
