//! Sets of chunk indices: [`ChunkSet`] (sorted ranges, for the wire) and [`Bitmap`] (one bit
//! per chunk, for state and resume).

use fleetwire_wire::{DecodeError, Reader, Writer};

/// A set of chunk indices as sorted, disjoint, non-adjacent half-open ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChunkSet {
    ranges: Vec<(u32, u32)>,
}

impl ChunkSet {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// The ranges, sorted, half-open.
    pub fn ranges(&self) -> &[(u32, u32)] {
        &self.ranges
    }

    /// Number of ranges.
    pub fn range_count(&self) -> usize {
        self.ranges.len()
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Every index in the set, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.ranges.iter().flat_map(|&(a, b)| a..b)
    }

    /// Adds `index`.
    pub fn insert(&mut self, index: u32) {
        if index < u32::MAX {
            self.insert_range(index, index + 1);
        }
    }

    /// Adds `start..end`.
    pub fn insert_range(&mut self, start: u32, end: u32) {
        if start >= end {
            return;
        }
        // First range whose end reaches start (adjacent ranges merge).
        let i = self.ranges.partition_point(|&(_, e)| e < start);
        let mut j = i;
        let (mut s, mut e) = (start, end);
        while j < self.ranges.len() && self.ranges[j].0 <= e {
            s = s.min(self.ranges[j].0);
            e = e.max(self.ranges[j].1);
            j += 1;
        }
        self.ranges.splice(i..j, [(s, e)]);
    }

    /// Appends the set: `count:varint`, then per range `gap:varint` (from `base` or the end of
    /// the previous range) and `len:varint` (≥ 1). At most `max_ranges` ranges are written (the
    /// lowest).
    pub(crate) fn encode(&self, w: &mut Writer<'_>, max_ranges: usize, base: u32) {
        let ranges: Vec<(u32, u32)> = self
            .ranges
            .iter()
            .filter(|&&(_, e)| e > base)
            .map(|&(s, e)| (s.max(base), e))
            .take(max_ranges)
            .collect();
        w.varint(ranges.len() as u64);
        let mut prev = base;
        for (s, e) in ranges {
            w.varint(u64::from(s - prev));
            w.varint(u64::from(e - s));
            prev = e;
        }
    }

    /// Reads a set written by `encode` with the same `base`.
    pub(crate) fn decode(r: &mut Reader<'_>, base: u32) -> Result<Self, DecodeError> {
        let count = r.varint_named("range count")?;
        // Each range takes at least two bytes: refuse counts the input cannot hold.
        if count > (r.remaining() / 2) as u64 {
            return Err(DecodeError::Truncated {
                field: "ranges",
                needed: usize::try_from(count.saturating_mul(2)).unwrap_or(usize::MAX),
                remaining: r.remaining(),
            });
        }
        let mut ranges = Vec::with_capacity(count as usize);
        let mut prev = u64::from(base);
        for i in 0..count {
            let gap = r.varint_named("range gap")?;
            let len = r.varint_named("range length")?;
            if len == 0 || (gap == 0 && i > 0) {
                return Err(DecodeError::InvalidValue {
                    field: "range",
                    reason: "ranges must be non-empty and non-adjacent",
                });
            }
            let start = prev.checked_add(gap).and_then(|s| u32::try_from(s).ok());
            let end = prev
                .checked_add(gap)
                .and_then(|s| s.checked_add(len))
                .and_then(|e| u32::try_from(e).ok());
            match (start, end) {
                (Some(s), Some(e)) => {
                    ranges.push((s, e));
                    prev = u64::from(e);
                }
                _ => {
                    return Err(DecodeError::InvalidValue {
                        field: "range",
                        reason: "beyond 2^32 chunks",
                    });
                }
            }
        }
        Ok(Self { ranges })
    }
}

/// One bit per chunk of a file: which chunks are stored. Serializable for resume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bitmap {
    len: u32,
    count: u32,
    words: Vec<u64>,
}

impl Bitmap {
    /// An empty bitmap for `len` chunks.
    pub fn new(len: u32) -> Self {
        Self {
            len,
            count: 0,
            words: vec![0; (len as usize).div_ceil(64)],
        }
    }

    /// Chunks the bitmap covers.
    pub fn len(&self) -> u32 {
        self.len
    }

    /// True if it covers no chunks.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Chunks set.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// True if every chunk is set.
    pub fn is_full(&self) -> bool {
        self.count == self.len
    }

