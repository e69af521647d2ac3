//! The things repository on both backends (`store::testing`).

use std::sync::Arc;

use fleetwire_codes::{
    AccessError, AccessMode, Code, CodeGenerator, Connected, Role, UnixTime, UserId,
};
use rand_chacha::ChaCha12Rng;
use rand_core::SeedableRng;

use super::{Created, NewThing, Quota, ThingKey, Via};
use crate::config::ThingsSettings;
use crate::store::Store;
use crate::store::testing::backends;

const T0: u64 = 1_700_000_000_000;

fn codes(seed: u64) -> CodeGenerator<ChaCha12Rng> {
    CodeGenerator::new(
        ThingsSettings::default().spec().unwrap(),
        ChaCha12Rng::seed_from_u64(seed),
    )
}

/// Claims a fresh code for `id` and stores the thing.
async fn make(
    store: &Store,
    g: &mut CodeGenerator<ChaCha12Rng>,
    id: &str,
    mode: AccessMode,
    quota: Option<Quota>,
) -> (Code, Created) {
    let code = g.generate().unwrap();
    let now = UnixTime::from_millis(T0);
    assert!(
        store
            .things()
            .claim_code(code, id.into(), now)
            .await
            .unwrap()
    );
    let created = store
        .things()
        .create(
            NewThing {
                id: id.into(),
                name: format!("{id} name"),
                code,
                mode,
                created_by: quota.as_ref().map(|q| q.creator.clone()),
                via: Via::Api,
            },
            quota,
            now,
        )
        .await
        .unwrap();
    (code, created)
}

#[tokio::test]
async fn things_are_created_found_by_code_joined_and_listed() {
    for (kind, store) in backends("things_basic").await {
        let mut g = codes(1);
        let (code, created) = make(&store, &mut g, "t_a", AccessMode::Open, None).await;
        assert_eq!(created, Created::Created, "{kind}");
        let things = store.things();
        assert_eq!(things.by_code(code).await.unwrap().as_deref(), Some("t_a"));
        let alice = things.number("ext:alice".into()).await.unwrap();
        let bob = things.number("ext:bob".into()).await.unwrap();
        assert_ne!(alice, bob, "{kind}");
        assert_eq!(
            things.number("ext:alice".into()).await.unwrap(),
            alice,
            "{kind}: a number is given once"
        );
        let now = UnixTime::from_millis(T0 + 1);
        for (user, expected) in [
            (alice, Connected::BecameAdministrator),
            (bob, Connected::Joined),
        ] {
            let changed = things
                .change(ThingKey::Code(code), Via::Api, now, move |a, at| {
                    a.connect(at, user, &code)
                })
                .await
                .unwrap()
                .expect("found by code");
            assert_eq!(changed.result, Ok(expected), "{kind}");
        }
        let stored = things.load("t_a".into()).await.unwrap().unwrap();
        assert_eq!(stored.name, "t_a name");
        assert_eq!(
            stored.access.role(alice),
            Some(Role::Administrator),
            "{kind}"
        );
        assert_eq!(stored.access.role(bob), Some(Role::Member), "{kind}");
        assert_eq!(things.of_member(bob).await.unwrap().len(), 1, "{kind}");
        assert_eq!(things.all().await.unwrap().len(), 1, "{kind}");
        let events = things.events("t_a".into()).await.unwrap();
        assert!(events[0].event.contains("Created"), "{kind}: {events:?}");
        assert!(events.len() >= 3, "{kind}: {events:?}");
        let names = things
            .principals(vec![bob, alice, UserId(999_999)])
            .await
            .unwrap();
        assert_eq!(names.len(), 2, "{kind}: an unknown number maps to nobody");
        assert_eq!(names[0].principal, "ext:bob", "{kind}");
        // No such thing.
        assert!(
            things
                .change(ThingKey::Id("t_none".into()), Via::Api, now, |_, _| Ok::<
                    _,
                    (),
                >(
                    ()
                ))
                .await
                .unwrap()
                .is_none(),
            "{kind}"
        );
        assert!(things.load("t_none".into()).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn a_refused_change_stores_nothing_and_a_rotated_code_is_retired_for_ever() {
    for (kind, store) in backends("things_refused").await {
        let mut g = codes(2);
        let (code, _) = make(&store, &mut g, "t_b", AccessMode::Open, None).await;
        let things = store.things();
        let alice = things.number("ext:alice".into()).await.unwrap();
        let bob = things.number("ext:bob".into()).await.unwrap();
        let now = UnixTime::from_millis(T0 + 1);
        things
            .change(ThingKey::Id("t_b".into()), Via::Api, now, move |a, at| {
                a.connect(at, alice, &code)
            })
            .await
            .unwrap()
            .unwrap()
            .result
            .unwrap();
        // Mutates, then refuses: nothing of it is stored.
        let refused = things
            .change(ThingKey::Id("t_b".into()), Via::Api, now, move |a, at| {
                a.connect(at, bob, &code).unwrap();
                Err::<(), _>("changed my mind")
            })
            .await
            .unwrap()
            .unwrap();
        assert!(refused.result.is_err());
        let stored = things.load("t_b".into()).await.unwrap().unwrap();
        assert!(!stored.access.has_access(bob), "{kind}");
        // Rotation: the new code is claimed first, the old one retired with the change.
        let new = g.generate().unwrap();
        assert!(things.claim_code(new, "t_b".into(), now).await.unwrap());
        assert!(
            !things.claim_code(new, "t_other".into(), now).await.unwrap(),
            "{kind}: a code is claimed once"
        );
        things
            .change(ThingKey::Id("t_b".into()), Via::Api, now, move |a, at| {
                a.rotate_code(at, alice, new, None)
            })
            .await
            .unwrap()
            .unwrap()
            .result
            .unwrap();
        assert_eq!(things.by_code(code).await.unwrap(), None, "{kind}");
        assert_eq!(things.by_code(new).await.unwrap().as_deref(), Some("t_b"));
        assert!(
            !things.claim_code(code, "t_c".into(), now).await.unwrap(),
            "{kind}: a retired code is never issued again"
        );
        // A removed member is refused at once (the state is the only authority).
        things
            .change(ThingKey::Id("t_b".into()), Via::Api, now, move |a, at| {
                a.connect(at, bob, &new)?;
                a.remove(at, alice, bob)
            })
            .await
            .unwrap()
            .unwrap()
            .result
            .unwrap();
        let again = things
            .change(ThingKey::Code(new), Via::Api, now, move |a, at| {
                a.connect(at, bob, &new)
            })
            .await
            .unwrap()
            .unwrap();
        assert!(
            matches!(again.result, Err(AccessError::Blocked { .. })),
            "{kind}: {:?}",
            again.result
        );
        assert!(things.of_member(bob).await.unwrap().is_empty(), "{kind}");
    }
}

#[tokio::test]
async fn the_creation_quota_holds() {
    for (kind, store) in backends("things_quota").await {
        let mut g = codes(3);
        let quota = || {
            Some(Quota {
                creator: "u_creator".into(),
                max: 2,
            })
        };
        for (id, expected) in [
            ("t_1", Created::Created),
            ("t_2", Created::Created),
            ("t_3", Created::OverQuota { made: 2 }),
        ] {
            let (_, created) = make(&store, &mut g, id, AccessMode::Open, quota()).await;
            assert_eq!(created, expected, "{kind}: {id}");
        }
        assert_eq!(store.things().all().await.unwrap().len(), 2, "{kind}");
    }
}

#[tokio::test]
async fn racing_first_users_make_one_administrator() {
    for (kind, store) in backends("things_race").await {
        let mut g = codes(4);
        let (code, _) = make(&store, &mut g, "t_r", AccessMode::Open, None).await;
        let store = Arc::new(store);
        let mut tasks = Vec::new();
        for n in 0..8 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let user = store.things().number(format!("ext:u{n}")).await.unwrap();
                store
                    .things()
                    .change(
                        ThingKey::Code(code),
                        Via::Api,
                        UnixTime::from_millis(T0 + 5),
                        move |a, at| a.connect(at, user, &code),
                    )
                    .await
                    .unwrap()
                    .unwrap()
                    .result
                    .unwrap()
            }));
        }
        let mut admins = 0;
        for t in tasks {
            if t.await.unwrap() == Connected::BecameAdministrator {
                admins += 1;
            }
        }
        assert_eq!(admins, 1, "{kind}");
        let stored = store.things().load("t_r".into()).await.unwrap().unwrap();
        assert_eq!(stored.access.members().count(), 8, "{kind}");
        assert_eq!(stored.access.administrator_count(), 1, "{kind}");
    }
}

