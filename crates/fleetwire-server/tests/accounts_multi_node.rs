//! Accounts on several nodes (issue 12): three `fleetwire-server serve` processes on one
//! PostgreSQL database. A session made on one node is valid on another and a sign-out anywhere
//! ends it everywhere; a reset link issued on one node is redeemed on another, once; a device
//! cookie, a CAPTCHA challenge and a second factor from one node are accepted on another (the
//! challenge and each code once); and 200
//! parallel wrong passwords spread over the three nodes get no more password verifications than
//! the lockout allows on one node (reserve-before-verify on the shared lane row); the per-source
//! login throttle holds for the fleet.
//!
//! Needs the cluster of `FLEETWIRE_TEST_PG` (`eval "$(scripts/pg.sh start)"`).
#![allow(clippy::disallowed_methods)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

mod common;
use common::api::{PASSWORD, Served, add_user, config, step_now, totp};
use common::{data_dir, shared_postgres};

const WRONG: &str = "Wrong-Password-1";
const NEW_PASSWORD: &str = "Lantern-Orchard-42";
/// The lockout budget of one lane on one node.
const MAX_FAILURES: u16 = 5;

/// Three nodes on one fresh database; the first node's data directory got `prepare` (user
/// commands write to the shared database).
fn three_nodes(tag: &str, prepare: impl FnOnce(&Path)) -> (String, Vec<Served>) {
    three_nodes_with(
        tag,
        &format!("captcha_after_failures = 0\n{GENEROUS}"),
        prepare,
    )
}

/// Throttles out of the way (the lockout is what a test looks at).
const GENEROUS: &str = "login_burst_per_source = 1000\nlogin_per_minute_per_source = 1000\n\
                        login_per_second_global = 1000";

/// [`three_nodes`] with more `[accounts]` lines.
fn three_nodes_with(
    tag: &str,
    accounts: &str,
    prepare: impl FnOnce(&Path),
) -> (String, Vec<Served>) {
    let url = shared_postgres(tag);
    let toml = config(
        &format!(
            "max_failures = {MAX_FAILURES}\nbase_block_secs = 3600\nhash_queue = 256\n{accounts}"
        ),
        &format!("[store]\nurl = {url:?}\n"),
    );
    let mut prepare = Some(prepare);
    let nodes = (0..3)
        .map(|i| {
            let data = data_dir(&format!("{tag}-node{i}"));
            std::fs::write(data.join("fleetwire.toml"), &toml).unwrap();
            if let Some(p) = prepare.take() {
                p(&data);
            }
            Served::serve(data)
        })
        .collect();
    (url, nodes)
}

