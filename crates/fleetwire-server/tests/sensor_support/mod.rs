//! Helpers of the sensor end-to-end tests: a server started on ephemeral loopback ports (with
//! plaintext sensor uploads), and a logger wake over plaintext from a chosen local address.
#![allow(dead_code, unreachable_pub, clippy::missing_panics_doc)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleetwire_sensor::logger::{self, LoggerConfig, LoggerSession};
use fleetwire_sensor::{Batch, Channel, CloseReason, LoggerId, LoggerKey};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

use crate::common::BIN;

/// Every listener on an ephemeral loopback port; sensor uploads in plaintext (the batches still
/// carry their MAC), plus `extra` TOML lines under `[sensor]`.
pub fn write_config(data: &Path, extra: &str) {
    crate::common::write_config(
        data,
        &format!(
            "[session]\nlisten = \"127.0.0.1:0\"\n\
             [http]\nhttps_listen = \"127.0.0.1:0\"\nhttp_listen = \"127.0.0.1:0\"\n\
             [transfer]\nlisten = \"127.0.0.1:0\"\n\
             [sensor]\nlisten = \"127.0.0.1:0\"\ndanger_plaintext = true\n{extra}"
        ),
    );
}

/// `fleetwire-server serve`, optionally under `wrapper` (e.g. `strace …`), until it prints its
/// data directory; returns the child and the sensor listener's address.
pub fn serve(data: &Path, wrapper: &[&str]) -> (Child, SocketAddr) {
    let mut cmd = match wrapper.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(BIN);
            c
        }
        None => Command::new(BIN),
    };
    // Set, so `serve` does not re-execute itself (one process to trace and to signal).
    cmd.env("MALLOC_ARENA_MAX", "2");
    let mut server = cmd
        .arg("--data-dir")
        .arg(data)
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(server.stdout.take().unwrap());
    let mut addr = None;
    let mut text = String::new();
    while !text.starts_with("data directory") {
        text.clear();
        assert!(
            stdout.read_line(&mut text).unwrap() > 0,
            "server exited early"
        );
        if let Some(rest) = text.strip_prefix("sensor uploads on ") {
            addr = rest.split_whitespace().next().and_then(|a| a.parse().ok());
        }
    }
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut sink = String::new();
        while stdout.read_line(&mut sink).is_ok_and(|n| n > 0) {
            sink.clear();
        }
    });
    (server, addr.expect("sensor listener printed"))
}

/// Ctrl-C to the server process `pid`; waits for `child` (the server or its wrapper) to exit.
pub fn interrupt(pid: u32, child: &mut Child) {
    Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
}

/// The one child process of `pid` (the server under a wrapper such as strace).
pub fn only_child(pid: u32) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        if let Some(c) = children.split_whitespace().next() {
            return c.parse().unwrap();
        }
        assert!(Instant::now() < deadline, "no child of {pid}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `count` readings of one channel from `first_seq`, a minute apart.
pub fn batch(logger: u64, first_seq: u64, count: u64) -> Batch {
    Batch {
        logger: LoggerId(logger),
        epoch: 0,
        first_seq,
        start: 1_750_000_000 + first_seq * 60,
        interval_s: 60,
        channels: vec![Channel::TEMPERATURE_DECI_C],
        values: (first_seq..first_seq + count)
            .map(|s| Some(200 + i32::try_from(s % 50).unwrap()))
            .collect(),
        ..Batch::default()
    }
}

/// How one plaintext wake went.
#[derive(Debug)]
pub struct Wake {
    /// How the logger's session ended.
    pub reason: CloseReason,
    /// Acks the logger accepted.
    pub acks: usize,
    /// Bytes the server sent.
    pub received: usize,
}

/// One wake of logger `id` (key `key`) over plaintext from local address `from`.
pub async fn wake_from(
    from: &str,
    server: SocketAddr,
    id: u64,
    key: LoggerKey,
    batches: Vec<Batch>,
) -> Wake {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let mut tcp = socket.connect(server).await.unwrap();
    let mut lg = LoggerSession::new(
        Arc::new(LoggerConfig::new(LoggerId(id), key)),
        Instant::now(),
        batches,
    )
    .unwrap();
    let mut out = Vec::new();
    while lg.poll_transmit(&mut out).is_some() {}
    let _ = tcp.write_all(&out).await;
    let mut buf = [0u8; 4096];
    let (mut received, mut acks) = (0, 0);
    loop {
        while let Some(ev) = lg.poll_event() {
            match ev {
                logger::Event::Acked { .. } => acks += 1,
                logger::Event::Closed { reason } => {
                    return Wake {
                        reason,
                        acks,
                        received,
                    };
                }
                _ => {}
            }
        }
        let read = tokio::time::timeout(Duration::from_secs(20), tcp.read(&mut buf))
            .await
            .expect("the server answers or closes within 20 s");
        match read {
            Ok(0) | Err(_) => lg.handle_close(Instant::now()),
            Ok(n) => {
                received += n;
                let _ = lg.handle_input(Instant::now(), &buf[..n]);
            }
        }
    }
}

/// The logger id and key `logger add` printed.
pub fn add_logger(data: &Path) -> (u64, LoggerKey) {
    let added = crate::common::cli(data, &["logger", "add"]);
    let line = |prefix: &str| {
        added
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap()
            .trim()
            .to_owned()
    };
    let id: u64 = line("logger id:").parse().unwrap();
    let mut key = [0u8; 32];
    hex::decode_to_slice(line("key:"), &mut key).unwrap();
    (id, LoggerKey::from_bytes(key))
}