#[tokio::test]
async fn a_forgotten_account_leaves_every_thing_and_its_number_is_not_reused() {
    for (kind, store) in backends("things_forget").await {
        let mut g = codes(5);
        let (code, _) = make(&store, &mut g, "t_f", AccessMode::Open, None).await;
        let things = store.things();
        let gone = things.number("u_gone".into()).await.unwrap();
        let stays = things.number("ext:stays".into()).await.unwrap();
        let now = UnixTime::from_millis(T0 + 1);
        things
            .change(ThingKey::Id("t_f".into()), Via::Api, now, move |a, at| {
                a.connect(at, gone, &code)?;
                a.connect(at, stays, &code)
            })
            .await
            .unwrap()
            .unwrap()
            .result
            .unwrap();
        let f = things.forget_account("u_gone".into(), now).await.unwrap();
        assert_eq!(f.memberships, 1, "{kind}: {f:?}");
        assert_eq!(f.as_administrator, 1, "{kind}: {f:?}");
        assert_eq!(f.administrator_passed_on, 1, "{kind}: {f:?}");
        assert!(f.events_anonymised >= 1, "{kind}: {f:?}");
        let stored = things.load("t_f".into()).await.unwrap().unwrap();
        assert_eq!(stored.access.role(gone), None, "{kind}");
        assert_eq!(
            stored.access.role(stays),
            Some(Role::Administrator),
            "{kind}"
        );
        assert_eq!(things.known_number("u_gone".into()).await.unwrap(), None);
        let again = things.number("u_gone".into()).await.unwrap();
        assert!(again.0 > stays.0, "{kind}: numbers are never reused");
        assert_eq!(
            things.forget_account("u_never".into(), now).await.unwrap(),
            super::ThingsForgotten::default(),
            "{kind}"
        );
    }
}
