//! The anti-replay window (RFC 6479, as in WireGuard): a ring of 64-bit words, no bit shifting
//! of the whole window. Split in two so a forged datagram cannot move the window: [`check`]
//! before decrypting (cheap, no state change), [`mark`] only after the tag verified.
//!
//! [`check`]: ReplayWindow::check
//! [`mark`]: ReplayWindow::mark

/// Bits in the ring (a power of two).
const RING_BITS: u64 = 2048;
const WORD_BITS: u64 = 64;
const WORDS: usize = (RING_BITS / WORD_BITS) as usize;

/// Sequence numbers older than the highest seen by more than this are refused: 1,984
/// datagrams of reordering are tolerated (the ring keeps one word of slack).
pub const REPLAY_WINDOW: u64 = RING_BITS - WORD_BITS;

/// Which sequence numbers already arrived, for one key and direction.
#[derive(Clone)]
pub(crate) struct ReplayWindow {
    /// One above the highest sequence number marked (0: none yet).
    top: u64,
    ring: Box<[u64; WORDS]>,
}

impl core::fmt::Debug for ReplayWindow {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ReplayWindow")
            .field("top", &self.top)
            .finish_non_exhaustive()
    }
}

impl ReplayWindow {
    pub(crate) fn new() -> Self {
        Self {
            top: 0,
            ring: Box::new([0; WORDS]),
        }
    }

    /// True if `seq` is new: above the window's top, or inside the window and not yet marked.
    pub(crate) fn check(&self, seq: u64) -> bool {
        if seq == u64::MAX {
            return false;
        }
        let n = seq + 1;
        if n > self.top {
            return true;
        }
        if self.top - n >= REPLAY_WINDOW {
            return false;
        }
        let (word, bit) = Self::position(n);
        self.ring[word] & bit == 0
    }

    /// Records `seq` (call only after the datagram authenticated). Returns false if it was
    /// already marked or is too old (then nothing changes).
    pub(crate) fn mark(&mut self, seq: u64) -> bool {
        if !self.check(seq) {
            return false;
        }
        let n = seq + 1;
        if n > self.top {
            let current = self.top / WORD_BITS;
            let target = n / WORD_BITS;
            let clear = (target - current).min(WORDS as u64);
            for i in 1..=clear {
                self.ring[((current + i) % WORDS as u64) as usize] = 0;
            }
            self.top = n;
        }
        let (word, bit) = Self::position(n);
        self.ring[word] |= bit;
        true
    }

    fn position(n: u64) -> (usize, u64) {
        (
            ((n / WORD_BITS) % WORDS as u64) as usize,
            1u64 << (n % WORD_BITS),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn in_order_out_of_order_duplicate_and_too_old() {
        let mut w = ReplayWindow::new();
        assert!(w.mark(0));
        assert!(!w.mark(0));
        assert!(w.mark(5));
        assert!(w.mark(3));
        assert!(!w.check(3));
        assert!(w.check(4));
        assert!(w.mark(5 + REPLAY_WINDOW));
        // 5 is now exactly at the edge: too old.
        assert!(!w.check(5));
        assert!(w.check(7));
        assert!(w.mark(1_000_000));
        assert!(!w.check(999_999 - REPLAY_WINDOW));
        assert!(w.check(1_000_000 - REPLAY_WINDOW + 1));
        assert!(!w.check(u64::MAX));
    }

    #[test]
    fn check_changes_nothing() {
        let mut w = ReplayWindow::new();
        assert!(w.check(10));
        assert!(w.check(10));
        assert!(w.mark(10));
        assert!(!w.check(10));
    }

    proptest! {
        /// Against a set of everything marked: a sequence number is accepted iff it was never
        /// marked and it is within the window of the highest marked.
        #[test]
        fn matches_a_reference_model(seqs in prop::collection::vec(0u64..6000, 1..400)) {
            let mut w = ReplayWindow::new();
            let mut seen = std::collections::BTreeSet::new();
            let mut top: Option<u64> = None;
            for s in seqs {
                let fresh = !seen.contains(&s)
                    && top.is_none_or(|t| s > t || t - s < REPLAY_WINDOW);
                prop_assert_eq!(w.check(s), fresh);
                prop_assert_eq!(w.mark(s), fresh);
                if fresh {
                    seen.insert(s);
                    top = Some(top.map_or(s, |t| t.max(s)));
                }
            }
        }
    }
}
