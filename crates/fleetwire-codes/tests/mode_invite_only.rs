//! Invite-only mode: the code locates the thing, but only an invited user joins.

mod common;

use common::{ALICE, BOB, CAROL, T0, code};
use fleetwire_codes::{AccessError, AccessMode, Connected, Role, ThingAccess};

#[test]
fn only_invited_users_join() {
    let c = code("1NV1TE0NLY");
    let mut t = ThingAccess::new(c, AccessMode::InviteOnly);
    // The first user claims the thing even in invite-only mode: nobody could invite them.
    assert_eq!(t.connect(T0, ALICE, &c), Ok(Connected::BecameAdministrator));
    assert_eq!(
        t.connect(T0, BOB, &c),
        Err(AccessError::InviteRequired { user: BOB })
    );
    assert_eq!(
        t.pending_requests().count(),
        0,
        "no request is filed either"
    );
    t.invite(T0, ALICE, BOB, None).unwrap();
    assert_eq!(t.connect(T0, BOB, &c), Ok(Connected::Joined));
    assert_eq!(t.role(BOB), Some(Role::Member));
    assert_eq!(t.invites().count(), 0, "the invite is used up");
    // A member cannot invite.
    assert_eq!(
        t.invite(T0, BOB, CAROL, None),
        Err(AccessError::NotAdministrator { user: BOB })
    );
}

#[test]
fn an_invite_needs_the_code_and_can_expire_or_be_withdrawn() {
    let c = code("1NV1TE0NLY");
    let mut t = ThingAccess::new(c, AccessMode::InviteOnly);
    t.connect(T0, ALICE, &c).unwrap();
    t.invite(T0, ALICE, BOB, Some(T0.plus_millis(60_000)))
        .unwrap();
    assert_eq!(
        t.connect(T0, BOB, &code("1NV1TE0NLZ")),
        Err(AccessError::WrongCode)
    );
    assert_eq!(
        t.connect(T0.plus_millis(60_000), BOB, &c),
        Err(AccessError::InviteExpired {
            user: BOB,
            expired_at: T0.plus_millis(60_000)
        })
    );
    t.invite(T0, ALICE, CAROL, None).unwrap();
    t.cancel_invite(T0, ALICE, CAROL).unwrap();
    assert_eq!(
        t.connect(T0, CAROL, &c),
        Err(AccessError::InviteRequired { user: CAROL })
    );
    assert_eq!(
        t.invite(T0, ALICE, ALICE, None),
        Err(AccessError::AlreadyMember { user: ALICE })
    );
}

#[test]
fn an_invite_skips_confirmation() {
    let c = code("1NV1TE0NLY");
    let mut t = ThingAccess::new(c, AccessMode::AdminConfirm);
    t.connect(T0, ALICE, &c).unwrap();
    t.invite(T0, ALICE, BOB, None).unwrap();
    assert_eq!(t.connect(T0, BOB, &c), Ok(Connected::Joined));
}
