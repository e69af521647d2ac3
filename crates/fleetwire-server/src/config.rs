//! `fleetwire.toml`: every setting has a default, so the file is optional. `serve` writes the
//! defaults to the data directory on first run, for the operator to edit.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The server's settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Config {
    pub(crate) session: SessionSettings,
    pub(crate) http: HttpSettings,
    pub(crate) sensor: SensorSettings,
    pub(crate) accounts: crate::accounts::AccountsSettings,
    /// Mail for password resets; without it messages go to the outbox file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) smtp: Option<crate::accounts::SmtpSettings>,
    pub(crate) content: crate::content::ContentSettings,
    pub(crate) things: crate::things::ThingsSettings,
    pub(crate) transfer: crate::framed::TransferSettings,
    pub(crate) store: StoreSettings,
    /// Automatic certificates for the public domain names (ACME, e.g. Let's Encrypt); without
    /// it only the self-signed device certificate is served.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) acme: Option<AcmeSettings>,
}

/// `[acme]`: obtain and renew a certificate for `domains` by ACME (http-01 on the plain-HTTP
/// listener, which must be reachable as port 80 of those names). Handshakes that name one of
/// the domains (SNI) get it; every other one — players, loggers — keeps the pinned device
/// certificate.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AcmeSettings {
    /// The names the certificate is for.
    pub(crate) domains: Vec<String>,
    /// The ACME directory. Default: Let's Encrypt's production directory.
    #[serde(default = "lets_encrypt")]
    pub(crate) directory_url: String,
    /// A contact address for the CA (`mailto:ops@example.com`).
    #[serde(default)]
    pub(crate) contact: Vec<String>,
    /// A CA (PEM) the ACME server's own HTTPS certificate chains to, instead of the system's
    /// roots (a private ACME server, or pebble in tests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) ca_file: Option<std::path::PathBuf>,
    /// Renew when this fraction of the certificate's lifetime has passed: two thirds, so a
    /// 90-day certificate is renewed with 30 days to spare.
    #[serde(default = "two_thirds")]
    pub(crate) renew_after_fraction: f64,
    /// First wait after a failed attempt, doubling up to an hour.
    #[serde(default = "sixty")]
    pub(crate) retry_secs: u64,
}

fn lets_encrypt() -> String {
    "https://acme-v02.api.letsencrypt.org/directory".to_owned()
}

fn two_thirds() -> f64 {
    2.0 / 3.0
}

fn sixty() -> u64 {
    60
}

/// `[store]`: where the data lives.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct StoreSettings {
    /// PostgreSQL, for several nodes sharing one fleet (`postgres://user@host/db`, libpq key-value
    /// pairs, or several hosts with `target_session_attrs=read-write`). Unset: the embedded
    /// SQLite file `fleetwire.db` in the data directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) url: Option<String>,
    /// Connections in the PostgreSQL pool.
    pub(crate) pool_size: usize,
    /// A private CA (PEM) the PostgreSQL server's certificate must chain to, for `sslmode=require`;
    /// unset: the web PKI roots.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) ca_file: Option<std::path::PathBuf>,
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            url: None,
            pool_size: 16,
            ca_file: None,
        }
    }
}

/// The HTTPS API and the plain-HTTP port.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct HttpSettings {
    /// The HTTPS API (JSON under /v1/).
    pub(crate) https_listen: SocketAddr,
    /// Plain HTTP: signed content for players that cannot do TLS; everything else is redirected
    /// to HTTPS.
    pub(crate) http_listen: SocketAddr,
    /// Connections held at once per listener.
    pub(crate) max_connections: usize,
    /// Connections held at once per listener from one source (an IPv4 address or an IPv6 /64);
    /// the next one from that source is dropped at accept, others are still served.
    pub(crate) max_connections_per_source: usize,
    /// Seconds for the TLS handshake, and for the headers of each request (an idle keep-alive
    /// connection is closed after this long without a new request).
    pub(crate) header_timeout_secs: u64,
    /// Seconds from a request's headers to its response headers, reading the body included;
    /// then `408` and the connection is closed.
    pub(crate) request_timeout_secs: u64,
    /// Seconds a write may wait on a peer that does not read before the connection is closed.
    pub(crate) write_timeout_secs: u64,
    /// Slowest request body accepted, in bytes per second, after a 10 s grace; while the server
    /// has data waiting for a client, the client must take this many per second too.
    pub(crate) min_bytes_per_sec: u64,
    /// Largest request body the API reads (`413` above it): bounds what one request holds.
    pub(crate) max_body_bytes: usize,
    /// The host name (optionally `host:port`) that plain-HTTP redirects point to; the port of
    /// `https_listen` when none is given. Never taken from the request's `Host` header.
    pub(crate) public_name: String,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            https_listen: SocketAddr::from(([0, 0, 0, 0], 8443)),
            http_listen: SocketAddr::from(([0, 0, 0, 0], 8001)),
            max_connections: 4096,
            max_connections_per_source: 256,
            header_timeout_secs: 10,
            request_timeout_secs: 30,
            write_timeout_secs: 30,
            min_bytes_per_sec: 1024,
            max_body_bytes: 64 * 1024,
            public_name: "localhost".into(),
        }
    }
}

