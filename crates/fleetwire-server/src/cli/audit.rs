//! `audit`: check the hash chain, print the newest entries.

use clap::Subcommand;

use crate::store::Store;
use crate::store::audit::Verified;
use crate::util::term::escape_json;

#[derive(Subcommand, Clone, Copy)]
pub(crate) enum AuditCommand {
    /// Recompute the audit hash chain; fails on any edited, deleted, inserted or reordered entry.
    Verify,
    /// Print the newest entries, oldest first, one JSON object per line.
    Tail {
        /// How many entries.
        #[arg(long, default_value_t = 20)]
        count: u32,
    },
}

/// Runs an `audit` command.
pub(crate) async fn run(cmd: AuditCommand, store: &Store) -> Result<(), String> {
    match cmd {
        AuditCommand::Verify => match store.audit().verify().await.map_err(|e| e.to_string())? {
            Verified::Intact { entries, head } => {
                println!("audit chain ok: {entries} entries, head {head}");
                println!(
                    "(record the head elsewhere: cutting entries off the end is detectable only against it)"
                );
                Ok(())
            }
            Verified::Broken(why) => Err(why),
        },
        AuditCommand::Tail { count } => {
            let entries = store
                .audit()
                .tail(i64::from(count))
                .await
                .map_err(|e| e.to_string())?;
            for e in entries {
                // The event is JSON; its strings may carry text from peers (device events) that
                // JSON leaves raw (C1 controls, bidirectional overrides): escaped, still JSON.
                let line = format!(
                    "{{\"seq\":{},\"at_ms\":{},\"event\":{}}}",
                    e.seq, e.at_ms, e.event_json
                );
                println!("{}", escape_json(&line));
            }
            Ok(())
        }
    }
}
