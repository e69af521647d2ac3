//! The accounts repository's tests: each runs the same assertions against SQLite and
//! PostgreSQL (`store/testing.rs`); the state only PostgreSQL shares between nodes (lockout
//! lanes, throttles, CAPTCHAs, origins) is tested there and refused on SQLite.

#![allow(clippy::too_many_lines)] // one scenario per test, on both backends

use std::sync::Arc;

use fleetwire_auth::UnixTime;
use fleetwire_auth::captcha::StoredChallenge;
use fleetwire_auth::lockout::{KeyState, LockoutConfig, Outcome};

use super::{
    CommandKind, GroupChange, Guard, MfaRow, NewUser, Refused, ResetRow, SessionRow, SignIn,
    UserRow,
};
use crate::store::testing::backends;

fn new_user(id: &str, name: &str, email: Option<&str>, groups: &[&str]) -> NewUser {
    NewUser {
        id: id.to_owned(),
        name: name.to_owned(),
        email: email.map(str::to_owned),
        phc: format!("$argon2id$fake${name}"),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        idle_timeout_secs: None,
        now: 1_000,
    }
}

fn allow() -> Guard {
    Box::new(|_, _, _| Ok(()))
}

/// The last-administrator rule, as the service states it: some unlocked `admin` remains.
fn keep_admin() -> Guard {
    Box::new(
        |_user: &UserRow, after: Option<&UserRow>, others: &[UserRow]| {
            let admin = |u: &UserRow| !u.locked && u.groups.iter().any(|g| g == "admin");
            if after.is_some_and(admin) || others.iter().any(admin) {
                Ok(())
            } else {
                Err("the last administrator".to_owned())
            }
        },
    )
}

fn session(digest: &str, user: &str, created_ms: u64) -> SessionRow {
    SessionRow {
        digest: digest.to_owned(),
        user_id: user.to_owned(),
        created_ms,
        last_active_ms: created_ms,
        origin: "127.0.0.1".to_owned(),
    }
}