/// Player login + heartbeat (TCP 4701).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct SessionSettings {
    /// Where players connect.
    pub(crate) listen: SocketAddr,
    /// How often players send a heartbeat, in seconds.
    pub(crate) heartbeat_interval_secs: u64,
    /// Added to 1.5 × the interval before a silent player counts as offline, in seconds.
    pub(crate) silence_grace_secs: u64,
    /// How long a connection may take to finish TLS and login, in seconds.
    pub(crate) login_timeout_secs: u64,
    /// Connections held at once.
    pub(crate) max_connections: usize,
    /// Connections from one address (IPv4, or IPv6 /64) that may be logging in at once;
    /// logged-in players do not count.
    pub(crate) max_logins_per_source: u32,
    /// Consecutive failed logins of one player from one address (IPv4, or IPv6 /64) before that
    /// player is refused from that address, and failing player ids from one address before the
    /// address is refused at accept: for 1 minute, then 2, 4 … 60 for each further failure; a
    /// good login ends the streak. 0 turns the gate off.
    pub(crate) failed_logins_per_source: u16,
    /// Most source addresses the gate tracks (about 21 bytes each).
    pub(crate) max_tracked_sources: u32,
    /// Serve without TLS. Anyone on the network path can read and alter player traffic.
    pub(crate) danger_plaintext: bool,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 4701)),
            heartbeat_interval_secs: 30,
            silence_grace_secs: 5,
            login_timeout_secs: 10,
            max_connections: 20_000,
            max_logins_per_source: 256,
            failed_logins_per_source: 20,
            max_tracked_sources: 100_000,
            danger_plaintext: false,
        }
    }
}

impl SessionSettings {
    pub(crate) fn machine_config(&self) -> fleetwire_session::ServerConfig {
        fleetwire_session::ServerConfig {
            heartbeat_interval: Duration::from_secs(self.heartbeat_interval_secs.max(1)),
            silence_grace: Duration::from_secs(self.silence_grace_secs),
            login_timeout: Duration::from_secs(self.login_timeout_secs.max(1)),
            ..fleetwire_session::ServerConfig::default()
        }
    }
}

impl Config {
    /// Reads `path`, or writes the defaults there if it does not exist.
    pub(crate) fn load_or_create(path: &Path) -> Result<Self, String> {
        if path.exists() {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
        } else {
            let config = Self::default();
            let text = toml::to_string_pretty(&config).map_err(|e| e.to_string())?;
            std::fs::write(path, text)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            Ok(config)
        }
    }
}

/// `[sensor]` in fleetwire.toml: sensor uploads (TCP 14354).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct SensorSettings {
    /// Where loggers connect.
    pub(crate) listen: std::net::SocketAddr,
    /// Connections held at once.
    pub(crate) max_connections: usize,
    /// Connections held at once from one address (IPv4, or IPv6 /64); loggers behind one NAT
    /// share it.
    pub(crate) max_connections_per_source: usize,
    /// How long one connection may take, TLS handshake included, in seconds.
    pub(crate) deadline_secs: u64,
    /// Consecutive connections from one address (IPv4, or IPv6 /64) that fail to authenticate
    /// (unknown logger, bad MAC, malformed, silent) before it is refused at accept for 1 minute,
    /// then 2, 4 … 60 for each further failure; an authenticated upload from the address ends
    /// the streak. 0 turns the gate off.
    pub(crate) failed_uploads_per_source: u16,
    /// Most addresses the gate tracks (about 21 bytes each).
    pub(crate) max_tracked_sources: u32,
    /// Rejected connections are written as one counted security event per address per this
    /// many seconds.
    pub(crate) rejection_report_secs: u64,
    /// Serve without TLS. Readings still carry their MAC, but anyone on the path can read them.
    pub(crate) danger_plaintext: bool,
}

impl Default for SensorSettings {
    fn default() -> Self {
        Self {
            listen: std::net::SocketAddr::from(([0, 0, 0, 0], 14354)),
            max_connections: 10_000,
            max_connections_per_source: 256,
            deadline_secs: 30,
            failed_uploads_per_source: 20,
            max_tracked_sources: 100_000,
            rejection_report_secs: 60,
            danger_plaintext: false,
        }
    }
}
