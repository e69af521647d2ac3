//! `fleetwire-server serve`: loads the configuration and the TLS identity, starts every service,
//! and stops them all on Ctrl-C. Each protocol has its own module with a `start(&Ctx)`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use fleetwire_tokio::login_gate::LockoutGate;
use fleetwire_tokio::session::{OpenGate, ServerHandle, SourceGate};
use fleetwire_tokio::tls;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::store::Store;
use crate::util::certs;
use crate::{http, players};

/// What every service gets to start with.
pub(crate) struct Ctx {
    pub(crate) data_dir: PathBuf,
    pub(crate) config: Config,
    pub(crate) store: Arc<Store>,
    /// The server's TLS configuration (self-signed on first run), for every TLS listener.
    pub(crate) tls: Arc<rustls::ServerConfig>,
    /// Turns true on Ctrl-C: every service closes its sessions in order and returns.
    pub(crate) shutdown: watch::Receiver<bool>,
    /// The player session server, once started (for status and content notifications).
    pub(crate) sessions: OnceLock<ServerHandle>,
    /// Refuses addresses that keep failing player logins, on 4701 and 4702 alike.
    pub(crate) player_gate: Arc<dyn SourceGate>,
}

/// The player login gate the `[session]` settings ask for.
fn player_gate(config: &Config) -> Result<Arc<dyn SourceGate>, String> {
    let settings = &config.session;
    if settings.failed_logins_per_source == 0 {
        return Ok(Arc::new(OpenGate));
    }
    let mut secret = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret)
        .map_err(|_| "no randomness for the login gate")?;
    let gate = LockoutGate::for_player_logins(
        settings.failed_logins_per_source,
        settings.max_tracked_sources,
        secret,
    )
    .map_err(|e| format!("[session] failed_logins_per_source: {e}"))?;
    Ok(Arc::new(gate))
}

/// A running service: ends when `Ctx::shutdown` turns true.
pub(crate) type Service = JoinHandle<Result<(), String>>;

pub(crate) async fn serve(data_dir: &Path, store: Arc<Store>) -> Result<(), String> {
    let config = Config::load_or_create(&data_dir.join("fleetwire.toml"))?;
    let identity = certs::load_or_create(&data_dir.join("tls"))?;
    if identity.created {
        println!(
            "created a self-signed certificate in {}",
            data_dir.join("tls").display()
        );
    }
    let fp = tls::format_fingerprint(&tls::fingerprint(&identity.chain[0]));
    println!("certificate fingerprint (SHA-256): {fp}");
    let tls = tls::server_config(identity.chain, identity.key).map_err(|e| e.to_string())?;
    let (stop_tx, shutdown) = watch::channel(false);
    let player_gate = player_gate(&config)?;
    let ctx = Arc::new(Ctx {
        data_dir: data_dir.to_owned(),
        config,
        store,
        tls,
        shutdown,
        sessions: OnceLock::new(),
        player_gate,
    });
    let services = vec![
        players::start(&ctx).await?,
        crate::loggers::start(&ctx).await?,
        crate::accounts::start(&ctx).await?,
        crate::content::start(&ctx).await?,
        crate::framed::start(&ctx).await?,
        http::start(&ctx).await?,
    ];
    println!("data directory: {}", ctx.data_dir.display());
    let _ = tokio::signal::ctrl_c().await;
    tracing::info!("Ctrl-C: closing every session");
    let _ = stop_tx.send(true);
    let mut result = Ok(());
    for service in services {
        match service.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => result = Err(e),
            Err(e) => result = Err(e.to_string()),
        }
    }
    println!("stopped");
    result
}
