//! Open mode: the code alone gives access; a wrong code gives nothing.

mod common;

use common::{ALICE, BOB, T0, code, drain};
use fleetwire_codes::{AccessError, AccessMode, AuditKind, Connected, Role, ThingAccess};

#[test]
fn the_code_alone_is_enough() {
    let c = code("OPEN0OPEN0");
    let mut t = ThingAccess::new(c, AccessMode::Open);
    assert!(!t.is_claimed());
    assert_eq!(t.connect(T0, ALICE, &c), Ok(Connected::BecameAdministrator));
    assert_eq!(t.connect(T0, BOB, &c), Ok(Connected::Joined));
    assert_eq!(t.role(BOB), Some(Role::Member));
    assert_eq!(
        t.connect(T0, BOB, &c),
        Ok(Connected::AlreadyMember(Role::Member))
    );
    assert_eq!(
        drain(&mut t),
        vec![AuditKind::Claimed, AuditKind::Joined { invited: false }]
    );
}

#[test]
fn a_wrong_code_is_refused_and_audited() {
    let mut t = ThingAccess::new(code("OPEN0OPEN0"), AccessMode::Open);
    assert_eq!(
        t.connect(T0, ALICE, &code("OPEN0OPEN1")),
        Err(AccessError::WrongCode)
    );
    assert!(!t.is_claimed());
    assert_eq!(
        drain(&mut t),
        vec![AuditKind::Denied {
            error: AccessError::WrongCode
        }]
    );
}
