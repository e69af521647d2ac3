use crate::DecodeError;

/// A bounds-checked cursor over a byte slice. Every read names its field, so an error says what
/// was being read. Nothing is copied or allocated: slices point into the input.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// The bytes not read yet, without consuming them.
    pub fn rest(&self) -> &'a [u8] {
        self.buf
    }

    /// Fails with [`DecodeError::TrailingBytes`] unless every byte was read.
    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.buf.len() {
            0 => Ok(()),
            count => Err(DecodeError::TrailingBytes { count }),
        }
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        if n > self.buf.len() {
            return Err(DecodeError::Truncated {
                field,
                needed: n,
                remaining: self.buf.len(),
            });
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    /// The next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    /// One byte.
    pub fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(field)?[0])
    }

    /// A big-endian `u16`.
    pub fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }

    /// A big-endian `u32`.
    pub fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    /// A big-endian `u64`.
    pub fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }

    /// A canonical LEB128 varint (at most 10 bytes, no redundant trailing zero groups).
    pub fn varint(&mut self) -> Result<u64, DecodeError> {
        self.varint_named("varint")
    }

    /// [`Reader::varint`] with a field name for errors.
    pub fn varint_named(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        let mut value: u64 = 0;
        for (i, &byte) in self.buf.iter().enumerate().take(10) {
            let group = u64::from(byte & 0x7f);
            if i == 9 && byte > 0x01 {
                return Err(DecodeError::VarintOverflow { field });
            }
            value |= group << (7 * i);
            if byte & 0x80 == 0 {
                if byte == 0 && i > 0 {
                    return Err(DecodeError::VarintNotCanonical { field });
                }
                self.buf = &self.buf[i + 1..];
                return Ok(value);
            }
        }
        if self.buf.len() >= 10 {
            Err(DecodeError::VarintOverflow { field })
        } else {
            Err(DecodeError::Truncated {
                field,
                needed: self.buf.len() + 1,
                remaining: self.buf.len(),
            })
        }
    }

    /// A varint that must fit in `u32`.
    pub fn varint_u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        u32::try_from(self.varint_named(field)?).map_err(|_| DecodeError::InvalidValue {
            field,
            reason: "does not fit in 32 bits",
        })
    }

    /// A varint length followed by that many bytes. The length is checked against the bytes
    /// present before anything is returned.
    pub fn bytes_varint(&mut self, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let len = self.varint_named(field)?;
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        self.take(len, field)
    }

    /// A one-byte length followed by that many bytes of UTF-8.
    pub fn str_u8(&mut self) -> Result<&'a str, DecodeError> {
        self.str_u8_named("string")
    }

    /// [`Reader::str_u8`] with a field name for errors.
    pub fn str_u8_named(&mut self, field: &'static str) -> Result<&'a str, DecodeError> {
        let len = self.u8(field)?;
        let bytes = self.take(usize::from(len), field)?;
        core::str::from_utf8(bytes).map_err(|_| DecodeError::InvalidUtf8 { field })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Writer;

    #[test]
    fn varint_rejects_overlong_and_overflow() {
        assert_eq!(
            Reader::new(&[0x80, 0x00]).varint(),
            Err(DecodeError::VarintNotCanonical { field: "varint" })
        );
        let max = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(Reader::new(&max).varint(), Ok(u64::MAX));
        let over = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert_eq!(
            Reader::new(&over).varint(),
            Err(DecodeError::VarintOverflow { field: "varint" })
        );
        assert!(matches!(
            Reader::new(&[0x80, 0x80]).varint(),
            Err(DecodeError::Truncated { .. })
        ));
    }

    #[test]
    fn length_prefix_is_checked_before_use() {
        // Claims 2^62 bytes, carries two.
        let mut buf = Vec::new();
        Writer::new(&mut buf).varint(1 << 62);
        buf.extend_from_slice(b"ab");
        let err = Reader::new(&buf).bytes_varint("blob").unwrap_err();
        assert!(matches!(
            err,
            DecodeError::Truncated {
                field: "blob",
                remaining: 2,
                ..
            }
        ));
    }

    proptest::proptest! {
        #[test]
        fn varint_round_trips(v: u64) {
            let mut buf = Vec::new();
            Writer::new(&mut buf).varint(v);
            proptest::prop_assert_eq!(buf.len(), crate::varint_len(v));
            let mut r = Reader::new(&buf);
            proptest::prop_assert_eq!(r.varint(), Ok(v));
            proptest::prop_assert_eq!(r.finish(), Ok(()));
        }

        #[test]
        fn reader_never_panics(bytes: Vec<u8>) {
            let mut r = Reader::new(&bytes);
            let _ = r.varint();
            let _ = r.bytes_varint("x");
            let _ = r.str_u8();
            let _ = r.u64("y");
        }
    }
}
