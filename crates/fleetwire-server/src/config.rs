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
    pub(crate) sensor: SensorSettings,
    pub(crate) accounts: AccountsSettings,
    /// Mail for password resets; without it messages go to the outbox file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) smtp: Option<SmtpSettings>,
    pub(crate) content: ContentSettings,
    pub(crate) things: ThingsSettings,
    pub(crate) transfer: TransferSettings,
    pub(crate) store: StoreSettings,
    pub(crate) backup: BackupSettings,
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

/// `[things]`: codes, code-attempt limits and caller identity for the things API.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct ThingsSettings {
    /// Random symbols per code, 6 to 10.
    pub(crate) code_length: usize,
    /// Append a check character (catches every typo and every swap of neighbours).
    pub(crate) check_character: bool,
    /// `alphanumeric` (0-9A-Z), `crockford` (base 32 without I L O U) or the symbols themselves.
    pub(crate) alphabet: String,
    /// Wrong codes from everybody together per minute (0: no global cap). Per node: with
    /// several nodes the fleet's cap is this times the number of nodes (SECURITY.md).
    pub(crate) global_failures_per_minute: u32,
    /// Wrong codes one source may send at once before the per-source rate applies (per node).
    pub(crate) source_burst: u32,
    /// After the burst, one wrong code per this many seconds per source (per node).
    pub(crate) source_period_secs: u64,
    /// Consecutive wrong codes from one source before the lockout engine blocks it.
    pub(crate) max_failures: u16,
    /// The first block; each further wrong code doubles it.
    pub(crate) base_block_secs: u32,
    /// The longest block.
    pub(crate) max_block_secs: u32,
    /// Consecutive wrong codes that lock a source until the server restarts (at most 100).
    pub(crate) hard_limit: u16,
    /// Things one account may create over the API (`POST /v1/things` also needs the right
    /// `thing.create`); the operator's `thing create` is not limited.
    pub(crate) max_things_per_user: usize,
    /// Take the caller's user name from the `X-Fleetwire-User` header. Anyone who can reach the
    /// API can then act as anyone: only for tests or behind a gateway that sets the header.
    pub(crate) danger_trust_user_header: bool,
}

impl Default for ThingsSettings {
    fn default() -> Self {
        Self {
            code_length: fleetwire_codes::DEFAULT_LENGTH,
            check_character: true,
            alphabet: "alphanumeric".into(),
            global_failures_per_minute: 600,
            source_burst: 10,
            source_period_secs: 60,
            max_failures: 5,
            base_block_secs: 60,
            max_block_secs: 3600,
            hard_limit: 100,
            max_things_per_user: 100,
            danger_trust_user_header: false,
        }
    }
}

impl ThingsSettings {
    /// The code format these settings describe, or why they describe none.
    pub(crate) fn spec(&self) -> Result<fleetwire_codes::CodeSpec, String> {
        use fleetwire_codes::{Alphabet, CodeSpec};
        let alphabet = match self.alphabet.to_ascii_lowercase().as_str() {
            "alphanumeric" => Alphabet::alphanumeric(),
            "crockford" => Alphabet::crockford(),
            _ => Alphabet::new(&self.alphabet).map_err(|e| format!("[things] alphabet: {e}"))?,
        };
        CodeSpec::new(alphabet, self.code_length, self.check_character)
            .map_err(|e| format!("[things] code settings: {e}"))
    }
}

/// `[backup]`: backups of the embedded store, taken while serving (see `backup --help`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct BackupSettings {
    /// Where backups go (default: `backups/` in the data directory). Put it on another disk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) dir: Option<std::path::PathBuf>,
    /// Seconds between scheduled backups while serving (default a day); 0 turns them off.
    pub(crate) interval_secs: u64,
    /// Days a backup is kept (default 14); the newest is always kept.
    pub(crate) keep_days: u64,
}

impl Default for BackupSettings {
    fn default() -> Self {
        Self {
            dir: None,
            interval_secs: 86_400,
            keep_days: 14,
        }
    }
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

/// `[content]`: content published to players and the signed requests that fetch it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct ContentSettings {
    /// Bytes per chunk in new manifests (1 B to 1 MiB).
    pub(crate) chunk_size: u32,
    /// How far a player's request time may be from the server's clock, in seconds. Every
    /// accepted request's nonce is remembered until its time leaves this window (a replay is
    /// refused, on every node of a fleet), so a smaller window also means a smaller replay cache.
    pub(crate) request_time_tolerance_secs: u64,
    /// Signed requests one player may have remembered at once (about 50 bytes each): past it the
    /// player is answered `429` until older ones leave the time window.
    pub(crate) max_signed_requests_per_player: usize,
    /// Chunk responses one player may have in progress at once on this node (over every
    /// connection and both listeners); the next is answered `429`.
    pub(crate) max_requests_per_player: usize,
}

impl Default for ContentSettings {
    fn default() -> Self {
        Self {
            chunk_size: 256 * 1024,
            request_time_tolerance_secs: 300,
            max_signed_requests_per_player: 16_384,
            max_requests_per_player: 8,
        }
    }
}

/// `[transfer]`: the framed transfer listener (TCP 4702).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct TransferSettings {
    /// Where players connect for the framed transfer stream (TLS).
    pub(crate) listen: SocketAddr,
    /// Connections held at once; the next is dropped at accept.
    pub(crate) max_connections: usize,
    /// Chunks in flight per connection (the player may lower it; 1 is lock-step).
    pub(crate) window: u32,
    /// Bandwidth cap per connection in bytes per second; 0 means none.
    pub(crate) max_bytes_per_sec: u64,
    /// Connections held at once from one source (an IPv4 address or an IPv6 /64), logged in
    /// or not; the next is dropped at accept while other sources are still served.
    pub(crate) max_connections_per_source: usize,
    /// Seconds a write may wait on a player that takes fewer than 1 KiB/s of it before the
    /// connection is cut (a player that stopped reading).
    pub(crate) write_timeout_secs: u64,
    /// Chunk bytes sent and not yet acknowledged per connection: `window` is lowered so that
    /// it fits with the largest chunk size.
    pub(crate) max_in_flight_bytes: u64,
}

impl Default for TransferSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], fleetwire_tokio::framed::TRANSFER_PORT)),
            max_connections: 4096,
            window: 64,
            max_bytes_per_sec: 0,
            max_connections_per_source: 256,
            write_timeout_secs: 30,
            max_in_flight_bytes: 16 << 20,
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
