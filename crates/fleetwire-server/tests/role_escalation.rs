//! Issue 10, hole 10: holding `user.roles` is not being an administrator. A group can be given
//! or taken only by someone who holds every right it grants (no escalation), the last
//! administrator (an unlocked account whose groups grant `*`) cannot be demoted, locked or
//! deleted, and `fleetwire-server user groups USER GROUP…` sets an account's groups.
#![allow(clippy::disallowed_methods, clippy::too_many_lines)]

use std::process::Command;

use serde_json::json;

mod common;
use common::api::{Served, add_user, config};
use common::{BIN, cli};

fn fails(data: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_escalation_and_the_last_administrator_stays() {
    let groups = "[accounts.groups]\nadmin = [\"*\"]\n\
                  operator = [\"player.*\", \"content.*\", \"user.read\", \"thing.create\"]\n\
                  viewer = [\"player.read\", \"content.read\"]\n\
                  roles = [\"user.roles\", \"user.read\"]\n";
    let s = Served::start("roles", &config("", groups), |d| {
        add_user(d, "root", &["--group", "admin"]);
        add_user(d, "manny", &["--group", "roles"]);
        add_user(d, "vic", &["--group", "viewer"]);
        add_user(d, "olga", &["--group", "operator"]);
    });
    let manny = s.token("manny").await;
    let root = s.token("root").await;
    let role = |user: &str, group: &str, grant: bool| json!({ "user": user, "group": group, "grant": grant });

    // user.roles alone does not make an administrator.
    for (user, group, grant) in [
        ("manny", "admin", true),
        ("vic", "operator", true),
        ("root", "admin", false),
        ("olga", "operator", false),
    ] {
        let r = s
            .call(
                "POST",
                "/v1/auth/roles",
                Some(&manny),
                Some(&role(user, group, grant)),
            )
            .await;
        assert_eq!(r.status, 403, "{user} {group} {grant}: {r:?}");
    }
    let r = s
        .call(
            "GET",
            "/v1/auth/check?right=player.read",
            Some(&manny),
            None,
        )
        .await;
    assert_eq!(r.status, 403, "manny still has no player rights: {r:?}");
    // A group whose rights he holds: allowed.
    let r = s
        .call(
            "POST",
            "/v1/auth/roles",
            Some(&manny),
            Some(&role("vic", "roles", true)),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");

    // The last administrator cannot demote themself.
    let r = s
        .call(
            "POST",
            "/v1/auth/roles",
            Some(&root),
            Some(&role("root", "admin", false)),
        )
        .await;
    assert_eq!(r.status, 409, "{r:?}");
    assert!(
        r.body["error"]
            .as_str()
            .unwrap()
            .contains("last administrator"),
        "{r:?}"
    );

    // Nor can the command line demote, lock or delete them.
    for args in [
        &["user", "groups", "root", "viewer"][..],
        &["user", "groups", "root"],
        &["user", "lock", "root"],
        &["user", "delete", "root"],
    ] {
        let why = fails(&s.data, args);
        assert!(why.contains("last administrator"), "{args:?}: {why}");
    }
    // `user groups` sets groups exactly, and checks the names.
    cli(&s.data, &["user", "groups", "vic", "operator", "viewer"]);
    let list = cli(&s.data, &["user", "list"]);
    let vic = list.lines().find(|l| l.starts_with("vic ")).unwrap();
    assert!(vic.contains("operator,viewer"), "{list}");
    let why = fails(&s.data, &["user", "groups", "vic", "nope"]);
    assert!(why.contains("no group"), "{why}");

    // With a second administrator the first may go.
    cli(&s.data, &["user", "groups", "olga", "admin"]);
    let r = s
        .call(
            "POST",
            "/v1/auth/roles",
            Some(&root),
            Some(&role("root", "admin", false)),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    // olga is the last one now: locked accounts do not count, and she cannot be locked.
    let why = fails(&s.data, &["user", "lock", "olga"]);
    assert!(why.contains("last administrator"), "{why}");

    // Every change is in the audit log.
    let data = s.stop();
    let tail = cli(&data, &["audit", "tail", "--count", "50"]);
    assert!(tail.matches("\"role_changed\"").count() >= 4, "{tail}");
}
