//! The binary end to end for the framed transfer listener (`[transfer] listen`, TCP 4702): an
//! approved player logs in with its secret over TLS and receives every item assigned to it,
//! byte-identical, on one connection; the chunk bytes sent are recorded in the same per-player
//! account as HTTP. An unknown player, a wrong secret, an unapproved player and a removed
//! player are refused with the session close code; a silent peer is closed at the login
//! deadline with `LoginTimeout`, an oversized pre-login frame with `ProtocolViolation`; a player
//! removed during its transfer is cut off and its file never appears.
#![allow(clippy::disallowed_methods, clippy::too_many_lines)] // a real clock; one end-to-end story

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleetwire_session::{ClientConfig, CloseCode, Message, PlayerId, PlayerSecret, SessionError};
use fleetwire_tokio::framed::{ConnectError, connect_player, receive_framed_many};
use fleetwire_tokio::tls;
use fleetwire_tokio::transfer::{PartFile, ReceiveOptions};
use fleetwire_transfer::{PublicKey, ReceiverConfig};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;
use common::{BIN, cli};

/// Guards against a hung test; never a performance assertion.
const GUARD: Duration = Duration::from_secs(60);

fn bytes(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

struct Server {
    addr: SocketAddr,
    fingerprint: [u8; 32],
    trusted: Vec<PublicKey>,
}

impl Server {
    async fn connect(
        &self,
        id: PlayerId,
        secret: PlayerSecret,
    ) -> Result<fleetwire_tokio::framed::PlayerConnection, ConnectError> {
        tokio::time::timeout(
            GUARD,
            connect_player(
                self.addr,
                tls::pinned_client_config(self.fingerprint).unwrap(),
                ServerName::try_from("fleetwire.local").unwrap(),
                Arc::new(ClientConfig::new(id, secret)),
            ),
        )
        .await
        .expect("login hung")
    }

    async fn tls(&self) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
        let tcp = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        tokio_rustls::TlsConnector::from(tls::pinned_client_config(self.fingerprint).unwrap())
            .connect(ServerName::try_from("fleetwire.local").unwrap(), tcp)
            .await
            .unwrap()
    }

    fn options(&self) -> ReceiveOptions {
        ReceiveOptions {
            config: Arc::new(ReceiverConfig::new(self.trusted.clone())),
        }
    }
}

/// The login was refused with the close code `code` (the client maps `AuthFailed` and
/// `NotApproved` to their own errors).
fn refused_with(result: Result<impl Sized, ConnectError>, code: CloseCode) {
    match (result, code) {
        (Err(ConnectError::Login(SessionError::AuthFailed)), CloseCode::AuthFailed)
        | (Err(ConnectError::Login(SessionError::NotApproved(_))), CloseCode::NotApproved) => {}
        (Err(ConnectError::Login(SessionError::PeerClosed { code: got, .. })), _) => {
            assert_eq!(got, code);
        }
        (Err(other), _) => panic!("expected a close with {code:?}, got {other}"),
        (Ok(_), _) => panic!("expected a close with {code:?}, got a login"),
    }
}

