//! Issue 10, hole 3: thing rights belong to an account's immutable id, not to its name. Deleting
//! an account removes it from every thing (C5: the delete report lists what went), its name
//! leaves the thing tables, and a new account with the same name inherits nothing. A data
//! directory written by an earlier version (rights keyed by name) is migrated forward.
#![allow(clippy::disallowed_methods, clippy::too_many_lines)]

use serde_json::{Value, json};

mod common;
use common::api::{Served, add_user, config};
use common::cli;

fn db(data: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(data.join("fleetwire.db")).unwrap()
}

fn account_id(data: &std::path::Path, name: &str) -> String {
    common::store_sql(
        data,
        &format!("SELECT id FROM auth_users WHERE name = '{name}'"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_account_with_a_deleted_name_inherits_nothing() {
    let s = Served::start("thing-rights-delete", &config("", ""), |d| {
        add_user(d, "olga", &["--group", "operator"]);
        add_user(d, "carol", &[]);
        add_user(d, "dan", &[]);
    });
    let olga = s.token("olga").await;
    let r = s
        .call(
            "POST",
            "/v1/things",
            Some(&olga),
            Some(&json!({ "mode": "confirm", "name": "kiln" })),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let (id, code) = (
        r.body["id"].as_str().unwrap().to_owned(),
        r.body["code"].as_str().unwrap().to_owned(),
    );
    let thing = format!("/v1/things/{id}");
    let carol = s.token("carol").await;
    let dan = s.token("dan").await;
    let join = json!({ "code": code });
    let r = s
        .call("POST", "/v1/things/connect", Some(&carol), Some(&join))
        .await;
    assert_eq!(r.body["result"], "administrator", "{r:?}");
    let r = s
        .call("POST", "/v1/things/connect", Some(&dan), Some(&join))
        .await;
    assert_eq!(r.body["result"], "pending", "{r:?}");
    let r = s
        .call(
            "POST",
            &format!("{thing}/requests/dan/approve"),
            Some(&carol),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = s
        .call(
            "POST",
            &format!("{thing}/invites"),
            Some(&carol),
            Some(&json!({ "user": "olga" })),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let old_carol = account_id(&s.data, "carol");

    // Delete carol: the report lists her thing rights, and the thing keeps an administrator.
    let report = cli(&s.data, &["user", "delete", "carol"]);
    assert!(report.contains("1 thing membership"), "{report}");
    assert!(report.contains("as administrator"), "{report}");
    let r = s
        .call("GET", &format!("{thing}/subscribers"), Some(&dan), None)
        .await;
    assert_eq!(r.status, 200, "dan took over as administrator: {r:?}");
    let members: Vec<&Value> = r.body["members"].as_array().unwrap().iter().collect();
    assert_eq!(members.len(), 1, "{r:?}");
    assert_eq!(members[0]["user"], "dan");
    assert_eq!(members[0]["role"], "administrator");

    // Her name is gone from the thing tables and the operator's view.
    for (table, column) in [("thing_events", "actor"), ("thing_events", "event")] {
        let n = common::store_sql(
            &s.data,
            &format!("SELECT count(*) FROM {table} WHERE {column} LIKE '%carol%'"),
        );
        assert_eq!(n, "0", "{table}.{column} names carol");
    }
    let shown = cli(&s.data, &["thing", "show", &id]);
    assert!(!shown.contains("carol"), "{shown}");
    let n = common::store_sql(
        &s.data,
        &format!("SELECT count(*) FROM thing_principals WHERE principal = '{old_carol}'"),
    );
    assert_eq!(n, "0", "no row links a thing user to the deleted id");

    // A new carol: another id, no access, not administrator.
    add_user(&s.data, "carol", &[]);
    assert_ne!(
        account_id(&s.data, "carol"),
        old_carol,
        "ids are never reused"
    );
    let carol = s.token("carol").await;
    let r = s.call("GET", "/v1/things", Some(&carol), None).await;
    assert_eq!(r.body["things"], json!([]), "{r:?}");
    let r = s.call("GET", &thing, Some(&carol), None).await;
    assert_eq!(r.status, 404, "{r:?}");
    let r = s
        .call("POST", "/v1/things/connect", Some(&carol), Some(&join))
        .await;
    assert_eq!(r.body["result"], "pending", "a stranger again: {r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rights_keyed_by_name_are_migrated_to_account_ids() {
    // A data directory as an earlier version left it (before versioned migrations, so no
    // `schema_migrations`): `thing_users` maps names to the numbers
    // in the thing's state, `thing_events.actor` holds names. alice's rights are newer than her
    // account; bob's are older than his (a deleted bob's rights, then a new bob); ghost has no
    // account. Such directories exist only on the embedded store (PostgreSQL came later).
    if std::env::var("FLEETWIRE_TEST_STORE").as_deref() == Ok("postgres") {
        return;
    }
    let data = common::data_dir("thing-rights-migrate");
    common::write_config(&data, &config("", ""));
    add_user(&data, "alice", &[]);
    add_user(&data, "bob", &[]);
    let created = cli(
        &data,
        &["thing", "create", "--mode", "open", "--name", "lamp"],
    );
    let id = created
        .lines()
        .find_map(|l| l.strip_prefix("thing id: "))
        .unwrap()
        .trim()
        .to_owned();
    let conn = db(&data);
    let state: String = conn
        .query_row("SELECT state FROM things WHERE id = ?1", [&id], |r| {
            r.get(0)
        })
        .unwrap();
    let mut state: Value = serde_json::from_str(&state).unwrap();
    state["members"] = json!({ "1": "Administrator", "2": "Member", "3": "Member" });
    let now_ms = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    conn.execute_batch(
        "DROP TABLE IF EXISTS thing_principals;
         DROP TABLE IF EXISTS schema_migrations;
         DROP INDEX IF EXISTS things_by_creator;
         ALTER TABLE things DROP COLUMN created_by;
         CREATE TABLE thing_users (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
         INSERT INTO thing_users (id, name) VALUES (1, 'alice'), (2, 'ghost'), (3, 'bob');",
    )
    .unwrap();
    conn.execute(
        "UPDATE things SET state = ?2 WHERE id = ?1",
        rusqlite::params![id, state.to_string()],
    )
    .unwrap();
    for (at, actor, event) in [
        (1_000, "bob", "{\"Joined\":{\"invited\":false}}"),
        (now_ms + 60_000, "alice", "{\"Claimed\":null}"),
        (now_ms + 61_000, "ghost", "{\"Joined\":{\"invited\":false}}"),
    ] {
        conn.execute(
            "INSERT INTO thing_events (thing, at_ms, actor, via, event) VALUES (?1, ?2, ?3, 'api', ?4)",
            rusqlite::params![id, at, actor, event],
        )
        .unwrap();
    }
    drop(conn);

    // Any command opens the store, which migrates it.
    let list = cli(&data, &["thing", "list"]);
    assert!(list.starts_with("1 things"), "{list}");
    let conn = db(&data);
    let mut principals: Vec<(i64, String)> = conn
        .prepare("SELECT id, principal FROM thing_principals ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    principals.sort();
    assert_eq!(
        principals,
        [
            (1, account_id(&data, "alice")),
            (2, "ext:ghost".to_owned()),
            (3, "ext:bob".to_owned()),
        ]
    );
    let actors: Vec<String> = conn
        .prepare("SELECT actor FROM thing_events WHERE actor != '' ORDER BY at_ms")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(actors, ["3", "1", "2"], "events name numbers, not people");
    let old: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'thing_users'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(old, 0);
    drop(conn);

    // Served: alice administers her thing; the new bob has no access to the old bob's right.
    let s = Served::serve(data);
    let alice = s.token("alice").await;
    let r = s
        .call("GET", &format!("/v1/things/{id}"), Some(&alice), None)
        .await;
    assert_eq!(
        (r.status, &r.body["role"]),
        (200, &json!("administrator")),
        "{r:?}"
    );
    let bob = s.token("bob").await;
    let r = s
        .call("GET", &format!("/v1/things/{id}"), Some(&bob), None)
        .await;
    assert_eq!(r.status, 404, "{r:?}");
}