#[tokio::test]
async fn users_are_added_found_by_name_or_email_and_guarded() {
    for (kind, store) in backends("acc_users").await {
        let a = store.accounts();
        assert!(
            a.add_user(new_user("u1", "alice", Some("a@x.org"), &["admin"]))
                .await
                .unwrap()
        );
        assert!(
            a.add_user(new_user("u2", "bob", None, &["viewer"]))
                .await
                .unwrap()
        );
        // A name or an address already taken, as a name or as an address.
        assert!(
            !a.add_user(new_user("u3", "alice", None, &[]))
                .await
                .unwrap(),
            "{kind}"
        );
        assert!(
            !a.add_user(new_user("u3", "a@x.org", None, &[]))
                .await
                .unwrap(),
            "{kind}"
        );
        assert!(
            !a.add_user(new_user("u3", "carol", Some("bob"), &[]))
                .await
                .unwrap(),
            "{kind}"
        );
        let users = a.users().await.unwrap();
        assert_eq!(
            users.iter().map(|u| u.name.as_str()).collect::<Vec<_>>(),
            ["alice", "bob"],
            "{kind}"
        );
        let by_mail = a.user_by_name("a@x.org".into()).await.unwrap().unwrap();
        assert_eq!(by_mail.id, "u1", "{kind}");
        assert_eq!(by_mail.groups, ["admin"]);
        assert_eq!(by_mail.password_version, 1, "{kind}");
        assert!(!by_mail.mfa && !by_mail.locked);
        assert!(a.user_by_id("nobody".into()).await.unwrap().is_none());

        // The last administrator can be neither locked, demoted nor deleted.
        let r = a
            .set_locked("alice".into(), true, 2_000, keep_admin())
            .await
            .unwrap();
        assert!(matches!(r, Err(Refused::Guard(_))), "{kind}: {r:?}");
        let r = a
            .set_groups(
                "alice".into(),
                GroupChange::Grant("admin".into(), false),
                2_000,
                keep_admin(),
            )
            .await
            .unwrap();
        assert!(matches!(r, Err(Refused::Guard(_))), "{kind}");
        let r = a
            .delete_user(
                "alice".into(),
                keep_admin(),
                fleetwire_auth::UnixTime::from_millis(1),
            )
            .await
            .unwrap();
        assert!(matches!(r, Err(Refused::Guard(_))), "{kind}");
        assert!(matches!(
            a.set_locked("nobody".into(), true, 2_000, allow())
                .await
                .unwrap(),
            Err(Refused::NoUser)
        ));
        // With a second administrator it can.
        let (before, groups) = a
            .set_groups(
                "bob".into(),
                GroupChange::Set(vec!["admin".into()]),
                2_000,
                keep_admin(),
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(before.groups, ["viewer"], "{kind}");
        assert_eq!(groups, ["admin"]);
        a.sign_in(SignIn {
            session: session("s-alice", "u1", 5_000),
            cap: 10,
            rehash: None,
            now: 5,
        })
        .await
        .unwrap();
        let locked = a
            .set_locked("alice".into(), true, 3_000, keep_admin())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(locked.id, "u1");
        assert!(a.user_by_id("u1".into()).await.unwrap().unwrap().locked);
        assert!(
            a.session("s-alice".into()).await.unwrap().is_none(),
            "{kind}: locking ends the sessions"
        );
        let commands = a.take_commands().await.unwrap();
        assert_eq!(commands.len(), 1, "{kind}");
        assert_eq!(commands[0].kind, CommandKind::Lock);
        assert_eq!(commands[0].subject, "u1");
        assert!(
            a.take_commands().await.unwrap().is_empty(),
            "{kind}: taken once"
        );

        let removed = a
            .delete_user(
                "alice".into(),
                keep_admin(),
                fleetwire_auth::UnixTime::from_millis(1),
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(removed.account_rows, 1, "{kind}");
        assert_eq!(removed.group_memberships, 1);
        assert!(a.user_by_name("alice".into()).await.unwrap().is_none());
        let commands = a.take_commands().await.unwrap();
        assert_eq!(
            commands.iter().map(|c| c.kind).collect::<Vec<_>>(),
            [CommandKind::Forget],
            "{kind}"
        );
    }
}

#[tokio::test]
async fn sessions_are_capped_ended_and_purged() {
    for (kind, store) in backends("acc_sessions").await {
        let a = store.accounts();
        a.add_user(new_user("u1", "alice", None, &[]))
            .await
            .unwrap();
        for (i, digest) in ["d1", "d2", "d3"].into_iter().enumerate() {
            a.sign_in(SignIn {
                session: session(digest, "u1", 1_000 + i as u64),
                cap: 2,
                rehash: (i == 2).then(|| "$argon2id$rehashed".to_owned()),
                now: 77,
            })
            .await
            .unwrap();
        }
        // Beyond the cap the oldest went.
        assert!(a.session("d1".into()).await.unwrap().is_none(), "{kind}");
        let s = a.session("d3".into()).await.unwrap().unwrap();
        assert_eq!(s.session.user_id, "u1");
        assert_eq!(s.session.created_ms, 1_002);
        let user = s.user.unwrap();
        assert_eq!(user.phc, "$argon2id$rehashed", "{kind}");
        assert_eq!(user.last_login_at, Some(77));
        a.touch_session("d3".into(), 9_000).await.unwrap();
        let expected_active = if kind == "postgresql" { 9_000 } else { 1_002 };
        assert_eq!(
            a.session("d3".into())
                .await
                .unwrap()
                .unwrap()
                .session
                .last_active_ms,
            expected_active,
            "{kind}"
        );
        assert_eq!(a.sessions().await.unwrap().len(), 2);
        assert_eq!(
            a.end_sessions("u1".into(), Some("d3".into()))
                .await
                .unwrap(),
            1,
            "{kind}"
        );
        assert!(a.session("d2".into()).await.unwrap().is_none());
        a.end_session("d3".into()).await.unwrap();
        assert!(a.session("d3".into()).await.unwrap().is_none(), "{kind}");
        for (i, digest) in ["e1", "e2"].into_iter().enumerate() {
            a.sign_in(SignIn {
                session: session(digest, "u1", 5_000 + i as u64 * 1_000),
                cap: 10,
                rehash: None,
                now: 78,
            })
            .await
            .unwrap();
        }
        assert_eq!(a.purge_sessions(5_000).await.unwrap(), 1, "{kind}");
        a.delete_sessions(vec!["e2".into()]).await.unwrap();
        assert!(a.sessions().await.unwrap().is_empty(), "{kind}");
        // A session whose account is gone reads back without it.
        a.sign_in(SignIn {
            session: session("orphan", "gone", 1),
            cap: 10,
            rehash: None,
            now: 1,
        })
        .await
        .unwrap();
        assert!(
            a.session("orphan".into())
                .await
                .unwrap()
                .unwrap()
                .user
                .is_none()
        );
    }
}

#[tokio::test]
async fn reset_tokens_are_single_use_and_voided_by_a_new_password() {
    for (kind, store) in backends("acc_resets").await {
        let a = store.accounts();
        a.add_user(new_user("u1", "alice", None, &[]))
            .await
            .unwrap();
        let row = |digest: &str| ResetRow {
            digest: digest.to_owned(),
            user_id: "u1".to_owned(),
            expires_ms: 10_000,
            password_version: 1,
        };
        a.issue_reset(row("r1")).await.unwrap();
        a.issue_reset(row("r2")).await.unwrap();
        assert!(
            a.reset("r1".into()).await.unwrap().is_none(),
            "{kind}: a newer token voids the older"
        );
        assert_eq!(a.reset("r2".into()).await.unwrap().unwrap().user_id, "u1");
        // Taken once, however many callers race for it.
        let takers = (0..8).map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.accounts().take_reset("r2".into()).await.unwrap() })
        });
        let mut got = 0;
        for t in takers {
            got += usize::from(t.await.unwrap().is_some());
        }
        assert_eq!(got, 1, "{kind}");

        a.issue_reset(row("r3")).await.unwrap();
        a.sign_in(SignIn {
            session: session("s1", "u1", 1),
            cap: 10,
            rehash: None,
            now: 1,
        })
        .await
        .unwrap();
        // A password set from version 1 bumps it; a second writer from version 1 loses.
        assert!(
            a.set_password("u1".into(), "$new".into(), 1, 5)
                .await
                .unwrap()
        );
        assert!(
            !a.set_password("u1".into(), "$other".into(), 1, 5)
                .await
                .unwrap(),
            "{kind}"
        );
        assert!(a.reset("r3".into()).await.unwrap().is_none(), "{kind}");
        assert!(a.session("s1".into()).await.unwrap().is_some());
        a.issue_reset(row("r4")).await.unwrap();
        assert!(
            a.reset_password("u1".into(), "$reset".into(), 2, 6)
                .await
                .unwrap()
        );
        assert!(
            a.session("s1".into()).await.unwrap().is_none(),
            "{kind}: a completed reset ends every session"
        );
        let u = a.user_by_id("u1".into()).await.unwrap().unwrap();
        assert_eq!((u.phc.as_str(), u.password_version), ("$reset", 3));
        a.issue_reset(ResetRow {
            expires_ms: 50,
            ..row("r5")
        })
        .await
        .unwrap();
        a.purge_resets(50).await.unwrap();
        assert!(a.reset("r5".into()).await.unwrap().is_none(), "{kind}");
    }
}

