//! Accounts end to end over HTTPS: `user add` from the command line, login, a generic error for
//! a wrong password and an unknown user alike, lockout whose block grows, the CAPTCHA after more
//! failures, a reset through the outbox (single use), TOTP enrolment and login with a code
//! computed here, a role check that denies, idle sign-out, `user delete` reporting what it
//! removed, and `audit verify` passing and then catching an edited row. Then, each on its own
//! server: device-cookie lockout lanes, state across graceful and crash restarts, reset mail
//! through an SMTP sink, the CAPTCHA read from its picture and solved, and TOTP secrets sealed
//! at rest (and migrated from clear rows).
//!
//! The server runs with `danger_insecure_fast_hashing` so that Argon2 costs microseconds, not
//! tens of milliseconds: the test exercises the logic, not the hash cost.
#![allow(clippy::disallowed_methods, clippy::too_many_lines)] // a real clock; one end-to-end story

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use fleetwire_tokio::tls;
use rustls::pki_types::ServerName;
use serde_json::{Value, json};

mod common;

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

fn data_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fleetwire-accounts-{tag}-{}", std::process::id()));
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
        let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
        let (status, _, json) = self.request(method, path, &auth, body).await;
        (status, json)
    }

    /// One request with extra header lines (each ending in CRLF); the status, the response
    /// head and the JSON body.
    async fn request(
        &self,
        method: &str,
        path: &str,
        extra_headers: &str,
        body: Option<&str>,
    ) -> (u16, String, Value) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let auth = extra_headers;
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
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let json = serde_json::from_str(body).unwrap_or_else(|_| json!({ "raw": body }));
        (status, head.to_owned(), json)
    }

    async fn login(&self, body: &Value) -> (u16, Value) {
        self.call("POST", "/v1/auth/login", None, Some(&body.to_string()))
            .await
    }
}

/// Starts `serve` on `data`; returns the process and its HTTPS API once it is ready.
fn serve(data: &Path) -> (Child, Api) {
    let mut server = Command::new(BIN)
        .arg("--data-dir")
        .arg(data)
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
    // Keep reading so the server never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let api = Api {
        addr: addr.unwrap(),
        pin: pin.unwrap(),
    };
    (server, api)
}

