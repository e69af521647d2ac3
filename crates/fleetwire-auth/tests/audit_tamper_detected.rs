//! Any edit, deletion, insertion, reordering or truncation of the audit chain is detected.

use fleetwire_auth::UnixTime;
use fleetwire_auth::audit::{AuditError, AuditEvent, AuditLog, verify_chain};
use proptest::prelude::*;

fn log(n: u64) -> AuditLog {
    let mut log = AuditLog::new();
    for i in 0..n {
        let at = UnixTime::from_secs(1000 + i);
        let event = match i % 3 {
            0 => AuditEvent::LoginFailed {
                user: format!("u{i}"),
                origin: "10.0.0.1".into(),
            },
            1 => AuditEvent::LoginSucceeded {
                user: format!("u{i}"),
                origin: "10.0.0.2".into(),
                new_origin: true,
            },
            _ => AuditEvent::RoleChanged {
                actor: "root".into(),
                user: format!("u{i}"),
                group: "ops".into(),
                granted: true,
            },
        };
        log.append(at, event);
    }
    log
}

#[test]
fn intact_chain_verifies() {
    let l = log(10);
    let (n, h) = l.head();
    assert_eq!(verify_chain(l.entries(), Some((n, &h))), Ok(()));
}

#[test]
fn truncation_needs_the_head() {
    let l = log(10);
    let (n, h) = l.head();
    let cut = &l.entries()[..8];
    assert_eq!(verify_chain(cut, None), Ok(()));
    assert_eq!(
        verify_chain(cut, Some((n, &h))),
        Err(AuditError::Truncated {
            expected: 10,
            found: 8
        })
    );
}

proptest! {
    #[test]
    fn any_tampering_detected(kind in 0u8..4, i in 0usize..12, j in 0usize..12) {
        let l = log(12);
        let mut e = l.entries().to_vec();
        match kind {
            0 => { // edit an event
                e[i].event = AuditEvent::AdminAction { actor: "x".into(), action: "edit".into(), target: "y".into() };
            }
            1 => { e.remove(i); } // delete
            2 => { prop_assume!(i != j); e.swap(i, j); } // reorder
            _ => { e[i].at = UnixTime::from_secs(1); } // edit the time
        }
        let (n, h) = l.head();
        prop_assert!(verify_chain(&e, Some((n, &h))).is_err());
    }
}
