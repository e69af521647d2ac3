//! Helpers shared by the server's end-to-end tests.
#![allow(dead_code, unreachable_pub)] // each test crate uses its own subset

use std::path::{Path, PathBuf};
use std::process::Command;

/// The server binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_fleetwire-server");

/// Runs `fleetwire-server --data-dir DATA ARGS…`, asserts it succeeded, returns its stdout.
pub fn cli(data: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A fresh, empty `fleetwire-TAG-PID` directory under the system's temporary directory.
pub fn data_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fleetwire-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub mod api;
