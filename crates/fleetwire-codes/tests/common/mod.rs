//! Helpers shared by the access-machine tests.
#![allow(dead_code, unreachable_pub)]

use fleetwire_codes::{AuditKind, Code, CodeSpec, ThingAccess, UnixTime, UserId};

pub const T0: UnixTime = UnixTime::from_millis(1_700_000_000_000);
pub const ALICE: UserId = UserId(1);
pub const BOB: UserId = UserId(2);
pub const CAROL: UserId = UserId(3);
pub const MALLORY: UserId = UserId(66);

/// A code of the default spec (10 symbols and a check character) built from a 10-symbol body.
pub fn code(body: &str) -> Code {
    let spec = CodeSpec::default();
    let check = spec.check_character(body).expect("10 canonical symbols");
    spec.parse(&format!("{body}{check}")).unwrap()
}

/// Every queued event kind, oldest first.
pub fn drain(t: &mut ThingAccess) -> Vec<AuditKind> {
    std::iter::from_fn(|| t.poll_event())
        .map(|e| e.kind)
        .collect()
}
