//! Content on several nodes sharing one PostgreSQL database: a file published through node A
//! (after both nodes started) is announced to a player logged in on node B (a new configuration
//! hash in its heartbeat reply) and served whole by node B — over plain HTTP, HTTPS and the
//! framed transfer port — though B never had it on its disk; both nodes sign with the one
//! content key; a signed request accepted by A is refused as a replay by B; bytes B sent show in
//! the totals A's command line reads.
//!
//! Runs on PostgreSQL only (`FLEETWIRE_TEST_PG`, see `scripts/pg.sh`).
#![allow(clippy::disallowed_methods, clippy::too_many_lines)] // a real clock; one end-to-end story

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleetwire_session::{ClientConfig, ClientEvent, PlayerStatus};
use fleetwire_tokio::framed::{connect_player, receive_framed_many};
use fleetwire_tokio::session::{PlayerTransport, run_player};
use fleetwire_tokio::tls;
use fleetwire_tokio::transfer::{
    AUTH_HEADER, FetchOptions, HttpEndpoint, ReceiveOptions, RequestSigner, fetch_http,
};
use fleetwire_transfer::{PublicKey, ReceiverConfig};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

mod common;
mod running;
use common::{BIN, cli, shared_postgres};
use running::{GUARD, add_players, bytes, publish};

const CHUNK: usize = 65_536;

/// One `serve` process on the shared database, stopped with SIGINT (then SIGKILL) when dropped.
struct Node {
    data: PathBuf,
    child: Child,
    sessions: SocketAddr,
    https: SocketAddr,
    http: SocketAddr,
    framed: SocketAddr,
    fingerprint: [u8; 32],
}

impl Node {
    /// A fresh data directory whose store is `db`.
    fn data_dir(name: &str, db: &str) -> PathBuf {
        let data = common::data_dir(&format!("multi-{name}"));
        std::fs::write(
            data.join("fleetwire.toml"),
            format!(
                "[session]\nlisten = \"127.0.0.1:0\"\nheartbeat_interval_secs = 1\n\
                 silence_grace_secs = 1\n\
                 [http]\nhttps_listen = \"127.0.0.1:0\"\nhttp_listen = \"127.0.0.1:0\"\n\
                 [sensor]\nlisten = \"127.0.0.1:0\"\n[transfer]\nlisten = \"127.0.0.1:0\"\n\
                 [store]\nurl = {db:?}\n"
            ),
        )
        .unwrap();
        data
    }

    fn start(data: PathBuf) -> Self {
        let mut child = Command::new(BIN)
            .arg("--data-dir")
            .arg(&data)
            .arg("serve")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let (mut fingerprint, mut sessions, mut https, mut http, mut framed) =
            (None, None, None, None, None);
        let after = |text: &str, prefix: &str| -> Option<SocketAddr> {
            text.strip_prefix(prefix)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        };
        let mut text = String::new();
        while !text.starts_with("data directory") {
            text.clear();
            assert!(
                stdout.read_line(&mut text).unwrap() > 0,
                "server exited early"
            );
            if let Some(fp) = text.strip_prefix("certificate fingerprint (SHA-256): ") {
                fingerprint = tls::parse_fingerprint(fp.trim());
            }
            sessions = sessions.or(after(&text, "player sessions on "));
            https = https.or(after(&text, "https api on "));
            http = http.or(after(&text, "http on "));
            framed = framed.or(after(&text, "framed transfer on "));
        }
        std::thread::spawn(move || {
            let mut sink = String::new();
            while stdout.read_line(&mut sink).is_ok_and(|n| n > 0) {
                sink.clear();
            }
        });
        Self {
            data,
            child,
            sessions: sessions.unwrap(),
            https: https.unwrap(),
            http: http.unwrap(),
            framed: framed.unwrap(),
            fingerprint: fingerprint.unwrap(),
        }
    }

