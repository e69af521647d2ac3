//! Issue 10, hole 6: an account's user name and its e-mail address are one lockout and CAPTCHA
//! lane (the resolved account), not two; unknown names still behave exactly like known ones.
#![allow(clippy::disallowed_methods)]

use serde_json::json;

mod common;
use common::api::{PASSWORD, Served, add_user, config};

const WRONG: &str = "Wrong-Password-1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn name_and_email_share_one_lockout_lane() {
    let s = Served::start(
        "lanes-lock",
        &config(
            "max_failures = 4\nbase_block_secs = 3600\ncaptcha_after_failures = 0",
            "",
        ),
        |d| {
            add_user(d, "alice", &["--email", "alice@example.com"]);
            add_user(d, "dave", &[]);
        },
    );
    // Four failures, alternating the name and the address: the account's budget is four.
    for user in ["alice", "ALICE@example.com", "alice", "alice@example.com"] {
        let r = s.login(&json!({ "user": user, "password": WRONG })).await;
        assert_eq!(r.status, 401, "{user}: {r:?}");
    }
    for user in ["alice", "alice@example.com"] {
        let r = s
            .login(&json!({ "user": user, "password": PASSWORD }))
            .await;
        assert_eq!(
            r.status, 429,
            "{user} is blocked after 4 failures in all: {r:?}"
        );
    }

    // A real account and an unknown name answer alike, failure by failure, block included.
    let mut real = Vec::new();
    let mut unknown = Vec::new();
    for _ in 0..5 {
        let k = s.login(&json!({ "user": "dave", "password": WRONG })).await;
        let u = s
            .login(&json!({ "user": "nobody-here", "password": WRONG }))
            .await;
        real.push((k.status, k.body["error"].clone()));
        unknown.push((u.status, u.body["error"].clone()));
    }
    assert_eq!(real, unknown);
    assert_eq!(real[4].0, 429, "{real:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn name_and_email_share_one_captcha_lane() {
    let s = Served::start(
        "lanes-captcha",
        &config("max_failures = 20\ncaptcha_after_failures = 2", ""),
        |d| add_user(d, "carol", &["--email", "carol@example.com"]),
    );
    let r = s
        .login(&json!({ "user": "carol", "password": WRONG }))
        .await;
    assert_eq!(r.status, 401);
    let r = s
        .login(&json!({ "user": "carol@example.com", "password": WRONG }))
        .await;
    assert_eq!(r.status, 401);
    assert!(r.body.get("captcha_required").is_none(), "{r:?}");
    // Two failures in the account's lane: the next login needs a CAPTCHA, by either string.
    for user in ["carol", "carol@example.com"] {
        let r = s
            .login(&json!({ "user": user, "password": PASSWORD }))
            .await;
        assert_eq!(
            (r.status, &r.body["captcha_required"]),
            (401, &json!(true)),
            "{user}: {r:?}"
        );
    }
}
