//! Accounts end to end over HTTPS: `user add` from the command line, login, a generic error for
//! a wrong password and an unknown user alike, lockout whose block grows, the CAPTCHA after more
//! failures, a reset through the outbox (single use), TOTP enrolment and login with a code
//! computed here, a role check that denies, idle sign-out, `user delete` reporting what it
//! removed, and `audit verify` passing and then catching an edited row.
//!
//! The server runs with `danger_insecure_fast_hashing` so that Argon2 costs microseconds, not
//! tens of milliseconds: the test exercises the logic, not the hash cost.
#![allow(clippy::disallowed_methods, clippy::too_many_lines)] // a real clock; one end-to-end story

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use fleetwire_tokio::tls;
use rustls::pki_types::ServerName;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_fleetwire-server");
const PASSWORD: &str = "Tulip-Harbour-7";
const NEW_PASSWORD: &str = "Lantern-Quay-42";
const ALICE: &str = "alice@example.com";

fn run(data: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(BIN)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn cli(data: &Path, args: &[&str], stdin: &str) -> String {
    let out = run(data, args, stdin);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn data_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fleetwire-accounts-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

struct Api {
    addr: SocketAddr,
    pin: [u8; 32],
}

impl Api {
    /// One request over TLS with `Connection: close`; the status and the JSON body.
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, Value) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
        let body = body.unwrap_or("");
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr.port(),
            body.len()
        );
        let tcp = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let connector =
            tokio_rustls::TlsConnector::from(tls::pinned_client_config(self.pin).unwrap());
        let mut stream = connector
            .connect(ServerName::try_from("fleetwire.local").unwrap(), tcp)
            .await
            .unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response).await;
        let text = String::from_utf8_lossy(&response).into_owned();
        let status: u16 = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status in {text:?}"));
        let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        let json = serde_json::from_str(body).unwrap_or_else(|_| json!({ "raw": body }));
        (status, json)
    }

    async fn login(&self, body: &Value) -> (u16, Value) {
        self.call("POST", "/v1/auth/login", None, Some(&body.to_string()))
            .await
    }
}

fn creds(user: &str, password: &str) -> Value {
    json!({ "user": user, "password": password })
}

