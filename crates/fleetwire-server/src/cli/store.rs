//! `store copy --to postgres://…`: the move from one box to a fleet of nodes.

use std::path::Path;

use clap::Subcommand;

use crate::config::StoreSettings;
use crate::store::Store;

#[derive(Subcommand)]
pub(crate) enum StoreCommand {
    /// Copy this data directory's embedded store, and the keys beside it, into a fresh
    /// PostgreSQL database; verified row by row, all or nothing. Stop the server first.
    Copy {
        /// The target database (`postgres://user@host/db` or libpq `key=value` form). It is
        /// migrated first and must hold no data yet.
        #[arg(long)]
        to: String,
        /// A CA (PEM) the database server's certificate chains to.
        #[arg(long)]
        ca_file: Option<std::path::PathBuf>,
    },
}

pub(crate) async fn run(cmd: StoreCommand, store: &Store, data_dir: &Path) -> Result<(), String> {
    let StoreCommand::Copy { to, ca_file } = cmd;
    if store.kind() != "sqlite" {
        return Err("this data directory already uses PostgreSQL ([store] url)".into());
    }
    let settings = StoreSettings {
        url: Some(to),
        ca_file,
        ..StoreSettings::default()
    };
    let target = Store::open(&settings, data_dir)
        .await
        .map_err(|e| format!("target: {e}"))?;
    let report = crate::store::copy::to_postgres(store, &target)
        .await
        .map_err(|e| e.to_string())?;
    let mut total = 0;
    for (table, rows) in &report.tables {
        println!("{table:<28} {rows:>10} rows, verified");
        total += rows;
    }
    println!("{total} rows copied in {} tables", report.tables.len());
    for name in crate::service::keys::move_files_to(&target, data_dir)
        .await
        .map_err(|e| e.to_string())?
    {
        println!("key {name}: copied into server_keys");
    }
    println!(
        "done. To serve from PostgreSQL, set `url` in the [store] section of fleetwire.toml \
         on every node to the same connection string. The keys and the TLS device identity \
         are now in the database: protect it (and its backups) like the key files."
    );
    Ok(())
}