#[tokio::test]
async fn second_factor_enrols_confirms_and_uses_each_step_once() {
    for (kind, store) in backends("acc_mfa").await {
        let a = store.accounts();
        a.add_user(new_user("u1", "alice", None, &[]))
            .await
            .unwrap();
        assert_eq!(
            a.mfa("u1".into()).await.unwrap().unwrap(),
            MfaRow::default()
        );
        assert!(a.mfa("nobody".into()).await.unwrap().is_none());
        a.set_mfa_pending("u1".into(), "sealed-1".into())
            .await
            .unwrap();
        assert!(
            !a.confirm_mfa("u1".into(), "sealed-0".into(), 10, "[]".into(), 5)
                .await
                .unwrap(),
            "{kind}: a stale enrolment is not confirmed"
        );
        assert!(
            a.confirm_mfa("u1".into(), "sealed-1".into(), 10, "[\"r\"]".into(), 5)
                .await
                .unwrap()
        );
        let m = a.mfa("u1".into()).await.unwrap().unwrap();
        assert_eq!(m.secret.as_deref(), Some("sealed-1"), "{kind}");
        assert_eq!(m.pending, None);
        assert_eq!(m.last_step, Some(10));
        assert!(a.user_by_id("u1".into()).await.unwrap().unwrap().mfa);
        // A step is used once, and never an earlier one, however many race.
        assert!(!a.use_totp_step("u1".into(), 10).await.unwrap(), "{kind}");
        let racers = (0..8).map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .accounts()
                    .use_totp_step("u1".into(), 11)
                    .await
                    .unwrap()
            })
        });
        let mut won = 0;
        for r in racers {
            won += usize::from(r.await.unwrap());
        }
        assert_eq!(won, 1, "{kind}");
        assert!(!a.use_totp_step("u1".into(), 9).await.unwrap());
        // Recovery codes swap once.
        assert!(
            a.swap_recovery("u1".into(), "[\"r\"]".into(), "[]".into())
                .await
                .unwrap()
        );
        assert!(
            !a.swap_recovery("u1".into(), "[\"r\"]".into(), "[]".into())
                .await
                .unwrap(),
            "{kind}"
        );
        a.set_recovery("u1".into(), "[\"n\"]".into(), 6)
            .await
            .unwrap();
        a.sign_in(SignIn {
            session: session("s1", "u1", 1),
            cap: 10,
            rehash: None,
            now: 1,
        })
        .await
        .unwrap();
        assert_eq!(a.reset_mfa("u1".into(), 7).await.unwrap(), 1, "{kind}");
        assert_eq!(
            a.mfa("u1".into()).await.unwrap().unwrap(),
            MfaRow::default()
        );
        assert_eq!(
            a.take_commands()
                .await
                .unwrap()
                .iter()
                .map(|c| c.kind)
                .collect::<Vec<_>>(),
            [CommandKind::EndSessions],
            "{kind}"
        );
    }
}

