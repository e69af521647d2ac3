//! Rotating the code invalidates the old one at once; members keep access. Codes can expire.

mod common;

use common::{ALICE, BOB, CAROL, T0, code, drain};
use fleetwire_codes::{AccessError, AccessMode, AuditKind, Connected, ThingAccess};

#[test]
fn the_old_code_stops_working_and_members_stay() {
    let old = code("R0TATE0LD0");
    let new = code("R0TATENEW0");
    let mut t = ThingAccess::new(old, AccessMode::Open);
    t.connect(T0, ALICE, &old).unwrap();
    t.connect(T0, BOB, &old).unwrap();
    drain(&mut t);
    assert_eq!(
        t.rotate_code(T0, BOB, new, None),
        Err(AccessError::NotAdministrator { user: BOB })
    );
    assert_eq!(
        t.rotate_code(T0, ALICE, old, None),
        Err(AccessError::CodeUnchanged)
    );
    t.rotate_code(T0, ALICE, new, None).unwrap();
    assert_eq!(*t.code(), new);
    assert_eq!(t.connect(T0, CAROL, &old), Err(AccessError::WrongCode));
    assert_eq!(t.connect(T0, CAROL, &new), Ok(Connected::Joined));
    assert!(t.has_access(BOB));
    assert!(drain(&mut t).contains(&AuditKind::CodeRotated { expires_at: None }));
}

#[test]
fn an_expired_code_admits_nobody_new() {
    let c = code("EXP1RES0ON");
    let mut t = ThingAccess::new(c, AccessMode::Open);
    t.connect(T0, ALICE, &c).unwrap();
    let end = T0.plus_millis(3_600_000);
    t.set_code_expiry(T0, ALICE, Some(end)).unwrap();
    assert_eq!(
        t.connect(end, BOB, &c),
        Err(AccessError::CodeExpired { expired_at: end })
    );
    assert_eq!(t.connect(T0.plus_millis(1), BOB, &c), Ok(Connected::Joined));
    // Rotating with a fresh expiry brings the thing back.
    let fresh = code("EXP1RESNEW");
    t.rotate_code(end, ALICE, fresh, Some(end.plus_millis(1000)))
        .unwrap();
    assert_eq!(t.connect(end, CAROL, &fresh), Ok(Connected::Joined));
    t.set_code_expiry(end, ALICE, None).unwrap();
    assert_eq!(t.code_expires_at(), None);
}
