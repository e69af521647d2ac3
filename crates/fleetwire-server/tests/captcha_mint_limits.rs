//! Issue 10, hole 8: `GET /v1/auth/captcha` needs no sign-in, so minting challenges is throttled
//! per source, the table of pending challenges is bounded (the oldest issued is dropped, in
//! O(1)), and challenges are neither saved in the state file nor behind the lock every login
//! and session check takes. A source that floods the route is refused while logins and
//! `/v1/auth/me` from another source go on.
#![allow(clippy::disallowed_methods)]

use std::net::{IpAddr, Ipv4Addr};

use serde_json::{Value, json};

mod common;
use common::api::{PASSWORD, Served, add_user, config, read_captcha};

fn source(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captcha_minting_is_throttled_per_source() {
    // Default settings: the per-source limit is what a person needs, not what a script wants.
    let s = Served::start("captcha-flood", &config("", ""), |d| {
        add_user(d, "alice", &[]);
    });
    let flooder = source(2);
    let (mut minted, mut refused) = (0, 0);
    for _ in 0..40 {
        let r = s
            .call_from(flooder, "GET", "/v1/auth/captcha", None, None)
            .await;
        match r.status {
            200 => {
                assert!(r.body["svg"].as_str().unwrap().starts_with("<svg"));
                minted += 1;
            }
            429 => {
                assert!(r.head.contains("retry-after"), "{}", r.head);
                refused += 1;
            }
            other => panic!("{other}: {r:?}"),
        }
    }
    assert!(minted <= 10, "{minted} challenges minted from one source");
    assert_eq!(minted + refused, 40);

    // Another source is not affected: it signs in and uses its session.
    let r = s
        .call_from(
            source(1),
            "POST",
            "/v1/auth/login",
            None,
            Some(&json!({ "user": "alice", "password": PASSWORD })),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let token = r.body["token"].as_str().unwrap().to_owned();
    let r = s
        .call_from(source(1), "GET", "/v1/auth/me", Some(&token), None)
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = s
        .call_from(source(3), "GET", "/v1/auth/captcha", None, None)
        .await;
    assert_eq!(
        r.status, 200,
        "another source still gets a challenge: {r:?}"
    );

    // Pending challenges are not written to the state file.
    let data = s.stop();
    let state: Value =
        serde_json::from_slice(&std::fs::read(data.join("accounts-state.json")).unwrap()).unwrap();
    assert!(state.get("captcha").is_none(), "challenges are not saved");
    let _ = std::fs::remove_dir_all(&data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pending_table_is_bounded_oldest_out() {
    let s = Served::start(
        "captcha-bounded",
        &config(
            "captcha_max_pending = 5\ncaptcha_after_failures = 1\nmax_failures = 100",
            "",
        ),
        |d| add_user(d, "alice", &[]),
    );
    let mint = |last: u8| {
        let s = &s;
        async move {
            let r = s
                .call_from(source(last), "GET", "/v1/auth/captcha", None, None)
                .await;
            assert_eq!(r.status, 200, "{r:?}");
            r.body
        }
    };
    let oldest = mint(10).await;
    for last in 11..16 {
        mint(last).await;
    }
    // One failure: the next login needs a CAPTCHA.
    let r = s
        .login(&json!({ "user": "alice", "password": "Wrong-Password-1" }))
        .await;
    assert_eq!(r.status, 401);
    let with = |c: &Value| {
        json!({
            "user": "alice", "password": PASSWORD,
            "captcha_id": c["id"], "captcha_answer": read_captcha(c["svg"].as_str().unwrap()),
        })
    };
    let r = s.login(&with(&oldest)).await;
    assert_eq!(
        (r.status, &r.body["captcha_required"]),
        (401, &json!(true)),
        "five newer challenges pushed the oldest out: {r:?}"
    );
    let newest = mint(16).await;
    let r = s.login(&with(&newest)).await;
    assert_eq!(r.status, 200, "{r:?}");
}
