//! Helpers shared by the server's end-to-end tests.
#![allow(dead_code, unreachable_pub)] // each test crate uses its own subset

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The server binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_fleetwire-server");

/// Runs `fleetwire-server --data-dir DATA ARGS…`, asserts it succeeded, returns its stdout.
pub fn cli(data: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A fresh, empty `fleetwire-TAG-PID` directory under the system's temporary directory.
pub fn data_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fleetwire-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes `fleetwire.toml` into `data`. With `FLEETWIRE_TEST_STORE=postgres` (and the cluster
/// of `FLEETWIRE_TEST_PG`, see `scripts/pg.sh`), the server stores into a fresh PostgreSQL
/// database of its own instead of the embedded SQLite file: the same test, the other backend.
pub fn write_config(data: &Path, toml: &str) {
    let mut toml = toml.to_owned();
    if let Some(url) = postgres_database(data) {
        let _ = write!(toml, "\n[store]\nurl = {url:?}\n");
    }
    std::fs::write(data.join("fleetwire.toml"), toml).unwrap();
}

/// The `[store] url` of `data`'s `fleetwire.toml`, if it names one.
pub fn store_url(data: &Path) -> Option<String> {
    let toml = std::fs::read_to_string(data.join("fleetwire.toml")).ok()?;
    toml.lines()
        .filter_map(|l| l.trim().strip_prefix("url = "))
        .find_map(|v| serde_json::from_str::<String>(v).ok())
}

/// Everything the store of `data` holds, as bytes to search: the SQLite file, or a data-only
/// `pg_dump` of its PostgreSQL database (where bytes appear as `\x…` hex).
pub fn store_bytes(data: &Path) -> Vec<u8> {
    match store_url(data) {
        None => std::fs::read(data.join("fleetwire.db")).unwrap(),
        Some(url) => {
            let out = Command::new("pg_dump")
                .args(["--data-only", "--dbname", &url])
                .output()
                .expect("pg_dump (install postgresql-client)");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            out.stdout
        }
    }
}

/// A fresh PostgreSQL database for the test that owns `data`, when the tests run against
/// PostgreSQL; `None` for SQLite.
pub fn postgres_database(data: &Path) -> Option<String> {
    match std::env::var("FLEETWIRE_TEST_STORE").as_deref() {
        Ok("postgres") => {}
        Ok("sqlite") | Err(_) => return None,
        Ok(other) => panic!("FLEETWIRE_TEST_STORE={other}: sqlite or postgres"),
    }
    Some(shared_postgres(
        &data.file_name().unwrap().to_string_lossy(),
    ))
}

/// A fresh PostgreSQL database named after `tag`, for a test of its own or for several server
/// nodes of one test sharing it (`[store] url = "<this>"` in each node's `fleetwire.toml`).
/// Needs the cluster of `FLEETWIRE_TEST_PG` (`eval "$(scripts/pg.sh start)"`).
pub fn shared_postgres(tag: &str) -> String {
    let base = std::env::var("FLEETWIRE_TEST_PG").expect(
        "this test runs on PostgreSQL: set FLEETWIRE_TEST_PG with eval \"$(scripts/pg.sh start)\"",
    );
    let name: String = tag
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    let name = format!("t_{name}");
    for sql in [
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("CREATE DATABASE {name}"),
    ] {
        let out = Command::new("psql")
            .arg(format!("{base} dbname=postgres"))
            .args(["-v", "ON_ERROR_STOP=1", "-q", "-c", &sql])
            .output()
            .expect("psql (install postgresql-client)");
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    format!("{base} dbname={name}")
}

pub mod api;
pub mod pg_cluster;

/// Runs one SQL statement on the store of the data directory `data`, whichever backend its
/// `fleetwire.toml` names (the SQLite file, or the `[store] url` with `psql`): the first row's
/// columns joined by `|` (`NULL` as empty) for a query, the number of rows changed otherwise.
/// For tests that look at rows directly; the SQL must mean the same on both.
pub fn store_sql(data: &Path, sql: &str) -> String {
    if let Some(url) = store_url(data) {
        let out = Command::new("psql")
            .arg(&url)
            .args(["-v", "ON_ERROR_STOP=1", "-At", "-c", sql])
            .output()
            .expect("psql (install postgresql-client)");
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let first = text.lines().next().unwrap_or("").to_owned();
        match first.split_once(' ') {
            Some(("UPDATE" | "DELETE" | "INSERT", n)) => {
                n.rsplit(' ').next().unwrap_or(n).to_owned()
            }
            _ => first,
        }
    } else {
        let db = rusqlite::Connection::open(data.join("fleetwire.db")).unwrap();
        let mut stmt = db.prepare(sql).unwrap();
        if stmt.column_count() == 0 {
            return stmt.execute([]).unwrap().to_string();
        }
        let n = stmt.column_count();
        stmt.query_row([], |r| {
            Ok((0..n)
                .map(|i| match r.get::<_, rusqlite::types::Value>(i).unwrap() {
                    rusqlite::types::Value::Null => String::new(),
                    rusqlite::types::Value::Integer(v) => v.to_string(),
                    rusqlite::types::Value::Real(v) => v.to_string(),
                    rusqlite::types::Value::Text(v) => v,
                    rusqlite::types::Value::Blob(v) => format!("{v:?}"),
                })
                .collect::<Vec<_>>()
                .join("|"))
        })
        .unwrap()
    }
}