/// RFC 6238 TOTP (SHA-1, 6 digits, 30 s) computed here, independently of the server.
fn totp(secret_base32: &str, step: u64) -> String {
    let key = data_encoding::BASE32_NOPAD
        .decode(secret_base32.as_bytes())
        .unwrap();
    let tag = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &key),
        &step.to_be_bytes(),
    );
    let mac = tag.as_ref();
    let offset = (mac[19] & 0x0f) as usize;
    let bin = u32::from_be_bytes([
        mac[offset] & 0x7f,
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]);
    format!("{:06}", bin % 1_000_000)
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Waits out a lockout block (`retry_after_ms` from the 429), with a bound.
async fn wait_block(reply: &Value) {
    let ms = reply["retry_after_ms"].as_u64().unwrap();
    assert!(ms <= 60_000, "{reply}");
    tokio::time::sleep(Duration::from_millis(ms + 50)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_over_https() {
    let data = data_dir();
    std::fs::write(
        data.join("fleetwire.toml"),
        "[session]\nlisten = \"127.0.0.1:0\"\n\
         [http]\nhttps_listen = \"127.0.0.1:0\"\nhttp_listen = \"127.0.0.1:0\"\n\
         [sensor]\nlisten = \"127.0.0.1:0\"\n[transfer]\nlisten = \"127.0.0.1:0\"\n\
         [accounts]\ndanger_insecure_fast_hashing = true\nmax_failures = 3\nbase_block_secs = 1\n\
         captcha_after_failures = 4\nlogin_burst_per_source = 1000\n",
    )
    .unwrap();

    // The command line: a weak password is refused with the reasons; alice is added.
    let weak = run(&data, &["user", "add", "bob"], "password\n");
    assert!(!weak.status.success());
    let why = String::from_utf8_lossy(&weak.stderr);
    assert!(why.contains("password rejected"), "{why}");
    cli(
        &data,
        &["user", "add", ALICE, "--group", "viewer"],
        &format!("{PASSWORD}\n"),
    );
    let list = cli(&data, &["user", "list"], "");
    assert!(list.contains(ALICE) && list.contains("viewer"), "{list}");

    // Serve.
    let mut server = Command::new(BIN)
        .arg("--data-dir")
        .arg(&data)
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(server.stdout.take().unwrap());
    let (mut pin, mut addr) = (None, None);
    let mut line = String::new();
    while !line.starts_with("data directory") {
        line.clear();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "server exited");
        if let Some(fp) = line.strip_prefix("certificate fingerprint (SHA-256): ") {
            pin = tls::parse_fingerprint(fp.trim());
        }
        if let Some(a) = line.strip_prefix("https api on ") {
            addr = a.split_whitespace().next().and_then(|a| a.parse().ok());
        }
    }
    let api = Api {
        addr: addr.unwrap(),
        pin: pin.unwrap(),
    };

    // Login; the first one is from a new origin.
    let (status, ok) = api.login(&creds(ALICE, PASSWORD)).await;
    assert_eq!(status, 200, "{ok}");
    assert_eq!(ok["new_origin"], true);
    let (status, ok) = api.login(&creds("ALICE@example.com ", PASSWORD)).await;
    assert_eq!(status, 200, "{ok}");
    assert_eq!(ok["new_origin"], false);
    let first_token = ok["token"].as_str().unwrap().to_owned();
    let (status, me) = api
        .call("GET", "/v1/auth/me", Some(&first_token), None)
        .await;
    assert_eq!((status, me["user"].as_str()), (200, Some(ALICE)), "{me}");

    // Bad input, no token: clear errors.
    let (status, bad) = api
        .call("POST", "/v1/auth/login", None, Some("{\"user\":"))
        .await;
    assert_eq!(status, 400);
    assert!(
        bad["error"].as_str().unwrap().contains("bad request body"),
        "{bad}"
    );
    let (status, no) = api.call("GET", "/v1/auth/me", None, None).await;
    assert_eq!(status, 401);
    assert!(no["error"].as_str().unwrap().contains("Bearer"), "{no}");

    // A wrong password and an unknown user get the same answer.
    let (s1, wrong) = api.login(&creds(ALICE, "Wrong-Password-1")).await;
    let (s2, unknown) = api
        .login(&creds("nobody@example.com", "Wrong-Password-1"))
        .await;
    assert_eq!((s1, s2), (401, 401));
    assert_eq!(wrong, unknown);

    // Lockout after 3 consecutive failures; the next block is longer; then a CAPTCHA.
    for _ in 0..2 {
        let (s, _) = api.login(&creds(ALICE, "Wrong-Password-1")).await;
        assert_eq!(s, 401);
    }
    let (s, first_block) = api.login(&creds(ALICE, PASSWORD)).await;
    assert_eq!(s, 429, "even the right password is refused while blocked");
    wait_block(&first_block).await;
    let (s, _) = api.login(&creds(ALICE, "Wrong-Password-1")).await;
    assert_eq!(s, 401);
    let (s, second_block) = api.login(&creds(ALICE, PASSWORD)).await;
    assert_eq!(s, 429);
    assert!(
        second_block["retry_after_ms"].as_u64() > first_block["retry_after_ms"].as_u64(),
        "{first_block} then {second_block}"
    );
    wait_block(&second_block).await;
    let (s, captcha) = api.login(&creds(ALICE, PASSWORD)).await;
    assert_eq!(s, 401, "{captcha}");
    assert_eq!(captcha["captcha_required"], true);
    assert!(
        captcha["captcha"]["svg"]
            .as_str()
            .unwrap()
            .starts_with("<svg")
    );

    // Reset through the outbox: the same answer for an unknown name; the link works once.
    for user in [ALICE, "nobody@example.com"] {
        let (s, r) = api
            .call(
                "POST",
                "/v1/auth/reset/request",
                None,
                Some(&json!({ "user": user }).to_string()),
            )
            .await;
        assert_eq!(s, 202, "{r}");
    }
    let outbox = data.join("outbox.jsonl");
    let start = Instant::now();
    let token = loop {
        let text = std::fs::read_to_string(&outbox).unwrap_or_default();
        if let Some(t) = text.split("token=").nth(1) {
            let end = t.find(|c: char| c.is_whitespace() || c == '"' || c == '\\');
            break t[..end.unwrap_or(t.len())].to_owned();
        }
        assert!(start.elapsed() < Duration::from_secs(10), "no mail");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let text = std::fs::read_to_string(&outbox).unwrap();
    assert_eq!(text.lines().count(), 1, "one mail, to the existing account");
    assert!(text.contains(ALICE) && !text.contains("nobody"), "{text}");
    let complete = |password: &str| json!({ "token": token, "password": password }).to_string();
    let (s, r) = api
        .call(
            "POST",
            "/v1/auth/reset/complete",
            None,
            Some(&complete("short")),
        )
        .await;
    assert_eq!(s, 400);
    assert!(!r["violations"].as_array().unwrap().is_empty(), "{r}");
    let (s, r) = api
        .call(
            "POST",
            "/v1/auth/reset/complete",
            None,
            Some(&complete(NEW_PASSWORD)),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let (s, r) = api
        .call(
            "POST",
            "/v1/auth/reset/complete",
            None,
            Some(&complete(NEW_PASSWORD)),
        )
        .await;
    assert_eq!(s, 400, "single use: {r}");
    let (s, _) = api
        .call("GET", "/v1/auth/me", Some(&first_token), None)
        .await;
    assert_eq!(s, 401, "a reset ends every session");
    let (s, _) = api.login(&creds(ALICE, PASSWORD)).await;
    assert_eq!(s, 401, "the old password is gone");
    let (s, ok) = api.login(&creds(ALICE, NEW_PASSWORD)).await;
    assert_eq!(s, 200, "the lockout was cleared by the reset: {ok}");
    let token = ok["token"].as_str().unwrap().to_owned();

    // TOTP: enrol, confirm with a code computed here, then the code is required.
    let (s, enrol) = api
        .call("POST", "/v1/auth/mfa/enroll", Some(&token), None)
        .await;
    assert_eq!(s, 200, "{enrol}");
    let secret = enrol["secret"].as_str().unwrap().to_owned();
    let step = unix_secs() / 30;
    let (s, confirmed) = api
        .call(
            "POST",
            "/v1/auth/mfa/confirm",
            Some(&token),
            Some(&json!({ "code": totp(&secret, step) }).to_string()),
        )
        .await;
    assert_eq!(s, 200, "{confirmed}");
    let recovery = confirmed["recovery_codes"][0].as_str().unwrap().to_owned();
    let (s, r) = api.login(&creds(ALICE, NEW_PASSWORD)).await;
    assert_eq!((s, &r["mfa_required"]), (401, &json!(true)), "{r}");
    let (s, r) = api
        .login(&json!({ "user": ALICE, "password": NEW_PASSWORD, "totp": totp(&secret, step) }))
        .await;
    assert_eq!(s, 401, "the confirming code cannot be replayed: {r}");
    let (s, r) = api
        .login(&json!({ "user": ALICE, "password": NEW_PASSWORD, "totp": totp(&secret, step + 1) }))
        .await;
    assert_eq!(s, 200, "{r}");
    let (s, r) = api
        .login(&json!({ "user": ALICE, "password": NEW_PASSWORD, "recovery_code": recovery }))
        .await;
    assert_eq!(s, 200, "{r}");
    let token = r["token"].as_str().unwrap().to_owned();

    // Roles: a viewer may read players but not send them commands, nor change roles.
    let (s, _) = api
        .call(
            "GET",
            "/v1/auth/check?right=player.read",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(s, 200);
    let (s, denied) = api
        .call(
            "GET",
            "/v1/auth/check?right=player.command.send",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(s, 403);
    assert_eq!(denied["error"], "permission denied: player.command.send");
    let grant = json!({ "user": ALICE, "group": "admin", "grant": true }).to_string();
    let (s, _) = api
        .call("POST", "/v1/auth/roles", Some(&token), Some(&grant))
        .await;
    assert_eq!(s, 403);

    // Logout ends the session.
    let (s, _) = api
        .call("POST", "/v1/auth/logout", Some(&token), None)
        .await;
    assert_eq!(s, 200);
    let (s, _) = api.call("GET", "/v1/auth/me", Some(&token), None).await;
    assert_eq!(s, 401);

    // Idle sign-out: alice chooses 1 s; after 2 s idle the session is over.
    let (_, r) = api
        .login(&json!({ "user": ALICE, "password": NEW_PASSWORD, "totp": totp(&secret, unix_secs() / 30 + 1) }))
        .await;
    let token = match r["token"].as_str() {
        Some(t) => t.to_owned(),
        // The step was used by the previous login: take the one after.
        None => api
            .login(&json!({ "user": ALICE, "password": NEW_PASSWORD, "recovery_code": confirmed["recovery_codes"][1] }))
            .await
            .1["token"]
            .as_str()
            .unwrap()
            .to_owned(),
    };
    let (s, r) = api
        .call(
            "PUT",
            "/v1/auth/me/idle-timeout",
            Some(&token),
            Some("{\"idle_timeout_secs\": 1}"),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let (s, r) = api.call("GET", "/v1/auth/me", Some(&token), None).await;
    assert_eq!(s, 401);
    // "signed out after inactivity", or "session not found" once the expired session was purged.
    assert!(
        r["error"].as_str().unwrap().contains("sign in again"),
        "{r}"
    );

    // Delete while serving: every row of the account goes, and the report says which.
    let (_, r) = api
        .login(&json!({ "user": ALICE, "password": NEW_PASSWORD, "recovery_code": confirmed["recovery_codes"][2] }))
        .await;
    let live = r["token"].as_str().unwrap().to_owned();
    let report = cli(&data, &["user", "delete", ALICE], "");
    assert!(report.contains("1 account row"), "{report}");
    assert!(report.contains("TOTP secret: removed"), "{report}");
    assert!(report.contains("7 recovery-code digests"), "{report}");
    let (s, _) = api.call("GET", "/v1/auth/me", Some(&live), None).await;
    assert_eq!(s, 401, "the deleted account's session is over");
    let (s, _) = api.login(&creds(ALICE, NEW_PASSWORD)).await;
    assert_eq!(s, 401);
    let db = rusqlite::Connection::open(data.join("fleetwire.db")).unwrap();
    for table in ["auth_users", "auth_sessions", "auth_reset_tokens"] {
        let n: i64 = db
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0, "{table}");
    }
    let named: i64 = db
        .query_row(
            "SELECT count(*) FROM auth_audit WHERE event LIKE '%alice%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(named, 0, "the audit log names ids, not people");

    // Stop (the audit queue is flushed), then verify the chain; an edited row is caught.
    Command::new("kill")
        .args(["-INT", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(server.wait().unwrap().success());
    let ok = cli(&data, &["audit", "verify"], "");
    assert!(ok.contains("audit chain ok"), "{ok}");
    let edited = db
        .execute(
            "UPDATE auth_audit SET event = replace(event, '127.0.0.1', '10.9.9.9') \
             WHERE seq = (SELECT min(seq) FROM auth_audit WHERE event LIKE '%127.0.0.1%')",
            [],
        )
        .unwrap();
    assert_eq!(edited, 1);
    let caught = run(&data, &["audit", "verify"], "");
    assert!(!caught.status.success());
    let why = String::from_utf8_lossy(&caught.stderr);
    assert!(why.contains("was modified"), "{why}");
    let _ = std::fs::remove_dir_all(&data);
}
