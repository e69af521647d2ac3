//! A running `fleetwire-server serve` on loopback for the slow-client tests, and clients that
//! connect from a chosen loopback source address (127.0.0.2, 127.0.0.3 …: one source each).
#![allow(dead_code, unreachable_pub)] // each test crate uses its own subset
#![allow(clippy::disallowed_methods)] // a real clock

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleetwire_session::{ClientConfig, PlayerId, PlayerSecret};
use fleetwire_tokio::framed::{login_player, tls_binding};
use fleetwire_tokio::tls;
use fleetwire_transfer::{PublicKey, Receiver, ReceiverConfig};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;

use crate::common::{BIN, cli, data_dir};

/// Guards against a hung test; never a performance assertion.
pub const GUARD: Duration = Duration::from_secs(60);

/// The server, stopped with SIGINT (then SIGKILL) when dropped.
pub struct Running {
    pub data: PathBuf,
    child: Child,
    pub sessions: SocketAddr,
    pub https: SocketAddr,
    pub http: SocketAddr,
    pub framed: SocketAddr,
    pub fingerprint: [u8; 32],
}

impl Running {
    /// Writes `fleetwire.toml` (every listener on 127.0.0.1:0, plus `extra` lines per section,
    /// e.g. `("http", "request_timeout_secs = 2")`) into a fresh data directory, runs `prepare`
    /// against it (provisioning with the command line), then starts `serve`.
    pub fn start(tag: &str, extra: &[(&str, &str)], prepare: impl FnOnce(&Path)) -> Self {
        let data = data_dir(tag);
        let mut toml = String::new();
        for section in ["session", "http", "sensor", "transfer", "content"] {
            let _ = writeln!(toml, "[{section}]");
            match section {
                "http" => {
                    toml.push_str(
                        "https_listen = \"127.0.0.1:0\"\nhttp_listen = \"127.0.0.1:0\"\n",
                    );
                }
                "content" => {}
                _ => toml.push_str("listen = \"127.0.0.1:0\"\n"),
            }
            for (s, lines) in extra {
                if *s == section {
                    toml.push_str(lines);
                    toml.push('\n');
                }
            }
        }
        crate::common::write_config(&data, &toml);
        prepare(&data);
        // FLEETWIRE_SERVER_BIN runs another build (the release binary, for measurements).
        let bin =
            std::env::var_os("FLEETWIRE_SERVER_BIN").map_or_else(|| BIN.into(), PathBuf::from);
        let mut child = Command::new(bin)
            .arg("--data-dir")
            .arg(&data)
            .arg("serve")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let (mut fingerprint, mut sessions, mut https, mut http, mut framed) =
            (None, None, None, None, None);
        let after = |text: &str, prefix: &str| -> Option<SocketAddr> {
            text.strip_prefix(prefix)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        };
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
            sessions = sessions.or(after(&text, "player sessions on "));
            https = https.or(after(&text, "https api on "));
            http = http.or(after(&text, "http on "));
            framed = framed.or(after(&text, "framed transfer on "));
        }
        // Keep reading stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = String::new();
            while stdout.read_line(&mut sink).is_ok_and(|n| n > 0) {
                sink.clear();
            }
        });
        Self {
            data,
            child,
            sessions: sessions.unwrap(),
            https: https.unwrap(),
            http: http.unwrap(),
            framed: framed.unwrap(),
            fingerprint: fingerprint.unwrap(),
        }
    }

    /// The server's process id (for /proc measurements).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's resident set size in KiB (`VmRSS` in /proc/PID/status).
    pub fn rss_kib(&self) -> u64 {
        self.status_kib("VmRSS:")
    }

    /// The server's resident anonymous memory in KiB (`RssAnon`: the heap and stacks, without
    /// the code pages a first use of a path brings in).
    pub fn anon_kib(&self) -> u64 {
        self.status_kib("RssAnon:")
    }

    fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// The TLS client configuration that pins this server's certificate.
    pub fn tls_config(&self) -> Arc<rustls::ClientConfig> {
        tls::pinned_client_config(self.fingerprint).unwrap()
    }

    /// A TLS connection to `addr` from the loopback source `from`.
    pub async fn tls_from(
        &self,
        from: IpAddr,
        addr: SocketAddr,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        self.tls_over(tcp_from(from, addr).await?).await
    }

    /// TLS to this server over an open TCP connection.
    pub async fn tls_over(
        &self,
        tcp: TcpStream,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        tokio_rustls::TlsConnector::from(self.tls_config())
            .connect(ServerName::try_from("fleetwire.local").unwrap(), tcp)
            .await
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = self.child.try_wait() {
                let _ = std::fs::remove_dir_all(&self.data);
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

/// A TCP connection to `addr` from the loopback source `from` (an ephemeral port).
pub async fn tcp_from(from: IpAddr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = match from {
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(addr).await
}

/// Like [`tcp_from`] with a 64 KiB receive buffer (no autotuning): a client that stops reading
/// lets little pile up in its own kernel buffers, so the server's writes block early.
pub async fn tight_tcp_from(from: IpAddr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(64 * 1024)?;
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(addr).await
}

/// The loopback source `127.0.0.N`.
pub fn source(n: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, n])
}

/// Provisions `count` approved players; their ids and secrets.
pub fn add_players(data: &Path, count: usize) -> Vec<(PlayerId, PlayerSecret)> {
    let secrets = data.join(format!("players-{}.csv", std::process::id()));
    let _ = std::fs::remove_file(&secrets);
    cli(
        data,
        &[
            "player",
            "add",
            "--approved",
            "--count",
            &count.to_string(),
            "--secrets-out",
            secrets.to_str().unwrap(),
        ],
    );
    let players = std::fs::read_to_string(&secrets)
        .unwrap()
        .lines()
        .map(|l| {
            let (id, s) = l.split_once(',').unwrap();
            (id.parse().unwrap(), s.parse().unwrap())
        })
        .collect();
    let _ = std::fs::remove_file(&secrets);
    players
}

/// Publishes `bytes` (written to a file named `name`) to `to` (a player id or `all`); the
/// content id printed.
pub fn publish(data: &Path, name: &str, bytes: &[u8], to: &str, chunk_size: u32) -> String {
    let src = data.join(name);
    std::fs::write(&src, bytes).unwrap();
    let out = cli(
        data,
        &[
            "content",
            "add",
            src.to_str().unwrap(),
            "--to",
            to,
            "--chunk-size",
            &chunk_size.to_string(),
        ],
    );
    let _ = std::fs::remove_file(&src);
    out.lines()
        .find_map(|l| l.strip_prefix("content ")?.split(':').next())
        .unwrap_or_else(|| panic!("no content id in {out:?}"))
        .to_owned()
}

/// Reads until the peer closes (end of stream or an error); false if it stays open for `within`.
pub async fn closed_within<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut S,
    within: Duration,
) -> bool {
    let mut buf = vec![0u8; 64 * 1024];
    tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// Pseudo-random bytes (xorshift), so content never compresses or repeats.
pub fn bytes(len: usize, seed: u32) -> Vec<u8> {
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

/// Logs `player` in on the framed port over a TCP connection with a small receive buffer,
/// accepts the first offer (so the server starts sending chunks), then reads nothing more.
pub async fn accepted_not_reading(
    server: &Running,
    (id, secret): &(PlayerId, PlayerSecret),
    key: [u8; 32],
) -> TlsStream<TcpStream> {
    let tcp = tight_tcp_from(source(2), server.framed).await.unwrap();
    let mut tls = server.tls_over(tcp).await.unwrap();
    let binding = tls_binding(tls.get_ref().1).unwrap();
    let config = Arc::new(ClientConfig::new(*id, secret.clone()));
    let mut pending = tokio::time::timeout(GUARD, login_player(&mut tls, binding, config))
        .await
        .unwrap()
        .unwrap();
    // The transfer frames (`1 | type | len:u32be | body`) through a receiver machine, until it
    // has its Accept to send.
    let mut receiver = Receiver::new(
        Arc::new(ReceiverConfig::new(vec![PublicKey(key)])),
        Instant::now(),
    );
    let mut buf = vec![0u8; 64 * 1024];
    let mut out = Vec::new();
    loop {
        while pending.len() >= 6 {
            let len = u32::from_be_bytes([pending[2], pending[3], pending[4], pending[5]]) as usize;
            if pending.len() < 6 + len {
                break;
            }
            let _ = receiver.handle_input(Instant::now(), &pending[6..6 + len]);
            pending.drain(..6 + len);
        }
        while receiver.poll_event().is_some() {}
        if receiver.poll_transmit(&mut out).is_some() {
            let mut frame = vec![1, out[1]];
            frame.extend_from_slice(&u32::try_from(out.len()).unwrap().to_be_bytes());
            frame.extend_from_slice(&out);
            tls.write_all(&frame).await.unwrap();
            tls.flush().await.unwrap();
            return tls;
        }
        let n = tokio::time::timeout(GUARD, tls.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed before the offer");
        pending.extend_from_slice(&buf[..n]);
    }
}

/// The content-signing public key (`content key`).
pub fn content_key(data: &Path) -> [u8; 32] {
    let mut key = [0u8; 32];
    hex::decode_to_slice(cli(data, &["content", "key"]).trim(), &mut key).unwrap();
    key
}
