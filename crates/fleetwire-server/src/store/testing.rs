//! The repository tests' harness: every test runs against both backends.
//!
//! SQLite in a fresh temporary directory; PostgreSQL in a fresh database of the cluster named by
//! `FLEETWIRE_TEST_PG` (libpq key-value pairs without `dbname`; `eval "$(scripts/pg.sh start)"`
//! starts a throwaway one). Without it the PostgreSQL half fails with that instruction: a
//! repository test that quietly ran on one backend only would prove half of what it says.

use std::sync::atomic::{AtomicU32, Ordering};

use super::Store;
use crate::config::StoreSettings;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A fresh store of each backend: `[("sqlite", store), ("postgresql", store)]`.
pub(crate) async fn backends(tag: &str) -> Vec<(&'static str, Store)> {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let unique = format!("{tag}_{}_{n}", std::process::id());
    let dir = std::env::temp_dir().join(format!("fleetwire-store-{unique}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let sqlite = Store::open(&StoreSettings::default(), &dir).await.unwrap();
    let url = postgres_database(&unique).await;
    let settings = StoreSettings {
        url: Some(url),
        ..StoreSettings::default()
    };
    let postgres = Store::open(&settings, &dir).await.unwrap();
    vec![("sqlite", sqlite), ("postgresql", postgres)]
}

/// A new, empty database in the test cluster; its connection string.
pub(crate) async fn postgres_database(name: &str) -> String {
    let base = std::env::var("FLEETWIRE_TEST_PG").unwrap_or_else(|_| {
        panic!(
            "the repository tests run on PostgreSQL too: set FLEETWIRE_TEST_PG, e.g. with \
             eval \"$(scripts/pg.sh start)\" (scripts/test.sh does)"
        )
    });
    let name = format!(
        "r_{}",
        name.to_ascii_lowercase()
            .replace(|c: char| !c.is_ascii_alphanumeric(), "_")
    );
    let (client, connection) =
        tokio_postgres::connect(&format!("{base} dbname=postgres"), tokio_postgres::NoTls)
            .await
            .unwrap();
    let task = tokio::spawn(connection);
    // Two statements: neither may run inside a (multi-statement) transaction block.
    for sql in [
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("CREATE DATABASE {name}"),
    ] {
        client.batch_execute(&sql).await.unwrap();
    }
    drop(client);
    let _ = task.await;
    format!("{base} dbname={name}")
}
