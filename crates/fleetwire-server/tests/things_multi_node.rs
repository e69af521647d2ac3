//! Things on several nodes sharing one PostgreSQL database: three `fleetwire-server serve`
//! processes on loopback, one database (`common::shared_postgres`). Membership, revocation and
//! invites live in the database and are read at every request, so what one node decides holds
//! on the others at the next request; the code-guess limits live in each node's memory, so a
//! source that spreads its guesses over N nodes gets at most N times each limit (the bound
//! `docs/SECURITY.md` states, checked here exactly).
//!
//! Callers are gateway users (`X-Fleetwire-User`, `[things] danger_trust_user_header = true`);
//! things are made with the operator's `thing create` on node A's data directory.
//! Needs the cluster of `FLEETWIRE_TEST_PG` (`eval "$(scripts/pg.sh start)"`).
//! It also needs every service `serve` starts to run on PostgreSQL: until the loggers,
//! accounts, content and framed-transfer domains leave `Store::conn()`, `serve` stops on
//! PostgreSQL before its API listens (the things code itself was checked with those services
//! left out).
#![allow(clippy::disallowed_methods, clippy::too_many_lines)] // a real clock; one story per test

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fleetwire_tokio::tls;
use rustls::pki_types::ServerName;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;
use common::{BIN, cli};

/// One node: its own data directory (TLS identity, configuration), the shared database.
struct Node {
    child: Child,
    data: PathBuf,
    https: SocketAddr,
    pin: [u8; 32],
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

#[derive(Debug)]
struct Reply {
    status: u16,
    body: Value,
}

fn node(tag: &str, name: &str, db: &str, things: &str) -> Node {
    let data = std::env::temp_dir().join(format!(
        "fleetwire-things-multi-{tag}-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("fleetwire.toml"),
        format!(
            "[session]\nlisten = \"127.0.0.1:0\"\n\
             [http]\nhttps_listen = \"127.0.0.1:0\"\nhttp_listen = \"127.0.0.1:0\"\n\
             [sensor]\nlisten = \"127.0.0.1:0\"\n[transfer]\nlisten = \"127.0.0.1:0\"\n\
             [accounts]\ndanger_insecure_fast_hashing = true\n\
             [things]\ndanger_trust_user_header = true\n{things}\n\
             [store]\nurl = {db:?}\n"
        ),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .arg("--data-dir")
        .arg(&data)
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let (mut pin, mut https) = (None, None);
    let mut line = String::new();
    while !line.starts_with("data directory") {
        line.clear();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "node {name} exited early"
        );
        if let Some(fp) = line.strip_prefix("certificate fingerprint (SHA-256): ") {
            pin = tls::parse_fingerprint(fp.trim());
        }
        if let Some(rest) = line.strip_prefix("https api on ") {
            https = rest.split_whitespace().next().and_then(|a| a.parse().ok());
        }
    }
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    Node {
        child,
        data,
        https: https.expect("https address printed"),
        pin: pin.expect("fingerprint printed"),
    }
}

impl Node {
    /// One HTTPS request from `source` as the gateway user `user`.
    async fn call(
        &self,
        source: Ipv4Addr,
        method: &str,
        path: &str,
        user: &str,
        body: Option<Value>,
    ) -> Reply {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\
             X-Fleetwire-User: {user}\r\n\r\n{body}",
            self.https.port(),
            body.len()
        );
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(IpAddr::V4(source), 0)).unwrap();
        let tcp = tokio::time::timeout(Duration::from_secs(10), socket.connect(self.https))
            .await
            .unwrap()
            .unwrap();
        let connector =
            tokio_rustls::TlsConnector::from(tls::pinned_client_config(self.pin).unwrap());
        let mut stream = connector
            .connect(ServerName::try_from("fleetwire.local").unwrap(), tcp)
            .await
            .unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut raw)).await;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {text:?}"));
        Reply {
            status,
            body: serde_json::from_str(body).unwrap_or(Value::Null),
        }
    }

    async fn as_user(&self, method: &str, path: &str, user: &str, body: Option<Value>) -> Reply {
        self.call(Ipv4Addr::LOCALHOST, method, path, user, body)
            .await
    }

    async fn connect(&self, user: &str, code: &str) -> Reply {
        self.as_user(
            "POST",
            "/v1/things/connect",
            user,
            Some(json!({ "code": code })),
        )
        .await
    }
}

/// `thing create --mode MODE` on `data`'s node: the thing's id and code.
fn create(data: &Path, mode: &str) -> (String, String) {
    let out = cli(data, &["thing", "create", "--mode", mode, "--name", mode]);
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("{name} in {out}"))
            .trim()
            .to_owned()
    };
    (field("thing id:"), field("code:"))
}