/// Stops a server with Ctrl-C (a graceful stop: state is saved) and checks it exited cleanly.
fn stop(mut server: Child) {
    Command::new("kill")
        .args(["-INT", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(server.wait().unwrap().success());
}

/// A `fleetwire.toml` with every listener on 127.0.0.1:0, fast hashing, and these lines added
/// to `[accounts]`, then `rest`.
fn config(accounts: &str, rest: &str) -> String {
    format!(
        "[session]\nlisten = \"127.0.0.1:0\"\n\
         [http]\nhttps_listen = \"127.0.0.1:0\"\nhttp_listen = \"127.0.0.1:0\"\n\
         [sensor]\nlisten = \"127.0.0.1:0\"\n[transfer]\nlisten = \"127.0.0.1:0\"\n\
         [accounts]\ndanger_insecure_fast_hashing = true\nlogin_burst_per_source = 1000\n{accounts}\n{rest}"
    )
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
    let data = data_dir("story");
    common::write_config(
        &data,
        "[session]\nlisten = \"127.0.0.1:0\"\n\
         [http]\nhttps_listen = \"127.0.0.1:0\"\nhttp_listen = \"127.0.0.1:0\"\n\
         [sensor]\nlisten = \"127.0.0.1:0\"\n[transfer]\nlisten = \"127.0.0.1:0\"\n\
         [accounts]\ndanger_insecure_fast_hashing = true\nmax_failures = 3\nbase_block_secs = 1\n\
         captcha_after_failures = 4\nlogin_burst_per_source = 1000\n",
    );

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
    let (mut server, api) = serve(&data);

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

    // TOTP: enrol (the password again: a session alone cannot), confirm with a code computed
    // here, then the code is required.
    let (s, enrol) = api
        .call(
            "POST",
            "/v1/auth/mfa/enroll",
            Some(&token),
            Some(&json!({ "password": NEW_PASSWORD }).to_string()),
        )
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
    for table in ["auth_users", "auth_sessions", "auth_reset_tokens"] {
        let n = common::store_sql(&data, &format!("SELECT count(*) FROM {table}"));
        assert_eq!(n, "0", "{table}");
    }
    let named = common::store_sql(
        &data,
        "SELECT count(*) FROM auth_audit WHERE event LIKE '%alice%'",
    );
    assert_eq!(named, "0", "the audit log names ids, not people");

    // Stop (the audit queue is flushed), then verify the chain; an edited row is caught.
    Command::new("kill")
        .args(["-INT", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(server.wait().unwrap().success());
    let ok = cli(&data, &["audit", "verify"], "");
    assert!(ok.contains("audit chain ok"), "{ok}");
    let edited = common::store_sql(
        &data,
        "UPDATE auth_audit SET event = replace(event, '127.0.0.1', '10.9.9.9') \
         WHERE seq = (SELECT min(seq) FROM auth_audit WHERE event LIKE '%127.0.0.1%')",
    );
    assert_eq!(edited, "1");
    let caught = run(&data, &["audit", "verify"], "");
    assert!(!caught.status.success());
    let why = String::from_utf8_lossy(&caught.stderr);
    assert!(why.contains("was modified"), "{why}");
    let _ = std::fs::remove_dir_all(&data);
}

const BOB: &str = "bob@example.com";

fn cookie_header(cookie: &str) -> String {
    format!("Cookie: theme=dark; fw_device={cookie}\r\n")
}

/// OWASP device cookies: failures from elsewhere lock the account's untrusted lane, but not the
/// owner's known device; a forged cookie or another account's cookie counts as untrusted; a
/// device's own failures lock only that device.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_cookie_keeps_the_owner_in() {
    let data = data_dir("device");
    common::write_config(
        &data,
        &config(
            "max_failures = 3\nbase_block_secs = 3600\ncaptcha_after_failures = 0",
            "",
        ),
    );
    for user in [ALICE, BOB] {
        cli(&data, &["user", "add", user], &format!("{PASSWORD}\n"));
    }
    let (server, api) = serve(&data);

    // A successful login hands out a device cookie, in the JSON and as a hardened cookie.
    let (s, head, ok) = api
        .request(
            "POST",
            "/v1/auth/login",
            "",
            Some(&creds(ALICE, PASSWORD).to_string()),
        )
        .await;
    assert_eq!(s, 200, "{ok}");
    assert_eq!(ok["known_device"], false);
    let owner = ok["device_cookie"].as_str().unwrap().to_owned();
    let set_cookie = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("no Set-Cookie in {head}"));
    assert!(
        set_cookie.contains(&format!("fw_device={owner};")),
        "{set_cookie}"
    );
    for attribute in [
        "Secure",
        "HttpOnly",
        "SameSite=Strict",
        "Path=/v1/auth/login",
    ] {
        assert!(set_cookie.contains(attribute), "{attribute}: {set_cookie}");
    }
    let (s, ok) = api.login(&creds(BOB, PASSWORD)).await;
    assert_eq!(s, 200, "{ok}");
    let bobs = ok["device_cookie"].as_str().unwrap().to_owned();

    // An attacker without the cookie locks the untrusted lane.
    for _ in 0..3 {
        let (s, _) = api.login(&creds(ALICE, "Wrong-Password-1")).await;
        assert_eq!(s, 401);
    }
    let (s, r) = api.login(&creds(ALICE, PASSWORD)).await;
    assert_eq!(s, 429, "untrusted lane locked: {r}");

    // A forged cookie, or bob's, is no help: untrusted, and refused while it is locked.
    let forged = format!("dc1.{}.{}", "A".repeat(22), "A".repeat(43));
    for cookie in [forged.as_str(), bobs.as_str(), "garbage"] {
        let (s, r) = api
            .login(&json!({ "user": ALICE, "password": PASSWORD, "device_cookie": cookie }))
            .await;
        assert_eq!(s, 429, "{cookie}: {r}");
        let (s, _, r) = api
            .request(
                "POST",
                "/v1/auth/login",
                &cookie_header(cookie),
                Some(&creds(ALICE, PASSWORD).to_string()),
            )
            .await;
        assert_eq!(s, 429, "{cookie} as a cookie: {r}");
    }

    // The owner's device still gets in, with the cookie as a browser sends it or in the JSON.
    let (s, _, r) = api
        .request(
            "POST",
            "/v1/auth/login",
            &cookie_header(&owner),
            Some(&creds(ALICE, PASSWORD).to_string()),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["known_device"], true);
    let second = r["device_cookie"].as_str().unwrap().to_owned();
    let (s, r) = api
        .login(&json!({ "user": ALICE, "password": PASSWORD, "device_cookie": owner }))
        .await;
    assert_eq!(s, 200, "{r}");

    // Failures with a cookie count in that device's lane only.
    for _ in 0..3 {
        let (s, _) = api
            .login(
                &json!({ "user": ALICE, "password": "Wrong-Password-1", "device_cookie": owner }),
            )
            .await;
        assert_eq!(s, 401);
    }
    let (s, r) = api
        .login(&json!({ "user": ALICE, "password": PASSWORD, "device_cookie": owner }))
        .await;
    assert_eq!(s, 429, "that device is locked now: {r}");
    let (s, r) = api
        .login(&json!({ "user": ALICE, "password": PASSWORD, "device_cookie": second }))
        .await;
    assert_eq!(s, 200, "another known device is not: {r}");
    let (s, _) = api.login(&creds(ALICE, PASSWORD)).await;
    assert_eq!(s, 429, "and the untrusted lane is still locked");

    stop(server);
    let _ = std::fs::remove_dir_all(&data);
}

/// A lockout, a session and a device cookie survive a graceful restart; a session also
/// survives a crash (its row is in the store); a sign-out is not undone by a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockouts_and_sessions_survive_restarts() {
    let data = data_dir("restart");
    common::write_config(
        &data,
        &config(
            "max_failures = 3\nbase_block_secs = 3600\ncaptcha_after_failures = 0\nstate_save_secs = 1",
            "",
        ),
    );
    cli(&data, &["user", "add", ALICE], &format!("{PASSWORD}\n"));
    let (server, api) = serve(&data);
    let (s, ok) = api.login(&creds(ALICE, PASSWORD)).await;
    assert_eq!(s, 200, "{ok}");
    let first = ok["token"].as_str().unwrap().to_owned();
    let device = ok["device_cookie"].as_str().unwrap().to_owned();
    for _ in 0..3 {
        let (s, _) = api.login(&creds(ALICE, "Wrong-Password-1")).await;
        assert_eq!(s, 401);
    }
    let (s, _) = api.login(&creds(ALICE, PASSWORD)).await;
    assert_eq!(s, 429);
    stop(server);
    assert!(data.join("accounts-state.json").exists());

    // Restarted: still locked; the session still works; the device cookie still works.
    let (server, api) = serve(&data);
    let (s, r) = api.login(&creds(ALICE, PASSWORD)).await;
    assert_eq!(s, 429, "still locked after a restart: {r}");
    let (s, me) = api.call("GET", "/v1/auth/me", Some(&first), None).await;
    assert_eq!((s, me["user"].as_str()), (200, Some(ALICE)), "{me}");
    let (s, r) = api
        .login(&json!({ "user": ALICE, "password": PASSWORD, "device_cookie": device }))
        .await;
    assert_eq!(s, 200, "{r}");
    let second = r["token"].as_str().unwrap().to_owned();

    // A crash (SIGKILL: no final save): the new session comes back from its row.
    let mut crashed = server;
    crashed.kill().unwrap();
    crashed.wait().unwrap();
    let (server, api) = serve(&data);
    let (s, me) = api.call("GET", "/v1/auth/me", Some(&second), None).await;
    assert_eq!(s, 200, "a session survives a crash: {me}");
    let (s, _) = api.login(&creds(ALICE, PASSWORD)).await;
    assert_eq!(s, 429, "still locked after a crash");

    // Signed out before a restart stays signed out.
    let (s, _) = api
        .call("POST", "/v1/auth/logout", Some(&second), None)
        .await;
    assert_eq!(s, 200);
    stop(server);
    let (server, api) = serve(&data);
    let (s, _) = api.call("GET", "/v1/auth/me", Some(&second), None).await;
    assert_eq!(s, 401, "a sign-out survives a restart");
    let (s, _) = api.call("GET", "/v1/auth/me", Some(&first), None).await;
    assert_eq!(s, 200);

    // A reset link survives a restart. An administrator lock ends sessions for good: an unlock
    // after a restart does not bring them back.
    let (s, _) = api
        .call(
            "POST",
            "/v1/auth/reset/request",
            None,
            Some(&json!({ "user": ALICE }).to_string()),
        )
        .await;
    assert_eq!(s, 202);
    let outbox = data.join("outbox.jsonl");
    let start = Instant::now();
    let reset = loop {
        let text = std::fs::read_to_string(&outbox).unwrap_or_default();
        if let Some(t) = text.split("token=").nth(1) {
            let end = t.find(|c: char| c.is_whitespace() || c == '"' || c == '\\');
            break t[..end.unwrap_or(t.len())].to_owned();
        }
        assert!(start.elapsed() < Duration::from_secs(10), "no mail");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    stop(server);
    let (server, api) = serve(&data);
    let (s, r) = api
        .call(
            "POST",
            "/v1/auth/reset/complete",
            None,
            Some(&json!({ "token": reset, "password": NEW_PASSWORD }).to_string()),
        )
        .await;
    assert_eq!(s, 200, "the reset link still works after a restart: {r}");
    let (s, r) = api.login(&creds(ALICE, NEW_PASSWORD)).await;
    assert_eq!(s, 200, "the reset also cleared the lockout: {r}");
    let last = r["token"].as_str().unwrap().to_owned();
    cli(&data, &["user", "lock", ALICE], "");
    stop(server);
    let (server, api) = serve(&data);
    cli(&data, &["user", "unlock", ALICE], "");
    let (s, _) = api.call("GET", "/v1/auth/me", Some(&last), None).await;
    assert_eq!(s, 401, "locked, then unlocked: the old session stays over");
    stop(server);
    let _ = std::fs::remove_dir_all(&data);
}

/// What the SMTP sink received: envelope recipients and the message.
struct Received {
    rcpt: Vec<String>,
    data: String,
}

/// A minimal SMTP server (plain text: it is on loopback) that hands each message over.
async fn smtp_sink(
    listener: tokio::net::TcpListener,
    tx: tokio::sync::mpsc::UnboundedSender<Received>,
) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    while let Ok((stream, _)) = listener.accept().await {
        let tx = tx.clone();
        tokio::spawn(async move {
            let (r, mut w) = stream.into_split();
            let mut r = tokio::io::BufReader::new(r);
            w.write_all(b"220 sink ESMTP\r\n").await.unwrap();
            let mut rcpt = Vec::new();
            let mut line = String::new();
            loop {
                line.clear();
                if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                    return;
                }
                let upper = line.trim_end().to_ascii_uppercase();
                let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                    b"250-sink\r\n250 8BITMIME\r\n"
                } else if upper.starts_with("MAIL FROM:") || upper == "RSET" || upper == "NOOP" {
                    b"250 ok\r\n"
                } else if upper.starts_with("RCPT TO:") {
                    rcpt.push(line.trim_end()[8..].trim().to_owned());
                    b"250 ok\r\n"
                } else if upper == "DATA" {
                    w.write_all(b"354 go on\r\n").await.unwrap();
                    let mut data = String::new();
                    loop {
                        line.clear();
                        assert!(r.read_line(&mut line).await.unwrap() > 0);
                        if line == ".\r\n" {
                            break;
                        }
                        data.push_str(line.strip_prefix('.').unwrap_or(&line));
                    }
                    let _ = tx.send(Received {
                        rcpt: std::mem::take(&mut rcpt),
                        data,
                    });
                    b"250 queued\r\n"
                } else if upper == "QUIT" {
                    let _ = w.write_all(b"221 bye\r\n").await;
                    return;
                } else {
                    b"502 not here\r\n"
                };
                w.write_all(reply).await.unwrap();
            }
        });
    }
}

