//! The session store fed arbitrary event sequences: never panics, never accepts a session past
//! its absolute lifetime.
#![no_main]
use arbitrary::Arbitrary;
use fleetwire_auth::UnixTime;
use fleetwire_auth::session::{Activity, SessionConfig, SessionStore};
use libfuzzer_sys::fuzz_target;
use fleetwire_auth::rand_core::{CryptoRng, RngCore};

/// A deterministic counter "RNG": tokens only need to be distinct here.
struct Counter(u64);
impl RngCore for Counter {
    fn next_u32(&mut self) -> u32 { self.next_u64() as u32 }
    fn next_u64(&mut self) -> u64 { self.0 += 1; self.0 }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), fleetwire_auth::rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}
impl CryptoRng for Counter {}

#[derive(Arbitrary, Debug)]
enum Op {
    Create { user: u8 },
    Check { idx: u8, user_activity: bool },
    End { idx: u8 },
    EndAll { user: u8 },
    SetIdle { user: u8, ms: Option<u32> },
    Advance { ms: u32 },
    StepBack { ms: u32 },
    Purge,
}

fuzz_target!(|ops: Vec<Op>| {
    let mut rng = Counter(0);
    let cfg = SessionConfig { absolute_lifetime_ms: 3_600_000, default_idle_timeout_ms: Some(600_000), max_sessions_per_user: 3 };
    let mut s = SessionStore::new(cfg);
    let mut tokens: Vec<(String, u64)> = Vec::new();
    let (mut now, mut high) = (1_700_000_000_000u64, 0u64);
    for op in ops.into_iter().take(1000) {
        let t = UnixTime::from_millis(now);
        // The store judges by the latest time it was shown; track the same. A Check with no
        // token yet shows the store nothing (an earlier harness counted it: a false positive).
        let shown = match op {
            Op::Create { .. } | Op::Purge => true,
            Op::Check { .. } => !tokens.is_empty(),
            _ => false,
        };
        if shown {
            high = high.max(now);
        }
        match op {
            Op::Create { user } => {
                let (tok, info) = s.create(&format!("u{}", user % 4), t, &mut rng);
                tokens.push((tok, info.created_at.as_millis()));
            }
            Op::Check { idx, user_activity } => {
                if let Some((tok, created)) = tokens.get(usize::from(idx) % tokens.len().max(1)) {
                    let act = if user_activity { Activity::User } else { Activity::Background };
                    if s.check(tok, t, act).is_ok() {
                        assert!(high < created + 3_600_000);
                    }
                }
            }
            Op::End { idx } => {
                if let Some((tok, _)) = tokens.get(usize::from(idx) % tokens.len().max(1)) {
                    s.end(tok);
                }
            }
            Op::EndAll { user } => { s.end_all(&format!("u{}", user % 4)); }
            Op::SetIdle { user, ms } => s.set_idle_timeout(&format!("u{}", user % 4), ms.map(u64::from)),
            Op::Advance { ms } => now = now.saturating_add(u64::from(ms % 4_000_000)),
            Op::StepBack { ms } => now = now.saturating_sub(u64::from(ms % 4_000_000)),
            Op::Purge => s.purge(t),
        }
    }
});
