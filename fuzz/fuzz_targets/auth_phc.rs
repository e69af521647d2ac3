//! PHC string parsing in fleetwire-auth: never panics, and what parses re-encodes identically.
#![no_main]
use fleetwire_auth::hash::PhcHash;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(p) = PhcHash::parse(s) {
            let again = PhcHash::parse(&p.to_string()).expect("re-encoded PHC parses");
            assert_eq!(again, p);
        }
    }
});