    /// Whether `index` is set (false beyond the end).
    pub fn contains(&self, index: u32) -> bool {
        index < self.len && self.words[(index / 64) as usize] & (1 << (index % 64)) != 0
    }

    /// Sets `index`; returns true if it was newly set. Ignores indices beyond the end.
    pub fn insert(&mut self, index: u32) -> bool {
        if index >= self.len || self.contains(index) {
            return false;
        }
        self.words[(index / 64) as usize] |= 1 << (index % 64);
        self.count += 1;
        true
    }

    /// Clears `index`.
    pub fn remove(&mut self, index: u32) {
        if self.contains(index) {
            self.words[(index / 64) as usize] &= !(1 << (index % 64));
            self.count -= 1;
        }
    }

    /// The first index not set, at or after `from` (or `len`).
    pub fn first_clear_from(&self, from: u32) -> u32 {
        let mut i = from;
        while i < self.len {
            let w = self.words[(i / 64) as usize] >> (i % 64);
            if w == u64::MAX >> (i % 64) {
                i = (i / 64 + 1) * 64;
                continue;
            }
            if !self.contains(i) {
                return i;
            }
            i += 1;
        }
        self.len
    }

    /// The first index set, at or after `from` (or `len`).
    pub fn first_set_from(&self, from: u32) -> u32 {
        let mut i = from;
        while i < self.len {
            let w = self.words[(i / 64) as usize] >> (i % 64);
            if w == 0 {
                i = (i / 64 + 1) * 64;
                continue;
            }
            return (i + w.trailing_zeros()).min(self.len);
        }
        self.len
    }

    /// The set as ranges.
    pub fn to_set(&self) -> ChunkSet {
        let mut set = ChunkSet::new();
        let mut i = 0;
        while i < self.len {
            if self.contains(i) {
                let start = i;
                while i < self.len && self.contains(i) {
                    i += 1;
                }
                set.ranges.push((start, i));
            } else {
                i += 1;
            }
        }
        set
    }

    /// Encodes as `len:u32be | words (little-endian bit order, ⌈len/64⌉ × u64be)`.
    pub fn encode(&self, w: &mut Writer<'_>) {
        w.u32(self.len);
        for word in &self.words {
            w.u64(*word);
        }
    }

    /// Decodes a bitmap written by [`Bitmap::encode`]; bits beyond `len` must be clear.
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let len = r.u32("bitmap length")?;
        let n = (len as usize).div_ceil(64);
        let bytes = r.take(n * 8, "bitmap words")?;
        let words: Vec<u64> = bytes
            .chunks_exact(8)
            .map(|c| {
                let mut a = [0u8; 8];
                a.copy_from_slice(c);
                u64::from_be_bytes(a)
            })
            .collect();
        if len % 64 != 0 && words.last().is_some_and(|w| w >> (len % 64) != 0) {
            return Err(DecodeError::InvalidValue {
                field: "bitmap",
                reason: "bits set beyond the length",
            });
        }
        let count = words.iter().map(|w| w.count_ones()).sum();
        Ok(Self { len, count, words })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn set_matches_model(items in prop::collection::vec(0u32..200, 0..100), base in 0u32..50) {
            let mut set = ChunkSet::new();
            let mut model = std::collections::BTreeSet::new();
            let mut bitmap = Bitmap::new(200);
            for i in items {
                set.insert(i);
                model.insert(i);
                bitmap.insert(i);
            }
            prop_assert_eq!(set.iter().collect::<Vec<_>>(), model.iter().copied().collect::<Vec<_>>());
            prop_assert_eq!(bitmap.to_set(), set.clone());
            prop_assert_eq!(bitmap.count() as usize, model.len());
            let first_clear = (0..200).find(|i| !model.contains(i)).unwrap_or(200);
            prop_assert_eq!(bitmap.first_clear_from(0), first_clear);
            let mut buf = Vec::new();
            set.encode(&mut Writer::new(&mut buf), usize::MAX, base);
            let back = ChunkSet::decode(&mut Reader::new(&buf), base).unwrap();
            prop_assert_eq!(back.iter().collect::<Vec<_>>(), model.range(base..).copied().collect::<Vec<_>>());
            let mut buf = Vec::new();
            bitmap.encode(&mut Writer::new(&mut buf));
            prop_assert_eq!(Bitmap::decode(&mut Reader::new(&buf)).unwrap(), bitmap);
        }
    }
}
