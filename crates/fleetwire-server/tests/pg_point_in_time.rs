//! Point-in-time recovery of a fleet on PostgreSQL, the runbook of docs/OPERATING.md run for
//! real: a cluster with WAL archiving and a base backup; players are added, the time is noted,
//! more are added; the base backup restored to the noted time holds exactly the players added
//! before it (read back through `fleetwire-server player list`), none of the later ones.
//! Needs PostgreSQL's programs (`FLEETWIRE_PG_BIN`, set by `scripts/pg.sh start`).
#![allow(clippy::disallowed_methods, clippy::too_many_lines)] // a real clock; one runbook

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod common;
use common::pg_cluster::{Clusters, chown_postgres, free_port, pg, psql};
use common::{cli, data_dir};

fn players(data: &Path) -> usize {
    let list = cli(data, &["player", "list"]);
    list.lines()
        .last()
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{list}"))
}

#[test]
fn a_restore_to_a_noted_time_holds_exactly_what_was_written_before_it() {
    let bin = PathBuf::from(
        std::env::var("FLEETWIRE_PG_BIN")
            .expect("FLEETWIRE_PG_BIN: the PostgreSQL programs (eval \"$(scripts/pg.sh start)\")"),
    );
    let work = data_dir("pitr-cluster");
    std::fs::set_permissions(&work, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (primary, archive, base, restored) = (
        work.join("primary"),
        work.join("archive"),
        work.join("base"),
        work.join("restored"),
    );
    let _clusters = Clusters(bin.clone(), vec![primary.clone(), restored.clone()]);
    std::fs::create_dir_all(&archive).unwrap();
    chown_postgres(&work);
    let port = free_port();
    let socket = work.display().to_string();
    pg(
        &bin,
        "initdb",
        &[
            "-D",
            primary.to_str().unwrap(),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
        ],
    );
    let settings = format!(
        "listen_addresses = ''\nunix_socket_directories = '{socket}'\nport = {port}\n\
         wal_level = replica\narchive_mode = on\n\
         archive_command = 'test ! -f {a}/%f && cp %p {a}/%f.part && mv {a}/%f.part {a}/%f'\n",
        a = archive.display()
    );
    std::fs::write(primary.join("postgresql.auto.conf"), &settings).unwrap();
    chown_postgres(&primary);
    let log = work.join("primary.log");
    pg(
        &bin,
        "pg_ctl",
        &[
            "-D",
            primary.to_str().unwrap(),
            "-l",
            log.to_str().unwrap(),
            "-w",
            "start",
        ],
    );
    let server = format!("host={socket} port={port} user=postgres");
    psql(
        &format!("{server} dbname=postgres"),
        "CREATE DATABASE fleet",
    );
    let fleet = format!("{server} dbname=fleet");

    // A fleet on the primary, and a base backup of it.
    let data = data_dir("pitr-node");
    std::fs::write(
        data.join("fleetwire.toml"),
        format!("[store]\nurl = {fleet:?}\n"),
    )
    .unwrap();
    cli(&data, &["player", "add", "--approved", "--count", "3"]);
    pg(
        &bin,
        "pg_basebackup",
        &[
            "-h",
            &socket,
            "-p",
            &port.to_string(),
            "-U",
            "postgres",
            "-D",
            base.to_str().unwrap(),
            "-X",
            "none",
            "-c",
            "fast",
            "--no-sync",
        ],
    );

    // Two more, the time noted a second later, then four more a second after that.
    cli(&data, &["player", "add", "--approved", "--count", "2"]);
    std::thread::sleep(Duration::from_millis(1100));
    let noted = psql(&fleet, "SELECT clock_timestamp()");
    std::thread::sleep(Duration::from_millis(1100));
    cli(&data, &["player", "add", "--approved", "--count", "4"]);
    assert_eq!(players(&data), 9);
    // Everything up to now into the archive, then the primary is gone.
    let segment = psql(&fleet, "SELECT pg_walfile_name(pg_switch_wal())");
    let start = Instant::now();
    while psql(
        &fleet,
        "SELECT COALESCE(last_archived_wal, '') FROM pg_stat_archiver",
    ) < segment
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{segment} never archived"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    pg(
        &bin,
        "pg_ctl",
        &[
            "-D",
            primary.to_str().unwrap(),
            "-m",
            "immediate",
            "-w",
            "stop",
        ],
    );

    // The base backup, recovered to the noted time.
    std::fs::rename(&base, &restored).unwrap();
    std::fs::write(
        restored.join("postgresql.auto.conf"),
        format!(
            "{settings}archive_mode = off\nrestore_command = 'cp {a}/%f %p'\n\
             recovery_target_time = '{noted}'\nrecovery_target_action = 'promote'\n",
            a = archive.display()
        ),
    )
    .unwrap();
    std::fs::write(restored.join("recovery.signal"), "").unwrap();
    chown_postgres(&restored);
    let log = work.join("restored.log");
    pg(
        &bin,
        "pg_ctl",
        &[
            "-D",
            restored.to_str().unwrap(),
            "-l",
            log.to_str().unwrap(),
            "-w",
            "-t",
            "60",
            "start",
        ],
    );
    let start = Instant::now();
    while psql(
        &format!("{server} dbname=postgres"),
        "SELECT pg_is_in_recovery()",
    ) != "f"
    {
        assert!(start.elapsed() < Duration::from_secs(60), "never promoted");
        std::thread::sleep(Duration::from_millis(200));
    }
    let recovered = players(&data);
    pg(
        &bin,
        "pg_ctl",
        &["-D", restored.to_str().unwrap(), "-m", "fast", "-w", "stop"],
    );
    assert_eq!(
        recovered, 5,
        "restored to {noted}: the 3 + 2 players added before it, none of the 4 after"
    );
    let _ = std::fs::remove_dir_all(&work);
    let _ = std::fs::remove_dir_all(&data);
}
