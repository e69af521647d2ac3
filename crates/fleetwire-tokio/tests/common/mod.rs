#![allow(dead_code, unreachable_pub, clippy::disallowed_methods)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use fleetwire_session::*;
use fleetwire_tokio::session::*;
use fleetwire_tokio::tls;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::sync::oneshot;

pub struct TestServer {
    pub addr: SocketAddr,
    pub handle: ServerHandle,
    pub fingerprint: [u8; 32],
    pub stop: Option<oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

pub fn player(n: u8) -> (PlayerId, PlayerSecret) {
    (
        PlayerId::from_bytes([n; 16]),
        PlayerSecret::from_bytes([n; 32]),
    )
}

pub fn self_signed() -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let cert = rcgen::generate_simple_self_signed(vec!["fleetwire.local".into()]).unwrap();
    let der = cert.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
    (der, key)
}

pub fn fast_config() -> ServerConfig {
    ServerConfig {
        heartbeat_interval: Duration::from_millis(200),
        silence_grace: Duration::from_millis(200),
        login_timeout: Duration::from_secs(2),
        ..ServerConfig::default()
    }
}

pub async fn start(
    tls_on: bool,
    config: ServerConfig,
    limits: Limits,
    players: &[u8],
) -> TestServer {
    start_gated(tls_on, config, limits, players, Arc::new(OpenGate)).await
}

pub async fn start_gated(
    tls_on: bool,
    config: ServerConfig,
    limits: Limits,
    players: &[u8],
    gate: Arc<dyn SourceGate>,
) -> TestServer {
    let mut dir = HashMap::new();
    for &n in players {
        let (id, secret) = player(n);
        dir.insert(
            id,
            PlayerLookup::Known {
                verifier: secret.verifier(),
                approved: true,
                config_hash: None,
            },
        );
    }
    let (cert, key) = self_signed();
    let fingerprint = tls::fingerprint(&cert);
    let transport = if tls_on {
        Transport::Tls(tls::server_config(vec![cert], key).unwrap())
    } else {
        Transport::DangerPlaintext
    };
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let server = SessionServer::bind(addr, transport, Arc::new(config), limits, dir)
        .await
        .unwrap()
        .with_gate(gate);
    let addr = server.local_addr().unwrap();
    let handle = server.handle();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = rx.await;
    }));
    TestServer {
        addr,
        handle,
        fingerprint,
        stop: Some(tx),
        task,
    }
}

pub fn player_tls(fingerprint: [u8; 32]) -> PlayerTransport {
    PlayerTransport::Tls {
        config: tls::pinned_client_config(fingerprint).unwrap(),
        server_name: ServerName::try_from("fleetwire.local").unwrap(),
    }
}
