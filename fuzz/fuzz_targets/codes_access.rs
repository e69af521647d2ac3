#![no_main]
//! The thing access machine fed arbitrary operation sequences: no panic, the invariants hold
//! after every step, a claimed thing keeps an administrator, a refusal changes nothing but the
//! audit trail, and every change is audited.
use arbitrary::Arbitrary;
use fleetwire_codes::{AccessMode, Code, CodeSpec, Connected, ThingAccess, UnixTime, UserId};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Op {
    Connect {
        user: u8,
        code: u8,
    },
    Approve {
        admin: u8,
        user: u8,
    },
    Reject {
        admin: u8,
        user: u8,
    },
    Invite {
        admin: u8,
        user: u8,
        expires_in: Option<u16>,
    },
    CancelInvite {
        admin: u8,
        user: u8,
    },
    Grant {
        admin: u8,
        user: u8,
    },
    Revoke {
        admin: u8,
        user: u8,
    },
    Remove {
        actor: u8,
        user: u8,
    },
    Unblock {
        admin: u8,
        user: u8,
    },
    SetMode {
        admin: u8,
        mode: u8,
    },
    Rotate {
        admin: u8,
        code: u8,
        expires_in: Option<u16>,
    },
    Expiry {
        admin: u8,
        expires_in: Option<u16>,
    },
    Forget {
        user: u8,
    },
    Tick {
        ms: u32,
    },
}

#[derive(Debug, Arbitrary)]
struct Input {
    mode: u8,
    ops: Vec<Op>,
}

fn mode(m: u8) -> AccessMode {
    match m % 3 {
        0 => AccessMode::Open,
        1 => AccessMode::AdminConfirm,
        _ => AccessMode::InviteOnly,
    }
}

fn user(u: u8) -> UserId {
    UserId(u64::from(u % 8))
}

fuzz_target!(|input: Input| {
    let spec = CodeSpec::new(fleetwire_codes::Alphabet::alphanumeric(), 6, false).unwrap();
    let codes: Vec<Code> = ["AAAAAA", "BBBBBB", "CCCCCC", "DDDDDD"]
        .iter()
        .map(|s| spec.parse(s).unwrap())
        .collect();
    let code = |c: u8| codes[usize::from(c % 4)];
    let mut now = UnixTime::from_millis(1_700_000_000_000);
    let mut t = ThingAccess::new(codes[0], mode(input.mode));
    for op in input.ops.into_iter().take(256) {
        let before = t.clone();
        let was_claimed = t.is_claimed();
        let ok = match op {
            Op::Connect { user: u, code: c } => {
                let r = t.connect(now, user(u), &code(c));
                if !was_claimed && r.is_ok() {
                    assert_eq!(r, Ok(Connected::BecameAdministrator));
                }
                if was_claimed {
                    assert_ne!(r, Ok(Connected::BecameAdministrator));
                }
                r.is_ok()
            }
            Op::Approve { admin, user: u } => t.approve(now, user(admin), user(u)).is_ok(),
            Op::Reject { admin, user: u } => t.reject(now, user(admin), user(u)).is_ok(),
            Op::Invite {
                admin,
                user: u,
                expires_in,
            } => t
                .invite(
                    now,
                    user(admin),
                    user(u),
                    expires_in.map(|e| now.plus_millis(e.into())),
                )
                .is_ok(),
            Op::CancelInvite { admin, user: u } => {
                t.cancel_invite(now, user(admin), user(u)).is_ok()
            }
            Op::Grant { admin, user: u } => t.grant_admin(now, user(admin), user(u)).is_ok(),
            Op::Revoke { admin, user: u } => t.revoke_admin(now, user(admin), user(u)).is_ok(),
            Op::Remove { actor, user: u } => {
                let ok = t.remove(now, user(actor), user(u)).is_ok();
                if ok {
                    assert!(!t.has_access(user(u)));
                }
                ok
            }
            Op::Unblock { admin, user: u } => t.unblock(now, user(admin), user(u)).is_ok(),
            Op::Forget { user: u } => {
                // An account closed: no trace of the user, the invariants hold (a claimed thing
                // keeps an administrator unless its last member went), one event iff changed.
                let f = t.forget_user(now, user(u));
                assert_eq!(t.check_invariants(), Ok(()));
                assert!(!t.has_access(user(u)) && !t.is_blocked(user(u)));
                assert!(!t.pending_requests().any(|(p, _)| p == user(u)));
                assert!(!t.invites().any(|(i, _)| i == user(u)));
                let events: Vec<_> = std::iter::from_fn(|| t.poll_event()).collect();
                assert_eq!(events.is_empty(), f.is_empty());
                assert_eq!(t == before, f.is_empty());
                continue;
            }
            Op::SetMode { admin, mode: m } => t.set_mode(now, user(admin), mode(m)).is_ok(),
            Op::Rotate {
                admin,
                code: c,
                expires_in,
            } => t
                .rotate_code(
                    now,
                    user(admin),
                    code(c),
                    expires_in.map(|e| now.plus_millis(e.into())),
                )
                .is_ok(),
            Op::Expiry { admin, expires_in } => t
                .set_code_expiry(
                    now,
                    user(admin),
                    expires_in.map(|e| now.plus_millis(e.into())),
                )
                .is_ok(),
            Op::Tick { ms } => {
                now = now.plus_millis(ms.into());
                continue;
            }
        };
        assert_eq!(t.check_invariants(), Ok(()));
        if was_claimed {
            assert!(t.administrator_count() >= 1);
        }
        let events: Vec<_> = std::iter::from_fn(|| t.poll_event()).collect();
        if !ok {
            assert_eq!(events.len(), 1);
            assert_eq!(t, before);
        }
        if t != before {
            assert!(!events.is_empty());
        }
    }
});
