//! The `fleetwire-fetch` binary itself, over the framed TLS stream (`tcps://`), killed with
//! SIGKILL at random points after its progress shows bytes, and restarted: the final file is
//! byte-identical, nothing appears under the final name before the download completed, and
//! each restart costs at most one window of data — measured from the fetch's own progress
//! lines (bytes that arrived but were not yet durable) and from the server's per-connection
//! accounting of chunk bytes sent.
#![allow(clippy::disallowed_methods, clippy::too_many_lines)] // a real clock seeds the kill points; one story

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fleetwire_session::{PlayerId, PlayerLookup, PlayerSecret};
use fleetwire_tokio::framed::{Outgoing, accept_player, send_framed_many, tls_binding};
use fleetwire_tokio::tls;
use fleetwire_tokio::transfer::{PartFile, SendOptions};
use fleetwire_transfer::{ContentSigner, FileKind, Manifest, RateLimit, SenderConfig};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;

const BIN: &str = env!("CARGO_BIN_EXE_fleetwire-fetch");
const CHUNK: u32 = 16 * 1024;
const WINDOW: u32 = 8;
const FILE_LEN: usize = 3 << 20;
const KILLS: usize = 3;
/// A generous bound on any single wait, so a hung run fails instead of hanging CI. Not a
/// performance assertion.
const GUARD: Duration = Duration::from_secs(120);

struct Server {
    addr: SocketAddr,
    fingerprint: [u8; 32],
    /// Chunk bytes sent, one entry per connection in accept order.
    sent: Arc<Mutex<Vec<u64>>>,
}

/// A framed transfer server on 127.0.0.1:0 with one player who is assigned `file`.
async fn serve(
    player: PlayerId,
    secret: &PlayerSecret,
    file: PathBuf,
    signer: &ContentSigner,
) -> Server {
    let data = std::fs::read(&file).unwrap();
    let manifest = Manifest::build(FileKind::Media, 1, 1, CHUNK, &data)
        .unwrap()
        .sign(signer);
    let cert = rcgen::generate_simple_self_signed(vec!["fleetwire.local".into()]).unwrap();
    let der = cert.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
    let fingerprint = tls::fingerprint(&der);
    let acceptor = tokio_rustls::TlsAcceptor::from(tls::server_config(vec![der], key).unwrap());
    let mut directory = std::collections::HashMap::new();
    directory.insert(
        player,
        PlayerLookup::Known {
            verifier: secret.verifier(),
            approved: true,
            config_hash: None,
        },
    );
    let directory = Arc::new(directory);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let options = SendOptions {
        config: Arc::new(SenderConfig {
            window: 64,
            // Paced so the kills land mid-transfer; a long RTO so a busy machine causes no
            // spurious retransmissions that would blur the accounting.
            connection_rate: Some(RateLimit {
                bytes_per_sec: 1_500_000,
                burst: 64 * 1024,
            }),
            initial_rto: Duration::from_secs(10),
            min_rto: Duration::from_secs(10),
            max_rto: Duration::from_secs(20),
            ..SenderConfig::default()
        }),
        ..SendOptions::default()
    };
    let sent = Arc::new(Mutex::new(Vec::new()));
    let counts = sent.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, directory, options, counts) = (
                acceptor.clone(),
                directory.clone(),
                options.clone(),
                counts.clone(),
            );
            let files = vec![Outgoing {
                manifest: manifest.clone(),
                file: file.clone(),
            }];
            tokio::spawn(async move {
                let accepted = std::time::Instant::now();
                let Ok(mut stream) = acceptor.accept(tcp).await else {
                    return;
                };
                let binding = tls_binding(stream.get_ref().1).unwrap();
                let config = Arc::new(fleetwire_session::ServerConfig::default());
                if accept_player(
                    &mut stream,
                    binding,
                    config,
                    &*directory,
                    accepted,
                    &fleetwire_tokio::session::OpenGate,
                    std::net::Ipv4Addr::LOCALHOST.into(),
                )
                .await
                .is_err()
                {
                    return;
                }
                let slot = {
                    let mut c = counts.lock().unwrap();
                    c.push(0);
                    c.len() - 1
                };
                let _ = send_framed_many(&mut stream, files, &options, |n| {
                    counts.lock().unwrap()[slot] += n;
                })
                .await;
            });
        }
    });
    Server {
        addr,
        fingerprint,
        sent,
    }
}

/// One `progress STORED TOTAL RECEIVED RESUMED` line.
#[derive(Debug, Clone, Copy, Default)]
struct Line {
    stored: u64,
    total: u64,
    received: u64,
    resumed: u64,
}

fn parse(line: &str) -> Option<Line> {
    let mut f = line.strip_prefix("progress ")?.split(' ');
    let mut n = || f.next()?.parse::<u64>().ok();
    Some(Line {
        stored: n()?,
        total: n()?,
        received: n()?,
        resumed: n()?,
    })
}

/// What one run of the binary showed.
#[derive(Debug, Default)]
struct Run {
    first: Option<Line>,
    last: Line,
    killed: bool,
    summary: Option<String>,
}

