//! A PostgreSQL cluster of a test's own (for the point-in-time and standby tests): run the
//! programs as the cluster's owner, query with psql, and stop whatever is still running at the
//! end, however the test ends.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs a PostgreSQL program as the cluster's owner (postgres refuses to run as root).
pub fn pg(bin: &Path, program: &str, args: &[&str]) -> Output {
    let exe = bin.join(program);
    let out = if is_root() {
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(&exe)
            .args(args)
            .output()
    } else {
        Command::new(&exe).args(args).output()
    }
    .unwrap_or_else(|e| panic!("{}: {e}", exe.display()));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

pub fn psql(conn: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .arg(conn)
        .args(["-v", "ON_ERROR_STOP=1", "-tAc", sql])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

pub fn chown_postgres(path: &Path) {
    if is_root() {
        let ok = Command::new("chown")
            .args(["-R", "postgres:"])
            .arg(path)
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }
}

/// Stops the test's clusters however the test ends (a failed assertion included).
pub struct Clusters(pub PathBuf, pub Vec<PathBuf>);

impl Drop for Clusters {
    fn drop(&mut self) {
        for dir in &self.1 {
            if dir.join("postmaster.pid").exists() {
                let exe = self.0.join("pg_ctl");
                let args = ["-D", dir.to_str().unwrap_or(""), "-m", "immediate", "stop"];
                let _ = if is_root() {
                    Command::new("runuser")
                        .args(["-u", "postgres", "--"])
                        .arg(&exe)
                        .args(args)
                        .output()
                } else {
                    Command::new(&exe).args(args).output()
                };
            }
        }
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
