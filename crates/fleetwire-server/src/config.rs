//! `fleetwire.toml`: every setting has a default, so the file is optional. `serve` writes the
//! defaults to the data directory on first run, for the operator to edit.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The server's settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Config {
    pub(crate) session: SessionSettings,
    pub(crate) http: HttpSettings,
    pub(crate) sensor: crate::loggers::SensorSettings,
    pub(crate) accounts: AccountsSettings,
    /// Mail for password resets; without it messages go to the outbox file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) smtp: Option<SmtpSettings>,
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

/// `[accounts]` in `fleetwire.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct AccountsSettings {
    /// `seed` (at least 8 characters with a digit and an upper-case letter, C1) or `nist`
    /// (at least 15, or 8 with MFA; no composition rules; block list).
    pub(crate) password_preset: PasswordPreset,
    /// Consecutive failures before the first block.
    pub(crate) max_failures: u16,
    /// The first block; each further failure doubles it.
    pub(crate) base_block_secs: u32,
    /// The longest block.
    pub(crate) max_block_secs: u32,
    /// Consecutive failures after which a login needs a CAPTCHA (0: never).
    pub(crate) captcha_after_failures: u16,
    /// CAPTCHA challenges one source may fetch back to back (`GET /v1/auth/captcha`).
    pub(crate) captcha_burst_per_source: u32,
    /// CAPTCHA challenges per minute per source after the burst.
    pub(crate) captcha_per_minute_per_source: u32,
    /// Most CAPTCHA challenges outstanding; beyond it the oldest issued is dropped.
    pub(crate) captcha_max_pending: usize,
    /// Login attempts one address may make back to back.
    pub(crate) login_burst_per_source: u32,
    /// Login attempts per minute per address after the burst.
    pub(crate) login_per_minute_per_source: u32,
    /// Login attempts per second over all addresses.
    pub(crate) login_per_second_global: u32,
    /// A session ends this long after sign-in, whatever the activity.
    pub(crate) session_lifetime_secs: u64,
    /// Sign-out after this much inactivity for users who have not chosen (0: off).
    pub(crate) idle_timeout_secs: u64,
    /// How long a reset link works.
    pub(crate) reset_lifetime_secs: u64,
    /// The reset link: this text followed by the token.
    pub(crate) reset_url: String,
    /// Outgoing mail when `[smtp]` is not set: one JSON object per line (relative paths are in
    /// the data directory).
    pub(crate) outbox: PathBuf,
    /// How often, at most, the lockout, throttle and session state is saved while it changes
    /// (it is also saved on a graceful stop).
    pub(crate) state_save_secs: u64,
    /// How long a browser keeps the device cookie (`Max-Age`); 0 sends no `Set-Cookie` (the
    /// cookie is still in the JSON answer).
    pub(crate) device_cookie_days: u32,
    /// Argon2 threads (0: one less than the cores, at least one).
    pub(crate) hash_workers: usize,
    /// Logins waiting for an Argon2 thread; beyond it logins are refused with 503 at once.
    pub(crate) hash_queue: usize,
    /// Groups and the rights they grant (`*` everything, `player.*` a prefix).
    pub(crate) groups: BTreeMap<String, Vec<String>>,
    /// Argon2 with tiny parameters (tests only): stolen hashes would be cracked at once.
    pub(crate) danger_insecure_fast_hashing: bool,
}

/// The password rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum PasswordPreset {
    /// The sensor cloud's rules (C1).
    Seed,
    /// NIST SP 800-63B.
    Nist,
}

impl Default for AccountsSettings {
    fn default() -> Self {
        let groups = [
            ("admin", vec!["*"]),
            (
                "operator",
                vec!["player.*", "content.*", "user.read", "thing.create"],
            ),
            ("viewer", vec!["player.read", "content.read"]),
        ]
        .into_iter()
        .map(|(g, r)| (g.to_owned(), r.into_iter().map(str::to_owned).collect()))
        .collect();
        Self {
            password_preset: PasswordPreset::Seed,
            max_failures: 5,
            base_block_secs: 60,
            max_block_secs: 3600,
            captcha_after_failures: 3,
            captcha_burst_per_source: 10,
            captcha_per_minute_per_source: 10,
            captcha_max_pending: 10_000,
            login_burst_per_source: 10,
            login_per_minute_per_source: 10,
            login_per_second_global: 100,
            session_lifetime_secs: 12 * 3600,
            idle_timeout_secs: 30 * 60,
            reset_lifetime_secs: 20 * 60,
            reset_url: "https://localhost:8443/reset#token=".to_owned(),
            outbox: PathBuf::from("outbox.jsonl"),
            state_save_secs: 2,
            device_cookie_days: 365,
            hash_workers: 0,
            hash_queue: 32,
            groups,
            danger_insecure_fast_hashing: false,
        }
    }
}

/// `[smtp]` in `fleetwire.toml`: where reset links are mailed. Without it they go to the
/// outbox file (`[accounts] outbox`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SmtpSettings {
    /// The mail server's host name (checked against its certificate).
    pub(crate) host: String,
    /// Its port (default: 587 for `starttls`, 465 for `tls`, 25 for `none`).
    #[serde(default)]
    pub(crate) port: Option<u16>,
    /// `starttls` (upgrade required, never falls back to plain), `tls` (TLS from the first
    /// byte), or `none` (plain text: only for a relay on this machine, so the host must be a
    /// loopback address or `localhost`).
    #[serde(default)]
    pub(crate) tls: SmtpTls,
    /// Sign in with this user name, if set.
    #[serde(default)]
    pub(crate) username: Option<String>,
    /// …and this password (keep `fleetwire.toml` readable by the server's user only).
    #[serde(default)]
    pub(crate) password: Option<String>,
    /// The sender, such as `fleetwire <noreply@example.com>`.
    pub(crate) from: String,
    /// Seconds before an SMTP exchange is given up (default 30).
    #[serde(default)]
    pub(crate) timeout_secs: Option<u64>,
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SmtpTls {
    /// STARTTLS, required.
    #[default]
    Starttls,
    /// Implicit TLS (SMTPS).
    Tls,
    /// No encryption: loopback only.
    None,
}