/// One value from the shared database.
fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .arg(url)
        .args(["-v", "ON_ERROR_STOP=1", "-At", "-c", sql])
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sessions_reset_links_and_device_cookies_work_across_nodes() {
    let (_url, nodes) = three_nodes("acc-mn-sessions", |d| {
        add_user(d, "alice", &["--email", "alice@example.com"]);
        add_user(d, "dave", &[]);
    });
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);

    // A session made on A is valid on B and C; a sign-out on B ends it on A and C.
    let token = a.token("alice").await;
    for node in [a, b, c] {
        let r = node.call("GET", "/v1/auth/me", Some(&token), None).await;
        assert_eq!(r.status, 200, "{r:?}");
    }
    let r = b.call("POST", "/v1/auth/logout", Some(&token), None).await;
    assert_eq!(r.status, 200, "{r:?}");
    for node in [a, b, c] {
        let r = node.call("GET", "/v1/auth/me", Some(&token), None).await;
        assert_eq!(r.status, 401, "signed out on B: {r:?}");
    }

    // A reset link issued on A is redeemed on B, once; the sessions end on every node.
    let live = c.token("alice").await;
    let r = a
        .call(
            "POST",
            "/v1/auth/reset/request",
            None,
            Some(&json!({ "user": "alice" })),
        )
        .await;
    assert_eq!(r.status, 202, "{r:?}");
    let outbox = a.data.join("outbox.jsonl");
    let start = Instant::now();
    let reset = loop {
        let text = std::fs::read_to_string(&outbox).unwrap_or_default();
        if let Some(t) = text.split("token=").nth(1) {
            let end = t.find(|c: char| c.is_whitespace() || c == '"' || c == '\\');
            break t[..end.unwrap_or(t.len())].to_owned();
        }
        assert!(start.elapsed() < Duration::from_secs(10), "no mail");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let complete = json!({ "token": reset, "password": NEW_PASSWORD });
    // Redeemed on B and C at the same time: exactly one succeeds.
    let (rb, rc) = tokio::join!(
        b.call("POST", "/v1/auth/reset/complete", None, Some(&complete)),
        c.call("POST", "/v1/auth/reset/complete", None, Some(&complete)),
    );
    let mut statuses = [rb.status, rc.status];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 400], "once: {rb:?} {rc:?}");
    let r = a
        .call("POST", "/v1/auth/reset/complete", None, Some(&complete))
        .await;
    assert_eq!(r.status, 400, "used: {r:?}");
    for node in [a, b, c] {
        let r = node.call("GET", "/v1/auth/me", Some(&live), None).await;
        assert_eq!(r.status, 401, "the reset ended the sessions: {r:?}");
    }
    let r = c
        .login(&json!({ "user": "alice", "password": PASSWORD }))
        .await;
    assert_eq!(r.status, 401, "{r:?}");
    let r = a
        .login(&json!({ "user": "alice", "password": NEW_PASSWORD }))
        .await;
    assert_eq!(r.status, 200, "{r:?}");

    // A device cookie from A keeps its owner in on C while an attacker locks the untrusted lane
    // on B.
    let r = a
        .login(&json!({ "user": "dave", "password": PASSWORD }))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let cookie = r.body["device_cookie"].as_str().unwrap().to_owned();
    let mut locked = false;
    for _ in 0..=u32::from(MAX_FAILURES) {
        let r = b.login(&json!({ "user": "dave", "password": WRONG })).await;
        locked |= r.status == 429;
    }
    assert!(locked, "the untrusted lane is blocked");
    let r = c
        .login(&json!({ "user": "dave", "password": PASSWORD }))
        .await;
    assert_eq!(r.status, 429, "{r:?}");
    let r = c
        .login(&json!({ "user": "dave", "password": PASSWORD, "device_cookie": cookie }))
        .await;
    assert_eq!(r.status, 200, "the device cookie from A works on C: {r:?}");
    assert_eq!(r.body["known_device"], true, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_wrong_passwords_on_three_nodes_verify_at_most_one_nodes_budget() {
    let (url, nodes) = three_nodes("acc-mn-lockout", |d| add_user(d, "bob", &[]));
    let nodes = std::sync::Arc::new(nodes);
    let attempts = (0..200).map(|i| {
        let nodes = nodes.clone();
        tokio::spawn(async move {
            nodes[i % 3]
                .login(&json!({ "user": "bob", "password": WRONG }))
                .await
                .status
        })
    });
    let mut by_status = std::collections::BTreeMap::new();
    for a in attempts {
        *by_status.entry(a.await.unwrap()).or_insert(0u32) += 1;
    }
    // Every wrong password that was verified answered 401; the rest were refused before any
    // verification (429 locked, 503 pool full).
    let verified_answers = by_status.get(&401).copied().unwrap_or(0);
    // The servers' own record: one `login_failed` audit entry per verified wrong password.
    // The audit queue is written every 250 ms.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let audited: u32 = psql(
        &url,
        "SELECT count(*) FROM auth_audit WHERE event LIKE '%\"type\":\"login_failed\"%'",
    )
    .parse()
    .unwrap();
    assert_eq!(audited, verified_answers, "{by_status:?}");
    assert!(
        audited >= 1 && audited <= u32::from(MAX_FAILURES),
        "{audited} password verifications over three nodes; one node allows {MAX_FAILURES} \
         ({by_status:?})"
    );
    // And the account is blocked on every node, for the right password too.
    for node in nodes.iter() {
        let r = node
            .login(&json!({ "user": "bob", "password": PASSWORD }))
            .await;
        assert_eq!(r.status, 429, "{r:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn captchas_work_across_nodes() {
    let (_url, nodes) = three_nodes_with(
        "acc-mn-captcha",
        &format!("captcha_after_failures = 2\n{GENEROUS}"),
        |d| {
            add_user(d, "carol", &[]);
        },
    );
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);

    // Two failures on A: B asks for a CAPTCHA (the lane is shared). The challenge B issued is
    // accepted on C (the password is wrong there: a third failure) and is used up on every
    // node: A refuses it and issues another, which B accepts.
    for _ in 0..2 {
        let r = a
            .login(&json!({ "user": "carol", "password": WRONG }))
            .await;
        assert_eq!(r.status, 401, "{r:?}");
    }
    let r = b
        .login(&json!({ "user": "carol", "password": PASSWORD }))
        .await;
    assert_eq!(
        (r.status, &r.body["captcha_required"]),
        (401, &json!(true)),
        "{r:?}"
    );
    let solve = |r: &common::api::Reply, password: &str| {
        json!({ "user": "carol", "password": password,
                "captcha_id": r.body["captcha"]["id"].as_str().unwrap(),
                "captcha_answer": read_captcha(r.body["captcha"]["svg"].as_str().unwrap()) })
    };
    let from_b = r.clone();
    let r = c.login(&solve(&from_b, WRONG)).await;
    assert_eq!(r.status, 401, "{r:?}");
    assert!(
        r.body.get("captcha_required").is_none(),
        "accepted on C: {r:?}"
    );
    let r = a.login(&solve(&from_b, PASSWORD)).await;
    assert_eq!(
        (r.status, &r.body["captcha_required"]),
        (401, &json!(true)),
        "used up on C, refused on A: {r:?}"
    );
    let r = b.login(&solve(&r, PASSWORD)).await;
    assert_eq!(r.status, 200, "issued on A, accepted on B: {r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_login_throttle_holds_for_the_fleet() {
    // Three attempts at once per source, then one a minute: spread over three nodes, a source
    // still gets three, not nine.
    let (_url, nodes) = three_nodes_with(
        "acc-mn-throttle",
        "captcha_after_failures = 0\nlogin_burst_per_source = 3\nlogin_per_minute_per_source = 1",
        |d| add_user(d, "erin", &[]),
    );
    let mut statuses = Vec::new();
    for i in 0..9 {
        let r = nodes[i % 3]
            .login(&json!({ "user": "erin", "password": PASSWORD }))
            .await;
        statuses.push(r.status);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        3,
        "the burst is the fleet's: {statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        6,
        "{statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_factor_enrolled_on_one_node_works_on_the_others_once_per_code() {
    let (_url, nodes) = three_nodes("acc-mn-mfa", |d| add_user(d, "frank", &[]));
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    // Enrolled on A, confirmed on B: the secret is sealed under the key the nodes share.
    let token = a.token("frank").await;
    let r = a
        .call(
            "POST",
            "/v1/auth/mfa/enroll",
            Some(&token),
            Some(&json!({ "password": PASSWORD })),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let secret = r.body["secret"].as_str().unwrap().to_owned();
    let step = step_now();
    let r = b
        .call(
            "POST",
            "/v1/auth/mfa/confirm",
            Some(&token),
            Some(&json!({ "code": totp(&secret, step) })),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    // A sign-in on C needs the factor; the next code works there, and only once in the fleet.
    let r = c
        .login(&json!({ "user": "frank", "password": PASSWORD }))
        .await;
    assert_eq!(
        (r.status, &r.body["mfa_required"]),
        (401, &json!(true)),
        "{r:?}"
    );
    let code = totp(&secret, step + 1);
    let with = json!({ "user": "frank", "password": PASSWORD, "totp": code });
    let (rc, ra) = tokio::join!(c.login(&with), a.login(&with));
    let mut statuses = [rc.status, ra.status];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 401], "one code, one sign-in: {rc:?} {ra:?}");
}

/// Reads the digits of a CAPTCHA picture (seven-segment strokes; as in `accounts_api.rs`).
fn read_captcha(svg: &str) -> String {
    const ENDS: [(i32, i32, i32, i32); 7] = [
        (0, 0, 20, 0),
        (20, 0, 20, 20),
        (20, 20, 20, 40),
        (0, 40, 20, 40),
        (0, 20, 0, 40),
        (0, 0, 0, 20),
        (0, 20, 20, 20),
    ];
    const DIGITS: [&str; 10] = [
        "abcdef", "bc", "abdeg", "abcdg", "bcfg", "acdfg", "acdefg", "abc", "abcdefg", "abcdfg",
    ];
    let snap = |v: i32| (v + 10).div_euclid(20) * 20;
    let mut out = String::new();
    for group in svg.split("<g transform=").skip(1) {
        let path = group
            .split("d=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let mut lit = String::new();
        for stroke in path.split('M').filter(|s| !s.is_empty()) {
            let n: Vec<i32> = stroke
                .split([' ', 'L'])
                .filter(|s| !s.is_empty())
                .map(|s| s.parse().unwrap())
                .collect();
            let ends = (snap(n[0]), snap(n[1]), snap(n[2]), snap(n[3]));
            let segment = ENDS.iter().position(|e| *e == ends).unwrap();
            lit.push(char::from(b'a' + u8::try_from(segment).unwrap()));
        }
        let digit = DIGITS.iter().position(|d| *d == lit).unwrap();
        out.push(char::from(b'0' + u8::try_from(digit).unwrap()));
    }
    out
}
