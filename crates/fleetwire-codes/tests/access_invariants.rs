//! Arbitrary operation sequences never break the access machine's invariants: a claimed thing
//! always has an administrator, a removed user has no access, the first successful connect on an
//! unclaimed thing makes an administrator, and every call leaves at least one audit event when
//! it changes something or is refused.

mod common;

use common::{T0, code};
use fleetwire_codes::{AccessMode, Code, Connected, ThingAccess, UserId};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Connect(u8, bool),
    Approve(u8, u8),
    Reject(u8, u8),
    Invite(u8, u8, Option<u16>),
    CancelInvite(u8, u8),
    Grant(u8, u8),
    Revoke(u8, u8),
    Remove(u8, u8),
    Unblock(u8, u8),
    SetMode(u8, u8),
    Rotate(u8),
    Expiry(u8, Option<u16>),
    Tick(u16),
}

fn op() -> impl Strategy<Value = Op> {
    let u = 0u8..5;
    prop_oneof![
        (u.clone(), any::<bool>()).prop_map(|(a, b)| Op::Connect(a, b)),
        (u.clone(), u.clone()).prop_map(|(a, b)| Op::Approve(a, b)),
        (u.clone(), u.clone()).prop_map(|(a, b)| Op::Reject(a, b)),
        (u.clone(), u.clone(), any::<Option<u16>>()).prop_map(|(a, b, c)| Op::Invite(a, b, c)),
        (u.clone(), u.clone()).prop_map(|(a, b)| Op::CancelInvite(a, b)),
        (u.clone(), u.clone()).prop_map(|(a, b)| Op::Grant(a, b)),
        (u.clone(), u.clone()).prop_map(|(a, b)| Op::Revoke(a, b)),
        (u.clone(), u.clone()).prop_map(|(a, b)| Op::Remove(a, b)),
        (u.clone(), u.clone()).prop_map(|(a, b)| Op::Unblock(a, b)),
        (u.clone(), 0u8..3).prop_map(|(a, b)| Op::SetMode(a, b)),
        u.clone().prop_map(Op::Rotate),
        (u, any::<Option<u16>>()).prop_map(|(a, b)| Op::Expiry(a, b)),
        any::<u16>().prop_map(Op::Tick),
    ]
}

fn mode(m: u8) -> AccessMode {
    match m % 3 {
        0 => AccessMode::Open,
        1 => AccessMode::AdminConfirm,
        _ => AccessMode::InviteOnly,
    }
}

proptest! {
    #[test]
    fn invariants_hold_under_any_sequence(
        start_mode in 0u8..3,
        ops in proptest::collection::vec(op(), 0..60),
    ) {
        let codes: Vec<Code> = ["SEQ0000000", "SEQ1111111", "SEQ2222222"]
            .iter()
            .map(|b| code(b))
            .collect();
        let mut current = 0usize;
        let mut now = T0;
        let mut t = ThingAccess::new(codes[0], mode(start_mode));
        for op in ops {
            let was_claimed = t.is_claimed();
            let before = t.clone();
            let result: Result<(), String> = match op {
                Op::Connect(u, right) => {
                    let c = if right { t.code().to_owned() } else { codes[(current + 1) % 3] };
                    let r = t.connect(now, UserId(u.into()), &c);
                    if r == Ok(Connected::BecameAdministrator) {
                        prop_assert!(!was_claimed);
                    }
                    if !was_claimed && r.is_ok() {
                        prop_assert_eq!(&r, &Ok(Connected::BecameAdministrator));
                    }
                    if r.is_ok() {
                        prop_assert!(!t.is_blocked(UserId(u.into())));
                    }
                    r.map(|_| ()).map_err(|e| e.to_string())
                }
                Op::Approve(a, b) => t.approve(now, UserId(a.into()), UserId(b.into())).map_err(|e| e.to_string()),
                Op::Reject(a, b) => t.reject(now, UserId(a.into()), UserId(b.into())).map_err(|e| e.to_string()),
                Op::Invite(a, b, e) => t
                    .invite(now, UserId(a.into()), UserId(b.into()), e.map(|e| now.plus_millis(e.into())))
                    .map_err(|e| e.to_string()),
                Op::CancelInvite(a, b) => t.cancel_invite(now, UserId(a.into()), UserId(b.into())).map_err(|e| e.to_string()),
                Op::Grant(a, b) => t.grant_admin(now, UserId(a.into()), UserId(b.into())).map_err(|e| e.to_string()),
                Op::Revoke(a, b) => t.revoke_admin(now, UserId(a.into()), UserId(b.into())).map_err(|e| e.to_string()),
                Op::Remove(a, b) => {
                    let r = t.remove(now, UserId(a.into()), UserId(b.into()));
                    if r.is_ok() {
                        prop_assert!(!t.has_access(UserId(b.into())));
                        prop_assert!(t.pending_requests().all(|(u, _)| u != UserId(b.into())));
                    }
                    r.map_err(|e| e.to_string())
                }
                Op::Unblock(a, b) => t.unblock(now, UserId(a.into()), UserId(b.into())).map_err(|e| e.to_string()),
                Op::SetMode(a, m) => t.set_mode(now, UserId(a.into()), mode(m)).map_err(|e| e.to_string()),
                Op::Rotate(a) => {
                    let next = (current + 1) % 3;
                    let r = t.rotate_code(now, UserId(a.into()), codes[next], None);
                    if r.is_ok() {
                        current = next;
                    }
                    r.map_err(|e| e.to_string())
                }
                Op::Expiry(a, e) => t
                    .set_code_expiry(now, UserId(a.into()), e.map(|e| now.plus_millis(e.into())))
                    .map_err(|e| e.to_string()),
                Op::Tick(ms) => {
                    now = now.plus_millis(ms.into());
                    continue;
                }
            };
            prop_assert_eq!(t.check_invariants(), Ok(()));
            if was_claimed {
                prop_assert!(t.is_claimed());
                prop_assert!(t.administrator_count() >= 1);
            }
            let events: Vec<_> = std::iter::from_fn(|| t.poll_event()).collect();
            if result.is_err() {
                // A refusal changes nothing but the audit trail.
                prop_assert_eq!(events.len(), 1);
                prop_assert_eq!(&t, &before);
            }
            if t != before {
                prop_assert!(!events.is_empty(), "a change without an audit event");
            }
            prop_assert!(events.iter().all(|e| e.at == now));
        }
        let json = serde_json::to_string(&t).unwrap();
        prop_assert_eq!(serde_json::from_str::<ThingAccess>(&json).unwrap(), t);
    }
}
