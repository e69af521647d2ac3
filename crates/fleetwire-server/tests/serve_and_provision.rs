//! The binary end to end: provision players, serve with zero configuration (self-signed TLS),
//! a player logs in and shows online in `player list`, an unapproved player is refused, a
//! removed player is disconnected while online, a player that keeps failing is refused from its
//! address while its neighbour behind that address is not, an address that keeps trying new
//! player ids is refused at accept, and Ctrl-C stops the server cleanly.
#![allow(clippy::disallowed_methods, clippy::too_many_lines)] // a real clock; one end-to-end story

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
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
use common::{BIN, cli, data_dir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_provision_login_list_revoke_and_stop() {
    let data = data_dir("e2e");
    // Only the ports differ from the defaults: tests use ephemeral ports.
    common::write_config(
        &data,
        "[session]\nlisten = \"127.0.0.1:0\"\nheartbeat_interval_secs = 1\nsilence_grace_secs = 1\n\
         failed_logins_per_source = 2\n\
         [http]\nhttps_listen = \"127.0.0.1:0\"\nhttp_listen = \"127.0.0.1:0\"\n\
         [sensor]\nlisten = \"127.0.0.1:0\"\n[transfer]\nlisten = \"127.0.0.1:0\"\n",
    );
    cli(
        &data,
        &[
            "player",
            "add",
            "--approved",
            "--count",
            "2",
            "--secrets-out",
            data.join("p.csv").to_str().unwrap(),
        ],
    );
    let pending = cli(&data, &["player", "add", "--name", "pending"]);
    assert!(pending.contains("Waiting for approval"));
    let line = |prefix: &str| {
        pending
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap()
            .trim()
            .to_owned()
    };
    let pending_id: PlayerId = line("player id:").parse().unwrap();
    let pending_secret: PlayerSecret = line("secret:").parse().unwrap();
    let csv = std::fs::read_to_string(data.join("p.csv")).unwrap();
    let (id, secret) = csv.lines().next().unwrap().split_once(',').unwrap();
    let (id, secret): (PlayerId, PlayerSecret) = (id.parse().unwrap(), secret.parse().unwrap());
    // The store never holds a secret (raw, or as hex in a PostgreSQL dump).
    let db = common::store_bytes(&data);
    assert!(!db.windows(32).any(|w| w == secret.as_bytes()));
    let hex = hex::encode(secret.as_bytes());
    assert!(!db.windows(64).any(|w| w == hex.as_bytes()));

    let mut server = Command::new(BIN)
        .arg("--data-dir")
        .arg(&data)
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(server.stdout.take().unwrap());
    let (mut fingerprint, mut addr, mut https, mut http) = (None, None, None, None);
    let mut text = String::new();
    let addr_after = |text: &str, prefix: &str| -> Option<std::net::SocketAddr> {
        text.strip_prefix(prefix)?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    while !text.starts_with("data directory") {
        text.clear();
        assert!(
            stdout.read_line(&mut text).unwrap() > 0,
            "server exited early"
        );
        if let Some(fp) = text.strip_prefix("certificate fingerprint (SHA-256): ") {
            fingerprint = tls::parse_fingerprint(fp.trim());
        }
        addr = addr.or(addr_after(&text, "player sessions on "));
        https = https.or(addr_after(&text, "https api on "));
        http = http.or(addr_after(&text, "http on "));
    }
    let (fingerprint, addr) = (fingerprint.expect("fingerprint printed"), addr.unwrap());

    // Plain HTTP redirects to HTTPS; the status API answers over HTTPS.
    let reply = http_get(http.unwrap(), None, "/v1/status").await;
    assert!(reply.starts_with("HTTP/1.1 308"), "{reply}");
    let location = format!(
        "location: https://localhost:{}/v1/status",
        https.unwrap().port()
    );
    assert!(reply.to_lowercase().contains(&location), "{reply}");
    let reply = http_get(https.unwrap(), Some(fingerprint), "/v1/status").await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("\"players_online\":0"), "{reply}");
    let transport = PlayerTransport::Tls {
        config: tls::pinned_client_config(fingerprint).unwrap(),
        server_name: ServerName::try_from("fleetwire.local").unwrap(),
    };
    let (_status_tx, status) = watch::channel(PlayerStatus {
        content: "menu-board".into(),
        ..PlayerStatus::default()
    });

    // The unapproved player is told so.
    let refused = run_player(
        addr,
        &transport,
        Arc::new(ClientConfig::new(pending_id, pending_secret.clone())),
        status.clone(),
        |_| {},
        std::future::pending(),
    )
    .await
    .unwrap();
    assert_eq!(refused, SessionError::NotApproved(pending_id.to_string()));

    // The approved player logs in and `player list` shows it online with its status.
    let player = {
        let (transport, status, secret) = (transport.clone(), status.clone(), secret.clone());
        tokio::spawn(async move {
            run_player(
                addr,
                &transport,
                Arc::new(ClientConfig::new(id, secret)),
                status,
                |_| {},
                std::future::pending(),
            )
            .await
        })
    };
    let start = Instant::now();
    loop {
        let list = cli(&data, &["player", "list"]);
        if list.contains("1 online") && list.contains("menu-board") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "never listed online:\n{list}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Removing it disconnects it while online.
    cli(&data, &["player", "remove", &id.to_string()]);
    let reason = tokio::time::timeout(Duration::from_secs(10), player)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
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

    // The removed player's secret no longer logs in; after two such failures in a row that
    // player is refused from this address — but only that player: its neighbour behind the same
    // address still reaches the server (and is told it waits for approval).
    let attempt = |id: PlayerId, secret: PlayerSecret| {
        let (transport, status) = (transport.clone(), status.clone());
        async move {
            run_player(
                addr,
                &transport,
                Arc::new(ClientConfig::new(id, secret)),
                status,
                |_| {},
                std::future::pending(),
            )
            .await
        }
    };
    for _ in 0..3 {
        let failed = attempt(id, secret.clone()).await.unwrap();
        assert_eq!(failed, SessionError::AuthFailed);
    }
    let neighbour = attempt(pending_id, pending_secret.clone()).await.unwrap();
    assert_eq!(neighbour, SessionError::NotApproved(pending_id.to_string()));
    // A second player id failing from the address makes two failing ids: the address is
    // refused at accept, before TLS, even for the player that waits for approval.
    let stranger = PlayerId::from_bytes([0x5a; 16]);
    let failed = attempt(stranger, secret.clone()).await.unwrap();
    assert_eq!(failed, SessionError::AuthFailed);
    let blocked = attempt(pending_id, pending_secret.clone()).await;
    assert!(
        blocked.is_err(),
        "closed before the TLS handshake: {blocked:?}"
    );

    // Player security events are in the hash-chained audit log (written once a second).
    let start = Instant::now();
    loop {
        let tail = cli(&data, &["audit", "tail", "--count", "50"]);
        let failed = tail
            .lines()
            .filter(|l| l.contains("\"device_event\"") && l.contains("\"login_failed\""))
            .count();
        if failed >= 3 && tail.contains(&id.to_string()) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "player events never reached the audit log:\n{tail}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(cli(&data, &["audit", "verify"]).contains("audit chain ok"));

    // Ctrl-C: a clean stop.
    Command::new("kill")
        .args(["-INT", &server.id().to_string()])
        .status()
        .unwrap();
    let status = server.wait().unwrap();
    assert!(status.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert!(rest.contains("stopped"), "{rest}");
    let _ = std::fs::remove_dir_all(&data);
}

/// One GET with `Connection: close`, over TLS when a fingerprint is given; the raw response.
async fn http_get(addr: std::net::SocketAddr, pin: Option<[u8; 32]>, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
        addr.port()
    );
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut response = Vec::new();
    if let Some(fp) = pin {
        let connector = tokio_rustls::TlsConnector::from(tls::pinned_client_config(fp).unwrap());
        let mut stream = connector
            .connect(ServerName::try_from("fleetwire.local").unwrap(), tcp)
            .await
            .unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let _ = stream.read_to_end(&mut response).await;
    } else {
        let mut tcp = tcp;
        tcp.write_all(request.as_bytes()).await.unwrap();
        let _ = tcp.read_to_end(&mut response).await;
    }
    String::from_utf8_lossy(&response).into_owned()
}
