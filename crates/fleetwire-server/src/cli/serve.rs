//! `fleetwire-server serve`: loads the TLS identity, binds the player port, builds the one
//! `App`, starts every listener and background service, and stops them all on Ctrl-C.

use std::path::Path;
use std::sync::Arc;

use fleetwire_tokio::login_gate::LockoutGate;
use fleetwire_tokio::session::{OpenGate, SourceGate};
use fleetwire_tokio::tls;
use ring::rand::{SecureRandom, SystemRandom};
use tokio::sync::watch;

use crate::app::App;
use crate::config::Config;
use crate::listeners;
use crate::service::acme::Challenges;
use crate::service::content::ContentService;
use crate::store::Store;
use crate::util::certs::{self, Resolver};

/// The player login gate the `[session]` settings ask for.
fn player_gate(config: &Config) -> Result<Arc<dyn SourceGate>, String> {
    let settings = &config.session;
    if settings.failed_logins_per_source == 0 {
        return Ok(Arc::new(OpenGate));
    }
    let mut secret = [0u8; 16];
    SystemRandom::new()
        .fill(&mut secret)
        .map_err(|_| "no randomness for the login gate")?;
    let gate = LockoutGate::for_player_logins(
        settings.failed_logins_per_source,
        settings.max_tracked_sources,
        secret,
    )
    .map_err(|e| format!("[session] failed_logins_per_source: {e}"))?;
    Ok(Arc::new(gate))
}

/// A random id for this run of this node.
fn node_id() -> Result<String, String> {
    let mut id = [0u8; 8];
    SystemRandom::new()
        .fill(&mut id)
        .map_err(|_| "no system randomness")?;
    Ok(format!("node-{}", hex::encode(id)))
}

pub(crate) async fn serve(data_dir: &Path, config: Config, store: Store) -> Result<(), String> {
    // One server per data directory (and `backup restore` waits for it to stop).
    let _lock = crate::util::lock::exclusive(data_dir)?;
    let identity = certs::load_or_create(&data_dir.join("tls"))?;
    // Every node of a fleet presents one device identity (players pin its fingerprint).
    let identity = crate::service::keys::tls_identity(&store, identity)
        .await
        .map_err(|e| format!("TLS identity: {e}"))?;
    if identity.created {
        println!(
            "created a self-signed certificate in {}",
            data_dir.join("tls").display()
        );
    }
    let fp = tls::format_fingerprint(&tls::fingerprint(&identity.chain[0]));
    println!("certificate fingerprint (SHA-256): {fp}");
    let resolver = Arc::new(Resolver::new(certs::certified_key(
        identity.chain,
        &identity.key,
    )?));
    let tls = tls::server_config_with_resolver(resolver.clone()).map_err(|e| e.to_string())?;
    let (stop_tx, shutdown) = watch::channel(false);
    let player_gate = player_gate(&config)?;
    let session_server =
        listeners::session::bind(&config.session, &store, &tls, player_gate.clone()).await?;
    let content = ContentService::open(&store, data_dir, &config.content)
        .await
        .map_err(|e| e.to_string())?;
    let accounts =
        Arc::new(crate::service::accounts::Accounts::new(&config, data_dir, &store).await?);
    let app = Arc::new(App {
        node: node_id()?,
        data_dir: data_dir.to_owned(),
        sessions: session_server.handle(),
        config,
        store,
        tls,
        shutdown,
        player_gate,
        acme: Arc::new(Challenges::default()),
        content,
        accounts,
    });
    println!("store: {} (node {})", app.store.kind(), app.node);
    let services = vec![
        listeners::session::start(&app, session_server).await?,
        listeners::sensor::start(&app).await?,
        crate::service::accounts::start(app.accounts.clone(), app.shutdown.clone()).await?,
        app.content
            .start(app.sessions.clone(), app.shutdown.clone()),
        listeners::framed::start(&app).await?,
        listeners::http::start(&app).await?,
    ];
    if let Some(acme) = app.config.acme.clone() {
        println!(
            "ACME: certificates for {} from {}",
            acme.domains.join(", "),
            acme.directory_url
        );
        tokio::spawn(crate::service::acme::run(
            acme,
            app.data_dir.join("tls").join("acme"),
            resolver,
            app.acme.clone(),
            app.shutdown.clone(),
        ));
    }
    if app.store.kind() == "sqlite" && app.config.backup.interval_secs > 0 {
        tokio::spawn(backup_schedule(
            app.config.backup.clone(),
            app.data_dir.clone(),
            app.shutdown.clone(),
        ));
    }
    println!("data directory: {}", app.data_dir.display());
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

/// Scheduled backups of the embedded store: one every `interval_secs`, then the old ones pruned.
async fn backup_schedule(
    settings: crate::config::BackupSettings,
    data_dir: std::path::PathBuf,
    mut shutdown: watch::Receiver<bool>,
) {
    let dir = crate::service::backup::dir(&settings, &data_dir);
    let db = data_dir.join(crate::store::SQLITE_FILE);
    let every = std::time::Duration::from_secs(settings.interval_secs);
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
        let now = crate::unix_now();
        let (db, dir2) = (db.clone(), dir.clone());
        match tokio::task::spawn_blocking(move || crate::service::backup::take(&db, &dir2, now))
            .await
        {
            Ok(Ok(info)) => {
                tracing::info!(id = %info.id, bytes = info.bytes, "backup taken and verified");
                for id in crate::service::backup::prune(&dir, settings.keep_days, now) {
                    tracing::info!(%id, "old backup removed");
                }
            }
            Ok(Err(e)) => tracing::error!("scheduled backup failed: {e}"),
            Err(e) => tracing::error!("scheduled backup task failed: {e}"),
        }
    }
}
