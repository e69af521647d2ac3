//! Issue 10, hole 14: an acknowledgement tells a logger to free its readings, so they must be on
//! disk before it leaves. The real server runs under `strace -f`, loggers upload batches one
//! connection at a time, and the trace is read in order: every write to the store's write-ahead
//! log must be followed by an `fsync`/`fdatasync` of it before the next acknowledgement is
//! written to a logger's socket. With `SQLite`'s `synchronous = NORMAL` a WAL commit is never
//! synced and every ack fails this.
//!
//! Needs `strace` (scripts/test.sh installs it).
#![allow(clippy::disallowed_methods)] // a real clock

use std::collections::HashMap;

use fleetwire_sensor::CloseReason;

mod common;
mod sensor_support;
use common::data_dir;
use sensor_support::{add_logger, batch, interrupt, only_child, serve, wake_from, write_config};

/// What the trace says about acks and WAL syncs.
#[derive(Debug, Default)]
struct Durability {
    /// Writes to a logger's socket (the cloud writes nothing but acks and rejects there).
    acks: usize,
    /// Acks written while the WAL held writes not synced since.
    unsynced_acks: usize,
    /// For each ack, the WAL syncs since the last WAL write before it.
    syncs_before_ack: Vec<usize>,
    wal_writes: usize,
    wal_syncs: usize,
}

/// The path or socket strace printed for the first argument: `5</d/x.db-wal>` gives `/d/x.db-wal`,
/// `9<TCP:[127.0.0.1:14354->127.0.0.1:5000]>` gives `TCP:[127.0.0.1:14354->127.0.0.1:5000]`.
fn fd_path(call: &str) -> &str {
    let Some(start) = call.find('<') else {
        return "";
    };
    let rest = &call[start + 1..];
    let end = rest
        .char_indices()
        .find(|&(i, c)| c == '>' && matches!(rest[i + 1..].chars().next(), Some(',' | ')' | ' ')))
        .map_or(rest.len(), |(i, _)| i);
    &rest[..end]
}

