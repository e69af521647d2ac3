//! The lockout engine fed arbitrary event sequences (attempts, outcomes, clears, clock steps in
//! both directions): never panics, never counts while locked, never exceeds the hard limit; a
//! batch decides exactly as one call per key; and one key's state kept outside an engine (a row
//! per key, as several server nodes share it) decides exactly as an engine that never evicts.
#![no_main]
use arbitrary::Arbitrary;
use fleetwire_auth::UnixTime;
use std::collections::HashMap;

use fleetwire_auth::lockout::{KeyState, LockoutConfig, LockoutEngine, LockoutKey, Outcome};
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
    let Ok(mut e) = LockoutEngine::new(cfg.clone(), [1; 16]) else {
        return;
    };
    // An engine large enough never to evict, and the same keys as rows kept outside it.
    let mut roomy_cfg = cfg.clone();
    roomy_cfg.max_keys = 64;
    let Ok(mut roomy) = LockoutEngine::new(roomy_cfg, [1; 16]) else {
        return;
    };
    let mut rows: HashMap<u8, KeyState> = HashMap::new();
    let mut now = 1_700_000_000u64;
    for op in ops.into_iter().take(2000) {
        let t = UnixTime::from_secs(now);
        match op {
            Op::Begin { key, finish } => {
                let subject = [key % 16];
                let k = LockoutKey::untrusted("f", &subject);
                // The rows decide as the engine that keeps every key.
                let seed = roomy.key_seed(&k);
                let row = rows.entry(key % 16).or_default();
                let outside = cfg.reserve(row, seed, t);
                let inside = roomy.begin_attempt(&k, t);
                assert_eq!(inside.map(|ticket| ticket.failures), outside);
                if let (Ok(ticket), Some(ok)) = (inside, finish) {
                    let outcome = if ok { Outcome::Success } else { Outcome::Failure };
                    roomy.finish(ticket, outcome, t);
                    *row = cfg.settle(*row, outcome, t).unwrap_or_default();
                }
                assert_eq!(roomy.status(&k, t), cfg.state_status(*row, seed, t));
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
            Op::Clear { key } => {
                e.clear(&LockoutKey::untrusted("f", &[key % 16]));
                roomy.clear(&LockoutKey::untrusted("f", &[key % 16]));
                rows.remove(&(key % 16));
            }
            Op::Advance { secs } => now = now.saturating_add(u64::from(secs % 100_000)),
            Op::StepBack { secs } => now = now.saturating_sub(u64::from(secs % 100_000)),
            Op::Purge => {
                e.purge(t);
                roomy.purge(t);
                rows.retain(|_, row| !cfg.forgets(*row, t));
            }
        }
        assert!(e.stats().tracked_keys <= 8);
    }
});
