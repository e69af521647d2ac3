//! Policy verdicts: a stricter policy never accepts what a looser one rejects; making a password
//! longer never makes it too short; arbitrary input never panics.

use fleetwire_auth::policy::{PasswordPolicy, PolicyContext, Violation};
use proptest::prelude::*;

fn policy_from(bits: u8, min: u32) -> PasswordPolicy {
    PasswordPolicy {
        min_chars: min,
        min_chars_with_mfa: min.min(8),
        max_chars: 128,
        require_digit: bits & 1 != 0,
        require_upper: bits & 2 != 0,
        require_lower: bits & 4 != 0,
        require_symbol: bits & 8 != 0,
        use_blocklist: bits & 16 != 0,
        reject_context_words: bits & 32 != 0,
    }
}

proptest! {
    #[test]
    fn stricter_rules_only_add_violations(pw in "\\PC{0,40}", a in 0u8..64, b in 0u8..64, min_a in 1u32..20, extra in 0u32..10) {
        let ctx = PolicyContext { words: vec!["marie.curie".into()], has_mfa: false };
        let loose = policy_from(a & b, min_a);
        let strict = policy_from(a | b, min_a + extra);
        let lv = loose.check(&pw, &ctx);
        let sv = strict.check(&pw, &ctx);
        for v in &lv {
            let covered = match v {
                Violation::TooShort { .. } => sv.iter().any(|s| matches!(s, Violation::TooShort { .. })),
                other => sv.contains(other),
            };
            prop_assert!(covered, "{v:?} missing from {sv:?}");
        }
    }

    #[test]
    fn longer_is_never_too_short(pw in "[a-zA-Z0-9 ]{0,30}", more in "[a-zA-Z0-9]{1,10}") {
        let p = PasswordPolicy::nist();
        let ctx = PolicyContext::default();
        let short = p.check(&pw, &ctx).iter().any(|v| matches!(v, Violation::TooShort { .. }));
        let longer = format!("{pw}{more}");
        let still = p.check(&longer, &ctx).iter().any(|v| matches!(v, Violation::TooShort { .. }));
        prop_assert!(short || !still);
    }

    #[test]
    fn arbitrary_unicode_never_panics(pw in "\\PC{0,200}", word in "\\PC{0,20}") {
        let ctx = PolicyContext { words: vec![word], has_mfa: true };
        let _ = PasswordPolicy::nist().check(&pw, &ctx);
        let _ = PasswordPolicy::seed().accept(&pw, &ctx);
    }
}