/// The lockout, throttle, CAPTCHA and origin state is the nodes' shared state on PostgreSQL,
/// and the running server's memory on SQLite (asking the embedded store for it is an error).
#[tokio::test]
async fn shared_state_reserves_atomically_on_postgresql() {
    for (kind, store) in backends("acc_shared").await {
        let a = store.accounts();
        if kind == "sqlite" {
            assert!(a.lane([1; 16]).await.is_err());
            assert!(a.take_captcha("x".into()).await.is_err());
            continue;
        }
        // Reserve-before-verify across connections: 60 attempts race for one lane whose
        // budget is 5; each reservation is read under FOR UPDATE, changed and written back in
        // one transaction, so exactly 5 get through.
        let mut cfg = LockoutConfig::web_cms();
        cfg.max_failures = 5;
        cfg.jitter_percent = 0;
        let cfg = Arc::new(cfg);
        let now = UnixTime::from_secs(1_700_000_000);
        let racers = (0..60).map(|_| {
            let store = store.clone();
            let cfg = cfg.clone();
            tokio::spawn(async move {
                store
                    .accounts()
                    .update_lane([7; 16], |before| {
                        let mut s = before.unwrap_or_default();
                        let r = cfg.reserve(&mut s, 42, now);
                        (Some(s), r.is_ok())
                    })
                    .await
                    .unwrap()
            })
        });
        let mut admitted = 0;
        for r in racers {
            admitted += usize::from(r.await.unwrap());
        }
        assert_eq!(admitted, 5, "{kind}: the lockout budget across connections");
        let state = a.lane([7; 16]).await.unwrap().unwrap();
        assert_eq!(state.failures(), 5);
        // A success settles the lane away.
        a.update_lane([7; 16], |before| {
            (cfg.settle(before.unwrap(), Outcome::Success, now), ())
        })
        .await
        .unwrap();
        assert_eq!(a.lane([7; 16]).await.unwrap(), None);
        a.update_lane([8; 16], |_| (Some(KeyState::from_parts(100, 2, 0)), ()))
            .await
            .unwrap();
        let old = a.old_lanes(200).await.unwrap();
        assert_eq!(old, vec![([8; 16], KeyState::from_parts(100, 2, 0))]);
        a.forget_lane([8; 16], KeyState::from_parts(100, 3, 0))
            .await
            .unwrap();
        assert!(
            a.lane([8; 16]).await.unwrap().is_some(),
            "changed meanwhile: kept"
        );
        a.forget_lane([8; 16], KeyState::from_parts(100, 2, 0))
            .await
            .unwrap();
        assert!(a.lane([8; 16]).await.unwrap().is_none());

        // Throttle: both arrival times under locks; a refusal changes nothing.
        let r = a
            .throttle([1; 16], [0; 16], |s, g| {
                assert_eq!((s, g), (0, 0));
                Ok::<_, ()>((10, 20))
            })
            .await
            .unwrap();
        assert_eq!(r, Ok(()));
        let r = a
            .throttle([1; 16], [0; 16], |s, g| {
                assert_eq!((s, g), (10, 20));
                Err("refused")
            })
            .await
            .unwrap();
        assert_eq!(r, Err("refused"));
        a.throttle([1; 16], [0; 16], |s, g| {
            assert_eq!((s, g), (10, 20), "a refusal changed nothing");
            Ok::<_, ()>((s, g))
        })
        .await
        .unwrap()
        .unwrap();
        a.purge_throttles(20).await.unwrap();
        a.throttle([1; 16], [0; 16], |s, g| {
            assert_eq!((s, g), (0, 0), "purged");
            Ok::<_, ()>((s, g))
        })
        .await
        .unwrap()
        .unwrap();

        // CAPTCHAs: single use, the oldest go beyond the cap, expired ones are purged.
        let challenge = |id: &str, expires: u64| StoredChallenge {
            id: id.to_owned(),
            answer_digest: [3; 32],
            expires_at: UnixTime::from_millis(expires),
        };
        for id in ["c1", "c2", "c3"] {
            a.add_captcha(challenge(id, 1_000), 2).await.unwrap();
        }
        assert!(
            a.take_captcha("c1".into()).await.unwrap().is_none(),
            "beyond the cap"
        );
        assert_eq!(
            a.take_captcha("c2".into()).await.unwrap(),
            Some(challenge("c2", 1_000))
        );
        assert!(
            a.take_captcha("c2".into()).await.unwrap().is_none(),
            "single use"
        );
        a.purge_captchas(1_000).await.unwrap();
        assert!(
            a.take_captcha("c3".into()).await.unwrap().is_none(),
            "expired"
        );

        // Recent origins.
        assert!(
            a.observe_origin("u1".into(), "o1".into(), 1, 2)
                .await
                .unwrap()
        );
        assert!(
            !a.observe_origin("u1".into(), "o1".into(), 2, 2)
                .await
                .unwrap()
        );
        assert!(
            a.observe_origin("u1".into(), "o2".into(), 3, 2)
                .await
                .unwrap()
        );
        assert!(
            a.observe_origin("u1".into(), "o3".into(), 4, 2)
                .await
                .unwrap()
        );
        assert!(
            a.observe_origin("u1".into(), "o1".into(), 5, 2)
                .await
                .unwrap(),
            "beyond the kept origins it is new again"
        );
    }
}

