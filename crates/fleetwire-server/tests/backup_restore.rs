//! Backups of the embedded store while the server serves: `backup now` gives a verified copy
//! (integrity, rows), the schedule adds more, `backup restore` refuses while a server runs and
//! refuses to overwrite without `--force`; with it the store is back to the backup's rows and
//! the replaced database is kept beside it. No key file's bytes are in a backup.
#![allow(clippy::disallowed_methods)] // a real clock

use std::path::Path;
use std::time::{Duration, Instant};

mod common;
use common::api::{Served, config, run_with};
use common::cli;

fn players(data: &Path) -> usize {
    let list = cli(data, &["player", "list"]);
    list.lines()
        .last()
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{list}"))
}

fn backups(data: &Path) -> Vec<String> {
    cli(data, &["backup", "list"])
        .lines()
        .skip(1)
        .filter(|l| l.contains(" ok "))
        .map(|l| l.split_whitespace().next().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_are_taken_while_serving_and_restored_only_when_stopped() {
    if std::env::var("FLEETWIRE_TEST_STORE").as_deref() == Ok("postgres") {
        return; // PostgreSQL's backups are its own (docs/OPERATING.md); this is the embedded store
    }
    let served = Served::start(
        "backup",
        &config("", "[backup]\ninterval_secs = 1\nkeep_days = 14\n"),
        |data| {
            cli(data, &["player", "add", "--approved", "--count", "3"]);
        },
    );
    let data = served.data.clone();
    let out = cli(&data, &["backup", "now"]);
    assert!(out.contains("integrity ok"), "{out}");
    let id = out
        .strip_prefix("backup ")
        .and_then(|r| r.split(':').next())
        .unwrap()
        .to_owned();
    cli(&data, &["player", "add", "--approved", "--count", "2"]);
    assert_eq!(players(&data), 5);
    let start = Instant::now();
    while backups(&data).len() < 3 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the schedule took no backups"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // Not while serving.
    let refused = run_with(&data, &["backup", "restore", &id, "--force"], "");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("a server is running"),
        "{refused:?}"
    );
    let data = served.stop();

    // Not over an existing store without --force.
    let refused = run_with(&data, &["backup", "restore", &id], "");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--force"),
        "{refused:?}"
    );
    assert_eq!(players(&data), 5);

    let out = cli(&data, &["backup", "restore", &id, "--force"]);
    assert!(out.contains("integrity ok"), "{out}");
    assert_eq!(players(&data), 3, "back to the backup's rows");
    let kept: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains("before-restore"))
        .collect();
    assert_eq!(kept.len(), 1, "the replaced store is kept");

    // The key files are never in a backup.
    let file = std::fs::read(data.join("backups").join(format!("{id}.db"))).unwrap();
    for key in ["totp.key", "device-cookie.key", "content.key"] {
        if let Ok(k) = std::fs::read(data.join(key)) {
            assert!(
                !file.windows(k.len()).any(|w| w == k),
                "{key} is in the backup"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&data);
}
