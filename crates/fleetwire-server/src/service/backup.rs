//! Backups of the embedded store (`[backup]`, `backup now | list | restore`): a verified copy
//! of `fleetwire.db` taken while the server serves, named by its UTC time, with a manifest
//! beside it (when, size, SHA-256, integrity, rows per table); a schedule (daily by default) and
//! retention (14 days by default; the newest is always kept). The key files are never put in a
//! backup: a stolen backup holds sealed TOTP secrets without the key that opens them, and the
//! operator keeps the keys (`totp.key`, `content.key`, `device-cookie.key`, `tls/`) apart.
//! With PostgreSQL, backups are the database's own (docs/OPERATING.md).

use std::path::{Path, PathBuf};

use crate::config::BackupSettings;
use crate::store::StoreError;
use crate::store::backup::{self, Verified};

/// A backup on disk.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct BackupInfo {
    /// `20261205T031500Z`: its UTC time, and its name.
    pub(crate) id: String,
    pub(crate) taken_at: i64,
    pub(crate) bytes: u64,
    pub(crate) sha256: String,
    pub(crate) verified: Verified,
}

/// Why a backup or a restore failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BackupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("the copy failed its check ({0}); it was removed")]
    Corrupt(String),
    #[error("no backup {0} in {1} (see `backup list`)")]
    Unknown(String, String),
    #[error(
        "{0} exists: restoring replaces it and everything written since the backup; \
         add --force to do so (the current database is kept as {1})"
    )]
    WouldOverwrite(String, String),
    #[error("a hundred backups named {0} already exist")]
    Exists(String),
}

/// Where the backups of `data_dir` go.
pub(crate) fn dir(settings: &BackupSettings, data_dir: &Path) -> PathBuf {
    settings
        .dir
        .clone()
        .unwrap_or_else(|| data_dir.join("backups"))
}

/// The name of a backup taken at `now` (Unix seconds).
pub(crate) fn id_at(now: i64) -> String {
    let (y, m, d) = crate::util::civil::civil_from_days(now.div_euclid(86_400));
    let s = now.rem_euclid(86_400);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// Takes a backup of `db` into `dir` at `now`, verifies it and writes its manifest.
pub(crate) fn take(db: &Path, dir: &Path, now: i64) -> Result<BackupInfo, BackupError> {
    std::fs::create_dir_all(dir).map_err(|e| BackupError::Io(dir.display().to_string(), e))?;
    // A second backup in the same second (the schedule and `backup now`) gets a suffix.
    let (id, file) = (0..100)
        .map(|n| match n {
            0 => id_at(now),
            n => format!("{}-{n}", id_at(now)),
        })
        .map(|id| {
            let file = dir.join(format!("{id}.db"));
            (id, file)
        })
        .find(|(_, file)| !file.exists())
        .ok_or_else(|| BackupError::Exists(id_at(now)))?;
    let partial = dir.join(format!("{id}.db.partial"));
    let _ = std::fs::remove_file(&partial);
    let verified = backup::take(db, &partial)?;
    if !verified.ok() {
        let _ = std::fs::remove_file(&partial);
        return Err(BackupError::Corrupt(verified.integrity));
    }
    let bytes =
        std::fs::read(&partial).map_err(|e| BackupError::Io(partial.display().to_string(), e))?;
    let sha256 = hex::encode(ring::digest::digest(&ring::digest::SHA256, &bytes));
    sync(&partial)?;
    std::fs::rename(&partial, &file).map_err(|e| BackupError::Io(file.display().to_string(), e))?;
    let info = BackupInfo {
        id,
        taken_at: now,
        bytes: bytes.len() as u64,
        sha256,
        verified,
    };
    let manifest = dir.join(format!("{}.json", info.id));
    let json = serde_json::to_vec_pretty(&info)
        .map_err(|e| BackupError::Io(manifest.display().to_string(), e.into()))?;
    std::fs::write(&manifest, json)
        .map_err(|e| BackupError::Io(manifest.display().to_string(), e))?;
    sync(&manifest)?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| BackupError::Io(dir.display().to_string(), e))?;
    Ok(info)
}

fn sync(path: &Path) -> Result<(), BackupError> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| BackupError::Io(path.display().to_string(), e))
}

/// The backups in `dir`, oldest first (those with a manifest and their file).
pub(crate) fn list(dir: &Path) -> Vec<BackupInfo> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<BackupInfo> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| serde_json::from_slice::<BackupInfo>(&std::fs::read(e.path()).ok()?).ok())
        .filter(|b| dir.join(format!("{}.db", b.id)).exists())
        .collect();
    found.sort_by(|a, b| a.id.cmp(&b.id));
    found
}

