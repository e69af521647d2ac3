//! Issue 10, hole 13: creating a thing needs the `thing.create` right and stays within a
//! per-account quota (a viewer cannot), names with terminal controls are refused at the door,
//! and text that users and peers put in the store reaches the operator's terminal escaped:
//! `thing list`, `thing show`, `player list` (a player's own status strings), `user list` and
//! `audit tail` never print ESC, CR, LF, BEL, C1 controls or bidi overrides raw.
#![allow(clippy::disallowed_methods, clippy::too_many_lines)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use fleetwire_session::{ClientConfig, PlayerId, PlayerSecret, PlayerStatus};
use fleetwire_tokio::session::{PlayerTransport, run_player};
use fleetwire_tokio::tls;
use rustls::pki_types::ServerName;
use serde_json::json;
use tokio::sync::watch;

mod common;
use common::api::{Served, add_user, config};
use common::cli;

/// Characters a terminal acts on or that reorder what the operator reads.
const HOSTILE: &[char] = &[
    '\u{1b}', '\r', '\u{7}', '\u{8}', '\u{7f}', '\u{9b}', '\u{202e}', '\u{2066}', '\u{200f}',
];

fn assert_clean(what: &str, out: &str) {
    for c in HOSTILE {
        assert!(!out.contains(*c), "{what} prints {c:?} raw:\n{out:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thing_creation_needs_a_right_and_a_quota() {
    let s = Served::start(
        "thing-create-right",
        &config("", "[things]\nmax_things_per_user = 2\n"),
        |d| {
            add_user(d, "vic", &["--group", "viewer"]);
            add_user(d, "nora", &[]);
            add_user(d, "olga", &["--group", "operator"]);
        },
    );
    let body = json!({ "mode": "open", "name": "lamp" });
    for user in ["vic", "nora"] {
        let token = s.token(user).await;
        let r = s
            .call("POST", "/v1/things", Some(&token), Some(&body))
            .await;
        assert_eq!(r.status, 403, "{user}: {r:?}");
        assert!(
            r.body["error"].as_str().unwrap().contains("thing.create"),
            "{r:?}"
        );
    }
    let olga = s.token("olga").await;
    for _ in 0..2 {
        let r = s.call("POST", "/v1/things", Some(&olga), Some(&body)).await;
        assert_eq!(r.status, 201, "{r:?}");
    }
    let r = s.call("POST", "/v1/things", Some(&olga), Some(&body)).await;
    assert_eq!(r.status, 403, "quota: {r:?}");
    assert!(
        r.body["error"]
            .as_str()
            .unwrap()
            .contains("max_things_per_user"),
        "{r:?}"
    );
    // The operator's command line is not limited.
    cli(
        &s.data,
        &["thing", "create", "--mode", "open", "--name", "door"],
    );
    // A name with terminal controls is refused at the door.
    let r = s
        .call(
            "POST",
            "/v1/things",
            Some(&s.token("olga").await),
            Some(&json!({ "mode": "open", "name": "x\u{1b}]0;pwned\u{7}" })),
        )
        .await;
    assert_eq!(r.status, 400, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_output_is_escaped() {
    let data = common::data_dir("operator-escape");
    common::write_config(
        &data,
        &config("", "").replace("[session]\n", "[session]\nheartbeat_interval_secs = 1\n"),
    );
    let out = cli(&data, &["player", "add", "--approved", "--name", "lobby"]);
    let line = |prefix: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap()
            .trim()
            .to_owned()
    };
    let id: PlayerId = line("player id:").parse().unwrap();
    let secret: PlayerSecret = line("secret:").parse().unwrap();
    add_user(&data, "olga", &["--group", "operator"]);
    let s = Served::serve(data);

    // A player sets a terminal title, clears the screen and forges a line of `player list`.
    let transport = PlayerTransport::Tls {
        config: tls::pinned_client_config(s.pin).unwrap(),
        server_name: ServerName::try_from("fleetwire.local").unwrap(),
    };
    let (_tx, status) = watch::channel(PlayerStatus {
        content: "\u{1b}]0;owned\u{7}\u{1b}[2J\rmenu".into(),
        versions: "\u{202e}1.0\u{2066}\nFAKE online 0s\u{9b}31m".into(),
        ..PlayerStatus::default()
    });
    let addr = s.players;
    let player = tokio::spawn(async move {
        run_player(
            addr,
            &transport,
            Arc::new(ClientConfig::new(id, secret)),
            status,
            |_| {},
            std::future::pending(),
        )
        .await
    });
    let start = Instant::now();
    let list = loop {
        let list = cli(&s.data, &["player", "list"]);
        if list.contains("menu") {
            break list;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "{list}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    player.abort();
    assert_clean("player list", &list);
    assert_eq!(
        list.lines().count(),
        3,
        "header, one player, total:\n{list}"
    );
    assert!(list.contains("\\u{1b}]0;owned"), "{list}");

    // Stored thing names and account e-mails from an earlier version (or written behind the
    // API's back) are escaped too.
    let olga = s.token("olga").await;
    let r = s
        .call(
            "POST",
            "/v1/things",
            Some(&olga),
            Some(&json!({ "mode": "open", "name": "kiln" })),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let thing = r.body["id"].as_str().unwrap().to_owned();
    // Hostile text planted in the store directly (on either backend): no quote in it.
    common::store_sql(
        &s.data,
        "UPDATE things SET name = 'kiln\u{1b}[2J\r\nt_forged  AAAA\u{202e}\u{7}'",
    );
    common::store_sql(
        &s.data,
        "UPDATE auth_users SET email = 'o\u{1b}[8m@example.com\u{9b}' WHERE name = 'olga'",
    );
    common::store_sql(
        &s.data,
        "INSERT INTO auth_audit (seq, at_ms, event, prev, hash) VALUES \
         ((SELECT COALESCE(MAX(seq), 0) + 1 FROM auth_audit), 0, \
         '{\"type\":\"device_event\",\"kind\":\"x\",\"device\":\"\",\"origin\":\"\",\"detail\":\"\u{202e}\u{9b}2J\u{7f}\"}', '', '')",
    );
    let list = cli(&s.data, &["thing", "list"]);
    assert_clean("thing list", &list);
    assert_eq!(list.lines().count(), 2, "{list}");
    let shown = cli(&s.data, &["thing", "show", &thing]);
    assert_clean("thing show", &shown);
    let v: serde_json::Value = serde_json::from_str(&shown).expect("still JSON");
    assert_eq!(
        v["name"], "kiln\u{1b}[2J\r\nt_forged  AAAA\u{202e}\u{7}",
        "JSON decodes to the stored text"
    );
    let users = cli(&s.data, &["user", "list"]);
    assert_clean("user list", &users);
    let tail = cli(&s.data, &["audit", "tail", "--count", "3"]);
    assert_clean("audit tail", &tail);
    for line in tail.lines() {
        serde_json::from_str::<serde_json::Value>(line).expect("each line is still JSON");
    }
}
