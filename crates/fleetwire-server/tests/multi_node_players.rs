//! Three server nodes on one PostgreSQL database serve one fleet of players: a player logged in
//! to node A is listed online by `player list` on node C; removed with `player remove` on node
//! B, it is cut by node A within the revocation sweep's period (2 s) plus a little; and node C
//! then lists it as gone. Needs `FLEETWIRE_TEST_PG` (`eval "$(scripts/pg.sh start)"`).
#![allow(clippy::disallowed_methods)] // a real clock

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleetwire_session::{
    ClientConfig, CloseCode, PlayerId, PlayerSecret, PlayerStatus, SessionError,
};
use fleetwire_tokio::session::{PlayerTransport, run_player};
use fleetwire_tokio::tls;
use rustls::pki_types::ServerName;
use tokio::sync::watch;

mod common;
use common::api::Served;
use common::{cli, data_dir};

fn node(tag: &str, url: &str) -> std::path::PathBuf {
    let data = data_dir(tag);
    std::fs::write(
        data.join("fleetwire.toml"),
        format!(
            "[session]\nlisten = \"127.0.0.1:0\"\nheartbeat_interval_secs = 1\n\
             [http]\nhttps_listen = \"127.0.0.1:0\"\nhttp_listen = \"127.0.0.1:0\"\n\
             [sensor]\nlisten = \"127.0.0.1:0\"\n[transfer]\nlisten = \"127.0.0.1:0\"\n\
             [accounts]\ndanger_insecure_fast_hashing = true\n\
             [store]\nurl = {url:?}\n"
        ),
    )
    .unwrap();
    data
}

fn listed(data: &Path) -> String {
    cli(data, &["player", "list"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_on_one_node_is_seen_and_revoked_from_the_others() {
    let url = common::shared_postgres("multi-node-players");
    let (a, b, c) = (
        node("mn-players-a", &url),
        node("mn-players-b", &url),
        node("mn-players-c", &url),
    );
    let added = cli(&a, &["player", "add", "--approved", "--name", "lobby"]);
    let line = |prefix: &str| {
        added
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap()
            .trim()
            .to_owned()
    };
    let id: PlayerId = line("player id:").parse().unwrap();
    let secret: PlayerSecret = line("secret:").parse().unwrap();
    let node_a = Served::serve(a.clone());
    let _node_b = Served::serve(b.clone());
    let _node_c = Served::serve(c.clone());

    let transport = PlayerTransport::Tls {
        config: tls::pinned_client_config(node_a.pin).unwrap(),
        server_name: ServerName::try_from("fleetwire.local").unwrap(),
    };
    let (_status_tx, status) = watch::channel(PlayerStatus {
        content: "menu-board".into(),
        ..PlayerStatus::default()
    });
    let addr = node_a.players;
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

    // Online via A, listed online on C (presence is written in batches, once a second).
    let start = Instant::now();
    loop {
        let list = listed(&c);
        if list.contains("1 online") && list.contains("menu-board") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "node C never listed the player online:\n{list}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Removed on B: node A cuts it.
    cli(&b, &["player", "remove", &id.to_string()]);
    let removed = Instant::now();
    let reason = tokio::time::timeout(Duration::from_secs(10), player)
        .await
        .expect("node A cuts the removed player")
        .unwrap()
        .unwrap();
    let took = removed.elapsed();
    assert!(
        matches!(
            reason,
            SessionError::PeerClosed {
                code: CloseCode::Revoked,
                ..
            }
        ),
        "{reason:?}"
    );
    // The sweep runs every 2 s; allow one query's worth on a loaded machine.
    assert!(took < Duration::from_secs(3), "cut after {took:?}");
    let list = listed(&c);
    assert!(!list.contains(&id.to_string()), "{list}");
}
