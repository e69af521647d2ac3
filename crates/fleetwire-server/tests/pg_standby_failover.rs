//! A standby that takes over (issue 13): a primary with a synchronous streaming standby; a
//! server node whose `[store] url` names both hosts with `target_session_attrs=read-write`.
//! Players are provisioned (acknowledged = committed on both, synchronous replication) and one
//! logs in; the primary dies (`pg_ctl stop -m immediate`) and the standby is promoted. The same
//! running node, without a restart, logs a player in again once it reaches the new primary, and
//! every player acknowledged before the failure is there. Needs `FLEETWIRE_PG_BIN`.
#![allow(clippy::disallowed_methods, clippy::too_many_lines)] // a real clock; one runbook

use std::sync::Arc;
use std::time::{Duration, Instant};

use fleetwire_session::{ClientConfig, ClientEvent, PlayerId, PlayerSecret, PlayerStatus};
use fleetwire_tokio::session::{PlayerTransport, run_player};
use fleetwire_tokio::tls;
use rustls::pki_types::ServerName;
use tokio::sync::watch;

mod common;
use common::api::Served;
use common::pg_cluster::{Clusters, chown_postgres, free_port, pg, psql};
use common::{cli, data_dir};

fn provisioned(out: &str) -> Vec<(PlayerId, PlayerSecret)> {
    let mut ids = out
        .lines()
        .filter_map(|l| l.strip_prefix("player id:"))
        .map(|s| s.trim().parse::<PlayerId>().unwrap());
    let secrets = out
        .lines()
        .filter_map(|l| l.strip_prefix("secret:"))
        .map(|s| s.trim().parse::<PlayerSecret>().unwrap());
    secrets.map(|s| (ids.next().unwrap(), s)).collect()
}

/// Logs `player` in on `addr` once; true when it got in.
async fn logs_in(
    addr: std::net::SocketAddr,
    pin: [u8; 32],
    player: &(PlayerId, PlayerSecret),
) -> bool {
    let transport = PlayerTransport::Tls {
        config: tls::pinned_client_config(pin).unwrap(),
        server_name: ServerName::try_from("fleetwire.local").unwrap(),
    };
    let (_tx, status) = watch::channel(PlayerStatus::default());
    let (done_tx, mut done_rx) = watch::channel(false);
    let mut got_in = false;
    let _ = tokio::time::timeout(
        Duration::from_secs(10),
        run_player(
            addr,
            &transport,
            Arc::new(ClientConfig::new(player.0, player.1.clone())),
            status,
            |e| {
                if matches!(e, ClientEvent::LoggedIn { .. }) {
                    got_in = true;
                    let _ = done_tx.send(true);
                }
            },
            async move {
                let _ = done_rx.wait_for(|d| *d).await;
            },
        ),
    )
    .await;
    got_in
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promoted_standby_serves_the_running_node_and_lost_nothing_acknowledged() {
    let bin = std::path::PathBuf::from(
        std::env::var("FLEETWIRE_PG_BIN")
            .expect("FLEETWIRE_PG_BIN: the PostgreSQL programs (eval \"$(scripts/pg.sh start)\")"),
    );
    let work = data_dir("failover-cluster");
    std::fs::set_permissions(&work, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (primary, standby) = (work.join("primary"), work.join("standby"));
    let _clusters = Clusters(bin.clone(), vec![primary.clone(), standby.clone()]);
    let (p1, p2) = (free_port(), free_port());
    let socket = work.display().to_string();
    chown_postgres(&work);
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
    std::fs::write(
        primary.join("postgresql.auto.conf"),
        format!(
            "listen_addresses = ''\nunix_socket_directories = '{socket}'\nport = {p1}\n\
             wal_level = replica\nmax_wal_senders = 4\n\
             synchronous_standby_names = 'standby1'\nsynchronous_commit = on\n"
        ),
    )
    .unwrap();
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
    pg(
        &bin,
        "pg_basebackup",
        &[
            "-h",
            &socket,
            "-p",
            &p1.to_string(),
            "-U",
            "postgres",
            "-D",
            standby.to_str().unwrap(),
            "-X",
            "stream",
            "-c",
            "fast",
            "--no-sync",
        ],
    );
    std::fs::write(
        standby.join("postgresql.auto.conf"),
        format!(
            "listen_addresses = ''\nunix_socket_directories = '{socket}'\nport = {p2}\n\
             wal_level = replica\nmax_wal_senders = 4\nhot_standby = on\n\
             primary_conninfo = 'host={socket} port={p1} user=postgres application_name=standby1'\n"
        ),
    )
    .unwrap();
    std::fs::write(standby.join("standby.signal"), "").unwrap();
    chown_postgres(&standby);
    let log = work.join("standby.log");
    pg(
        &bin,
        "pg_ctl",
        &[
            "-D",
            standby.to_str().unwrap(),
            "-l",
            log.to_str().unwrap(),
            "-w",
            "start",
        ],
    );
    let primary_conn = format!("host={socket} port={p1} user=postgres");
    let start = Instant::now();
    while psql(
        &format!("{primary_conn} dbname=postgres"),
        "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'",
    ) != "1"
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the standby never became synchronous"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    psql(
        &format!("{primary_conn} dbname=postgres"),
        "CREATE DATABASE fleet",
    );

    // One node, told about both hosts; only a read-write one will do.
    let url = format!(
        "host={socket},{socket} port={p1},{p2} user=postgres dbname=fleet \
         target_session_attrs=read-write connect_timeout=2"
    );
    let data = data_dir("failover-node");
    std::fs::write(
        data.join("fleetwire.toml"),
        format!(
            "[session]\nlisten = \"127.0.0.1:0\"\n\
             [http]\nhttps_listen = \"127.0.0.1:0\"\nhttp_listen = \"127.0.0.1:0\"\n\
             [sensor]\nlisten = \"127.0.0.1:0\"\n[transfer]\nlisten = \"127.0.0.1:0\"\n\
             [accounts]\ndanger_insecure_fast_hashing = true\n\
             [store]\nurl = {url:?}\n"
        ),
    )
    .unwrap();
    let before = provisioned(&cli(
        &data,
        &["player", "add", "--approved", "--count", "5"],
    ));
    assert_eq!(before.len(), 5);
    let node = Served::serve(data.clone());
    assert!(
        logs_in(node.players, node.pin, &before[0]).await,
        "login before the failure"
    );

    // The primary dies; the standby is promoted.
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
    pg(
        &bin,
        "pg_ctl",
        &["-D", standby.to_str().unwrap(), "-w", "promote"],
    );

    // The running node reaches the new primary by itself: a login succeeds within a bound.
    let start = Instant::now();
    let mut attempts = 0;
    while !logs_in(node.players, node.pin, &before[1]).await {
        attempts += 1;
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no login through the promoted standby after {attempts} attempts"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Nothing acknowledged before the failure is lost, and the fleet takes writes again.
    let list = cli(&data, &["player", "list"]);
    for (id, _) in &before {
        assert!(list.contains(&id.to_string()), "{id} lost:\n{list}");
    }
    let after = provisioned(&cli(&data, &["player", "add", "--approved"]));
    assert_eq!(after.len(), 1);
    assert!(
        logs_in(node.players, node.pin, &after[0]).await,
        "a player added after"
    );
    drop(node);
    pg(
        &bin,
        "pg_ctl",
        &["-D", standby.to_str().unwrap(), "-m", "fast", "-w", "stop"],
    );
    let _ = std::fs::remove_dir_all(&work);
    let _ = std::fs::remove_dir_all(&data);
}