/// Runs the binary; kills it once it has stored `kill_at` bytes (if given).
async fn run(args: &[String], out: &Path, kill_at: Option<u64>) -> Run {
    let mut child = tokio::process::Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut r = Run::default();
    loop {
        let line = tokio::time::timeout(GUARD, lines.next_line())
            .await
            .expect("fetch produced no output for two minutes")
            .unwrap();
        let Some(line) = line else { break };
        if let Some(p) = parse(&line) {
            r.first.get_or_insert(p);
            r.last = p;
            if !r.killed && kill_at.is_some_and(|k| p.stored >= k && p.stored < p.total) {
                child.start_kill().unwrap();
                r.killed = true;
            }
        } else if line.contains("bytes verified") {
            r.summary = Some(line);
        }
    }
    let status = tokio::time::timeout(GUARD, child.wait())
        .await
        .unwrap()
        .unwrap();
    if r.killed {
        assert!(!status.success());
        assert!(
            !out.exists(),
            "{} appeared under its final name before the download completed",
            out.display()
        );
    }
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_binary_killed_at_random_points_resumes_over_framed_tls() {
    let dir = std::env::temp_dir().join(format!("fw-fetch-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut x = 0x9e37_79b9_u32;
    let data: Vec<u8> = (0..FILE_LEN)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    let src = dir.join("source.bin");
    std::fs::write(&src, &data).unwrap();
    let signer = ContentSigner::from_seed(&[3; 32]);
    let player = PlayerId::from_bytes([7; 16]);
    let secret = PlayerSecret::from_bytes([8; 32]);
    let server = serve(player, &secret, src, &signer).await;
    let out = dir.join("menu.mp4");
    let args: Vec<String> = [
        "--server",
        &format!("tcps://{}", server.addr),
        "--fingerprint",
        &tls::format_fingerprint(&server.fingerprint),
        "--key",
        &hex::encode(signer.public_key().0),
        "--player",
        &player.to_string(),
        "--secret",
        &secret.to_hex(),
        "--content",
        "1",
        "--out",
        out.to_str().unwrap(),
        "--window",
        &WINDOW.to_string(),
        "--progress-lines",
    ]
    .iter()
    .map(ToString::to_string)
    .collect();

    // Random kill points (printed, so a failure can be replayed by hand).
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        | 1;
    println!("kill-point seed {seed}");
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed
    };

    let window_bytes = u64::from(WINDOW * CHUNK);
    let mut runs: Vec<Run> = Vec::new();
    let mut stored_before = 0u64;
    // Up to KILLS killed runs, then one that finishes (or an earlier one that outran its kill).
    loop {
        let kill_at = (runs.len() < KILLS).then(|| {
            // Somewhere between 10% and 60% of what is left.
            let left = FILE_LEN as u64 - stored_before;
            stored_before + left * (10 + u64::from(rand() % 51)) / 100
        });
        let r = run(&args, &out, kill_at).await;
        let first = r.first.expect("no progress line");
        assert_eq!(
            first.resumed, stored_before,
            "resumed exactly what was durable"
        );
        let killed = r.killed;
        runs.push(r);
        if !killed {
            break;
        }
        stored_before = durable_bytes(&out).unwrap_or(0);
    }
    let summary = runs
        .last()
        .unwrap()
        .summary
        .clone()
        .expect("no summary line");
    assert!(
        summary.contains(&format!("{FILE_LEN} bytes verified")),
        "{summary}"
    );
    assert_eq!(std::fs::read(&out).unwrap(), data, "not byte-identical");
    assert!(!PathBuf::from(format!("{}.part", out.display())).exists());
    assert!(!PathBuf::from(format!("{}.part.state", out.display())).exists());

    // From the fetch's progress: after each kill, what had arrived in that run but was not yet
    // durable (so the next run fetched it again) is at most one window.
    let kills = runs.iter().filter(|r| r.killed).count();
    assert!(kills >= 1, "every run finished before its kill point");
    for pair in runs.windows(2) {
        let (killed, next) = (&pair[0], &pair[1]);
        let arrived = killed.first.unwrap().resumed + killed.last.received;
        let durable = next.first.unwrap().resumed;
        let lost = arrived.saturating_sub(durable);
        assert!(
            lost <= window_bytes,
            "a restart re-fetched {lost} bytes that had arrived, more than one window ({window_bytes})"
        );
    }

    // From the server's accounting: on each connection cut by a kill, the chunk bytes sent
    // that did not end up stored (to be sent again after the restart) are at most one window.
    let sent = server.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), runs.len(), "one connection per run: {sent:?}");
    for (k, pair) in runs.windows(2).enumerate() {
        let newly_stored = pair[1].first.unwrap().resumed - pair[0].first.unwrap().resumed;
        println!(
            "run {k}: sent {} bytes, {newly_stored} became durable",
            sent[k]
        );
        let wasted = sent[k].saturating_sub(newly_stored);
        assert!(
            wasted <= window_bytes,
            "connection {k}: sent {} bytes, {newly_stored} stored: {wasted} to send again, more than one window ({window_bytes})",
            sent[k]
        );
    }
    let total: u64 = sent.iter().sum();
    assert!(
        total <= FILE_LEN as u64 + kills as u64 * window_bytes,
        "{sent:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Bytes recorded as durable in `out`'s resume record, if there is one.
fn durable_bytes(out: &Path) -> Option<u64> {
    let trusted = [ContentSigner::from_seed(&[3; 32]).public_key()];
    let partial = PartFile::load_partial(out, &trusted, u32::MAX)?;
    let chunks = partial.manifest().chunk_count();
    let mut bytes = u64::from(partial.stored().count()) * u64::from(CHUNK);
    if partial.stored().contains(chunks - 1) {
        bytes = bytes - u64::from(CHUNK) + partial.manifest().chunk_len(chunks - 1) as u64;
    }
    Some(bytes)
}
