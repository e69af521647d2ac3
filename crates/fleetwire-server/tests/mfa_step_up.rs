//! Issue 10, hole 4: a session token alone no longer changes how an account signs in. Turning
//! two-factor sign-in on or off, new recovery codes and a new password need the password again
//! (and the current second factor when one is on), and end the account's other sessions; a
//! thief who holds only a session cannot guess the password through these routes (a lockout
//! lane of its own). Two-factor sign-in can be turned off by its owner and reset by an
//! administrator (API with the administrator's own step-up, or the command line), audited. A
//! password reset by mail needs the second factor too and leaves it on.
#![allow(clippy::disallowed_methods, clippy::too_many_lines)]

use serde_json::{Value, json};

mod common;
use common::api::{PASSWORD, Reply, Served, add_user, config, step_now, totp};
use common::cli;

const NEW_PASSWORD: &str = "Lantern-Quay-42";

/// Enrols `token`'s account (step-up with `password`); the secret and the recovery codes.
async fn enrol(s: &Served, token: &str, password: &str) -> (String, Vec<String>) {
    let r = s
        .call(
            "POST",
            "/v1/auth/mfa/enroll",
            Some(token),
            Some(&json!({ "password": password })),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let secret = r.body["secret"].as_str().unwrap().to_owned();
    let r = s
        .call(
            "POST",
            "/v1/auth/mfa/confirm",
            Some(token),
            Some(&json!({ "code": totp(&secret, step_now()) })),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let codes = r.body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    (secret, codes)
}

async fn me(s: &Served, token: &str) -> Reply {
    s.call("GET", "/v1/auth/me", Some(token), None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_factor_changes_need_step_up() {
    let s = Served::start(
        "mfa-step-up",
        &config(
            "max_failures = 3\nbase_block_secs = 3600\ncaptcha_after_failures = 0\n\
             login_burst_per_source = 1000",
            "",
        ),
        |d| {
            add_user(d, "alice", &["--email", "alice@example.com"]);
            add_user(d, "root", &["--group", "admin"]);
        },
    );
    let current = s.token("alice").await;
    let other = s.token("alice").await;

    // A session token alone cannot turn two-factor sign-in on.
    let r = s
        .call("POST", "/v1/auth/mfa/enroll", Some(&current), None)
        .await;
    assert_eq!(r.status, 400, "the password is required: {r:?}");
    let r = s
        .call(
            "POST",
            "/v1/auth/mfa/enroll",
            Some(&current),
            Some(&json!({ "password": "Wrong-Password-1" })),
        )
        .await;
    assert_eq!(r.status, 401, "{r:?}");
    // With the password: on; the other session ends, this one stays.
    let (secret, codes) = enrol(&s, &current, PASSWORD).await;
    assert_eq!(me(&s, &current).await.status, 200);
    assert_eq!(me(&s, &other).await.status, 401, "other sessions end");
    let r = s
        .call(
            "POST",
            "/v1/auth/mfa/enroll",
            Some(&current),
            Some(&json!({ "password": PASSWORD })),
        )
        .await;
    assert_eq!(r.status, 409, "already on: {r:?}");

    // New recovery codes: password and the current factor.
    let r = s
        .call(
            "POST",
            "/v1/auth/mfa/recovery-codes",
            Some(&current),
            Some(&json!({ "password": PASSWORD })),
        )
        .await;
    assert_eq!(
        (r.status, &r.body["mfa_required"]),
        (401, &json!(true)),
        "{r:?}"
    );
    let r = s
        .call(
            "POST",
            "/v1/auth/mfa/recovery-codes",
            Some(&current),
            Some(&json!({ "password": PASSWORD, "recovery_code": codes[0] })),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let fresh: Vec<String> = r.body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    let r = s
        .login(&json!({ "user": "alice", "password": PASSWORD, "recovery_code": codes[1] }))
        .await;
    assert_eq!(r.status, 401, "the old codes are void: {r:?}");

    // A new password: the current one and the factor; other sessions end.
    let other = s
        .login(&json!({ "user": "alice", "password": PASSWORD, "recovery_code": fresh[0] }))
        .await
        .body["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let change = |current_password: &str, extra: Value| {
        let mut body = json!({ "password": current_password, "new_password": NEW_PASSWORD });
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    let r = s
        .call(
            "POST",
            "/v1/auth/password",
            Some(&current),
            Some(&change(PASSWORD, json!({}))),
        )
        .await;
    assert_eq!(
        (r.status, &r.body["mfa_required"]),
        (401, &json!(true)),
        "{r:?}"
    );
    let r = s
        .call(
            "POST",
            "/v1/auth/password",
            Some(&current),
            Some(&change(PASSWORD, json!({ "recovery_code": fresh[1] }))),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(me(&s, &other).await.status, 401, "other sessions end");
    assert_eq!(me(&s, &current).await.status, 200);
    let r = s
        .login(&json!({ "user": "alice", "password": PASSWORD, "recovery_code": fresh[2] }))
        .await;
    assert_eq!(r.status, 401, "the old password is gone: {r:?}");

    // Off: the password and the factor.
    let r = s
        .call(
            "POST",
            "/v1/auth/mfa/disable",
            Some(&current),
            Some(&json!({ "password": NEW_PASSWORD })),
        )
        .await;
    assert_eq!(r.status, 401, "{r:?}");
    let r = s
        .call(
            "POST",
            "/v1/auth/mfa/disable",
            Some(&current),
            Some(&json!({ "password": NEW_PASSWORD, "recovery_code": fresh[3] })),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = s
        .login(&json!({ "user": "alice", "password": NEW_PASSWORD }))
        .await;
    assert_eq!(r.status, 200, "off: the password alone signs in: {r:?}");
    let _ = secret;

    // An administrator's reset: needs the right and the administrator's own step-up; alice's
    // sessions end; audited. alice herself may not reset root.
    let (_, _) = enrol(&s, &current, NEW_PASSWORD).await;
    let r = s
        .call(
            "POST",
            "/v1/auth/users/mfa-reset",
            Some(&current),
            Some(&json!({ "user": "root", "password": NEW_PASSWORD })),
        )
        .await;
    assert_eq!(r.status, 403, "{r:?}");
    let root = s.token("root").await;
    let r = s
        .call(
            "POST",
            "/v1/auth/users/mfa-reset",
            Some(&root),
            Some(&json!({ "user": "alice" })),
        )
        .await;
    assert_eq!(
        r.status, 400,
        "the administrator's password is required: {r:?}"
    );
    let r = s
        .call(
            "POST",
            "/v1/auth/users/mfa-reset",
            Some(&root),
            Some(&json!({ "user": "alice", "password": PASSWORD })),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(me(&s, &current).await.status, 401, "her sessions end");
    let current = s
        .login(&json!({ "user": "alice", "password": NEW_PASSWORD }))
        .await
        .body["token"]
        .as_str()
        .unwrap()
        .to_owned();

    // The command line resets too.
    let (secret, codes) = enrol(&s, &current, NEW_PASSWORD).await;
    cli(&s.data, &["user", "mfa-reset", "alice"]);
    let list = cli(&s.data, &["user", "list"]);
    let line = list.lines().find(|l| l.starts_with("alice ")).unwrap();
    assert!(line.contains(" no "), "MFA off: {list}");
    let current = s
        .login(&json!({ "user": "alice", "password": NEW_PASSWORD }))
        .await
        .body["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let _ = (secret, codes);

    // A reset by mail: the link alone does not change the password of an account with two
    // factors; the factor does, and two-factor sign-in stays on.
    let (_, codes) = enrol(&s, &current, NEW_PASSWORD).await;
    let r = s
        .call(
            "POST",
            "/v1/auth/reset/request",
            None,
            Some(&json!({ "user": "alice" })),
        )
        .await;
    assert_eq!(r.status, 202);
    let link = s.reset_token(0).await;
    let complete = |extra: Value| {
        let mut body = json!({ "token": link, "password": "Harbour-Lamp-99" });
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    let r = s
        .call(
            "POST",
            "/v1/auth/reset/complete",
            None,
            Some(&complete(json!({}))),
        )
        .await;
    assert_eq!(
        (r.status, &r.body["mfa_required"]),
        (401, &json!(true)),
        "{r:?}"
    );
    let r = s
        .call(
            "POST",
            "/v1/auth/reset/complete",
            None,
            Some(&complete(json!({ "recovery_code": codes[0] }))),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = s
        .login(&json!({ "user": "alice", "password": "Harbour-Lamp-99" }))
        .await;
    assert_eq!(
        (r.status, &r.body["mfa_required"]),
        (401, &json!(true)),
        "still on: {r:?}"
    );

    // Guessing the password through a stolen session locks that lane (3 failures).
    let r = s
        .login(
            &json!({ "user": "alice", "password": "Harbour-Lamp-99", "recovery_code": codes[1] }),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let current = r.body["token"].as_str().unwrap().to_owned();
    for _ in 0..3 {
        let r = s
            .call(
                "POST",
                "/v1/auth/mfa/disable",
                Some(&current),
                Some(&json!({ "password": "Guess-Password-1", "recovery_code": codes[2] })),
            )
            .await;
        assert_eq!(r.status, 401, "{r:?}");
    }
    let r = s
        .call(
            "POST",
            "/v1/auth/mfa/disable",
            Some(&current),
            Some(&json!({ "password": "Harbour-Lamp-99", "recovery_code": codes[3] })),
        )
        .await;
    assert_eq!(r.status, 429, "{r:?}");

    let data = s.stop();
    let tail = cli(&data, &["audit", "tail", "--count", "200"]);
    for action in [
        "mfa_enabled",
        "mfa_disabled",
        "recovery_codes_regenerated",
        "password_changed",
        "mfa_reset",
        "reauth_failed",
    ] {
        assert!(
            tail.contains(&format!("\"{action}\"")),
            "{action} not audited:\n{tail}"
        );
    }
}
