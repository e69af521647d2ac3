//! The lockout engine fed arbitrary event sequences (attempts, outcomes, clears, clock steps in
//! both directions): never panics, never counts while locked, never exceeds the hard limit; a
//! batch decides exactly as one call per key.
#![no_main]
use arbitrary::Arbitrary;
use fleetwire_auth::UnixTime;
use fleetwire_auth::lockout::{LockoutConfig, LockoutEngine, LockoutKey, Outcome};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Op {
    Begin { key: u8, finish: Option<bool> },
    Batch { keys: Vec<u8> },
    Clear { key: u8 },
    Advance { secs: u32 },
    StepBack { secs: u32 },
    Purge,
}

fuzz_target!(|input: (u8, u8, Vec<Op>)| {
    let (max_failures, per_block, ops) = input;
    let mut cfg = LockoutConfig::web_cms();
    cfg.max_failures = u16::from(max_failures.max(1));
    cfg.failures_per_block = u16::from(per_block.max(1));
    cfg.max_keys = 8;
    cfg.jitter_percent = 25;
    let Ok(mut e) = LockoutEngine::new(cfg, [1; 16]) else {
        return;
    };
    let mut now = 1_700_000_000u64;
    for op in ops.into_iter().take(2000) {
        let t = UnixTime::from_secs(now);
        match op {
            Op::Begin { key, finish } => {
                let subject = [key % 16];
                let k = LockoutKey::untrusted("f", &subject);
                match e.begin_attempt(&k, t) {
                    Ok(ticket) => {
                        assert!(ticket.failures <= 100);
                        match finish {
                            Some(true) => e.finish(ticket, Outcome::Success, t),
                            Some(false) => e.finish(ticket, Outcome::Failure, t),
                            None => {}
                        }
                    }
                    Err(_) => {
                        let before = e.clone();
                        assert!(e.begin_attempt(&k, t).is_err());
                        assert_eq!(before, e);
                    }
                }
            }
            Op::Batch { keys } => {
                let subjects: Vec<[u8; 1]> = keys.iter().take(100).map(|k| [k % 16]).collect();
                let keys: Vec<_> = subjects
                    .iter()
                    .map(|s| LockoutKey::untrusted("f", s))
                    .collect();
                let mut single = e.clone();
                let expected: Vec<_> = keys.iter().map(|k| single.begin_attempt(k, t)).collect();
                let mut got = Vec::new();
                e.begin_attempts(&keys, t, &mut got);
                assert_eq!(got, expected);
                assert_eq!(e, single);
            }
            Op::Clear { key } => e.clear(&LockoutKey::untrusted("f", &[key % 16])),
            Op::Advance { secs } => now = now.saturating_add(u64::from(secs % 100_000)),
            Op::StepBack { secs } => now = now.saturating_sub(u64::from(secs % 100_000)),
            Op::Purge => e.purge(t),
        }
        assert!(e.stats().tracked_keys <= 8);
    }
});
