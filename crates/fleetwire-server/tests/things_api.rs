//! The things API end to end over HTTPS against the real binary: the three access modes, the
//! first user as administrator, revocation, administrator rights, code rotation (API and
//! command line), throttled code guessing per source address, and eight racing first users.
//!
//! The caller is named by `X-Fleetwire-User` (the server runs with
//! `[things] danger_trust_user_header = true`). Things are created by `operator`, an account in
//! the `operator` group (creating needs the right `thing.create`); the other names have no
//! account and act as gateway users. Requests come from different loopback source
//! addresses (127.0.0.x) where the test needs different sources; the server listens on
//! 127.0.0.1 only.
#![allow(clippy::disallowed_methods, clippy::too_many_lines)] // a real clock; one story per test

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fleetwire_tokio::tls;
use rustls::pki_types::ServerName;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;
use common::{BIN, cli};

const LOCAL: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// A running server in its own data directory; killed and cleaned up on drop.
struct Server {
    child: Child,
    data: PathBuf,
    https: SocketAddr,
    pin: [u8; 32],
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

/// A reply: status, lower-cased header block, JSON body (`Null` if none).
struct Reply {
    status: u16,
    headers: String,
    body: Value,
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.body)
    }
}

fn start(name: &str, things: &str) -> Server {
    let things = if things.contains("danger_trust_user_header") {
        things.to_owned()
    } else {
        format!("danger_trust_user_header = true\n{things}")
    };
    let data = std::env::temp_dir().join(format!("fleetwire-things-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data).unwrap();
    common::write_config(
        &data,
        &format!(
            "[session]\nlisten = \"127.0.0.1:0\"\n\
             [http]\nhttps_listen = \"127.0.0.1:0\"\nhttp_listen = \"127.0.0.1:0\"\n\
             [sensor]\nlisten = \"127.0.0.1:0\"\n[transfer]\nlisten = \"127.0.0.1:0\"\n\
             [accounts]\ndanger_insecure_fast_hashing = true\n\
             [things]\n{things}"
        ),
    );
    add_account(&data, "operator", &["--group", "operator"]);
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
            "server exited early"
        );
        if let Some(fp) = line.strip_prefix("certificate fingerprint (SHA-256): ") {
            pin = tls::parse_fingerprint(fp.trim());
        }
        if let Some(rest) = line.strip_prefix("https api on ") {
            https = rest.split_whitespace().next().and_then(|a| a.parse().ok());
        }
    }
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    Server {
        child,
        data,
        https: https.expect("https address printed"),
        pin: pin.expect("fingerprint printed"),
    }
}

/// `user add NAME EXTRA…` with the password `Correct-Horse-42`.
fn add_account(data: &std::path::Path, name: &str, extra: &[&str]) {
    let mut add = Command::new(BIN)
        .arg("--data-dir")
        .arg(data)
        .args(["user", "add", name])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut add.stdin.take().unwrap(), b"Correct-Horse-42\n").unwrap();
    assert!(add.wait().unwrap().success());
}

