//! A small seeded generator for retransmission jitter (`SplitMix64`). Jitter needs no secrecy;
//! keys come from the login and nonces are counters, so the machines need no CSPRNG.

#[derive(Debug, Clone)]
pub(crate) struct Jitter(u64);

impl Jitter {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed ^ 0x6A09_E667_F3BC_C908)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// `ms` scaled by a uniform factor in `[1 - percent/100, 1 + percent/100]`.
    pub(crate) fn spread(&mut self, ms: u64, percent: u8) -> u64 {
        let p = u64::from(percent.min(100));
        let span = ms.saturating_mul(p) / 100;
        let low = ms - span;
        let width = span.saturating_mul(2).saturating_add(1);
        low.saturating_add(self.next_u64() % width)
    }
}
