//! The batch calls decide exactly as one call per key would: same results, same final state,
//! including keys repeated within a batch and a table small enough to evict.

use fleetwire_auth::UnixTime;
use fleetwire_auth::lockout::{LockoutConfig, LockoutEngine, LockoutKey, Outcome};
use proptest::prelude::*;

fn engine() -> LockoutEngine {
    let mut cfg = LockoutConfig::web_cms();
    cfg.max_keys = 24;
    LockoutEngine::new(cfg, [3; 16]).unwrap()
}

proptest! {
    #[test]
    fn batch_equals_one_call_per_key(
        batches in proptest::collection::vec(
            (proptest::collection::vec(0u8..40, 0..50), 0u64..200, any::<bool>()),
            1..30,
        ),
    ) {
        let mut single = engine();
        let mut batched = engine();
        let mut t = UnixTime::from_secs(1_000_000);
        let mut results = Vec::new();
        let mut statuses = Vec::new();
        for (subjects, step, succeed) in batches {
            t = t.plus_secs(step);
            let names: Vec<[u8; 1]> = subjects.iter().map(|s| [*s]).collect();
            let keys: Vec<LockoutKey<'_>> =
                names.iter().map(|n| LockoutKey::untrusted("login", n)).collect();

            statuses.clear();
            batched.statuses(&keys, t, &mut statuses);
            let expected: Vec<_> = keys.iter().map(|k| single.status(k, t)).collect();
            prop_assert_eq!(&statuses, &expected);

            results.clear();
            batched.begin_attempts(&keys, t, &mut results);
            let expected: Vec<_> = keys.iter().map(|k| single.begin_attempt(k, t)).collect();
            prop_assert_eq!(&results, &expected);

            let outcome = if succeed { Outcome::Success } else { Outcome::Failure };
            for (a, b) in results.iter().zip(&expected) {
                if let (Ok(a), Ok(b)) = (a, b) {
                    batched.finish(*a, outcome, t);
                    single.finish(*b, outcome, t);
                }
            }
            prop_assert_eq!(&batched, &single);
        }
    }
}
