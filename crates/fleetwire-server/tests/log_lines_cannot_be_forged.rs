//! Issue 10, hole 17: peer-supplied text never forges a log line. An unauthenticated peer sends
//! `Hello` with a random id and then a `Close` whose text holds a newline and a terminal escape;
//! a logged-in player does the same on its way out; both on 4701 and 4702. Before the fix the
//! text went raw into the server log ("INFO … login player=…" on a line of its own).
#![allow(clippy::disallowed_methods)] // a real clock

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use fleetwire_session::{ClientConfig, CloseCode, Message, PlayerId, PlayerSecret};
use fleetwire_tokio::framed::{login_player, tls_binding};
use fleetwire_tokio::tls;
use rustls::pki_types::ServerName;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

mod common;
use common::{BIN, cli, data_dir};

const MARK: &str = "FORGED";

fn evil(tag: &str) -> String {
    format!(
        "bye\n2026-12-04T00:00:00.000000Z  INFO fleetwire_server: {MARK}-{tag} login player=00\u{1b}[2J\u{202e}"
    )
}

async fn connect(
    addr: SocketAddr,
    fingerprint: [u8; 32],
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let connector = TlsConnector::from(tls::pinned_client_config(fingerprint).unwrap());
    let tcp = TcpStream::connect(addr).await.unwrap();
    connector
        .connect(ServerName::try_from("fleetwire.local").unwrap(), tcp)
        .await
        .unwrap()
}

/// Hello with an id nobody has, then a Close with `text`.
async fn stranger_closes(addr: SocketAddr, fingerprint: [u8; 32], text: &str) {
    let mut tls = connect(addr, fingerprint).await;
    let mut out = Vec::new();
    Message::Hello {
        player_id: PlayerId::from_bytes([0xee; 16]),
        software: "x".into(),
    }
    .encode_frame(&mut out);
    Message::Close {
        code: CloseCode::Normal,
        message: text.into(),
    }
    .encode_frame(&mut out);
    tls.write_all(&out).await.unwrap();
    tls.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
}

/// A real login, then a Close with `text`.
async fn player_closes(
    addr: SocketAddr,
    fingerprint: [u8; 32],
    id: PlayerId,
    secret: PlayerSecret,
    text: &str,
) {
    let mut tls = connect(addr, fingerprint).await;
    let binding = tls_binding(tls.get_ref().1).unwrap();
    login_player(&mut tls, binding, Arc::new(ClientConfig::new(id, secret)))
        .await
        .expect("login");
    let mut out = Vec::new();
    Message::Close {
        code: CloseCode::Normal,
        message: text.into(),
    }
    .encode_frame(&mut out);
    let _ = tls.write_all(&out).await;
    let _ = tls.flush().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_text_never_starts_a_log_line() {
    let data = data_dir("logforge");
    common::write_config(
        &data,
        "[session]\nlisten = \"127.0.0.1:0\"\n\
         [http]\nhttps_listen = \"127.0.0.1:0\"\nhttp_listen = \"127.0.0.1:0\"\n\
         [sensor]\nlisten = \"127.0.0.1:0\"\n[transfer]\nlisten = \"127.0.0.1:0\"\n",
    );
    let added = cli(&data, &["player", "add", "--approved"]);
    let field = |prefix: &str| {
        added
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap()
            .trim()
            .to_owned()
    };
    let id: PlayerId = field("player id:").parse().unwrap();
    let secret: PlayerSecret = field("secret:").parse().unwrap();

    let mut server = Command::new(BIN)
        .arg("--data-dir")
        .arg(&data)
        .arg("serve")
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = server.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut all = Vec::new();
        let _ = stderr.read_to_end(&mut all);
        all
    });
    let mut stdout = BufReader::new(server.stdout.take().unwrap());
    let (mut fingerprint, mut sessions, mut framed) = (None, None, None);
    let mut line = String::new();
    let after = |line: &str, prefix: &str| -> Option<SocketAddr> {
        line.strip_prefix(prefix)?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    while !line.starts_with("data directory") {
        line.clear();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "server exited early"
        );
        if let Some(fp) = line.strip_prefix("certificate fingerprint (SHA-256): ") {
            fingerprint = tls::parse_fingerprint(fp.trim());
        }
        sessions = sessions.or(after(&line, "player sessions on "));
        framed = framed.or(after(&line, "framed transfer on "));
    }
    let (fp, sessions, framed) = (fingerprint.unwrap(), sessions.unwrap(), framed.unwrap());

    stranger_closes(sessions, fp, &evil("4701-hello")).await;
    stranger_closes(framed, fp, &evil("4702-hello")).await;
    player_closes(sessions, fp, id, secret.clone(), &evil("4701-online")).await;
    player_closes(framed, fp, id, secret, &evil("4702-online")).await;

    server.kill().unwrap();
    server.wait().unwrap();
    let log = log.join().unwrap();
    let text = String::from_utf8_lossy(&log);
    assert!(
        !log.contains(&0x1b),
        "raw escape sequence in the log:\n{text}"
    );
    assert!(
        !text.contains('\u{202e}'),
        "raw bidi override in the log:\n{text}"
    );
    for l in text.lines() {
        assert!(
            !l.trim_start().starts_with("2026-12-04T00:00:00.000000Z"),
            "forged line in the log: {l:?}\n{text}"
        );
    }
    // The text did reach the log (escaped), so the checks above looked at something.
    for tag in ["4701-hello", "4702-hello", "4701-online"] {
        assert!(
            text.contains(&format!("{MARK}-{tag}")),
            "{tag} not logged at all:\n{text}"
        );
    }
    std::fs::remove_dir_all(&data).unwrap();
}
