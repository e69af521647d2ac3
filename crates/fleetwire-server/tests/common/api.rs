//! A served data directory and its HTTPS API, for the accounts and things tests: start `serve`
//! with a `fleetwire.toml`, call the API from a chosen source address, run commands with a
//! password on standard input. The server is killed and its directory removed on drop.
#![allow(clippy::disallowed_methods)] // a real clock

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use fleetwire_tokio::tls;
use rustls::pki_types::ServerName;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::{BIN, data_dir};

/// The password every test account gets.
pub const PASSWORD: &str = "Tulip-Harbour-7";

/// A `fleetwire.toml` with every listener on loopback port 0 (HTTPS on `https`), fast hashing,
/// these lines added to `[accounts]`, then `rest`. The per-source login throttle keeps its
/// default (10 at once): a test that signs in more often from one address raises it.
pub fn config_at(https: &str, accounts: &str, rest: &str) -> String {
    format!(
        "[session]\nlisten = \"127.0.0.1:0\"\n\
         [http]\nhttps_listen = \"{https}\"\nhttp_listen = \"127.0.0.1:0\"\n\
         [sensor]\nlisten = \"127.0.0.1:0\"\n[transfer]\nlisten = \"127.0.0.1:0\"\n\
         [accounts]\ndanger_insecure_fast_hashing = true\n{accounts}\n{rest}"
    )
}

/// [`config_at`] on 127.0.0.1.
pub fn config(accounts: &str, rest: &str) -> String {
    config_at("127.0.0.1:0", accounts, rest)
}

/// Runs a command with `stdin`; its output (success not checked).
pub fn run_with(data: &Path, args: &[&str], stdin: &str) -> Output {
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

/// Adds a user with [`PASSWORD`] and `extra` arguments (`--group …`, `--email …`).
pub fn add_user(data: &Path, name: &str, extra: &[&str]) {
    let mut args = vec!["user", "add", name];
    args.extend_from_slice(extra);
    let out = run_with(data, &args, &format!("{PASSWORD}\n"));
    assert!(
        out.status.success(),
        "user add {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A reply: status, the response head (lower-cased) and the JSON body (`{"raw": …}` if none).
#[derive(Clone)]
pub struct Reply {
    pub status: u16,
    pub head: String,
    pub body: Value,
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.body)
    }
}

/// A running `serve`.
pub struct Served {
    child: Option<Child>,
    pub data: PathBuf,
    pub https: SocketAddr,
    /// The plain-HTTP listener (port 80's stand-in).
    pub http: SocketAddr,
    /// The player session listener (TCP 4701's stand-in).
    pub players: SocketAddr,
    /// The server certificate's SHA-256 fingerprint.
    pub pin: [u8; 32],
    keep: bool,
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.data);
        }
    }
}

impl Served {
    /// A fresh data directory `tag` with `toml`, and `prepare` run on it before `serve`.
    pub fn start(tag: &str, toml: &str, prepare: impl FnOnce(&Path)) -> Self {
        let data = data_dir(tag);
        super::write_config(&data, toml);
        prepare(&data);
        Self::serve(data)
    }