fn users<'a>(r: &'a Reply, list: &str) -> Vec<&'a str> {
    r.body[list]
        .as_array()
        .map(|a| a.iter().filter_map(|m| m["user"].as_str()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_one_node_decides_holds_on_the_others_at_once() {
    let db = common::shared_postgres("things_multi_node");
    let a = node("share", "a", &db, "");
    let b = node("share", "b", &db, "");
    let c = node("share", "c", &db, "");

    // A thing made on A is found by its code on B; its first user is administrator.
    let (id, code) = create(&a.data, "open");
    let thing = format!("/v1/things/{id}");
    let r = b.connect("alice", &code).await;
    assert_eq!(
        (r.status, &r.body["result"]),
        (200, &json!("administrator")),
        "{r:?}"
    );
    let r = c.connect("bob", &code).await;
    assert_eq!(
        (r.status, &r.body["result"]),
        (200, &json!("member")),
        "{r:?}"
    );
    let r = a.as_user("GET", &thing, "alice", None).await;
    assert_eq!(users(&r, "members"), ["alice", "bob"], "{r:?}");

    // An administrator's revocation on A refuses the member on B and C at the next request.
    let r = a
        .as_user("DELETE", &format!("{thing}/members/bob"), "alice", None)
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    for n in [&b, &c] {
        let r = n.as_user("GET", &thing, "bob", None).await;
        assert_eq!(r.status, 404, "{r:?}");
        let r = n.as_user("GET", "/v1/things", "bob", None).await;
        assert_eq!(r.body["things"], json!([]), "{r:?}");
        let r = n.connect("bob", &code).await;
        assert_eq!(
            r.status, 404,
            "a revoked member is blocked everywhere: {r:?}"
        );
    }

    // An invite made on A is redeemed on B, once.
    let (id, code) = create(&a.data, "invite");
    let thing = format!("/v1/things/{id}");
    assert_eq!(
        a.connect("alice", &code).await.body["result"],
        "administrator"
    );
    let r = c.connect("dave", &code).await;
    assert_eq!(r.status, 404, "not invited: {r:?}");
    let r = a
        .as_user(
            "POST",
            &format!("{thing}/invites"),
            "alice",
            Some(json!({ "user": "carol" })),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let r = b.connect("carol", &code).await;
    assert_eq!(
        (r.status, &r.body["result"]),
        (200, &json!("member")),
        "{r:?}"
    );
    let r = c.connect("carol", &code).await;
    assert_eq!(
        (r.status, &r.body["result"]),
        (200, &json!("already_member")),
        "{r:?}"
    );
    let r = c.as_user("GET", &thing, "alice", None).await;
    assert_eq!(
        users(&r, "invites"),
        Vec::<&str>::new(),
        "the invite is used up: {r:?}"
    );
    assert_eq!(users(&r, "members"), ["alice", "carol"], "{r:?}");
    // Removed on C, the invitee's invite does not come back on A.
    let r = c
        .as_user("DELETE", &format!("{thing}/members/carol"), "alice", None)
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(a.connect("carol", &code).await.status, 404);

    // A rotation on B retires the old code on every node.
    let r = b
        .as_user("POST", &format!("{thing}/code/rotate"), "alice", None)
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let new = r.body["code"].as_str().unwrap().to_owned();
    assert_eq!(c.connect("alice", &code).await.status, 404);
    assert_eq!(
        a.connect("alice", &new).await.body["result"],
        "already_member"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_gets_at_most_nodes_times_the_per_source_burst() {
    let db = common::shared_postgres("things_multi_node_limits");
    // Per node: a burst of 3 wrong codes, then one an hour; the lockout engine and the global
    // cap set out of the way so the per-source GCRA is what is measured.
    let settings = "check_character = false\nsource_burst = 3\nsource_period_secs = 3600\n\
                    max_failures = 100\nhard_limit = 100\nglobal_failures_per_minute = 0\n";
    let a = node("limits", "a", &db, settings);
    let b = node("limits", "b", &db, settings);
    let attacker = Ipv4Addr::new(127, 0, 0, 2);
    let guess = |i: usize| format!("{:0>10}", format!("ZZ{i}"));
    let mut wrong = 0;
    for (n, node) in [&a, &b].into_iter().enumerate() {
        for i in 0..10 {
            let r = node
                .call(
                    attacker,
                    "POST",
                    "/v1/things/connect",
                    "mallory",
                    Some(json!({ "code": guess(n * 100 + i) })),
                )
                .await;
            if r.status == 429 {
                break;
            }
            assert_eq!(r.status, 404, "{r:?}");
            wrong += 1;
        }
    }
    assert_eq!(
        wrong, 6,
        "two nodes, a burst of 3 each: the fleet's bound is nodes × burst (SECURITY.md)"
    );
}
