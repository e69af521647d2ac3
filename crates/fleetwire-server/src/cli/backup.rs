//! `backup now | list | restore`: backups of the embedded store.

use std::path::Path;

use clap::Subcommand;

use crate::config::Config;
use crate::service::backup;
use crate::store::{SQLITE_FILE, Store};

#[derive(Subcommand)]
pub(crate) enum BackupCommand {
    /// Take a verified backup now (the server may be serving).
    Now,
    /// List the backups: time, size, integrity, rows.
    List,
    /// Replace the store with backup ID (the server must be stopped).
    Restore {
        /// As `backup list` shows it (`20261205T031500Z`).
        id: String,
        /// Replace an existing store (kept beside it as fleetwire.db.before-restore-…).
        #[arg(long)]
        force: bool,
    },
}

impl BackupCommand {
    /// `restore` runs with the store closed (it replaces the file under it).
    pub(crate) fn needs_closed_store(&self) -> bool {
        matches!(self, Self::Restore { .. })
    }
}

pub(crate) async fn run(
    cmd: BackupCommand,
    config: &Config,
    store: Option<&Store>,
    data_dir: &Path,
) -> Result<(), String> {
    if store.is_some_and(|s| s.kind() != "sqlite") || config.store.url.is_some() {
        return Err(
            "with PostgreSQL ([store] url) backups are the database's own: base backups and WAL \
             archiving, see docs/OPERATING.md"
                .into(),
        );
    }
    let dir = backup::dir(&config.backup, data_dir);
    let db = data_dir.join(SQLITE_FILE);
    let now = crate::unix_now();
    match cmd {
        BackupCommand::Now => {
            let info = tokio::task::spawn_blocking(move || backup::take(&db, &dir, now))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            let rows: u64 = info.verified.tables.values().sum();
            println!(
                "backup {}: {} bytes, integrity {}, {rows} rows in {} tables (key files are not in it: keep them apart)",
                info.id,
                info.bytes,
                info.verified.integrity,
                info.verified.tables.len()
            );
            Ok(())
        }
        BackupCommand::List => {
            let all = backup::list(&dir);
            println!(
                "{:<18} {:>12} {:<9} {:>10}",
                "ID", "BYTES", "INTEGRITY", "ROWS"
            );
            for b in &all {
                let rows: u64 = b.verified.tables.values().sum();
                println!(
                    "{:<18} {:>12} {:<9} {:>10}",
                    b.id, b.bytes, b.verified.integrity, rows
                );
            }
            println!("{} backups in {}", all.len(), dir.display());
            Ok(())
        }
        BackupCommand::Restore { id, force } => {
            let _lock = crate::util::lock::exclusive(data_dir)?;
            let checked = backup::restore(&db, &dir, &id, force, now).map_err(|e| e.to_string())?;
            let rows: u64 = checked.tables.values().sum();
            println!(
                "restored {id}: integrity {}, {rows} rows",
                checked.integrity
            );
            Ok(())
        }
    }
}