/// A measurement, not a check (run it explicitly; docs/BENCHMARKS.md records it): lockout
/// decisions per second when every decision is the fleet's — three stores standing for three
/// nodes (each its own pool of 16 connections) on one PostgreSQL database, 48 tasks each
/// reserving on random lanes among 10,000 for 5 s. Prints decisions/s and the CPU seconds the
/// cluster's processes spent per 1,000 decisions.
///
///     eval "$(scripts/pg.sh start)"
///     cargo test --release -p fleetwire-server --lib -- --ignored --nocapture lockout_decisions_per_second
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run explicitly"]
async fn lockout_decisions_per_second_shared_by_three_nodes() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    let url = crate::store::testing::postgres_database("lockout_rate").await;
    let dir = std::env::temp_dir().join(format!("fleetwire-lockout-rate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let settings = crate::config::StoreSettings {
        url: Some(url),
        ..crate::config::StoreSettings::default()
    };
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(crate::store::Store::open(&settings, &dir).await.unwrap());
    }
    let cfg = Arc::new(LockoutConfig::web_cms());
    let decided = Arc::new(AtomicU64::new(0));
    let pg_ticks = || -> u64 {
        let out = std::process::Command::new("pgrep")
            .args(["-u", "postgres", "postgres"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
            .map(|stat| {
                let f: Vec<&str> = stat
                    .rsplit(')')
                    .next()
                    .unwrap_or("")
                    .split_whitespace()
                    .collect();
                f.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
                    + f.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
            })
            .sum()
    };
    let before = pg_ticks();
    let end = Instant::now() + Duration::from_secs(5);
    let mut tasks = Vec::new();
    for (n, store) in nodes.iter().enumerate() {
        for t in 0..16u64 {
            let (store, cfg, decided) = (store.clone(), cfg.clone(), decided.clone());
            tasks.push(tokio::spawn(async move {
                let mut x = (n as u64 + 1) * 1_000_003 + t * 7_919;
                while Instant::now() < end {
                    x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    let mut lane = [0u8; 16];
                    lane[..8].copy_from_slice(&((x >> 33) % 10_000).to_be_bytes());
                    let now = UnixTime::from_secs(1_700_000_000);
                    store
                        .accounts()
                        .update_lane(lane, |before| {
                            let mut s = before.unwrap_or_default();
                            let r = cfg.reserve(&mut s, 42, now);
                            (Some(s), r.is_ok())
                        })
                        .await
                        .unwrap();
                    decided.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let ticks = pg_ticks().saturating_sub(before);
    let n = decided.load(Ordering::Relaxed);
    #[allow(clippy::cast_precision_loss)]
    let per_1000 = ticks as f64 / 100.0 / (n as f64 / 1000.0);
    println!(
        "{n} shared lockout decisions in 5 s over 3 pools = {} decisions/s; PostgreSQL CPU {:.3} s per 1,000",
        n / 5,
        per_1000
    );
    assert!(n > 0);
    let _ = std::fs::remove_dir_all(&dir);
}