/// Removes backups older than `keep_days` at `now`, always keeping the newest; the ids removed.
pub(crate) fn prune(dir: &Path, keep_days: u64, now: i64) -> Vec<String> {
    let all = list(dir);
    let keep_after = now - i64::try_from(keep_days.saturating_mul(86_400)).unwrap_or(i64::MAX);
    let mut removed = Vec::new();
    for b in all.iter().take(all.len().saturating_sub(1)) {
        if b.taken_at < keep_after {
            let _ = std::fs::remove_file(dir.join(format!("{}.db", b.id)));
            let _ = std::fs::remove_file(dir.join(format!("{}.json", b.id)));
            removed.push(b.id.clone());
        }
    }
    removed
}

/// Restores backup `id` from `dir` over `db` (the server must be stopped). Without `force` an
/// existing database is refused; with it, the current database is first kept beside it as
/// `fleetwire.db.before-restore-<now id>`.
pub(crate) fn restore(
    db: &Path,
    dir: &Path,
    id: &str,
    force: bool,
    now: i64,
) -> Result<Verified, BackupError> {
    let Some(info) = list(dir).into_iter().find(|b| b.id == id) else {
        return Err(BackupError::Unknown(
            id.to_owned(),
            dir.display().to_string(),
        ));
    };
    let file = dir.join(format!("{}.db", info.id));
    let keep = db.with_extension(format!("db.before-restore-{}", id_at(now)));
    if db.exists() {
        if !force {
            return Err(BackupError::WouldOverwrite(
                db.display().to_string(),
                keep.display().to_string(),
            ));
        }
        // A consistent copy of what is being replaced (its WAL folded in), kept beside it.
        backup::take(db, &keep)?;
    }
    let bytes = std::fs::read(&file).map_err(|e| BackupError::Io(file.display().to_string(), e))?;
    let sha256 = hex::encode(ring::digest::digest(&ring::digest::SHA256, &bytes));
    if sha256 != info.sha256 {
        return Err(BackupError::Corrupt(format!(
            "{} is not the file its manifest describes (SHA-256 {sha256}, manifest {})",
            file.display(),
            info.sha256
        )));
    }
    Ok(backup::restore(&file, db)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_db(dir: &Path) -> PathBuf {
        let db = dir.join("fleetwire.db");
        crate::store::backup::tiny_database(&db);
        db
    }

    fn temp(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("fleetwire-backup-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn old_backups_go_and_the_newest_always_stays() {
        let work = temp("prune");
        let db = tiny_db(&work);
        let dir = work.join("backups");
        let day = 86_400;
        for t in [0, day, 10 * day, 20 * day] {
            let info = take(&db, &dir, 1_700_000_000 + t).unwrap();
            assert_eq!(info.verified.tables["t"], 2);
        }
        // Two in one second: both kept, the second with a suffix.
        let same = take(&db, &dir, 1_700_000_000 + 20 * day).unwrap();
        assert!(same.id.ends_with("Z-1"), "{}", same.id);
        let removed = prune(&dir, 14, 1_700_000_000 + 21 * day);
        assert_eq!(removed.len(), 2, "{removed:?}");
        assert_eq!(list(&dir).len(), 3);
        // Far in the future: all are old, the newest stays.
        prune(&dir, 14, 1_700_000_000 + 400 * day);
        let left = list(&dir);
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].id, same.id);
        let _ = std::fs::remove_dir_all(&work);
    }

    #[test]
    fn a_tampered_backup_is_not_restored() {
        let work = temp("tamper");
        let db = tiny_db(&work);
        let dir = work.join("backups");
        let info = take(&db, &dir, 1_700_000_000).unwrap();
        let file = dir.join(format!("{}.db", info.id));
        let mut bytes = std::fs::read(&file).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&file, bytes).unwrap();
        let err = restore(&db, &dir, &info.id, true, 1_700_000_100).unwrap_err();
        assert!(matches!(err, BackupError::Corrupt(_)), "{err}");
        assert!(matches!(
            restore(&db, &dir, "19990101T000000Z", true, 1_700_000_100),
            Err(BackupError::Unknown(..))
        ));
        let _ = std::fs::remove_dir_all(&work);
    }

    #[test]
    fn ids_are_utc_times_that_sort() {
        assert_eq!(id_at(0), "19700101T000000Z");
        assert_eq!(id_at(1_796_443_200), "20261205T040000Z");
        assert!(id_at(1_796_443_199) < id_at(1_796_443_200));
    }
}
