//! Two first users racing for an unclaimed thing get exactly one administrator. The machine is a
//! single-owner value; a server serializes per thing (here a Mutex, in production a database
//! transaction), so the claims run one after the other and the second sees the first.

mod common;

use std::sync::{Arc, Barrier, Mutex};
use std::thread;

use common::{T0, code};
use fleetwire_codes::{AccessMode, Connected, Role, ThingAccess, UserId};

#[test]
fn exactly_one_of_two_racing_first_users_becomes_administrator() {
    for mode in [
        AccessMode::Open,
        AccessMode::AdminConfirm,
        AccessMode::InviteOnly,
    ] {
        for round in 0..200u64 {
            let the_code = code("RACE0RACE0");
            let thing = Arc::new(Mutex::new(ThingAccess::new(the_code, mode)));
            let barrier = Arc::new(Barrier::new(2));
            let handles: Vec<_> = [UserId(10 + 2 * round), UserId(11 + 2 * round)]
                .into_iter()
                .map(|user| {
                    let thing = Arc::clone(&thing);
                    let barrier = Arc::clone(&barrier);
                    thread::spawn(move || {
                        barrier.wait();
                        let outcome = thing.lock().unwrap().connect(T0, user, &the_code);
                        (user, outcome)
                    })
                })
                .collect();
            let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
            let admins: Vec<_> = results
                .iter()
                .filter(|(_, r)| *r == Ok(Connected::BecameAdministrator))
                .collect();
            assert_eq!(admins.len(), 1, "{mode:?} round {round}: {results:?}");
            let thing = thing.lock().unwrap();
            assert_eq!(thing.administrator_count(), 1);
            let (winner, _) = admins[0];
            assert_eq!(thing.role(*winner), Some(Role::Administrator));
            // The loser went through the ordinary mode rules.
            let (loser, outcome) = results.iter().find(|(u, _)| u != winner).unwrap();
            match mode {
                AccessMode::Open => assert_eq!(*outcome, Ok(Connected::Joined)),
                AccessMode::AdminConfirm => assert_eq!(*outcome, Ok(Connected::RequestPending)),
                AccessMode::InviteOnly => assert!(outcome.is_err()),
            }
            assert_ne!(thing.role(*loser), Some(Role::Administrator));
        }
    }
}
