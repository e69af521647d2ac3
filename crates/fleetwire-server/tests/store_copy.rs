//! `store copy --to postgres://…`: an embedded store with players, users, things, loggers,
//! content and audit events moves into PostgreSQL and the same data directory, pointed at the
//! database, lists the same things, with the audit chain intact and the content-signing key
//! unchanged. A second copy into the same database is refused; a source table that PostgreSQL
//! has no place for stops the copy before anything is written. Needs `FLEETWIRE_TEST_PG`.
#![allow(clippy::disallowed_methods)]

use std::path::Path;

mod common;
use common::api::run_with;
use common::{cli, data_dir};

/// What the operator sees of the fleet: each listing, by command.
fn listings(data: &Path) -> Vec<(String, String)> {
    [
        &["player", "list"][..],
        &["user", "list"],
        &["thing", "list"],
        &["logger", "list"],
        &["content", "list"],
        &["content", "key"],
        &["audit", "tail", "--count", "1000"],
    ]
    .iter()
    .map(|args| (args.join(" "), cli(data, args)))
    .collect()
}

fn psql_count(url: &str, table: &str) -> i64 {
    let out = std::process::Command::new("psql")
        .arg(url)
        .args(["-tAc", &format!("SELECT COUNT(*) FROM {table}")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn populated(tag: &str) -> std::path::PathBuf {
    let data = data_dir(tag);
    std::fs::write(
        data.join("fleetwire.toml"),
        "[accounts]\ndanger_insecure_fast_hashing = true\n",
    )
    .unwrap();
    cli(&data, &["player", "add", "--approved", "--count", "3"]);
    cli(&data, &["player", "add", "--name", "waiting"]);
    let out = run_with(
        &data,
        &["user", "add", "ada", "--group", "admin"],
        "Tulip-Harbour-7\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    cli(
        &data,
        &[
            "thing",
            "create",
            "--mode",
            "confirm",
            "--name",
            "cold room",
        ],
    );
    cli(&data, &["logger", "add", "--count", "2"]);
    std::fs::write(data.join("menu.txt"), b"soup of the day".repeat(1000)).unwrap();
    cli(
        &data,
        &[
            "content",
            "add",
            "--to",
            "all",
            data.join("menu.txt").to_str().unwrap(),
        ],
    );
    data
}

#[test]
fn an_embedded_store_moves_into_postgresql_verified() {
    let data = populated("store-copy");
    let before = listings(&data);
    let url = common::shared_postgres("store-copy");
    let report = cli(&data, &["store", "copy", "--to", &url]);
    assert!(report.contains("verified"), "{report}");
    assert!(report.contains("key content.key"), "{report}");

    // A second copy into a database that holds data is refused, and changes nothing.
    let players = psql_count(&url, "players");
    let again = run_with(&data, &["store", "copy", "--to", &url], "");
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already holds data"),
        "{again:?}"
    );
    assert_eq!(psql_count(&url, "players"), players);

    // The same directory on PostgreSQL lists the same fleet.
    let config = std::fs::read_to_string(data.join("fleetwire.toml")).unwrap();
    std::fs::write(
        data.join("fleetwire.toml"),
        format!("{config}\n[store]\nurl = {url:?}\n"),
    )
    .unwrap();
    std::fs::rename(data.join("fleetwire.db"), data.join("moved-away.db")).unwrap();
    let after = listings(&data);
    for ((command, was), (_, is)) in before.iter().zip(&after) {
        assert_eq!(was, is, "`{command}` differs after the move");
    }
    assert!(cli(&data, &["audit", "verify"]).contains("audit chain ok"));
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn a_table_postgresql_has_no_place_for_stops_the_copy_before_any_write() {
    let data = populated("store-copy-stray");
    let db = rusqlite::Connection::open(data.join("fleetwire.db")).unwrap();
    db.execute_batch(
        "CREATE TABLE stray_notes (note TEXT); INSERT INTO stray_notes VALUES ('keep me');",
    )
    .unwrap();
    drop(db);
    let url = common::shared_postgres("store-copy-stray");
    let out = run_with(&data, &["store", "copy", "--to", &url], "");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("stray_notes"), "{err}");
    assert_eq!(psql_count(&url, "players"), 0, "nothing is written");
    let _ = std::fs::remove_dir_all(&data);
}
