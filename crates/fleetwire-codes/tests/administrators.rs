//! Administrators grant and remove administrator rights; the last administrator can be neither
//! demoted nor removed, nor leave.

mod common;

use common::{ALICE, BOB, CAROL, T0, code, drain};
use fleetwire_codes::{AccessError, AccessMode, AuditKind, Role, ThingAccess};

#[test]
fn grant_and_revoke_with_a_last_administrator_guard() {
    let c = code("ADM1NADM1N");
    let mut t = ThingAccess::new(c, AccessMode::Open);
    t.connect(T0, ALICE, &c).unwrap();
    t.connect(T0, BOB, &c).unwrap();
    assert_eq!(
        t.revoke_admin(T0, ALICE, ALICE),
        Err(AccessError::LastAdministrator { user: ALICE })
    );
    assert_eq!(
        t.remove(T0, ALICE, ALICE),
        Err(AccessError::LastAdministrator { user: ALICE })
    );
    assert_eq!(
        t.grant_admin(T0, ALICE, CAROL),
        Err(AccessError::NotMember { user: CAROL })
    );
    t.grant_admin(T0, ALICE, BOB).unwrap();
    assert_eq!(t.administrator_count(), 2);
    // The new administrator can demote the first one, who stays a member.
    t.revoke_admin(T0, BOB, ALICE).unwrap();
    assert_eq!(t.role(ALICE), Some(Role::Member));
    assert_eq!(
        t.grant_admin(T0, ALICE, ALICE),
        Err(AccessError::NotAdministrator { user: ALICE })
    );
    // BOB is now the last administrator and cannot be removed, by anyone.
    assert_eq!(
        t.remove(T0, BOB, BOB),
        Err(AccessError::LastAdministrator { user: BOB })
    );
    t.grant_admin(T0, BOB, ALICE).unwrap();
    t.remove(T0, ALICE, BOB).unwrap();
    assert_eq!(t.administrator_count(), 1);
    let events = drain(&mut t);
    assert!(events.contains(&AuditKind::AdministratorGranted { user: BOB }));
    assert!(events.contains(&AuditKind::AdministratorRevoked { user: ALICE }));
    assert!(events.contains(&AuditKind::Removed { user: BOB }));
}
