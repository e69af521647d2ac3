//! A compact open-addressing table from keyed 64-bit tags to small `Copy` values.
//!
//! Used by the lockout engine and the throttles. Design:
//! - 16-byte slots (`u64` tag + an 8-byte value), `tag == 0` marks an empty slot;
//! - at most `max_keys` entries in `max_keys * 4 / 3` slots (load ≤ 0.75), so a probe always
//!   meets an empty slot and memory is about 21 bytes per tracked key;
//! - linear probing from a multiply-shift home slot, backward-shift deletion (no tombstones);
//! - when full, inserting evicts the least valuable entry among the next [`EVICTION_WINDOW`]
//!   occupied slots, as ranked by the caller's score (expired entries first).
//!
//! Snapshots serialize only occupied entries and are re-inserted on load, so a tampered snapshot
//! cannot break the probing invariant.

use serde::{Deserialize, Serialize};

/// How many occupied slots an eviction looks at.
pub(crate) const EVICTION_WINDOW: usize = 32;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Slot<V> {
    pub(crate) tag: u64,
    pub(crate) val: V,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    into = "TableSnapshot<V>",
    from = "TableSnapshot<V>",
    bound = "V: Copy + Default + Serialize + for<'a> Deserialize<'a>"
)]
pub(crate) struct KeyTable<V: Copy + Default> {
    slots: Vec<Slot<V>>,
    len: usize,
    max_keys: usize,
    evictions: u64,
}

#[derive(Serialize, Deserialize)]
struct TableSnapshot<V> {
    max_keys: u32,
    evictions: u64,
    entries: Vec<Slot<V>>,
}

impl<V: Copy + Default> From<KeyTable<V>> for TableSnapshot<V> {
    fn from(t: KeyTable<V>) -> Self {
        Self {
            max_keys: u32::try_from(t.max_keys).unwrap_or(u32::MAX),
            evictions: t.evictions,
            entries: t.slots.into_iter().filter(|s| s.tag != 0).collect(),
        }
    }
}

impl<V: Copy + Default> From<TableSnapshot<V>> for KeyTable<V> {
    fn from(s: TableSnapshot<V>) -> Self {
        let mut t = KeyTable::new(s.max_keys);
        t.evictions = s.evictions;
        for e in s.entries {
            if e.tag != 0 && t.find(e.tag).is_none() {
                t.insert(e.tag, e.val, |_| 0);
            }
        }
        t
    }
}

impl<V: Copy + Default> KeyTable<V> {
    pub(crate) fn new(max_keys: u32) -> Self {
        let max_keys = (max_keys as usize).max(1);
        let capacity = (max_keys + max_keys / 3 + 1).max(8);
        Self {
            slots: vec![Slot::default(); capacity],
            len: 0,
            max_keys,
            evictions: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Bytes held by the slot array.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.slots.len() * std::mem::size_of::<Slot<V>>()
    }

    #[inline]
    fn home(&self, tag: u64) -> usize {
        ((u128::from(tag) * self.slots.len() as u128) >> 64) as usize
    }

    #[inline]
    fn next(&self, i: usize) -> usize {
        if i + 1 == self.slots.len() { 0 } else { i + 1 }
    }

    #[inline]
    pub(crate) fn find(&self, tag: u64) -> Option<usize> {
        debug_assert!(tag != 0);
        let mut i = self.home(tag);
        loop {
            let s = &self.slots[i];
            if s.tag == tag {
                return Some(i);
            }
            if s.tag == 0 {
                return None;
            }
            i = self.next(i);
        }
    }

    /// Starts loading the home slot of `tag` into the cache, so that a later [`Self::find`]
    /// of it does not stall. Issued for a batch of tags before their lookups, the cache misses
    /// of the batch overlap instead of following one another.
    #[inline]
    pub(crate) fn prefetch(&self, tag: u64) {
        // A plain independent load (no unsafe prefetch intrinsic): the out-of-order core keeps
        // several of them in flight while the batch's tags are still being computed.
        std::hint::black_box(self.slots[self.home(tag)].tag);
    }

    #[inline]
    pub(crate) fn get(&self, idx: usize) -> V {
        self.slots[idx].val
    }

    #[inline]
    pub(crate) fn set(&mut self, idx: usize, val: V) {
        self.slots[idx].val = val;
    }

    /// Inserts a tag known to be absent; evicts the lowest-scoring nearby entry when full.
    pub(crate) fn insert(&mut self, tag: u64, val: V, score: impl Fn(&V) -> u64) -> usize {
        debug_assert!(tag != 0);
        if self.len >= self.max_keys {
            self.evict_near(self.home(tag), score);
        }
        let mut i = self.home(tag);
        while self.slots[i].tag != 0 {
            i = self.next(i);
        }
        self.slots[i] = Slot { tag, val };
        self.len += 1;
        i
    }

    /// Removes the entry at `idx` by shifting later entries of the cluster back.
    pub(crate) fn remove(&mut self, idx: usize) {
        let mut hole = idx;
        let mut j = self.next(idx);
        while self.slots[j].tag != 0 {
            let h = self.home(self.slots[j].tag);
            let stays = if hole <= j {
                hole < h && h <= j
            } else {
                hole < h || h <= j
            };
            if !stays {
                self.slots[hole] = self.slots[j];
                hole = j;
            }
            j = self.next(j);
        }
        self.slots[hole] = Slot::default();
        self.len -= 1;
    }

    /// Removes every entry for which `dead` is true.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&V) -> bool) {
        let mut i = 0;
        while i < self.slots.len() {
            if self.slots[i].tag != 0 && !keep(&self.slots[i].val) {
                // The shift may move an unchecked entry into `i`: look at `i` again.
                self.remove(i);
            } else {
                i += 1;
            }
        }
    }