    /// `GET path` on this node's plain HTTP port with the header `auth`; the status.
    async fn status(&self, path: &str, auth: &str) -> u16 {
        let mut tcp = tokio::net::TcpStream::connect(self.http).await.unwrap();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{AUTH_HEADER}: {auth}\r\n\r\n"
        );
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut reply = Vec::new();
        tokio::time::timeout(GUARD, tcp.read_to_end(&mut reply))
            .await
            .unwrap()
            .unwrap();
        std::str::from_utf8(&reply[9..12]).unwrap().parse().unwrap()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = self.child.try_wait() {
                let _ = std::fs::remove_dir_all(&self.data);
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

fn sign(signer: &RequestSigner, path: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    signer.header("GET", path, now).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_published_on_one_node_is_served_by_another_and_requests_are_single_use_fleet_wide()
{
    let db = shared_postgres("content_multi_node");
    let a = Node::start(Node::data_dir("a", &db));
    let b = Node::start(Node::data_dir("b", &db));

    // Provisioned through node A's data directory; the player logs in on node B and reports
    // every configuration hash it hears.
    let players = add_players(&a.data, 1);
    let (id, secret) = players[0].clone();
    let transport = PlayerTransport::Tls {
        config: tls::pinned_client_config(b.fingerprint).unwrap(),
        server_name: ServerName::try_from("fleetwire.local").unwrap(),
    };
    let (_status_tx, status) = watch::channel(PlayerStatus::default());
    let (hash_tx, mut hashes) = mpsc::unbounded_channel();
    let (sessions, player_secret) = (b.sessions, secret.clone());
    let player = tokio::spawn(async move {
        run_player(
            sessions,
            &transport,
            Arc::new(ClientConfig::new(id, player_secret)),
            status,
            move |e| {
                if let ClientEvent::ConfigChanged { hash } = e {
                    let _ = hash_tx.send(*hash);
                }
            },
            std::future::pending(),
        )
        .await
    });
    let start = Instant::now();
    while !cli(&a.data, &["player", "list"]).contains("1 online") {
        assert!(start.elapsed() < GUARD, "never online");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Published through node A while both nodes run: the player on B hears of it.
    let file = bytes(20 * CHUNK + 123, 11);
    let content = publish(&a.data, "loop.mp4", &file, &id.to_string(), CHUNK as u32);
    tokio::time::timeout(GUARD, hashes.recv())
        .await
        .expect("the player on node B heard no configuration change")
        .unwrap();
    // Node B has no copy of the file on its disk: it comes from the store.

    // One content key for the fleet.
    let key_a = cli(&a.data, &["content", "key"]);
    let key_b = cli(&b.data, &["content", "key"]);
    assert_eq!(key_a, key_b, "every node signs with the one content key");
    let mut key = [0u8; 32];
    hex::decode_to_slice(key_b.trim(), &mut key).unwrap();
    let trusted = vec![PublicKey(key)];

    // Node B serves the whole file over plain HTTP and over HTTPS (the assignment made on A is
    // seen by B).
    let signer = Arc::new(RequestSigner::new(*id.as_bytes(), secret.as_bytes()));
    let endpoints = [
        HttpEndpoint::http(b.http).with_signer(signer.clone()),
        HttpEndpoint::https(
            b.https,
            tls::pinned_client_config(b.fingerprint).unwrap(),
            ServerName::try_from("fleetwire.local").unwrap(),
        )
        .with_signer(signer.clone()),
    ];
    for (n, endpoint) in endpoints.iter().enumerate() {
        let dest = b.data.join(format!("fetched-{n}.mp4"));
        let report = tokio::time::timeout(
            GUARD,
            fetch_http(
                endpoint,
                &content,
                &dest,
                &trusted,
                &FetchOptions::default(),
                |_| {},
            ),
        )
        .await
        .unwrap()
        .unwrap();
        assert!(report.progress.done);
        assert_eq!(
            std::fs::read(&dest).unwrap(),
            file,
            "B served A's file ({n})"
        );
    }

    // … and over the framed transfer port.
    let mut conn = tokio::time::timeout(
        GUARD,
        connect_player(
            b.framed,
            tls::pinned_client_config(b.fingerprint).unwrap(),
            ServerName::try_from("fleetwire.local").unwrap(),
            Arc::new(ClientConfig::new(id, secret.clone())),
        ),
    )
    .await
    .unwrap()
    .unwrap();
    let dir = b.data.join("framed");
    std::fs::create_dir_all(&dir).unwrap();
    let received = tokio::time::timeout(
        GUARD,
        receive_framed_many(
            &mut conn.stream,
            &conn.already_read,
            &ReceiveOptions {
                config: Arc::new(ReceiverConfig::new(trusted.clone())),
            },
            None,
            |m| Some(dir.join(m.file_id().to_string())),
            |_| {},
        ),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(received.failed.is_empty(), "{received:?}");
    assert_eq!(received.received.len(), 1);
    assert_eq!(
        std::fs::read(dir.join(&content)).unwrap(),
        file,
        "B served A's file over the framed port"
    );

    // A signed request accepted by A is a replay on B (and on A); a fresh one works on B.
    let path = format!("/v1/content/{content}/manifest");
    let captured = sign(&signer, &path);
    assert_eq!(a.status(&path, &captured).await, 200);
    assert_eq!(b.status(&path, &captured).await, 401, "replayed on B");
    assert_eq!(a.status(&path, &captured).await, 401, "replayed on A");
    assert_eq!(b.status(&path, &sign(&signer, &path)).await, 200);

    // What B sent (HTTP, HTTPS and framed) is in the totals every node reads.
    let want = format!(
        "sent to {}: {} bytes",
        hex::encode(id.as_bytes()),
        3 * file.len()
    );
    let start = Instant::now();
    loop {
        let list = cli(&a.data, &["content", "list"]);
        if list.contains(&want) {
            break;
        }
        assert!(start.elapsed() < GUARD, "want {want:?}:\n{list}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    player.abort();
}