/// Reads a raw stream to its end; the session `Close` message it ended with.
async fn close_message<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> Option<CloseCode> {
    let mut all = Vec::new();
    let _ = tokio::time::timeout(GUARD, stream.read_to_end(&mut all))
        .await
        .expect("the server never closed");
    let mut rest = all.as_slice();
    let mut last = None;
    while rest.len() >= 6 {
        let len = u32::from_be_bytes([rest[2], rest[3], rest[4], rest[5]]) as usize;
        let Some(body) = rest.get(6..6 + len) else {
            break;
        };
        if let Ok(Message::Close { code, .. }) = Message::decode(rest[1], body) {
            last = Some(code);
        }
        rest = &rest[6 + len..];
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framed_listener_authenticates_then_pushes_assigned_content() {
    let data = std::env::temp_dir().join(format!("fleetwire-framed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data).unwrap();
    common::write_config(
        &data,
        "[session]\nlisten = \"127.0.0.1:0\"\nlogin_timeout_secs = 1\n\
         [http]\nhttps_listen = \"127.0.0.1:0\"\nhttp_listen = \"127.0.0.1:0\"\n\
         [sensor]\nlisten = \"127.0.0.1:0\"\n\
         [content]\nchunk_size = 65536\n\
         [transfer]\nlisten = \"127.0.0.1:0\"\nwindow = 16\nmax_bytes_per_sec = 2000000\n",
    );
    let secrets = data.join("p.csv");
    cli(
        &data,
        &[
            "player",
            "add",
            "--approved",
            "--count",
            "3",
            "--secrets-out",
            secrets.to_str().unwrap(),
        ],
    );
    let pending_secrets = data.join("pending.csv");
    cli(
        &data,
        &[
            "player",
            "add",
            "--secrets-out",
            pending_secrets.to_str().unwrap(),
        ],
    );
    let read = |p: &Path| -> Vec<(PlayerId, PlayerSecret)> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(|l| {
                let (id, s) = l.split_once(',').unwrap();
                (id.parse().unwrap(), s.parse().unwrap())
            })
            .collect()
    };
    let players = read(&secrets);
    let (alice, alice_secret) = players[0].clone();
    let (bob, bob_secret) = players[1].clone();
    let (carol, carol_secret) = players[2].clone();
    let (pending, pending_secret) = read(&pending_secrets)[0].clone();

    // Content: media for alice, a configuration file for everyone, big media for bob.
    let menu = bytes(700_000, 1);
    let settings = bytes(150_001, 2);
    let big = bytes(16 << 20, 3);
    for (name, content, to, kind) in [
        ("menu.mp4", &menu, alice.to_string(), "media"),
        ("player.conf", &settings, "all".to_owned(), "configuration"),
        ("big.mp4", &big, bob.to_string(), "media"),
    ] {
        let src = data.join(name);
        std::fs::write(&src, content).unwrap();
        let to = to.as_str();
        cli(
            &data,
            &[
                "content",
                "add",
                src.to_str().unwrap(),
                "--to",
                to,
                "--kind",
                kind,
            ],
        );
    }
    let mut key = [0u8; 32];
    hex::decode_to_slice(cli(&data, &["content", "key"]).trim(), &mut key).unwrap();

    let mut child = Command::new(BIN)
        .arg("--data-dir")
        .arg(&data)
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let (mut fingerprint, mut addr) = (None, None);
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
        if let Some(rest) = text.strip_prefix("framed transfer on ") {
            addr = rest.split_whitespace().next().and_then(|a| a.parse().ok());
        }
    }
    let server = Server {
        addr: addr.expect("no framed transfer listener announced"),
        fingerprint: fingerprint.unwrap(),
        trusted: vec![PublicKey(key)],
    };

    // Alice logs in and receives her item and the one for everyone, byte-identical, on one
    // connection, configuration first; the big item for bob is not offered to her.
    let mut conn = server.connect(alice, alice_secret.clone()).await.unwrap();
    let dir = data.join("alice");
    std::fs::create_dir_all(&dir).unwrap();
    let mut offered = Vec::new();
    let report = tokio::time::timeout(
        GUARD,
        receive_framed_many(
            &mut conn.stream,
            &conn.already_read,
            &server.options(),
            None,
            |m| {
                offered.push(m.file_id());
                Some(dir.join(m.file_id().to_string()))
            },
            |_| {},
        ),
    )
    .await
    .unwrap()
    .unwrap();
    offered.sort_unstable();
    assert_eq!(offered, [1, 2]);
    let done: Vec<u64> = report.received.iter().map(|r| r.progress.file_id).collect();
    assert_eq!(
        done,
        [2, 1],
        "the configuration item completes before the media"
    );
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(std::fs::read(dir.join("1")).unwrap(), menu);
    assert_eq!(std::fs::read(dir.join("2")).unwrap(), settings);

    // Bytes sent are recorded per player, in the account HTTP uses (flushed every 2 s).
    let want = format!(
        "sent to {}: {} bytes",
        hex::encode(alice.as_bytes()),
        menu.len() + settings.len()
    );
    let start = Instant::now();
    loop {
        let list = cli(&data, &["content", "list"]);
        if list.contains(&want) {
            break;
        }
        assert!(start.elapsed() < GUARD, "bytes not recorded:\n{list}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A second connection: everything is already held, so it just ends.
    let mut conn = server.connect(alice, alice_secret.clone()).await.unwrap();
    let again = receive_framed_many(
        &mut conn.stream,
        &conn.already_read,
        &server.options(),
        None,
        |_| None,
        |_| {},
    )
    .await
    .unwrap();
    assert!(again.received.is_empty());
    assert_eq!(again.failed.len(), 2, "both offers declined: {again:?}");

    // Refused before any content: unknown player, wrong secret, unapproved, removed.
    let stranger = PlayerId::from_bytes([0x5a; 16]);
    refused_with(
        server
            .connect(stranger, PlayerSecret::from_bytes([1; 32]))
            .await,
        CloseCode::AuthFailed,
    );
    refused_with(
        server
            .connect(alice, PlayerSecret::from_bytes([1; 32]))
            .await,
        CloseCode::AuthFailed,
    );
    refused_with(
        server.connect(pending, pending_secret).await,
        CloseCode::NotApproved,
    );
    cli(&data, &["player", "remove", &carol.to_string()]);
    refused_with(
        server.connect(carol, carol_secret).await,
        CloseCode::AuthFailed,
    );

    // Before login: a silent peer is closed at the login deadline, an oversized frame at once.
    let mut silent = server.tls().await;
    assert_eq!(
        close_message(&mut silent).await,
        Some(CloseCode::LoginTimeout)
    );
    let mut big_frame = server.tls().await;
    big_frame
        .write_all(&[1, 0x01, 0x00, 0x10, 0x00, 0x00])
        .await
        .unwrap();
    assert_eq!(
        close_message(&mut big_frame).await,
        Some(CloseCode::ProtocolViolation)
    );

    // Bob is removed while his big item is arriving: the connection is cut, the file never
    // appears under its final name.
    let mut conn = server.connect(bob, bob_secret).await.unwrap();
    let dest = data.join("bob-big.mp4");
    let (first_bytes, mut seen) = tokio::sync::oneshot::channel::<()>();
    let mut first_bytes = Some(first_bytes);
    let options = server.options();
    let target = dest.clone();
    let receiving = tokio::spawn(async move {
        receive_framed_many(
            &mut conn.stream,
            &conn.already_read,
            &options,
            None,
            |m| (m.file_id() == 3).then(|| target.clone()),
            |p| {
                if p.stored_bytes > 0 {
                    if let Some(tx) = first_bytes.take() {
                        let _ = tx.send(());
                    }
                }
            },
        )
        .await
    });
    tokio::time::timeout(GUARD, &mut seen)
        .await
        .unwrap()
        .unwrap();
    cli(&data, &["player", "remove", &bob.to_string()]);
    let cut = tokio::time::timeout(GUARD, receiving)
        .await
        .unwrap()
        .unwrap();
    assert!(
        cut.is_err(),
        "bob's transfer finished after removal: {cut:?}"
    );
    assert!(!dest.exists());
    let stored =
        PartFile::load_partial(&dest, &server.trusted, u32::MAX).map_or(0, |p| p.stored().count());
    assert!(stored < 256, "bob got the whole file ({stored} chunks)");

    // Security events were logged for the refusals and the cut.
    let start = Instant::now();
    loop {
        let events = security_events(&data.join("fleetwire.db"));
        let failed = events.get("transfer_login_failed").copied().unwrap_or(0);
        if failed >= 6 && events.contains_key("transfer_revoked") {
            break;
        }
        assert!(start.elapsed() < GUARD, "{events:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
    let _ = std::fs::remove_dir_all(&data);
}

/// Security events by kind, straight from the store (read-only, beside the running server): the
/// SQLite file, or the PostgreSQL database `fleetwire.toml` names (`FLEETWIRE_TEST_STORE=postgres`).
fn security_events(db: &Path) -> BTreeMap<String, usize> {
    const QUERY: &str = "SELECT kind, COUNT(*) FROM security_events GROUP BY kind";
    let toml = std::fs::read_to_string(db.with_file_name("fleetwire.toml")).unwrap();
    if let Some(url) = toml.lines().find_map(|l| {
        l.strip_prefix("url = \"")
            .and_then(|rest| rest.strip_suffix('"'))
    }) {
        let out = Command::new("psql")
            .arg(url)
            .args(["-At", "-F", ",", "-c", QUERY])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter_map(|l| {
                let (kind, n) = l.split_once(',')?;
                Some((kind.to_owned(), n.parse().ok()?))
            })
            .collect();
    }
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut stmt = conn.prepare(QUERY).unwrap();
    stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            usize::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
        ))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}
