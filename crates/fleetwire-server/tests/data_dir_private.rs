//! Issue 10, hole 5: the data directory holds live secrets (logger keys, password hashes, the
//! SMTP password), so no file in it may be readable by other local users — including `SQLite`'s
//! `-wal` and `-shm` side files, which `SQLite` creates itself. Earlier versions made them 0644.
#![allow(clippy::disallowed_methods)] // a real clock for the startup wait

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

mod common;
use common::{BIN, cli, data_dir};

const PORTS: &str = "[session]\nlisten = \"127.0.0.1:0\"\n\
    [http]\nhttps_listen = \"127.0.0.1:0\"\nhttp_listen = \"127.0.0.1:0\"\n\
    [sensor]\nlisten = \"127.0.0.1:0\"\n[transfer]\nlisten = \"127.0.0.1:0\"\n";

/// Starts `serve` with the test's own (permissive) umask and waits until it is up.
fn serve(data: &Path) -> Child {
    let mut child = Command::new(BIN)
        .arg("--data-dir")
        .arg(data)
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.starts_with("data directory") {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "server exited early");
    }
    // Keep reading so the server never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    child
}

/// Every path under `root` (itself included) with its permission bits, not following links.
fn modes(root: &Path) -> Vec<(PathBuf, u32)> {
    let mut all = Vec::new();
    let mut pending = vec![root.to_owned()];
    while let Some(p) = pending.pop() {
        let meta = std::fs::symlink_metadata(&p).unwrap();
        all.push((p.clone(), meta.permissions().mode() & 0o777));
        if meta.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                pending.push(e.unwrap().path());
            }
        }
    }
    all
}

fn assert_private(root: &Path) {
    let all = modes(root);
    let names: Vec<String> = all
        .iter()
        .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    // The store's side files exist while the server runs: they are checked too.
    for expected in [
        "fleetwire.db",
        "fleetwire.db-wal",
        "fleetwire.db-shm",
        "fleetwire.toml",
        "key.pem",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing: {names:?}"
        );
    }
    for (path, mode) in all {
        assert_eq!(
            mode & 0o077,
            0,
            "{} has mode {mode:04o}: readable by other users",
            path.display()
        );
    }
}

#[test]
fn every_file_the_server_and_sqlite_create_is_private() {
    let data = data_dir("private-new");
    std::fs::write(data.join("fleetwire.toml"), PORTS).unwrap();
    cli(&data, &["player", "add", "--approved"]);
    let mut server = serve(&data);
    assert_private(&data);
    server.kill().unwrap();
    server.wait().unwrap();
    std::fs::remove_dir_all(&data).unwrap();
}

#[test]
fn files_left_open_by_an_earlier_version_are_restricted_at_start() {
    let data = data_dir("private-old");
    std::fs::write(data.join("fleetwire.toml"), PORTS).unwrap();
    cli(&data, &["player", "add", "--approved"]);
    // What an earlier version left behind: world-readable store and settings.
    for name in ["fleetwire.db", "fleetwire.toml"] {
        std::fs::set_permissions(data.join(name), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut server = serve(&data);
    assert_private(&data);
    server.kill().unwrap();
    server.wait().unwrap();
    std::fs::remove_dir_all(&data).unwrap();
}

#[test]
fn a_key_file_readable_by_others_stops_the_server_with_its_name() {
    let data = data_dir("private-key");
    std::fs::write(data.join("fleetwire.toml"), PORTS).unwrap();
    let mut server = serve(&data); // creates tls/key.pem
    server.kill().unwrap();
    server.wait().unwrap();
    let key = data.join("tls").join("key.pem");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(&data)
        .args(["player", "list"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "started with a leaked key");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("key.pem") && err.contains("0644"), "{err}");
    // The mode is left as it was: the operator decides.
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o644
    );
    std::fs::remove_dir_all(&data).unwrap();
}