    fn evict_near(&mut self, start: usize, score: impl Fn(&V) -> u64) {
        let mut best: Option<(u64, usize)> = None;
        let mut seen = 0;
        let mut i = start;
        for _ in 0..self.slots.len() {
            if self.slots[i].tag != 0 {
                let s = score(&self.slots[i].val);
                if best.is_none_or(|(b, _)| s < b) {
                    best = Some((s, i));
                }
                seen += 1;
                if seen == EVICTION_WINDOW || s == 0 {
                    break;
                }
            }
            i = self.next(i);
        }
        if let Some((_, idx)) = best {
            self.remove(idx);
            self.evictions += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn slot_is_16_bytes() {
        assert_eq!(std::mem::size_of::<Slot<u64>>(), 16);
    }

    proptest! {
        #[test]
        fn behaves_like_a_map(ops in proptest::collection::vec((1u64..200, any::<bool>()), 0..400)) {
            // Spread small keys over the whole u64 range so homes differ.
            let tag = |k: u64| k.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            let mut t = KeyTable::<u64>::new(1000);
            let mut m = std::collections::HashMap::new();
            for (k, ins) in ops {
                let tg = tag(k);
                if ins {
                    match t.find(tg) {
                        Some(i) => t.set(i, k),
                        None => { t.insert(tg, k, |_| 1); }
                    }
                    m.insert(tg, k);
                } else if let Some(i) = t.find(tg) {
                    t.remove(i);
                    m.remove(&tg);
                }
                prop_assert_eq!(t.len(), m.len());
            }
            for (tg, v) in &m {
                let i = t.find(*tg);
                prop_assert!(i.is_some());
                prop_assert_eq!(t.get(i.unwrap()), *v);
            }
        }

        #[test]
        fn stays_bounded_and_findable(keys in proptest::collection::vec(1u64..u64::MAX, 0..300)) {
            let mut t = KeyTable::<u64>::new(50);
            for k in keys {
                if t.find(k).is_none() {
                    let i = t.insert(k, k, |v| *v);
                    prop_assert_eq!(t.get(i), k);
                }
                prop_assert!(t.len() <= 50);
                prop_assert!(t.find(k).is_some());
            }
        }
    }

    #[test]
    fn snapshot_round_trip() {
        let mut t = KeyTable::<u64>::new(10);
        for k in 1..=10u64 {
            t.insert(k << 40, k, |_| 0);
        }
        let json = serde_json::to_string(&t).unwrap();
        let back: KeyTable<u64> = serde_json::from_str(&json).unwrap();
        for k in 1..=10u64 {
            assert_eq!(back.get(back.find(k << 40).unwrap()), k);
        }
    }
}
