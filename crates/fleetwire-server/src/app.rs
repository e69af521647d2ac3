//! `App`: everything a request, a connection or a background task needs, built once by
//! `serve` and passed down. There are no process globals: a second `App` in the same process
//! (a test, a second node) shares nothing with the first.

use std::path::PathBuf;
use std::sync::Arc;

use fleetwire_tokio::session::{ServerHandle, SourceGate};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::store::Store;

/// The server, as every layer above the services sees it.
pub(crate) struct App {
    /// This node's id in the store (random per start): which players it holds.
    pub(crate) node: String,
    pub(crate) data_dir: PathBuf,
    pub(crate) config: Config,
    pub(crate) store: Store,
    /// The server's TLS configuration (self-signed on first run), for every TLS listener.
    pub(crate) tls: Arc<rustls::ServerConfig>,
    /// Turns true on Ctrl-C: every service closes its sessions in order and returns.
    pub(crate) shutdown: watch::Receiver<bool>,
    /// The player sessions of this node (4701): presence, configuration hashes, disconnects.
    pub(crate) sessions: ServerHandle,
    /// Refuses sources that keep failing player logins, on 4701 and 4702 alike.
    pub(crate) player_gate: Arc<dyn SourceGate>,
    /// The ACME http-01 answers the plain-HTTP listener serves while an order is open.
    pub(crate) acme: Arc<crate::service::acme::Challenges>,
    /// Content for players: publishing, signed requests, bytes sent, this node's files.
    pub(crate) content: Arc<crate::service::content::ContentService>,
    /// Accounts: the engines, the Argon2 pool, the mailer and the keys every accounts route
    /// and session check uses (no process global).
    pub(crate) accounts: Arc<crate::service::accounts::Accounts>,
}

/// A running service: ends when `App::shutdown` turns true.
pub(crate) type Service = JoinHandle<Result<(), String>>;