impl Server {
    /// One HTTPS request from `source` (a loopback address) as `user`, `Connection: close`.
    async fn call(
        &self,
        source: Ipv4Addr,
        method: &str,
        path: &str,
        user: Option<&str>,
        body: Option<&Value>,
    ) -> Reply {
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n",
            self.https.port(),
            body.len()
        );
        match user {
            Some(token) if token.starts_with("Bearer ") => {
                request.push_str("Authorization: ");
                request.push_str(token);
                request.push_str("\r\n");
            }
            Some(u) => {
                request.push_str("X-Fleetwire-User: ");
                request.push_str(u);
                request.push_str("\r\n");
            }
            None => {}
        }
        request.push_str("\r\n");
        request.push_str(&body);
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
            headers: head.to_lowercase(),
            body: serde_json::from_str(body).unwrap_or(Value::Null),
        }
    }

    async fn as_user(&self, method: &str, path: &str, user: &str, body: Option<Value>) -> Reply {
        self.call(LOCAL, method, path, Some(user), body.as_ref())
            .await
    }

    /// Creates a thing in `mode`; its id and code.
    async fn create(&self, mode: &str) -> (String, String) {
        let r = self
            .as_user(
                "POST",
                "/v1/things",
                "operator",
                Some(json!({ "mode": mode, "name": format!("{mode} thing") })),
            )
            .await;
        assert_eq!(r.status, 201, "{r:?}");
        (
            r.body["id"].as_str().unwrap().to_owned(),
            r.body["code"].as_str().unwrap().to_owned(),
        )
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

/// `user`'s role in the subscriber list `r` (a `GET /v1/things/{id}` by an administrator).
fn role_of<'a>(r: &'a Reply, user: &str) -> Option<&'a str> {
    r.body["members"]
        .as_array()?
        .iter()
        .find(|m| m["user"] == user)
        .and_then(|m| m["role"].as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_mode_first_admin_join_revoke_grant_rotate() {
    let s = start("open", "");
    // Bad input: no caller, a body that is not JSON, an unknown mode, a malformed code.
    let r = s.call(LOCAL, "GET", "/v1/things", None, None).await;
    assert_eq!(r.status, 401, "{r:?}");
    assert!(
        r.body["error"]
            .as_str()
            .unwrap()
            .contains("X-Fleetwire-User")
    );
    let r = s
        .call(LOCAL, "POST", "/v1/things", Some("alice"), None)
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body["error"].is_string());
    let r = s
        .as_user(
            "POST",
            "/v1/things",
            "alice",
            Some(json!({ "mode": "public" })),
        )
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body["error"].as_str().unwrap().contains("unknown mode"));
    let r = s.connect("alice", "not a code!").await;
    assert_eq!(r.status, 400, "{r:?}");

    let (id, code) = s.create("open").await;
    assert_eq!(
        code.len(),
        13,
        "ten symbols, a check character, two dashes: {code}"
    );
    let thing = format!("/v1/things/{id}");

    // The first user to connect is the administrator; the code is typed sloppily.
    let sloppy = code.to_lowercase().replace('-', " ");
    let r = s.connect("alice", &sloppy).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["result"], "administrator");
    assert_eq!(r.body["id"], id.as_str());
    // A second user joins as a member.
    let r = s.connect("bob", &code).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["result"], "member");
    let r = s.as_user("GET", &thing, "alice", None).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(role_of(&r, "alice"), Some("administrator"));
    assert_eq!(role_of(&r, "bob"), Some("member"));
    assert_eq!(r.body["code"], code.as_str());
    // A member sees the thing but not its subscribers; a stranger sees nothing.
    let r = s.as_user("GET", &thing, "bob", None).await;
    assert_eq!(
        (r.status, &r.body["role"]),
        (200, &json!("member")),
        "{r:?}"
    );
    assert!(r.body.get("members").is_none(), "{r:?}");
    let r = s
        .as_user("GET", &format!("{thing}/subscribers"), "bob", None)
        .await;
    assert_eq!(r.status, 403, "{r:?}");
    let r = s.as_user("GET", &thing, "mallory", None).await;
    assert_eq!(r.status, 404, "{r:?}");
    let r = s
        .as_user("GET", &format!("{thing}/subscribers"), "alice", None)
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["members"].as_array().unwrap().len(), 2);
    let r = s.as_user("GET", "/v1/things", "bob", None).await;
    assert_eq!(r.body["things"][0]["id"], id.as_str(), "{r:?}");

    // A member cannot revoke; the administrator can, and access ends at once.
    let r = s
        .as_user("DELETE", &format!("{thing}/members/alice"), "bob", None)
        .await;
    assert_eq!(r.status, 403, "{r:?}");
    let r = s
        .as_user("DELETE", &format!("{thing}/members/bob"), "alice", None)
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(role_of(&r, "bob"), None);
    let r = s.as_user("GET", &thing, "bob", None).await;
    assert_eq!(r.status, 404, "{r:?}");
    let r = s.as_user("GET", "/v1/things", "bob", None).await;
    assert_eq!(r.body["things"], json!([]), "{r:?}");
    // The open code does not let a revoked user straight back in.
    let r = s.connect("bob", &code).await;
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(r.body["error"], "no such thing");

    // The last administrator cannot be demoted or leave.
    let r = s
        .as_user("DELETE", &format!("{thing}/admins/alice"), "alice", None)
        .await;
    assert_eq!(r.status, 409, "{r:?}");
    assert!(
        r.body["error"]
            .as_str()
            .unwrap()
            .contains("last administrator")
    );
    let r = s
        .as_user("DELETE", &format!("{thing}/members/alice"), "alice", None)
        .await;
    assert_eq!(r.status, 409, "{r:?}");

    // Grant administrator: then the first one may step down.
    assert_eq!(s.connect("carol", &code).await.status, 200);
    let r = s
        .as_user(
            "POST",
            &format!("{thing}/admins"),
            "carol",
            Some(json!({ "user": "carol" })),
        )
        .await;
    assert_eq!(r.status, 403, "a member cannot promote herself: {r:?}");
    let r = s
        .as_user(
            "POST",
            &format!("{thing}/admins"),
            "alice",
            Some(json!({ "user": "carol" })),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(role_of(&r, "carol"), Some("administrator"));
    let r = s
        .as_user("DELETE", &format!("{thing}/admins/alice"), "alice", None)
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(role_of(&r, "alice"), Some("member"));
    let r = s
        .as_user(
            "POST",
            &format!("{thing}/admins"),
            "carol",
            Some(json!({ "user": "zed" })),
        )
        .await;
    assert_eq!(r.status, 404, "not a member: {r:?}");

    // Rotation: the old code stops working at once; members stay.
    let r = s
        .as_user("POST", &format!("{thing}/code/rotate"), "alice", None)
        .await;
    assert_eq!(r.status, 403, "{r:?}");
    let r = s
        .as_user("POST", &format!("{thing}/code/rotate"), "carol", None)
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let new_code = r.body["code"].as_str().unwrap().to_owned();
    assert_ne!(new_code, code);
    let r = s.connect("dave", &code).await;
    assert_eq!(r.status, 404, "{r:?}");
    let r = s.connect("dave", &new_code).await;
    assert_eq!(
        (r.status, &r.body["result"]),
        (200, &json!("member")),
        "{r:?}"
    );
    let r = s.as_user("GET", &thing, "alice", None).await;
    assert_eq!(r.status, 200, "{r:?}");

    // The command line: show, revoke, rotate, list, create.
    let shown = cli(&s.data, &["thing", "show", &new_code]);
    assert!(shown.contains("\"dave\"") && shown.contains(&id), "{shown}");
    cli(&s.data, &["thing", "revoke", &new_code, "dave"]);
    let r = s.as_user("GET", &thing, "dave", None).await;
    assert_eq!(r.status, 404, "{r:?}");
    let rotated = cli(&s.data, &["thing", "rotate", &new_code]);
    let cli_code = rotated
        .lines()
        .find_map(|l| l.strip_prefix("new code: "))
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(s.connect("erin", &new_code).await.status, 404);
    assert_eq!(s.connect("erin", &cli_code).await.status, 200);
    let created = cli(
        &s.data,
        &["thing", "create", "--mode", "invite", "--name", "door"],
    );
    let door_code = created
        .lines()
        .find_map(|l| l.strip_prefix("code: "))
        .unwrap()
        .trim()
        .to_owned();
    let list = cli(&s.data, &["thing", "list"]);
    assert!(list.starts_with("2 things"), "{list}");
    assert!(list.contains("door") && list.contains(&cli_code), "{list}");
    let r = s.connect("frank", &door_code).await;
    assert_eq!(r.body["result"], "administrator", "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirm_and_invite_modes() {
    let s = start("modes", "");

    // Admin-confirm: a request waits; approve lets in, deny does not.
    let (id, code) = s.create("confirm").await;
    let thing = format!("/v1/things/{id}");
    assert_eq!(
        s.connect("alice", &code).await.body["result"],
        "administrator"
    );
    let r = s.connect("bob", &code).await;
    assert_eq!(
        (r.status, &r.body["result"]),
        (202, &json!("pending")),
        "{r:?}"
    );
    let r = s.connect("carol", &code).await;
    assert_eq!(r.status, 202, "{r:?}");
    let r = s.as_user("GET", &thing, "alice", None).await;
    let pending: Vec<&str> = r.body["pending"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["user"].as_str())
        .collect();
    assert_eq!(pending, ["bob", "carol"], "{r:?}");
    // Pending is not access.
    let r = s.as_user("GET", &thing, "bob", None).await;
    assert_eq!((r.status, r.body.get("role")), (200, None), "{r:?}");
    let r = s
        .as_user(
            "POST",
            &format!("{thing}/requests/bob/approve"),
            "carol",
            None,
        )
        .await;
    assert_eq!(r.status, 403, "{r:?}");
    let r = s
        .as_user(
            "POST",
            &format!("{thing}/requests/bob/approve"),
            "alice",
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(role_of(&r, "bob"), Some("member"));
    let r = s
        .as_user(
            "POST",
            &format!("{thing}/requests/carol/deny"),
            "alice",
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(role_of(&r, "carol"), None);
    assert_eq!(r.body["pending"], json!([]));
    let r = s.as_user("GET", &thing, "carol", None).await;
    assert_eq!(r.status, 404, "{r:?}");
    let r = s
        .as_user(
            "POST",
            &format!("{thing}/requests/carol/deny"),
            "alice",
            None,
        )
        .await;
    assert_eq!(r.status, 404, "no request left: {r:?}");
    let r = s.as_user("GET", &thing, "bob", None).await;
    assert_eq!(r.body["role"], "member", "{r:?}");

    // Invite only: the code alone is refused like a wrong code; an invite lets the user in.
    let (id, code) = s.create("invite").await;
    let thing = format!("/v1/things/{id}");
    assert_eq!(
        s.connect("alice", &code).await.body["result"],
        "administrator"
    );
    let r = s.connect("bob", &code).await;
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(r.body["error"], "no such thing");
    let r = s
        .as_user(
            "POST",
            &format!("{thing}/invites"),
            "alice",
            Some(json!({ "user": "bob" })),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.body["invites"][0]["user"], "bob");
    let r = s
        .as_user(
            "POST",
            &format!("{thing}/invites"),
            "alice",
            Some(json!({ "user": "b o b" })),
        )
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    let r = s.connect("bob", &code).await;
    assert_eq!(
        (r.status, &r.body["result"]),
        (200, &json!("member")),
        "{r:?}"
    );
    let r = s.connect("bob", &code).await;
    assert_eq!(r.body["result"], "already_member", "{r:?}");
    assert_eq!(s.connect("carol", &code).await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_code_bursts_are_throttled_per_source() {
    // No check character, so any ten symbols parse and only the store can tell them wrong.
    let s = start("throttle", "check_character = false\n");
    let (_, code) = s.create("open").await;
    let attacker = Ipv4Addr::new(127, 0, 0, 2);
    let neighbour = Ipv4Addr::new(127, 0, 0, 3);
    let guess = |i: usize| format!("{:0>10}", format!("ZZ{i}"));
    let mut throttled = None;
    for i in 0..20 {
        let r = s
            .call(
                attacker,
                "POST",
                "/v1/things/connect",
                Some("mallory"),
                Some(&json!({ "code": guess(i) })),
            )
            .await;
        if r.status == 429 {
            throttled = Some((i, r));
            break;
        }
        assert_eq!(r.status, 404, "{r:?}");
        assert_eq!(r.body["error"], "no such thing");
    }
    let (after, r) = throttled.expect("a burst of wrong codes is throttled");
    assert_eq!(after, 5, "max_failures = 5 wrong codes, then blocked");
    let retry: u64 = r
        .headers
        .lines()
        .find_map(|l| l.strip_prefix("retry-after:"))
        .expect("Retry-After header")
        .trim()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    assert!(r.body["retry_after_ms"].as_u64().unwrap() >= 1, "{r:?}");
    assert!(r.body["error"].as_str().unwrap().contains("no such thing"));
    // Even the right code is refused from the throttled source (no oracle while blocked).
    let r = s
        .call(
            attacker,
            "POST",
            "/v1/things/connect",
            Some("mallory"),
            Some(&json!({ "code": code })),
        )
        .await;
    assert_eq!(r.status, 429, "{r:?}");
    // A malformed code is refused before the throttle (costs nothing, says why).
    let r = s
        .call(
            attacker,
            "POST",
            "/v1/things/connect",
            Some("mallory"),
            Some(&json!({ "code": "SHORT" })),
        )
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    // Another source still works.
    let r = s
        .call(
            neighbour,
            "POST",
            "/v1/things/connect",
            Some("alice"),
            Some(&json!({ "code": code })),
        )
        .await;
    assert_eq!(
        (r.status, &r.body["result"]),
        (200, &json!("administrator")),
        "{r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_first_users_make_one_administrator() {
    let s = std::sync::Arc::new(start("race", ""));
    let (id, code) = s.create("open").await;
    let racers: Vec<_> = (0..8u8)
        .map(|i| {
            let (s, code) = (s.clone(), code.clone());
            tokio::spawn(async move {
                let user = format!("racer{i}");
                let source = Ipv4Addr::new(127, 0, 0, 10 + i);
                let r = s
                    .call(
                        source,
                        "POST",
                        "/v1/things/connect",
                        Some(&user),
                        Some(&json!({ "code": code })),
                    )
                    .await;
                assert_eq!(r.status, 200, "{r:?}");
                (user, r.body["result"].as_str().unwrap().to_owned())
            })
        })
        .collect();
    let mut results = Vec::new();
    for r in racers {
        results.push(r.await.unwrap());
    }
    let admins: Vec<&String> = results
        .iter()
        .filter(|(_, r)| r == "administrator")
        .map(|(u, _)| u)
        .collect();
    assert_eq!(admins.len(), 1, "{results:?}");
    assert_eq!(
        results.iter().filter(|(_, r)| r == "member").count(),
        7,
        "{results:?}"
    );
    let r = s
        .as_user(
            "GET",
            &format!("/v1/things/{id}/subscribers"),
            admins[0],
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let members = r.body["members"].as_array().unwrap();
    assert_eq!(members.len(), 8, "{r:?}");
    let api_admins: Vec<&Value> = members
        .iter()
        .filter(|m| m["role"] == "administrator")
        .map(|m| &m["user"])
        .collect();
    assert_eq!(api_admins, [&json!(admins[0])], "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_user_header_is_ignored_unless_trusted() {
    let s = start("untrusted", "danger_trust_user_header = false\n");
    for (method, path) in [("GET", "/v1/things"), ("POST", "/v1/things/connect")] {
        let r = s
            .call(
                LOCAL,
                method,
                path,
                Some("alice"),
                Some(&json!({ "code": "X" })),
            )
            .await;
        assert_eq!(r.status, 401, "{r:?}");
        assert!(
            r.body["error"]
                .as_str()
                .unwrap()
                .contains("danger_trust_user_header"),
            "{r:?}"
        );
    }
}

/// Without the danger header, callers sign in at /v1/auth and use their session token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_in_accounts_use_the_things_api_with_their_session() {
    let s = start("bearer", "danger_trust_user_header = false\n");
    add_account(&s.data, "alice", &["--group", "operator"]);
    add_account(&s.data, "bob", &[]);
    let mut tokens = Vec::new();
    for name in ["alice", "bob"] {
        let body = json!({ "user": name, "password": "Correct-Horse-42" });
        let r = s
            .call(LOCAL, "POST", "/v1/auth/login", None, Some(&body))
            .await;
        assert_eq!(r.status, 200, "{r:?}");
        tokens.push(format!("Bearer {}", r.body["token"].as_str().unwrap()));
    }
    let create = json!({ "mode": "open", "name": "kiln" });
    let r = s
        .call(LOCAL, "POST", "/v1/things", Some(&tokens[0]), Some(&create))
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let code = r.body["code"].as_str().unwrap().to_owned();
    let join = json!({ "code": code });
    let r = s
        .call(
            LOCAL,
            "POST",
            "/v1/things/connect",
            Some(&tokens[1]),
            Some(&join),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.body["role"], "administrator",
        "the first to connect administers: {r:?}"
    );
    // A made-up token and the untrusted header are both refused.
    let r = s
        .call(LOCAL, "GET", "/v1/things", Some("Bearer nonsense"), None)
        .await;
    assert_eq!(r.status, 401, "{r:?}");
    let r = s
        .call(LOCAL, "GET", "/v1/things", Some("alice"), None)
        .await;
    assert_eq!(r.status, 401, "{r:?}");
    // After logout the session no longer works here either.
    let r = s
        .call(LOCAL, "POST", "/v1/auth/logout", Some(&tokens[1]), None)
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = s
        .call(LOCAL, "GET", "/v1/things", Some(&tokens[1]), None)
        .await;
    assert_eq!(r.status, 401, "{r:?}");
}
