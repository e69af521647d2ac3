//! `--secrets-out` (issue 10, hole 12): the file that receives player secrets and logger keys is
//! created new and private (0600) or not at all. An existing file (whatever its mode) or a
//! symbolic link (even a dangling one) is refused and left untouched, and nothing is
//! provisioned; with `--force` it is replaced atomically by a new 0600 file, and a symbolic link
//! is replaced, never followed.
#![cfg(unix)]

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;
use std::process::{Command, Output};

mod common;
use common::{BIN, cli, data_dir};

fn run(data: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

/// `N players, …` from `player list`.
fn players(data: &Path) -> usize {
    let list = cli(data, &["player", "list"]);
    list.lines()
        .last()
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{list}"))
}

fn secrets_lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| l.contains(','))
        .count()
}

#[test]
#[allow(clippy::too_many_lines)] // one story
fn secrets_out_is_new_private_and_never_follows_links() {
    let data = data_dir("secrets-out");
    // Outside the data directory: the server makes everything inside it private at start.
    let out = data.with_extension("out");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();

    // A new file: created 0600 with the secrets.
    let fresh = out.join("fresh.csv");
    cli(
        &data,
        &[
            "player",
            "add",
            "--count",
            "2",
            "--secrets-out",
            fresh.to_str().unwrap(),
        ],
    );
    assert_eq!(mode(&fresh), 0o600);
    assert_eq!(secrets_lines(&fresh), 2);
    assert_eq!(players(&data), 2);

    // An existing, world-readable file: refused, untouched, nothing provisioned.
    let existing = out.join("existing.csv");
    std::fs::write(&existing, "old contents\n").unwrap();
    std::fs::set_permissions(&existing, std::fs::Permissions::from_mode(0o644)).unwrap();
    let r = run(
        &data,
        &["player", "add", "--secrets-out", existing.to_str().unwrap()],
    );
    assert!(!r.status.success(), "an existing file must be refused");
    let why = String::from_utf8_lossy(&r.stderr);
    assert!(
        why.contains("--force"),
        "the refusal says how to override: {why}"
    );
    assert_eq!(
        std::fs::read_to_string(&existing).unwrap(),
        "old contents\n"
    );
    assert_eq!(mode(&existing), 0o644);
    assert_eq!(
        players(&data),
        2,
        "no player provisioned without its secret written"
    );

    // A symbolic link to a file elsewhere: refused, the target untouched.
    let victim = out.join("victim.txt");
    std::fs::write(&victim, "not yours\n").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
    let link = out.join("link.csv");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let r = run(
        &data,
        &["player", "add", "--secrets-out", link.to_str().unwrap()],
    );
    assert!(!r.status.success(), "a symbolic link must be refused");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "not yours\n");
    // A dangling link would otherwise create its target.
    let dangling = out.join("dangling.csv");
    let target = out.join("created-through-link.csv");
    std::os::unix::fs::symlink(&target, &dangling).unwrap();
    let r = run(
        &data,
        &["player", "add", "--secrets-out", dangling.to_str().unwrap()],
    );
    assert!(
        !r.status.success(),
        "a dangling symbolic link must be refused"
    );
    assert!(!target.exists(), "nothing was created through the link");
    assert_eq!(players(&data), 2);

    // --force: the existing file is replaced by a new private one (a new inode: a reader that
    // opened the old file never sees the secrets).
    let old_inode = std::fs::metadata(&existing).unwrap().ino();
    cli(
        &data,
        &[
            "player",
            "add",
            "--force",
            "--secrets-out",
            existing.to_str().unwrap(),
        ],
    );
    assert_eq!(mode(&existing), 0o600);
    assert_ne!(std::fs::metadata(&existing).unwrap().ino(), old_inode);
    assert_eq!(secrets_lines(&existing), 1);
    assert!(!std::fs::read_to_string(&existing).unwrap().contains("old"));
    // --force on a link replaces the link itself; its target keeps its contents.
    cli(
        &data,
        &[
            "player",
            "add",
            "--force",
            "--secrets-out",
            link.to_str().unwrap(),
        ],
    );
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_file()
    );
    assert_eq!(mode(&link), 0o600);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "not yours\n");
    assert_eq!(mode(&victim), 0o644);
    assert_eq!(players(&data), 4);

    // Loggers use the same rule.
    let r = run(
        &data,
        &["logger", "add", "--secrets-out", existing.to_str().unwrap()],
    );
    assert!(
        !r.status.success(),
        "logger add refuses an existing file too"
    );
    assert_eq!(secrets_lines(&existing), 1);
    let keys = out.join("keys.csv");
    cli(
        &data,
        &["logger", "add", "--secrets-out", keys.to_str().unwrap()],
    );
    assert_eq!(mode(&keys), 0o600);

    // No temporary file is left behind.
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.contains(".tmp")), "{names:?}");
    let _ = std::fs::remove_dir_all(&data);
    let _ = std::fs::remove_dir_all(&out);
}