/// Reads an `strace -f -y -yy` trace in order. A syscall's effect counts at its completion (its
/// full line, or its `resumed` line); an ack counts at its entry.
fn read_trace(trace: &str, sensor_port: u16) -> Durability {
    let mut d = Durability::default();
    let mut dirty = false;
    let mut syncs_since_write = 0;
    // pid -> what its unfinished syscall was
    let mut pending: HashMap<&str, &'static str> = HashMap::new();
    let socket = format!(":{sensor_port}->");
    for line in trace.lines() {
        let Some((pid, call)) = line.split_once(' ') else {
            continue;
        };
        let call = call.trim_start();
        let kind = if call.starts_with("<... ") {
            // `<... pwrite64 resumed>…`: completes what this pid started.
            pending.remove(pid)
        } else {
            let name = call.split('(').next().unwrap_or("");
            let fd = fd_path(call);
            let kind = match name {
                "write" | "pwrite64" | "writev" | "pwritev" | "pwritev2"
                    if fd.ends_with("-wal") =>
                {
                    Some("wal-write")
                }
                "fsync" | "fdatasync" if fd.ends_with("-wal") => Some("wal-sync"),
                "write" | "writev" | "sendto" | "sendmsg" if fd.contains(&socket) => Some("ack"),
                _ => None,
            };
            match kind {
                // An ack counts at its entry, the rest at completion.
                Some(k) if k != "ack" && call.ends_with("<unfinished ...>") => {
                    pending.insert(pid, k);
                    None
                }
                k => k,
            }
        };
        match kind {
            Some("wal-write") => {
                d.wal_writes += 1;
                dirty = true;
                syncs_since_write = 0;
            }
            Some("wal-sync") => {
                d.wal_syncs += 1;
                dirty = false;
                syncs_since_write += 1;
            }
            Some("ack") => {
                d.acks += 1;
                if dirty {
                    d.unsynced_acks += 1;
                }
                d.syncs_before_ack.push(syncs_since_write);
            }
            _ => {}
        }
    }
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_ack_leaves_after_the_batch_is_synced_to_disk() {
    // The trace reads SQLite's own WAL file. On PostgreSQL the durability rule is the
    // database's (each group commit runs with synchronous_commit = on, and the ack waits for
    // COMMIT): not traced here.
    if std::env::var("FLEETWIRE_TEST_STORE").as_deref() == Ok("postgres") {
        return;
    }
    assert!(
        std::process::Command::new("strace")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success()),
        "this test needs strace (scripts/test.sh installs it: apt-get install -y strace)"
    );
    let data = data_dir("sensor-durable");
    write_config(&data, "");
    let loggers: Vec<_> = (0..3).map(|_| add_logger(&data)).collect();
    let trace_path = data.join("strace.txt");
    let trace_arg = trace_path.to_str().unwrap().to_owned();
    let (mut strace, addr) = serve(
        &data,
        &[
            "strace",
            "-f",
            "-qq",
            "-y",
            "-yy",
            "-s",
            "0",
            "-e",
            "trace=write,pwrite64,writev,pwritev,pwritev2,sendto,sendmsg,fsync,fdatasync",
            "-o",
            &trace_arg,
        ],
    );
    let server_pid = only_child(strace.id());

    // One connection at a time: each stores its batches, then acknowledges them.
    let mut expected_acks = 0;
    for round in 0..4u64 {
        for (id, key) in &loggers {
            let batches = vec![batch(*id, round * 40, 20), batch(*id, round * 40 + 20, 20)];
            let w = wake_from("127.0.0.1", addr, *id, key.clone(), batches).await;
            assert_eq!(w.reason, CloseReason::Finished, "{w:?}");
            expected_acks += 2;
        }
    }
    interrupt(server_pid, &mut strace);

    let trace = std::fs::read_to_string(&trace_path).unwrap();
    let d = read_trace(&trace, addr.port());
    println!("{d:?}");
    assert!(d.wal_writes > 0, "the trace shows the WAL being written");
    assert!(
        d.acks >= loggers.len() * 4,
        "the trace shows the acks ({} of {expected_acks} acks written, in {} socket writes)",
        expected_acks,
        d.acks
    );
    assert_eq!(
        d.unsynced_acks, 0,
        "{} of {} ack writes left while the WAL held unsynced writes \
         (syncs between the last WAL write and each ack: {:?})",
        d.unsynced_acks, d.acks, d.syncs_before_ack
    );
    assert!(d.syncs_before_ack.iter().all(|&n| n >= 1));
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn the_trace_reader_sees_an_unsynced_ack() {
    let trace = "\
10 pwrite64(5</d/fleetwire.db-wal>, \"\"..., 4096, 0) = 4096
10 fdatasync(5</d/fleetwire.db-wal>) = 0
11 sendto(9<TCP:[127.0.0.1:14354->127.0.0.1:5000]>, \"\"..., 40, MSG_NOSIGNAL, NULL, 0) = 40
10  pwrite64(5</d/fleetwire.db-wal>, \"\"..., 4096, 0 <unfinished ...>
11  sendto(9<TCP:[127.0.0.1:14354->127.0.0.1:5000]>, \"\"..., 40, MSG_NOSIGNAL, NULL, 0) = 40
10  <... pwrite64 resumed>) = 4096
11 sendto(9<TCP:[127.0.0.1:14354->127.0.0.1:5000]>, \"\"..., 40, MSG_NOSIGNAL, NULL, 0) = 40
11 sendto(9<TCP:[127.0.0.1:4701->127.0.0.1:5001]>, \"\"..., 40, MSG_NOSIGNAL, NULL, 0) = 40
";
    let d = read_trace(trace, 14354);
    assert_eq!(d.acks, 3);
    // The first ack follows a synced write. The second enters while a later transaction's
    // write is still running (a write counts at completion). The third follows that write,
    // unsynced. The last send is another port's.
    assert_eq!(d.unsynced_acks, 1);
    assert_eq!(d.syncs_before_ack, vec![1, 1, 0]);
    assert_eq!((d.wal_writes, d.wal_syncs), (2, 1));
}
