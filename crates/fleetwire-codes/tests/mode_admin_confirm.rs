//! Admin-confirm mode: the code files a request that an administrator approves or rejects.

mod common;

use common::{ALICE, BOB, CAROL, T0, code, drain};
use fleetwire_codes::{AccessError, AccessMode, AuditKind, Connected, Role, ThingAccess};

#[test]
fn a_request_waits_for_an_administrator() {
    let c = code("CONF1RMCNF");
    let mut t = ThingAccess::new(c, AccessMode::AdminConfirm);
    assert_eq!(t.connect(T0, ALICE, &c), Ok(Connected::BecameAdministrator));
    assert_eq!(t.connect(T0, BOB, &c), Ok(Connected::RequestPending));
    assert!(!t.has_access(BOB));
    // Asking again changes nothing.
    assert_eq!(t.connect(T0, BOB, &c), Ok(Connected::RequestPending));
    assert_eq!(t.pending_requests().count(), 1);
    // A member cannot approve; the administrator can.
    assert_eq!(t.connect(T0, CAROL, &c), Ok(Connected::RequestPending));
    assert_eq!(
        t.approve(T0, CAROL, BOB),
        Err(AccessError::NotAdministrator { user: CAROL })
    );
    t.approve(T0, ALICE, BOB).unwrap();
    assert_eq!(t.role(BOB), Some(Role::Member));
    t.reject(T0, ALICE, CAROL).unwrap();
    assert!(!t.has_access(CAROL));
    assert_eq!(
        t.approve(T0, ALICE, CAROL),
        Err(AccessError::NoPendingRequest { user: CAROL })
    );
    assert_eq!(
        drain(&mut t),
        vec![
            AuditKind::Claimed,
            AuditKind::Requested,
            AuditKind::Requested,
            AuditKind::Denied {
                error: AccessError::NotAdministrator { user: CAROL }
            },
            AuditKind::Approved { user: BOB },
            AuditKind::Rejected { user: CAROL },
            AuditKind::Denied {
                error: AccessError::NoPendingRequest { user: CAROL }
            },
        ]
    );
}

#[test]
fn leaving_admin_confirm_cancels_pending_requests() {
    let c = code("CONF1RMCNF");
    let mut t = ThingAccess::new(c, AccessMode::AdminConfirm);
    t.connect(T0, ALICE, &c).unwrap();
    t.connect(T0, BOB, &c).unwrap();
    drain(&mut t);
    t.set_mode(T0, ALICE, AccessMode::InviteOnly).unwrap();
    assert_eq!(t.pending_requests().count(), 0);
    assert_eq!(
        drain(&mut t),
        vec![
            AuditKind::ModeChanged {
                from: AccessMode::AdminConfirm,
                to: AccessMode::InviteOnly
            },
            AuditKind::RequestCancelled { user: BOB },
        ]
    );
}
