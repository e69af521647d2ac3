//! Revocation takes effect at once: access, pending request and invite end, and the user cannot
//! come straight back with the code.

mod common;

use common::{ALICE, BOB, CAROL, MALLORY, T0, code, drain};
use fleetwire_codes::{AccessError, AccessMode, AuditKind, Connected, ThingAccess};

#[test]
fn a_removed_member_loses_access_immediately_and_stays_out() {
    let c = code("REV0KEREV0");
    let mut t = ThingAccess::new(c, AccessMode::Open);
    t.connect(T0, ALICE, &c).unwrap();
    t.connect(T0, BOB, &c).unwrap();
    assert!(t.has_access(BOB));
    t.remove(T0, ALICE, BOB).unwrap();
    assert!(!t.has_access(BOB));
    assert!(t.is_blocked(BOB));
    // The code is open, yet the removed user is kept out.
    assert_eq!(
        t.connect(T0, BOB, &c),
        Err(AccessError::Blocked { user: BOB })
    );
    t.unblock(T0, ALICE, BOB).unwrap();
    assert_eq!(t.connect(T0, BOB, &c), Ok(Connected::Joined));
}

#[test]
fn removal_ends_a_pending_request_and_an_invite() {
    let c = code("REV0KEREV0");
    let mut t = ThingAccess::new(c, AccessMode::AdminConfirm);
    t.connect(T0, ALICE, &c).unwrap();
    t.connect(T0, BOB, &c).unwrap();
    t.invite(T0, ALICE, CAROL, None).unwrap();
    drain(&mut t);
    t.remove(T0, ALICE, BOB).unwrap();
    t.remove(T0, ALICE, CAROL).unwrap();
    assert_eq!(t.pending_requests().count(), 0);
    assert_eq!(t.invites().count(), 0);
    assert_eq!(
        t.approve(T0, ALICE, BOB),
        Err(AccessError::NoPendingRequest { user: BOB })
    );
    assert_eq!(
        t.connect(T0, CAROL, &c),
        Err(AccessError::Blocked { user: CAROL })
    );
    assert_eq!(
        drain(&mut t)[..4],
        [
            AuditKind::RequestCancelled { user: BOB },
            AuditKind::Removed { user: BOB },
            AuditKind::InviteCancelled { user: CAROL },
            AuditKind::Removed { user: CAROL },
        ]
    );
    // An invite is the administrator's way to let a removed user back.
    t.invite(T0, ALICE, CAROL, None).unwrap();
    assert_eq!(t.connect(T0, CAROL, &c), Ok(Connected::Joined));
}

#[test]
fn members_cannot_remove_others_but_may_leave() {
    let c = code("REV0KEREV0");
    let mut t = ThingAccess::new(c, AccessMode::Open);
    t.connect(T0, ALICE, &c).unwrap();
    t.connect(T0, BOB, &c).unwrap();
    t.connect(T0, CAROL, &c).unwrap();
    assert_eq!(
        t.remove(T0, BOB, CAROL),
        Err(AccessError::NotAdministrator { user: BOB })
    );
    t.remove(T0, BOB, BOB).unwrap();
    assert!(!t.has_access(BOB));
    assert!(!t.is_blocked(BOB), "leaving is not a ban");
    assert_eq!(
        t.remove(T0, MALLORY, MALLORY),
        Err(AccessError::NotMember { user: MALLORY })
    );
}