/// The body of a message as a mail client shows it (7bit or quoted-printable).
fn decode_body(message: &str) -> String {
    let (head, body) = message.split_once("\r\n\r\n").unwrap();
    if !head
        .to_ascii_lowercase()
        .contains("content-transfer-encoding: quoted-printable")
    {
        return body.to_owned();
    }
    let joined = body.replace("=\r\n", "");
    let mut out = Vec::new();
    let mut bytes = joined.bytes();
    while let Some(b) = bytes.next() {
        if b == b'=' {
            let hex: Vec<u8> = bytes.by_ref().take(2).collect();
            out.push(u8::from_str_radix(std::str::from_utf8(&hex).unwrap(), 16).unwrap());
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).unwrap()
}

/// With `[smtp]`, reset links go out by SMTP: one message, to the account that exists, and the
/// link in it works. The answers for a known and an unknown name are the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_mail_over_smtp() {
    let data = data_dir("smtp");
    let sink = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = sink.local_addr().unwrap().port();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(smtp_sink(sink, tx));
    common::write_config(
        &data,
        &config(
            "",
            &format!(
                "[smtp]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\nfrom = \"fleetwire <noreply@example.com>\"\n"
            ),
        ),
    );
    cli(&data, &["user", "add", ALICE], &format!("{PASSWORD}\n"));
    let (server, api) = serve(&data);

    // The unknown name first: the queue is in order, so once alice's message is here, any
    // message for the unknown name would have been sent before it.
    let mut answers = Vec::new();
    for user in ["nobody@example.com", ALICE] {
        answers.push(
            api.call(
                "POST",
                "/v1/auth/reset/request",
                None,
                Some(&json!({ "user": user }).to_string()),
            )
            .await,
        );
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0].0, 202);
    let mail = tokio::time::timeout(Duration::from_secs(60), rx.recv())
        .await
        .expect("a message within a minute")
        .unwrap();
    assert!(rx.try_recv().is_err(), "one message only");
    assert_eq!(mail.rcpt, [format!("<{ALICE}>")]);
    assert!(
        mail.data.contains("Subject: fleetwire password reset"),
        "{}",
        mail.data
    );
    assert!(!data.join("outbox.jsonl").exists(), "SMTP, not the outbox");
    let text = decode_body(&mail.data);
    let token = text
        .split("token=")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .unwrap_or_else(|| panic!("no link in {text}"))
        .to_owned();
    let (s, r) = api
        .call(
            "POST",
            "/v1/auth/reset/complete",
            None,
            Some(&json!({ "token": token, "password": NEW_PASSWORD }).to_string()),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let (s, r) = api.login(&creds(ALICE, NEW_PASSWORD)).await;
    assert_eq!(s, 200, "{r}");
    stop(server);
    let _ = std::fs::remove_dir_all(&data);
}