    /// `serve` on an existing data directory.
    pub fn serve(data: PathBuf) -> Self {
        let mut child = Command::new(BIN)
            .arg("--data-dir")
            .arg(&data)
            .arg("serve")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let (mut pin, mut https, mut http, mut players) = (None, None, None, None);
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
            if let Some(rest) = line.strip_prefix("http on ") {
                http = rest.split_whitespace().next().and_then(|a| a.parse().ok());
            }
            if let Some(rest) = line.strip_prefix("player sessions on ") {
                players = rest.split_whitespace().next().and_then(|a| a.parse().ok());
            }
        }
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        Self {
            child: Some(child),
            data,
            https: https.expect("https address printed"),
            http: http.expect("http address printed"),
            players: players.expect("player address printed"),
            pin: pin.expect("fingerprint printed"),
            keep: false,
        }
    }

    /// Stops the server gracefully (Ctrl-C: state saved, audit flushed) and keeps the data
    /// directory; returns it.
    pub fn stop(mut self) -> PathBuf {
        if let Some(mut c) = self.child.take() {
            Command::new("kill")
                .args(["-INT", &c.id().to_string()])
                .status()
                .unwrap();
            assert!(c.wait().unwrap().success());
        }
        self.keep = true;
        self.data.clone()
    }

    /// One request from `source` with `Connection: close`. `auth` is a session token (sent as
    /// `Authorization: Bearer`), or `header:NAME` for `X-Fleetwire-User: NAME`.
    pub async fn call_from(
        &self,
        source: IpAddr,
        method: &str,
        path: &str,
        auth: Option<&str>,
        body: Option<&Value>,
    ) -> Reply {
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: fleetwire.local\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
        match auth {
            Some(a) if a.starts_with("header:") => {
                request.push_str("X-Fleetwire-User: ");
                request.push_str(&a[7..]);
                request.push_str("\r\n");
            }
            Some(token) => {
                request.push_str("Authorization: Bearer ");
                request.push_str(token);
                request.push_str("\r\n");
            }
            None => {}
        }
        request.push_str("\r\n");
        request.push_str(&body);
        let socket = if source.is_ipv4() {
            tokio::net::TcpSocket::new_v4()
        } else {
            tokio::net::TcpSocket::new_v6()
        }
        .unwrap();
        socket.bind(SocketAddr::new(source, 0)).unwrap();
        let tcp = tokio::time::timeout(Duration::from_secs(10), socket.connect(self.https))
            .await
            .expect("connect within 10 s")
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
            head: head.to_lowercase(),
            body: serde_json::from_str(body).unwrap_or_else(|_| json!({ "raw": body })),
        }
    }

    /// One plain-HTTP `GET path` from `source` to the plain listener; status and body.
    pub async fn get_plain_from(&self, source: IpAddr, path: &str) -> Reply {
        let socket = if source.is_ipv4() {
            tokio::net::TcpSocket::new_v4()
        } else {
            tokio::net::TcpSocket::new_v6()
        }
        .unwrap();
        socket.bind(SocketAddr::new(source, 0)).unwrap();
        let mut tcp = tokio::time::timeout(Duration::from_secs(10), socket.connect(self.http))
            .await
            .expect("connect within 10 s")
            .unwrap();
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: fleetwire.local\r\nConnection: close\r\n\r\n");
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(30), tcp.read_to_end(&mut raw)).await;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {text:?}"));
        Reply {
            status,
            head: head.to_lowercase(),
            body: serde_json::from_str(body).unwrap_or_else(|_| json!({ "raw": body })),
        }
    }

    /// [`call_from`](Self::call_from) 127.0.0.1.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        auth: Option<&str>,
        body: Option<&Value>,
    ) -> Reply {
        self.call_from(IpAddr::V4(Ipv4Addr::LOCALHOST), method, path, auth, body)
            .await
    }

    /// `POST /v1/auth/login` with `body`.
    pub async fn login(&self, body: &Value) -> Reply {
        self.call("POST", "/v1/auth/login", None, Some(body)).await
    }

    /// Signs `user` in with [`PASSWORD`]; the session token.
    pub async fn token(&self, user: &str) -> String {
        let r = self
            .login(&json!({ "user": user, "password": PASSWORD }))
            .await;
        assert_eq!(r.status, 200, "login {user}: {r:?}");
        r.body["token"].as_str().unwrap().to_owned()
    }

    /// The newest reset token in the outbox that was not in `seen` (waits up to 10 s).
    pub async fn reset_token(&self, seen: usize) -> String {
        let outbox = self.data.join("outbox.jsonl");
        let start = Instant::now();
        loop {
            let text = std::fs::read_to_string(&outbox).unwrap_or_default();
            let tokens: Vec<String> = text
                .split("token=")
                .skip(1)
                .map(|t| {
                    let end = t.find(|c: char| c.is_whitespace() || c == '"' || c == '\\');
                    t[..end.unwrap_or(t.len())].to_owned()
                })
                .collect();
            if tokens.len() > seen {
                return tokens[seen].clone();
            }
            assert!(start.elapsed() < Duration::from_secs(10), "no mail");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// RFC 6238 TOTP (SHA-1, 6 digits, 30 s) for `step`, computed here, independently of the server.
pub fn totp(secret_base32: &str, step: u64) -> String {
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

/// The current TOTP time step.
pub fn step_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 30
}

/// Reads a CAPTCHA the way a person does: from the picture (see `accounts_api.rs`).
pub fn read_captcha(svg: &str) -> String {
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
