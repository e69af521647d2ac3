//! Password policy over arbitrary input and arbitrary rule sets: never panics.
#![no_main]
use fleetwire_auth::policy::{PasswordPolicy, PolicyContext};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u8, u8, u8, &str, &str)| {
    let (bits, min, max, password, word) = input;
    let policy = PasswordPolicy {
        min_chars: u32::from(min),
        min_chars_with_mfa: u32::from(min / 2),
        max_chars: u32::from(max),
        require_digit: bits & 1 != 0,
        require_upper: bits & 2 != 0,
        require_lower: bits & 4 != 0,
        require_symbol: bits & 8 != 0,
        use_blocklist: bits & 16 != 0,
        reject_context_words: bits & 32 != 0,
    };
    let _ = policy.validate();
    let ctx = PolicyContext { words: vec![word.to_owned()], has_mfa: bits & 64 != 0 };
    let v = policy.check(password, &ctx);
    assert_eq!(policy.accept(password, &ctx).is_ok(), v.is_empty());
});
