//! `content`: publish files to players, list what is published, print the signing key.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use fleetwire_session::PlayerId;
use fleetwire_transfer::FileKind;

use crate::config::ContentSettings;
use crate::service::content::ContentService;
use crate::store::Store;
use crate::store::content::Assignee;
use crate::unix_now;
use crate::util::term::escape;

/// `content add --kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Kind {
    /// Player configuration: small, urgent, sent first.
    Configuration,
    /// Media and other content.
    Media,
}

#[derive(Subcommand)]
pub(crate) enum ContentCommand {
    /// Publish a file to one player or to all.
    Add {
        /// The file.
        file: PathBuf,
        /// A player id, or `all` (every player, present and future).
        #[arg(long)]
        to: String,
        /// Bytes per chunk (default from fleetwire.toml, 256 KiB).
        #[arg(long)]
        chunk_size: Option<u32>,
        /// What the file is for: configuration is sent before media on a shared connection
        /// (the framed transfer stream).
        #[arg(long, value_enum, default_value_t = Kind::Media)]
        kind: Kind,
    },
    /// List published content, its assignments, and bytes sent per player.
    List,
    /// Print the content-signing public key players must trust (hex).
    Key,
}

/// Runs a `content` command.
pub(crate) async fn run(
    cmd: ContentCommand,
    data_dir: &Path,
    settings: &ContentSettings,
    store: &Store,
) -> Result<(), String> {
    let content = ContentService::open(store, data_dir, settings)
        .await
        .map_err(|e| e.to_string())?;
    match cmd {
        ContentCommand::Add {
            file,
            to,
            chunk_size,
            kind,
        } => {
            let target = if to == "all" {
                Assignee::All
            } else {
                let id: PlayerId = to
                    .parse()
                    .map_err(|e| format!("--to {to}: not a player id or `all` ({e})"))?;
                Assignee::Player(id)
            };
            let kind = match kind {
                Kind::Configuration => FileKind::Configuration,
                Kind::Media => FileKind::Media,
            };
            let chunk_size = chunk_size.unwrap_or(content.default_chunk_size());
            let published = content
                .publish(&file, target, chunk_size, kind, unix_now())
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "content {}: {} ({} bytes) published to {to}",
                published.id,
                file.display(),
                published.length
            );
            Ok(())
        }
        ContentCommand::List => {
            let (items, sent) = content.list().await.map_err(|e| e.to_string())?;
            println!(
                "{:<6} {:<24} {:>12}  {:<16} TO",
                "ID", "NAME", "BYTES", "SHA-256"
            );
            for published in items {
                let item = &published.item;
                let to: Vec<String> = published
                    .to
                    .iter()
                    .map(|a| match a {
                        Assignee::All => "all".to_owned(),
                        Assignee::Player(p) => hex::encode(p.as_bytes()),
                    })
                    .collect();
                println!(
                    "{:<6} {:<24} {:>12}  {:<16} {}",
                    item.id,
                    escape(&item.name),
                    item.length,
                    &item.sha256[..16.min(item.sha256.len())],
                    to.join(" ")
                );
            }
            for row in sent {
                println!(
                    "sent to {}: {} bytes",
                    hex::encode(row.player.as_bytes()),
                    row.bytes
                );
            }
            Ok(())
        }
        ContentCommand::Key => {
            println!("{}", hex::encode(content.public_key().0));
            Ok(())
        }
    }
}
