//! The binary end to end for content: `content add FILE --to PLAYER` while a player is logged
//! in; the player hears a new configuration hash in a heartbeat reply, fetches the file over
//! plain HTTP and over HTTPS with signed requests, and the file verifies. A player the content
//! was not published to, and an unsigned request, are refused; bytes sent are recorded.
#![allow(clippy::disallowed_methods, clippy::too_many_lines)] // a real clock; one end-to-end story

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleetwire_session::{ClientConfig, ClientEvent, PlayerId, PlayerSecret, PlayerStatus};
use fleetwire_tokio::session::{PlayerTransport, run_player};
use fleetwire_tokio::tls;
use fleetwire_tokio::transfer::{
    Error as FetchError, FetchOptions, HttpEndpoint, RequestSigner, fetch_http,
};
use fleetwire_transfer::PublicKey;
use rustls::pki_types::ServerName;
use tokio::sync::{mpsc, watch};

mod common;
use common::{BIN, cli, data_dir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_add_notifies_player_which_fetches_over_http_and_https() {
    let data = data_dir("content");
    common::write_config(
        &data,
        "[session]\nlisten = \"127.0.0.1:0\"\nheartbeat_interval_secs = 1\nsilence_grace_secs = 1\n\
         [http]\nhttps_listen = \"127.0.0.1:0\"\nhttp_listen = \"127.0.0.1:0\"\n\
         [sensor]\nlisten = \"127.0.0.1:0\"\n[transfer]\nlisten = \"127.0.0.1:0\"\n\
         [content]\nchunk_size = 65536\n",
    );
    let secrets = data.join("p.csv");
    cli(
        &data,
        &[
            "player",
            "add",
            "--approved",
            "--count",
            "2",
            "--secrets-out",
            secrets.to_str().unwrap(),
        ],
    );
    let players: Vec<(PlayerId, PlayerSecret)> = std::fs::read_to_string(&secrets)
        .unwrap()
        .lines()
        .map(|l| {
            let (id, s) = l.split_once(',').unwrap();
            (id.parse().unwrap(), s.parse().unwrap())
        })
        .collect();
    let (id, secret) = players[0].clone();
    let (other, other_secret) = players[1].clone();

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
    let (fingerprint, addr) = (fingerprint.unwrap(), addr.unwrap());
    let (https, http) = (https.unwrap(), http.unwrap());
    let mut key = [0u8; 32];
    hex::decode_to_slice(cli(&data, &["content", "key"]).trim(), &mut key).unwrap();
    let trusted = [PublicKey(key)];

    // The player logs in and reports every configuration hash it hears.
    let transport = PlayerTransport::Tls {
        config: tls::pinned_client_config(fingerprint).unwrap(),
        server_name: ServerName::try_from("fleetwire.local").unwrap(),
    };
    let (_status_tx, status) = watch::channel(PlayerStatus::default());
    let (hash_tx, mut hashes) = mpsc::unbounded_channel();
    let player_secret = secret.clone();
    let player = tokio::spawn(async move {
        run_player(
            addr,
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
    while !cli(&data, &["player", "list"]).contains("1 online") {
        assert!(start.elapsed() < Duration::from_secs(10), "never online");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Publish: the player hears a new configuration hash.
    let file: Vec<u8> = (0..700_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let src = data.join("menu.mp4");
    std::fs::write(&src, &file).unwrap();
    let added = cli(
        &data,
        &[
            "content",
            "add",
            src.to_str().unwrap(),
            "--to",
            &id.to_string(),
        ],
    );
    assert!(added.contains("content 1:"), "{added}");
    tokio::time::timeout(Duration::from_secs(15), hashes.recv())
        .await
        .expect("no configuration change heard")
        .unwrap();

    // The player asks what it should hold, then fetches over plain HTTP and over HTTPS, signed.
    let signer = Arc::new(RequestSigner::new(*id.as_bytes(), secret.as_bytes()));
    let listing = signed_get(http, &signer, "/v1/content").await;
    assert!(listing.starts_with("HTTP/1.1 200"), "{listing}");
    assert!(listing.contains("\"id\":1"), "{listing}");
    let unsigned = signed_get(http, &RequestSigner::new([9; 16], &[9; 32]), "/v1/content").await;
    assert!(unsigned.starts_with("HTTP/1.1 401"), "{unsigned}");
    let endpoints = [
        HttpEndpoint::http(http).with_signer(signer.clone()),
        HttpEndpoint::https(
            https,
            tls::pinned_client_config(fingerprint).unwrap(),
            ServerName::try_from("fleetwire.local").unwrap(),
        )
        .with_signer(signer),
    ];
    for (n, ep) in endpoints.iter().enumerate() {
        let dest = data.join(format!("fetched-{n}.mp4"));
        let report = fetch_http(ep, "1", &dest, &trusted, &FetchOptions::default(), |_| {})
            .await
            .unwrap();
        assert!(report.progress.done);
        assert_eq!(std::fs::read(&dest).unwrap(), file);
    }

    // Another player (not published to) and an unsigned request are refused.
    let stranger = HttpEndpoint::http(http).with_signer(Arc::new(RequestSigner::new(
        *other.as_bytes(),
        other_secret.as_bytes(),
    )));
    let refused = fetch_http(
        &stranger,
        "1",
        &data.join("no.mp4"),
        &trusted,
        &FetchOptions::default(),
        |_| {},
    )
    .await;
    assert!(
        matches!(refused, Err(FetchError::Status { status: 404, .. })),
        "{refused:?}"
    );
    let unsigned = fetch_http(
        &HttpEndpoint::http(http),
        "1",
        &data.join("no.mp4"),
        &trusted,
        &FetchOptions::default(),
        |_| {},
    )
    .await;
    assert!(
        matches!(unsigned, Err(FetchError::Status { status: 401, .. })),
        "{unsigned:?}"
    );
    assert!(!data.join("no.mp4").exists());

    // Bytes sent are recorded per player (flushed every 2 s).
    let start = Instant::now();
    loop {
        let list = cli(&data, &["content", "list"]);
        let want = format!(
            "sent to {}: {} bytes",
            hex::encode(id.as_bytes()),
            2 * file.len()
        );
        if list.contains(&want) {
            assert!(list.contains("menu.mp4"), "{list}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "bytes not recorded:\n{list}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    player.abort();
    Command::new("kill")
        .args(["-INT", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(server.wait().unwrap().success());
    let _ = std::fs::remove_dir_all(&data);
}

/// A GET on plain HTTP carrying the player's signed-request header; the raw response.
async fn signed_get(addr: std::net::SocketAddr, signer: &RequestSigner, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{}: {}\r\n\r\n",
        fleetwire_tokio::transfer::AUTH_HEADER,
        signer.header("GET", path, now).unwrap()
    );
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut response)).await;
    String::from_utf8_lossy(&response).into_owned()
}