/// Reads a CAPTCHA the way a person does: from the picture. Each digit is a `<g>` of
/// seven-segment strokes (`M x1 y1 L x2 y2`, jittered by at most 2 units in a 20 × 40 box);
/// snapping the end points to that box names the segments, and the segments name the digit.
fn read_captcha(svg: &str) -> String {
    // Segments a (top), b (upper right), c (lower right), d (bottom), e (lower left),
    // f (upper left), g (middle), as end points.
    const ENDS: [(i32, i32, i32, i32); 7] = [
        (0, 0, 20, 0),
        (20, 0, 20, 20),
        (20, 20, 20, 40),
        (0, 40, 20, 40),
        (0, 20, 0, 40),
        (0, 0, 0, 20),
        (0, 20, 20, 20),
    ];
    // The usual seven-segment digits, as sets of segments.
    const DIGITS: [&str; 10] = [
        "abcdef", "bc", "abdeg", "abcdg", "bcfg", "acdfg", "acdefg", "abc", "abcdefg", "abcdfg",
    ];
    let snap = |v: i32| (v + 10).div_euclid(20) * 20;
    let mut out = String::new();
    for group in svg.split("<g transform=").skip(1) {
        let path = group
            .split("d=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let mut lit = String::new();
        for stroke in path.split('M').filter(|s| !s.is_empty()) {
            let n: Vec<i32> = stroke
                .split([' ', 'L'])
                .filter(|s| !s.is_empty())
                .map(|s| s.parse().unwrap())
                .collect();
            let ends = (snap(n[0]), snap(n[1]), snap(n[2]), snap(n[3]));
            let segment = ENDS.iter().position(|e| *e == ends).unwrap();
            lit.push(char::from(b'a' + u8::try_from(segment).unwrap()));
        }
        let digit = DIGITS.iter().position(|d| *d == lit).unwrap();
        out.push(char::from(b'0' + u8::try_from(digit).unwrap()));
    }
    out
}

/// S8 end to end: after two failures the login needs a CAPTCHA; a wrong answer is refused, the
/// digits shown let the login through, and a challenge works once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captcha_solved_end_to_end() {
    let data = data_dir("captcha");
    common::write_config(
        &data,
        &config("max_failures = 20\ncaptcha_after_failures = 2", ""),
    );
    cli(&data, &["user", "add", ALICE], &format!("{PASSWORD}\n"));
    let (server, api) = serve(&data);
    let (s, _) = api.login(&creds(ALICE, PASSWORD)).await;
    assert_eq!(s, 200, "no CAPTCHA before failures");
    for _ in 0..2 {
        let (s, r) = api.login(&creds(ALICE, "Wrong-Password-1")).await;
        assert_eq!(s, 401);
        assert!(r.get("captcha").is_none(), "{r}");
    }
    let with = |password: &str, c: &Value, answer: &str| {
        json!({
            "user": ALICE, "password": password,
            "captcha_id": c["id"], "captcha_answer": answer,
        })
    };
    // Now the right password alone is not enough.
    let (s, r) = api.login(&creds(ALICE, PASSWORD)).await;
    assert_eq!((s, &r["captcha_required"]), (401, &json!(true)), "{r}");
    let first = r["captcha"].clone();
    let digits = read_captcha(first["svg"].as_str().unwrap());
    assert_eq!(digits.len(), 5, "{digits}");
    assert!(digits.bytes().all(|b| b.is_ascii_digit()));

    // A wrong answer is refused (and uses the challenge up).
    let wrong: String = digits
        .bytes()
        .map(|b| char::from(b'0' + (b - b'0' + 1) % 10))
        .collect();
    let (s, r) = api.login(&with(PASSWORD, &first, &wrong)).await;
    assert_eq!((s, &r["captcha_required"]), (401, &json!(true)), "{r}");
    let (s, r) = api.login(&with(PASSWORD, &first, &digits)).await;
    assert_eq!(
        (s, &r["captcha_required"]),
        (401, &json!(true)),
        "the first challenge was used by the wrong answer: {r}"
    );

    // A right answer with a wrong password: the CAPTCHA passes, the password does not.
    let second = r["captcha"].clone();
    let answer = read_captcha(second["svg"].as_str().unwrap());
    let (s, r) = api.login(&with("Wrong-Password-1", &second, &answer)).await;
    assert_eq!(s, 401);
    assert_eq!(r["error"], "wrong user name or password", "{r}");
    // The same challenge again, now with the right password: single use.
    let (s, r) = api.login(&with(PASSWORD, &second, &answer)).await;
    assert_eq!((s, &r["captcha_required"]), (401, &json!(true)), "{r}");

    // A fresh challenge, read and typed: signed in.
    let third = r["captcha"].clone();
    let answer = read_captcha(third["svg"].as_str().unwrap());
    let (s, r) = api.login(&with(PASSWORD, &third, &answer)).await;
    assert_eq!(s, 200, "{r}");
    // The streak is over: no CAPTCHA for the next login.
    let (s, r) = api.login(&creds(ALICE, PASSWORD)).await;
    assert_eq!(s, 200, "{r}");
    stop(server);
    let _ = std::fs::remove_dir_all(&data);
}

fn stored_mfa(data: &Path) -> (Option<String>, Option<String>) {
    let row = common::store_sql(
        data,
        &format!(
            "SELECT COALESCE(mfa, '-'), COALESCE(mfa_pending, '-') FROM auth_users \
             WHERE name = '{ALICE}'"
        ),
    );
    let (mfa, pending) = row.split_once('|').unwrap();
    let column = |v: &str| (v != "-").then(|| v.to_owned());
    (column(mfa), column(pending))
}

/// A2 for TOTP secrets: the store holds them sealed (AES-256-GCM under `totp.key`), the login
/// still works, and a secret an earlier version stored in clear is sealed at the next start and
/// keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totp_secrets_sealed_at_rest() {
    let data = data_dir("sealed");
    common::write_config(&data, &config("", ""));
    cli(&data, &["user", "add", ALICE], &format!("{PASSWORD}\n"));
    let (server, api) = serve(&data);
    let (_, r) = api.login(&creds(ALICE, PASSWORD)).await;
    let token = r["token"].as_str().unwrap().to_owned();
    let (s, enrol) = api
        .call(
            "POST",
            "/v1/auth/mfa/enroll",
            Some(&token),
            Some(&json!({ "password": PASSWORD }).to_string()),
        )
        .await;
    assert_eq!(s, 200, "{enrol}");
    let secret = enrol["secret"].as_str().unwrap().to_owned();
    let (_, pending) = stored_mfa(&data);
    let pending = pending.unwrap();
    assert!(pending.starts_with("enc1:"), "{pending}");
    assert!(!pending.contains("secret"), "{pending}");
    let step = unix_secs() / 30;
    let (s, r) = api
        .call(
            "POST",
            "/v1/auth/mfa/confirm",
            Some(&token),
            Some(&json!({ "code": totp(&secret, step) }).to_string()),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let (mfa, pending) = stored_mfa(&data);
    assert!(mfa.unwrap().starts_with("enc1:") && pending.is_none());
    let (s, r) = api
        .login(&json!({ "user": ALICE, "password": PASSWORD, "totp": totp(&secret, step + 1) }))
        .await;
    assert_eq!(s, 200, "{r}");
    stop(server);

    // A row as an earlier version wrote it: the Totp JSON in clear.
    let legacy = fleetwire_auth::totp::Totp::generate(&mut rand_core::OsRng);
    let clear = serde_json::to_string(&legacy).unwrap().replace('\'', "''");
    let changed = common::store_sql(
        &data,
        &format!(
            "UPDATE auth_users SET mfa = '{clear}', mfa_last_step = NULL WHERE name = '{ALICE}'"
        ),
    );
    assert_eq!(changed, "1");
    let (server, api) = serve(&data);
    let (mfa, _) = stored_mfa(&data);
    assert!(mfa.unwrap().starts_with("enc1:"), "sealed at start");
    let code = totp(&legacy.secret_base32(), unix_secs() / 30);
    let (s, r) = api
        .login(&json!({ "user": ALICE, "password": PASSWORD, "totp": code }))
        .await;
    assert_eq!(s, 200, "the migrated secret still signs in: {r}");
    stop(server);
    let _ = std::fs::remove_dir_all(&data);
}
