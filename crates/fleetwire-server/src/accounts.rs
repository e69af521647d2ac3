//! User accounts: users in the store, the `/v1/auth/…` HTTPS API ([`api`]), the `user` and
//! `audit` commands, and the hash-chained audit log in the `auth_audit` table.
//!
//! What lives where:
//!
//! - **Store** (`SQLite`, [`SCHEMA`]): users (name, e-mail, Argon2id PHC, password version,
//!   groups, idle timeout, TOTP secret sealed under `totp.key` (see [`sealed`]), recovery-code
//!   digests, lock flag, timestamps), one row per live session (token digest only), one row per
//!   outstanding reset token (digest only), the audit chain, and commands the CLI leaves for a
//!   running server (`unlock`, `lock`, `forget`).
//! - **Server memory** (`fleetwire-auth` engines): the lockout engine, the throttles, CAPTCHA
//!   challenges, the session store (expiry), reset tokens and the new-origin tracker. They are
//!   snapshotted to `accounts-state.json` in the data directory (see [`persist`]): while
//!   running, at most every `state_save_secs` when something changed, and on a graceful stop.
//!   A restart keeps lockouts, sessions and reset links; a crash loses at most the last few
//!   seconds of failure counts (sessions are restored from their rows).
//! - **Device cookies** (OWASP): a successful login returns one (JSON `device_cookie` and a
//!   `Set-Cookie: fw_device=…; Secure; HttpOnly; SameSite=Strict`). A login that presents a
//!   valid cookie of the account counts in that device's own lockout lane, so failures from
//!   elsewhere cannot lock the owner's known device out; any other cookie is ignored (the
//!   attempt is untrusted). The HMAC key is `device-cookie.key` in the data directory.
//! - **Mail** ([`mail`]): reset links go on a queue; one task sends them by SMTP when `[smtp]`
//!   is configured, or appends them to the outbox file.
//! - **Audit entries** name accounts by their random id (`u_…`), never by name or e-mail, and
//!   names that match no account by a keyed hash (`anon:…`). Deleting an account (C5) removes
//!   every row that belongs to it; its audit entries stay (the chain is append-only) but after
//!   the deletion nothing links the id to a person. Origins (IP addresses) stay in them.
//!
//! The session token travels in an `Authorization: Bearer fws1.…` header, not a cookie: the API
//! is JSON for programs (operator tools, apps), and a header is never sent by a browser on its
//! own, so there is no cross-site request forgery to defend against. The store keeps only its
//! SHA-256 digest.

pub(crate) mod api;
mod mail;
mod persist;
mod pool;
mod sealed;

use std::fmt::Write as _;
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use clap::Subcommand;
use fleetwire_auth::UnixTime;
use fleetwire_auth::audit::{AuditEvent, OriginTracker};
use fleetwire_auth::captcha::{CaptchaConfig, CaptchaError, CaptchaStore, UnrenderedChallenge};
use fleetwire_auth::hash::{HashParams, PasswordHasher};
use fleetwire_auth::lockout::{
    AttemptTicket, BlockGrowth, Lane, LockStatus, Locked, LockoutConfig, LockoutEngine, LockoutKey,
    Outcome,
};
use fleetwire_auth::policy::{PasswordPolicy, PolicyContext};
use fleetwire_auth::recovery::RecoveryCodes;
use fleetwire_auth::reset::{ResetConfig, ResetTokens};
use fleetwire_auth::roles::Roles;
use fleetwire_auth::session::{SessionConfig, SessionStore};
use fleetwire_auth::throttle::{Rate, Throttle, ThrottleConfig, Throttled};
use rand_core::{OsRng, RngCore};

use rusqlite::Connection;

use crate::app::{App as Ctx, Service};
use crate::config::Config;
use crate::store::Store;
use crate::store::accounts::{Command, CommandKind, GroupChange, NewUser, Refused};
use crate::util::term::escape;

pub(crate) use crate::config::{AccountsSettings, PasswordPreset};
pub(crate) use api::session_user;

/// The lockout namespace for user logins.
const LOGIN_NS: &str = "user-login";
/// The lockout namespace for step-up re-authentication (password and factor changes): a lane
/// per account, apart from its login lane.
const REAUTH_NS: &str = "user-reauth";

impl AccountsSettings {
    fn policy(&self) -> PasswordPolicy {
        match self.password_preset {
            PasswordPreset::Seed => PasswordPolicy::seed(),
            PasswordPreset::Nist => PasswordPolicy::nist(),
        }
    }

    fn hasher(&self) -> Result<PasswordHasher, String> {
        let params = if self.danger_insecure_fast_hashing {
            HashParams::danger_insecure_for_tests()
        } else {
            HashParams::owasp()
        };
        PasswordHasher::new(params).map_err(|e| e.to_string())
    }

    fn lockout(&self) -> LockoutConfig {
        LockoutConfig {
            max_failures: self.max_failures.max(1),
            base_block_secs: self.base_block_secs.max(1),
            max_block_secs: self.max_block_secs.max(self.base_block_secs.max(1)),
            growth: BlockGrowth::Exponential,
            ..LockoutConfig::web_cms()
        }
    }

    fn throttle(&self) -> ThrottleConfig {
        ThrottleConfig {
            per_source: Rate {
                burst: self.login_burst_per_source.max(1),
                per_period: self.login_per_minute_per_source.max(1),
                period_ms: 60_000,
            },
            global: Rate {
                burst: self.login_per_second_global.max(1),
                per_period: self.login_per_second_global.max(1),
                period_ms: 1000,
            },
            max_sources: 1_000_000,
        }
    }

    fn captcha(&self) -> CaptchaConfig {
        CaptchaConfig {
            required_after_failures: if self.captcha_after_failures == 0 {
                u16::MAX
            } else {
                self.captcha_after_failures
            },
            max_pending: self.captcha_max_pending.max(1),
            ..CaptchaConfig::default()
        }
    }

    /// The throttle on fetching challenges: per source as configured, and at most 200 a second
    /// (1,000 at once) from everybody together, which bounds the drawing work.
    fn captcha_throttle(&self) -> ThrottleConfig {
        ThrottleConfig {
            per_source: Rate {
                burst: self.captcha_burst_per_source.max(1),
                per_period: self.captcha_per_minute_per_source.max(1),
                period_ms: 60_000,
            },
            global: Rate {
                burst: 1000,
                per_period: 200,
                period_ms: 1000,
            },
            max_sources: 100_000,
        }
    }
}

pub(crate) use crate::service::accounts::{canonical_name, check_right, token_digest};
pub(crate) use crate::store::accounts::UserRow;

/// The policy of `service::accounts` as methods, for the handlers still here.
pub(crate) trait UserPolicy {
    fn idle_ms(&self, settings: &AccountsSettings) -> Option<u64>;
    fn roles(&self, settings: &AccountsSettings) -> Roles;
    fn policy_context(&self) -> PolicyContext;
}

impl UserPolicy for UserRow {
    fn idle_ms(&self, settings: &AccountsSettings) -> Option<u64> {
        crate::service::accounts::idle_ms(self.idle_timeout_secs, settings)
    }
    fn roles(&self, settings: &AccountsSettings) -> Roles {
        crate::service::accounts::user_roles(settings, self)
    }
    fn policy_context(&self) -> PolicyContext {
        crate::service::accounts::policy_context(self)
    }
}

use crate::service::accounts::idle_ms;

/// The account a name or e-mail address names, on a connection of the SQLite store (for the
/// things tables' transactions until they move onto the store layer).
pub(crate) fn user_by_name(conn: &Connection, name: &str) -> rusqlite::Result<Option<UserRow>> {
    crate::store::accounts::sqlite::user_by_name_in(conn, &canonical_name(name))
}

/// The account with this id (see [`user_by_name`]).
pub(crate) fn user_by_id(conn: &Connection, id: &str) -> rusqlite::Result<Option<UserRow>> {
    crate::store::accounts::sqlite::user_by_id_in(conn, id)
}

/// Milliseconds since the Unix epoch, from the system clock.
pub(crate) fn now() -> UnixTime {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    UnixTime::from_millis(ms)
}

fn now_secs() -> i64 {
    crate::unix_now()
}

// ---------------------------------------------------------------------------------------------
// The running server's state
// ---------------------------------------------------------------------------------------------

/// Everything the API handlers share.
pub(crate) struct Accounts {
    settings: AccountsSettings,
    data_dir: PathBuf,
    store: Store,
    hasher: Arc<PasswordHasher>,
    policy: PasswordPolicy,
    pool: pool::HashPool,
    engines: Mutex<Engines>,
    /// CAPTCHA challenges and the throttle on fetching them: a lock of their own, off the path
    /// of session checks, not saved (a challenge lives two minutes; after a restart the client
    /// fetches a new one).
    captchas: Mutex<Captchas>,
    /// Challenge fetches refused by the throttle since the last audit entry.
    captcha_refused: std::sync::atomic::AtomicU64,
    /// Set by every use of the engines; cleared when a snapshot is taken.
    dirty: AtomicBool,
    audit_buf: Mutex<Vec<(UnixTime, AuditEvent)>>,
    /// Keys the lane rows the nodes share on PostgreSQL (derived from the device-cookie key,
    /// which every node reads from the store): a lane's row id and jitter seed.
    shared_lanes: ring::hmac::Key,
    /// The lockout rules, for the lanes kept in the store.
    lockout: LockoutConfig,
    /// The CAPTCHA rules, for the challenges kept in the store.
    captcha: CaptchaConfig,
    /// The login throttle's rates, for the arrival times kept in the store.
    login_throttle: ThrottleConfig,
    /// The keys of the sign-in flow (pseudonyms of unknown names, device cookies): derived
    /// from the device-cookie key, so the same on every node.
    login_config: fleetwire_auth::login_flow::LoginConfig,
    /// The device-cookie HMAC key (`device-cookie.key`).
    device_key: [u8; 32],
    /// The outgoing-mail queue.
    mailer: mail::Mailer,
    /// Seals TOTP secrets in the store (`totp.key`).
    sealer: Arc<sealed::Sealer>,
}

/// A reserved login attempt: in this server's engine (embedded store), or in the lane row the
/// nodes share (PostgreSQL).
pub(crate) enum LaneTicket {
    Local(AttemptTicket),
    Shared([u8; 16]),
}

/// Pending CAPTCHA challenges and the per-source throttle on fetching them.
struct Captchas {
    store: CaptchaStore,
    fetch: Throttle,
}

/// The `fleetwire-auth` engines, in memory (and in the snapshot, see [`persist`]).
#[derive(Clone)]
struct Engines {
    lockout: LockoutEngine,
    throttle: Throttle,
    sessions: SessionStore,
    resets: ResetTokens,
    origins: OriginTracker,
    throttled: u64,
    busy: u64,
}

/// The accounts state the `App` holds (built by `serve` before the `App`, so there is no
/// process global: a second `App` in one process has its own).
fn state(ctx: &Arc<Ctx>) -> Arc<Accounts> {
    ctx.accounts.clone()
}

impl Engines {
    fn new(settings: &AccountsSettings) -> Result<Self, String> {
        let mut rng = OsRng;
        Ok(Self {
            lockout: LockoutEngine::generate(settings.lockout(), &mut rng)
                .map_err(|e| format!("[accounts] lockout settings: {e}"))?,
            throttle: Throttle::generate(settings.throttle(), &mut rng),
            sessions: SessionStore::new(SessionConfig {
                absolute_lifetime_ms: settings.session_lifetime_secs.saturating_mul(1000),
                default_idle_timeout_ms: crate::service::accounts::default_idle_ms(settings),
                max_sessions_per_user: api::MAX_SESSIONS_PER_USER,
            }),
            resets: ResetTokens::new(ResetConfig {
                lifetime_ms: settings.reset_lifetime_secs.saturating_mul(1000),
            }),
            origins: OriginTracker::new(random16(), 8),
            throttled: 0,
            busy: 0,
        })
    }
}

impl Accounts {
    /// The accounts state of a server with `config`, its data directory and its store.
    /// Its keys (device cookies, sealed TOTP secrets) are the same on every node: files in the
    /// data directory on the embedded store, rows of `server_keys` on PostgreSQL.
    pub(crate) async fn new(
        config: &Config,
        data_dir: &Path,
        store: &Store,
    ) -> Result<Self, String> {
        let settings = config.accounts.clone();
        let hasher = Arc::new(settings.hasher()?);
        if settings.danger_insecure_fast_hashing {
            tracing::warn!(
                "accounts.danger_insecure_fast_hashing is set: stolen password hashes are cheap to crack"
            );
        }
        let policy = settings.policy();
        let workers = if settings.hash_workers == 0 {
            std::thread::available_parallelism()
                .map_or(1, std::num::NonZero::get)
                .saturating_sub(1)
                .max(1)
        } else {
            settings.hash_workers
        };
        let pool = pool::HashPool::new(workers, settings.hash_queue)?;
        let engines = Engines::new(&settings)?;
        let captchas = Captchas {
            store: CaptchaStore::new(settings.captcha()),
            fetch: Throttle::generate(settings.captcha_throttle(), &mut OsRng),
        };
        let device_key =
            crate::service::keys::load_or_create::<32>(store, data_dir, persist::DEVICE_KEY_FILE)
                .await
                .map_err(|e| e.to_string())?;
        let outbox = if settings.outbox.is_absolute() {
            settings.outbox.clone()
        } else {
            data_dir.join(&settings.outbox)
        };
        let mailer = mail::Mailer::start(config.smtp.as_ref(), outbox)?;
        let sealer = Arc::new(sealed::Sealer::new(
            &crate::service::keys::load_or_create::<32>(store, data_dir, sealed::KEY_FILE)
                .await
                .map_err(|e| e.to_string())?,
        )?);
        let shared_lanes = ring::hmac::Key::new(
            ring::hmac::HMAC_SHA256,
            ring::hmac::sign(
                &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &device_key),
                b"fleetwire lockout lanes shared by nodes v1",
            )
            .as_ref(),
        );
        let login_config = fleetwire_auth::login_flow::LoginConfig {
            pseudonym_key: ring::hmac::sign(
                &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &device_key),
                b"fleetwire login pseudonyms v1",
            )
            .as_ref()
            .try_into()
            .map_err(|_| "HMAC-SHA-256 is 32 bytes")?,
            device_key,
        };
        Ok(Self {
            login_config,
            lockout: settings.lockout(),
            captcha: settings.captcha(),
            login_throttle: settings.throttle(),
            settings,
            data_dir: data_dir.to_owned(),
            store: store.clone(),
            hasher,
            policy,
            pool,
            engines: Mutex::new(engines),
            captchas: Mutex::new(captchas),
            captcha_refused: std::sync::atomic::AtomicU64::new(0),
            dirty: AtomicBool::new(false),
            audit_buf: Mutex::new(Vec::new()),
            shared_lanes,
            device_key,
            mailer,
            sealer,
        })
    }

    /// Whether several nodes share this store (PostgreSQL): then sessions, reset tokens and
    /// lockout lanes are read from and written to the store on every use, not kept in memory.
    pub(crate) fn shared(&self) -> bool {
        self.store.kind() == "postgresql"
    }

    /// The row id and jitter seed of a lockout lane, the same on every node.
    fn shared_lane(&self, key: &LockoutKey<'_>) -> ([u8; 16], u64) {
        let mut ctx = ring::hmac::Context::with_key(&self.shared_lanes);
        for part in [key.namespace.as_bytes(), key.subject] {
            ctx.update(&(part.len() as u64).to_le_bytes());
            ctx.update(part);
        }
        match key.lane {
            Lane::Untrusted => ctx.update(&[0]),
            Lane::Device(d) => {
                ctx.update(&[1]);
                ctx.update(&d.0);
            }
        }
        let tag = ctx.sign();
        let mut lane = [0u8; 16];
        lane.copy_from_slice(&tag.as_ref()[..16]);
        let mut seed = [0u8; 8];
        seed.copy_from_slice(&tag.as_ref()[16..24]);
        (lane, u64::from_le_bytes(seed))
    }

    /// A lane's consecutive failures, or its block.
    pub(crate) async fn lane_status(
        &self,
        key: &LockoutKey<'_>,
        t: UnixTime,
    ) -> Result<Result<u16, Locked>, String> {
        if !self.shared() {
            let e = self.engines();
            return Ok(match e.lockout.status(key, t) {
                LockStatus::Locked(l) => Err(l),
                LockStatus::Open { .. } => Ok(e.lockout.failures(key, t)),
            });
        }
        let (lane, seed) = self.shared_lane(key);
        let state = self
            .store
            .accounts()
            .lane(lane)
            .await
            .map_err(|e| e.to_string())?
            .unwrap_or_default();
        Ok(match self.lockout.state_status(state, seed, t) {
            LockStatus::Locked(l) => Err(l),
            LockStatus::Open { .. } => Ok(self.lockout.state_failures(state, t)),
        })
    }

    /// Reserves an attempt before the password is verified. On PostgreSQL the lane row is read
    /// under `FOR UPDATE`, changed by the same transition the engine uses and written back in
    /// one transaction: parallel attempts on several nodes reserve one after another, so no
    /// more are verified than one node would verify.
    pub(crate) async fn lane_begin(
        &self,
        key: &LockoutKey<'_>,
        t: UnixTime,
    ) -> Result<Result<LaneTicket, Locked>, String> {
        if !self.shared() {
            return Ok(self
                .engines()
                .lockout
                .begin_attempt(key, t)
                .map(LaneTicket::Local));
        }
        let (lane, seed) = self.shared_lane(key);
        let cfg = &self.lockout;
        self.store
            .accounts()
            .update_lane(lane, |before| {
                let mut s = before.unwrap_or_default();
                let r = cfg.reserve(&mut s, seed, t);
                (Some(s), r)
            })
            .await
            .map(|r| r.map(|_| LaneTicket::Shared(lane)))
            .map_err(|e| e.to_string())
    }

    /// Settles a reserved attempt.
    pub(crate) async fn lane_finish(&self, ticket: LaneTicket, outcome: Outcome, t: UnixTime) {
        match ticket {
            LaneTicket::Local(ticket) => self.engines().lockout.finish(ticket, outcome, t),
            LaneTicket::Shared(lane) => {
                let cfg = &self.lockout;
                let settled = self
                    .store
                    .accounts()
                    .update_lane(lane, |before| {
                        (before.and_then(|s| cfg.settle(s, outcome, t)), ())
                    })
                    .await;
                if let Err(e) = settled {
                    tracing::error!("settling a lockout lane failed: {e}");
                }
            }
        }
    }

    /// Admits or refuses one login attempt from `source` (per source and over all sources). On
    /// PostgreSQL both arrival times are rows changed under row locks in one transaction, so
    /// the limits hold for the fleet, not per node.
    pub(crate) async fn login_throttle(
        &self,
        source: &[u8],
        t: UnixTime,
    ) -> Result<Result<(), Throttled>, String> {
        let r = if self.shared() {
            let row = |parts: &[&[u8]]| {
                let mut ctx = ring::hmac::Context::with_key(&self.shared_lanes);
                for part in parts {
                    ctx.update(&(part.len() as u64).to_le_bytes());
                    ctx.update(part);
                }
                let mut key = [0u8; 16];
                key.copy_from_slice(&ctx.sign().as_ref()[..16]);
                key
            };
            let source = row(&[b"throttle", LOGIN_NS.as_bytes(), source]);
            let global = row(&[b"throttle-global", LOGIN_NS.as_bytes()]);
            let cfg = self.login_throttle;
            self.store
                .accounts()
                .throttle(source, global, |s, g| cfg.admit(s, g, t))
                .await
                .map_err(|e| e.to_string())?
        } else {
            self.engines().throttle.check(LOGIN_NS, source, t)
        };
        if r.is_err() {
            self.engines().throttled += 1;
        }
        Ok(r)
    }

    /// Whether a login after `failures` consecutive failures needs a CAPTCHA.
    pub(crate) fn captcha_required(&self, failures: u16) -> bool {
        self.captcha.required(failures)
    }

    /// A new CAPTCHA challenge, to be drawn by the caller outside every lock. On PostgreSQL it
    /// is a row (any node checks the answer); beyond `captcha_max_pending` the oldest go.
    pub(crate) async fn captcha_issue(&self, t: UnixTime) -> Result<UnrenderedChallenge, String> {
        if !self.shared() {
            return Ok(self.captchas().store.issue_unrendered(t, &mut OsRng));
        }
        let (stored, unrendered) = self.captcha.new_challenge(t, &mut OsRng);
        self.store
            .accounts()
            .add_captcha(stored, self.captcha.max_pending as u64)
            .await
            .map_err(|e| e.to_string())?;
        Ok(unrendered)
    }

    /// Checks an answer; the challenge is used up whatever the result (on PostgreSQL its row is
    /// taken out as it is read: one node, one request).
    pub(crate) async fn captcha_solve(
        &self,
        id: &str,
        answer: &str,
        t: UnixTime,
    ) -> Result<Result<(), CaptchaError>, String> {
        if !self.shared() {
            return Ok(self.captchas().store.solve(id, answer, t));
        }
        let taken = self
            .store
            .accounts()
            .take_captcha(id.to_owned())
            .await
            .map_err(|e| e.to_string())?;
        Ok(match taken {
            Some(c) => c.check(answer, t),
            None => Err(CaptchaError::Invalid),
        })
    }

    /// Drops what the nodes share and nobody needs any more: expired CAPTCHA challenges, reset
    /// links and sessions, forgotten lockout lanes (each removed only if unchanged since read).
    async fn purge_shared(&self, t: UnixTime) {
        let repo = self.store.accounts();
        let lifetime = self.settings.session_lifetime_secs.saturating_mul(1000);
        let mut failed = Vec::new();
        if let Err(e) = repo.purge_captchas(t.as_millis()).await {
            failed.push(e.to_string());
        }
        if let Err(e) = repo
            .purge_throttles(t.as_millis().saturating_mul(1000))
            .await
        {
            failed.push(e.to_string());
        }
        if let Err(e) = repo.purge_resets(t.as_millis()).await {
            failed.push(e.to_string());
        }
        if let Err(e) = repo
            .purge_sessions(t.as_millis().saturating_sub(lifetime))
            .await
        {
            failed.push(e.to_string());
        }
        // Lanes quiet for a day are candidates; the rules decide.
        let day_ago = u32::try_from(t.as_secs().saturating_sub(86_400)).unwrap_or(0);
        match repo.old_lanes(day_ago).await {
            Ok(lanes) => {
                for (lane, state) in lanes {
                    if self.lockout.forgets(state, t) {
                        if let Err(e) = repo.forget_lane(lane, state).await {
                            failed.push(e.to_string());
                        }
                    }
                }
            }
            Err(e) => failed.push(e.to_string()),
        }
        for e in failed {
            tracing::error!("purging shared account state failed: {e}");
        }
    }

    /// Forgets the untrusted login and re-authentication lanes of an account (completed reset,
    /// administrator unlock).
    pub(crate) async fn lanes_clear(&self, subject: &str) {
        let keys = [
            LockoutKey::untrusted(LOGIN_NS, subject.as_bytes()),
            LockoutKey::untrusted(REAUTH_NS, subject.as_bytes()),
        ];
        if !self.shared() {
            let mut e = self.engines();
            for k in &keys {
                e.lockout.clear(k);
            }
            return;
        }
        for k in &keys {
            let (lane, _) = self.shared_lane(k);
            if let Err(e) = self
                .store
                .accounts()
                .update_lane(lane, |_| (None, ()))
                .await
            {
                tracing::error!("clearing a lockout lane failed: {e}");
            }
        }
    }

    fn engines(&self) -> std::sync::MutexGuard<'_, Engines> {
        self.dirty.store(true, Ordering::Relaxed);
        self.engines.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The CAPTCHA lock. Held for O(1) table operations only: pictures are drawn outside it.
    fn captchas(&self) -> std::sync::MutexGuard<'_, Captchas> {
        self.captchas.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn state_path(&self) -> PathBuf {
        self.data_dir.join(persist::STATE_FILE)
    }

    /// Saves the engines if they were used since the last save (or always, with `force`).
    async fn save_state(&self, force: bool) {
        if !self.dirty.swap(false, Ordering::Relaxed) && !force {
            return;
        }
        // A copy under the lock (the tables are flat arrays), serialized and written outside.
        let copy = self
            .engines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let path = self.state_path();
        let result = tokio::task::spawn_blocking(move || {
            persist::write(&path, &persist::snapshot(&copy, now())?)
        })
        .await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!("saving the accounts state: {e}"),
            Err(e) => tracing::error!("saving the accounts state: {e}"),
        }
    }

    /// Loads the snapshot (if any) and reconciles the sessions with their rows.
    async fn restore_state(&self) -> Result<(), String> {
        type SessionRow = (String, String, u64);
        {
            let mut e = self.engines.lock().unwrap_or_else(PoisonError::into_inner);
            match persist::load(&self.state_path(), &mut e) {
                Ok(true) => println!("accounts: state restored from {}", persist::STATE_FILE),
                Ok(false) => {}
                Err(err) => tracing::warn!(
                    "accounts: the saved state is not usable ({err}); starting with no lockouts, throttles or idle timers"
                ),
            }
        }
        let repo = self.store.accounts();
        repo.purge_resets(now().as_millis())
            .await
            .map_err(|e| e.to_string())?;
        let rows: Vec<SessionRow> = repo
            .sessions()
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|r| (r.digest, r.user_id, r.created_ms))
            .collect();
        let with_sessions: std::collections::HashSet<&str> =
            rows.iter().map(|(_, u, _)| u.as_str()).collect();
        let idle: Vec<(String, Option<u64>)> = repo
            .users()
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|u| with_sessions.contains(u.id.as_str()))
            .map(|u| (u.id, u.idle_timeout_secs))
            .collect();
        let live = {
            let mut e = self.engines();
            let known: std::collections::HashSet<&str> =
                rows.iter().map(|(d, _, _)| d.as_str()).collect();
            e.sessions.retain_digests(|d| known.contains(d));
            for (digest, user, created) in &rows {
                let created = UnixTime::from_millis(*created);
                e.sessions.restore(digest, user, created, created);
            }
            for (user, secs) in idle {
                e.sessions
                    .set_idle_timeout(&user, idle_ms(secs, &self.settings));
            }
            e.sessions.purge(now());
            let mut live = std::collections::HashSet::new();
            e.sessions.retain_digests(|d| {
                live.insert(d.to_owned());
                true
            });
            live
        };
        let stale: Vec<String> = rows
            .into_iter()
            .map(|(d, _, _)| d)
            .filter(|d| !live.contains(d))
            .collect();
        let kept = live.len();
        repo.delete_sessions(stale)
            .await
            .map_err(|e| e.to_string())?;
        if kept > 0 {
            println!("accounts: {kept} sessions restored");
        }
        Ok(())
    }

    /// Queues an audit event; the housekeeping task writes the queue every 250 ms.
    fn audit(&self, event: AuditEvent) {
        self.audit_buf
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((now(), event));
    }

    /// How the audit log names a submitted login name that matches no account.
    fn pseudonym(&self, name: &str) -> String {
        // The sign-in flow's pseudonym: the same on every node, and the same as the login's.
        fleetwire_auth::login_flow::pseudonym(&self.login_config, &canonical_name(name))
    }

    /// Writes queued audit events; counts refusals; applies CLI commands; purges engines.
    async fn housekeep(&self, tick: u64) {
        let mut events = std::mem::take(
            &mut *self
                .audit_buf
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        if tick % 4 == 0 {
            let (throttled, busy) = {
                // Not `engines()`: reading the counters changes nothing worth saving, and marking
                // the state dirty every second made an idle server copy and rewrite it every
                // `state_save_secs`. A purge may drop entries, so it marks the state dirty.
                let mut e = self.engines.lock().unwrap_or_else(PoisonError::into_inner);
                let n = (e.throttled, e.busy);
                e.throttled = 0;
                e.busy = 0;
                // Purging scans whole tables (the lockout table is ~21 MB at its default size)
                // under the engines' lock: once a minute, not every second.
                if tick % PURGE_TICKS == PURGE_TICKS - 1 {
                    self.dirty.store(true, Ordering::Relaxed);
                    let t = now();
                    e.lockout.purge(t);
                    e.throttle.purge(t);
                    e.resets.purge(t);
                    e.sessions.purge(t);
                }
                n
            };
            if tick % PURGE_TICKS == PURGE_TICKS - 1 {
                let t = now();
                let mut c = self.captchas();
                c.store.purge(t);
                c.fetch.purge(t);
            }
            if tick % PURGE_TICKS == PURGE_TICKS - 1 && self.shared() {
                self.purge_shared(now()).await;
            }
            let captcha_refused = self.captcha_refused.swap(0, Ordering::Relaxed);
            for (n, what) in [
                (throttled, "login_throttled"),
                (busy, "login_busy"),
                (captcha_refused, "captcha_throttled"),
            ] {
                if n > 0 {
                    events.push((
                        now(),
                        AuditEvent::AdminAction {
                            actor: "server".into(),
                            action: what.into(),
                            target: format!("{n} attempts refused"),
                        },
                    ));
                }
            }
            match self.store.accounts().take_commands().await {
                Ok(commands) => {
                    self.apply(&commands);
                    if self.shared() {
                        for c in commands.iter().filter(|c| c.kind == CommandKind::Unlock) {
                            self.lanes_clear(&c.subject).await;
                        }
                    }
                }
                Err(e) => tracing::error!("reading account commands failed: {e}"),
            }
        }
        if !events.is_empty() {
            if let Err(e) = self.store.audit().append(events).await {
                tracing::error!("audit write failed: {e}");
            }
        }
    }

    fn apply(&self, commands: &[Command]) {
        let mut e = self.engines();
        for Command { kind, subject } in commands {
            match kind {
                CommandKind::Unlock => {
                    e.lockout
                        .clear(&LockoutKey::untrusted(LOGIN_NS, subject.as_bytes()));
                    e.lockout
                        .clear(&LockoutKey::untrusted(REAUTH_NS, subject.as_bytes()));
                }
                CommandKind::EndSessions => {
                    e.sessions.end_all(subject);
                }
                CommandKind::Lock => {
                    e.sessions.end_all(subject);
                    e.resets.password_changed(subject);
                }
                CommandKind::Forget => {
                    e.sessions.forget_user(subject);
                    e.resets.password_changed(subject);
                    e.origins.forget(subject);
                }
            }
        }
    }
}

fn random16() -> [u8; 16] {
    let mut b = [0u8; 16];
    OsRng.fill_bytes(&mut b);
    b
}

/// Housekeeping ticks (250 ms each) between purges of the engines' expired entries.
const PURGE_TICKS: u64 = 240;

/// Starts the accounts housekeeping: audit writes, refusal counts, CLI commands, purges.
pub(crate) async fn start(ctx: &Arc<Ctx>) -> Result<Service, String> {
    let accounts = state(ctx);
    accounts.restore_state().await?;
    let sealer = accounts.sealer.clone();
    let sealed = sealed::migrate(&accounts.store, &sealer).await?;
    if sealed > 0 {
        println!("accounts: {sealed} TOTP secrets were stored in clear; now encrypted");
    }
    let (workers, queue) = accounts.pool.size();
    println!("accounts: argon2 on {workers} threads, {queue} queued at most");
    let mut stop = ctx.shutdown.clone();
    Ok(tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let save_every = accounts.settings.state_save_secs.clamp(1, 3600) * 4;
        let mut n = 0u64;
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    accounts.housekeep(n).await;
                    if n % save_every == save_every - 1 {
                        accounts.save_state(false).await;
                    }
                    n += 1;
                }
                _ = stop.changed() => {
                    if *stop.borrow() {
                        accounts.housekeep(0).await;
                        accounts.save_state(true).await;
                        return Ok(());
                    }
                }
            }
        }
    }))
}

// ---------------------------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------------------------

#[derive(Subcommand)]
pub(crate) enum UserCommand {
    /// Add a user; reads the password from standard input (one line).
    Add {
        /// Login name (or an e-mail address).
        name: String,
        /// Where reset links go (default: the name, if it is an address).
        #[arg(long)]
        email: Option<String>,
        /// A group to join (repeatable): see [accounts.groups].
        #[arg(long = "group")]
        groups: Vec<String>,
        /// Sign-out after this many idle seconds, or `off` (default: `[accounts] idle_timeout_secs`).
        #[arg(long)]
        idle_timeout: Option<String>,
    },
    /// List users.
    List,
    /// Lock an account: its sessions end and it cannot sign in until unlocked.
    Lock {
        /// Login name or e-mail.
        name: String,
    },
    /// Unlock an account and clear its failed-login blocks (within a second on a running server).
    Unlock {
        /// Login name or e-mail.
        name: String,
    },
    /// Delete an account and every row that belongs to it; prints what was removed.
    Delete {
        /// Login name or e-mail.
        name: String,
    },
    /// Turn an account's two-factor sign-in off (lost device and codes, or an enrolment that is
    /// not the owner's); its sessions end. The owner signs in with the password and enrols again.
    MfaReset {
        /// Login name or e-mail.
        name: String,
    },
    /// Set an account's groups to exactly these (none: no groups). Refused if it would leave
    /// no administrator.
    Groups {
        /// Login name or e-mail.
        name: String,
        /// The groups (see [accounts.groups]).
        groups: Vec<String>,
    },
}

/// Runs a `user` command.
#[allow(clippy::too_many_lines)] // one match over the commands
pub(crate) async fn user_cli(
    cmd: UserCommand,
    store: &Store,
    data_dir: &Path,
) -> Result<(), String> {
    let config = Config::load_or_create(&data_dir.join("fleetwire.toml"))?;
    let settings = config.accounts;
    match cmd {
        UserCommand::Add {
            name,
            email,
            groups,
            idle_timeout,
        } => {
            let name = canonical_name(&name);
            if name.is_empty() || name.len() > 254 || name.contains(crate::util::term::is_unsafe) {
                return Err(
                    "a name is 1 to 254 characters without control or bidirectional-override characters"
                        .into(),
                );
            }
            let email = email
                .map(|e| canonical_name(&e))
                .or_else(|| name.contains('@').then(|| name.clone()));
            if email.as_deref().is_some_and(|e| {
                e.is_empty() || e.len() > 254 || e.contains(crate::util::term::is_unsafe)
            }) {
                return Err(
                    "--email: 1 to 254 characters without control or bidirectional-override characters"
                        .into(),
                );
            }
            let known = settings.groups.keys().cloned().collect::<Vec<_>>();
            for g in &groups {
                if !settings.groups.contains_key(g) {
                    return Err(format!("no group {g:?}; groups: {}", known.join(", ")));
                }
            }
            let idle =
                match idle_timeout.as_deref() {
                    None => None,
                    Some("off") => Some(0),
                    Some(s) => Some(s.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                        format!("--idle-timeout {s:?}: a number of seconds, or off")
                    })?),
                };
            eprintln!("password for {name} (one line on standard input):");
            let mut password = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut password)
                .map_err(|e| format!("cannot read the password: {e}"))?;
            let password = password.trim_end_matches(['\r', '\n']);
            let mut words = vec![name.clone()];
            words.extend(name.split('@').next().map(str::to_owned));
            let accepted = settings
                .policy()
                .accept(
                    password,
                    &PolicyContext {
                        words,
                        has_mfa: false,
                    },
                )
                .map_err(|v| {
                    let list: Vec<String> = v.iter().map(ToString::to_string).collect();
                    format!("password rejected: {}", list.join("; "))
                })?;
            let phc = settings
                .hasher()?
                .hash(accepted.as_str(), &mut OsRng)
                .map_err(|e| e.to_string())?;
            let id = format!("u_{}", hex::encode(random16()));
            let added = store
                .accounts()
                .add_user(NewUser {
                    id: id.clone(),
                    name: name.clone(),
                    email,
                    phc,
                    groups: groups.clone(),
                    idle_timeout_secs: idle,
                    now: now_secs(),
                })
                .await
                .map_err(|e| e.to_string())?;
            if !added {
                return Err(format!(
                    "a user named {name:?} (or with that e-mail) exists"
                ));
            }
            cli_audit(store, "user_add", &id).await?;
            println!(
                "added {} ({id}) groups: {}",
                escape(&name),
                groups.join(",")
            );
            Ok(())
        }
        UserCommand::List => {
            let users = store.accounts().users().await.map_err(|e| e.to_string())?;
            println!(
                "{:<24} {:<24} {:<18} {:<4} {:<7} {:<8} LAST LOGIN",
                "NAME", "E-MAIL", "GROUPS", "MFA", "LOCKED", "IDLE"
            );
            let now = now_secs();
            for u in &users {
                let idle = match u.idle_timeout_secs {
                    None => "default".to_owned(),
                    Some(0) => "off".to_owned(),
                    Some(s) => format!("{s}s"),
                };
                println!(
                    "{:<24} {:<24} {:<18} {:<4} {:<7} {:<8} {}",
                    escape(&u.name),
                    escape(u.email.as_deref().unwrap_or("-")),
                    escape(&u.groups.join(",")),
                    if u.mfa { "yes" } else { "no" },
                    if u.locked { "locked" } else { "no" },
                    idle,
                    u.last_login_at
                        .map_or("never".to_owned(), |t| format!("{}s ago", (now - t).max(0))),
                );
            }
            println!("{} users", users.len());
            Ok(())
        }
        UserCommand::Lock { name } => set_locked(store, &settings, &name, true).await,
        UserCommand::Unlock { name } => set_locked(store, &settings, &name, false).await,
        UserCommand::Groups { name, groups } => set_groups(store, &settings, &name, groups).await,
        UserCommand::MfaReset { name } => mfa_reset(store, &name).await,
        UserCommand::Delete { name } => {
            let r = store
                .accounts()
                .delete_user(
                    canonical_name(&name),
                    crate::service::accounts::keep_an_administrator(&settings),
                )
                .await
                .map_err(|e| e.to_string())?
                .map_err(|refused| refused_message(&name, refused))?;
            let recovery_code_digests = r
                .recovery
                .as_deref()
                .and_then(|r| serde_json::from_str::<RecoveryCodes>(r).ok())
                .map_or(0, |r| r.remaining());
            cli_audit(store, "user_delete", &r.id).await?;
            let mut out = String::new();
            let _ = writeln!(
                out,
                "deleted {} ({}): {} account row, {} session rows, {} reset-token rows, {} pending command rows, {} recovery-code digests, TOTP secret: {}, {} group memberships",
                escape(&canonical_name(&name)),
                r.id,
                r.account_rows,
                r.session_rows,
                r.reset_token_rows,
                r.pending_command_rows,
                recovery_code_digests,
                if r.totp_secret { "removed" } else { "none" },
                r.group_memberships,
            );
            let t = &r.things;
            let _ = writeln!(
                out,
                "things: {} thing membership(s) removed ({} as administrator: passed to another member in {}, unclaimed again in {}), {} pending request(s), {} invite(s) and {} block(s) removed, creator cleared on {} thing(s); {} thing event(s) keep only a number that no longer maps to anyone",
                t.memberships,
                t.as_administrator,
                t.administrator_passed_on,
                t.left_unclaimed,
                t.pending_requests,
                t.invites,
                t.blocks,
                t.things_created,
                t.events_anonymised,
            );
            let _ = write!(
                out,
                "kept: {} audit entries that name only the id {} (append-only chain; nothing left links that id to the account)",
                r.audit_entries_kept, r.id
            );
            println!("{out}");
            Ok(())
        }
    }
}

/// One administrator action by the command line, appended to the audit chain.
async fn cli_audit(store: &Store, action: &str, target: &str) -> Result<(), String> {
    store
        .audit()
        .append(vec![(
            now(),
            AuditEvent::AdminAction {
                actor: "cli".into(),
                action: action.into(),
                target: target.into(),
            },
        )])
        .await
        .map_err(|e| e.to_string())
}

/// The command line's message for a refused change.
fn refused_message(name: &str, refused: Refused) -> String {
    match refused {
        Refused::NoUser => format!("no user {name:?}"),
        Refused::Guard(why) => why,
    }
}

/// `user lock` / `user unlock`: the flag in the store, and a command for a running server
/// (end the sessions; clear the failed-login blocks), with the last-administrator check in the
/// same transaction.
async fn set_locked(
    store: &Store,
    settings: &AccountsSettings,
    name: &str,
    lock: bool,
) -> Result<(), String> {
    let user = store
        .accounts()
        .set_locked(
            canonical_name(name),
            lock,
            now_secs(),
            crate::service::accounts::keep_an_administrator(settings),
        )
        .await
        .map_err(|e| e.to_string())?
        .map_err(|refused| refused_message(name, refused))?;
    cli_audit(store, if lock { "lock" } else { "unlock" }, &user.id).await?;
    if lock {
        println!(
            "locked {} ({}); its sessions end at their next request",
            escape(&user.name),
            user.id
        );
    } else {
        println!(
            "unlocked {} ({}); failed-login blocks cleared",
            escape(&user.name),
            user.id
        );
    }
    Ok(())
}

/// `user mfa-reset NAME`: the factor, pending enrolment and recovery codes go, the sessions end
/// (rows now, a running server within a second), audited.
async fn mfa_reset(store: &Store, name: &str) -> Result<(), String> {
    let user = store
        .accounts()
        .user_by_name(canonical_name(name))
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no user {name:?}"))?;
    let sessions = store
        .accounts()
        .reset_mfa(user.id.clone(), now_secs())
        .await
        .map_err(|e| e.to_string())?;
    cli_audit(store, "mfa_reset", &user.id).await?;
    println!(
        "two-factor sign-in is off for {} ({}); {sessions} sessions ended. The owner signs in with the password and enrols again.",
        escape(&user.name),
        user.id
    );
    Ok(())
}

/// `user groups NAME GROUP…`: the account's groups become exactly these, in one transaction
/// with the last-administrator check; each group added or removed is audited.
async fn set_groups(
    store: &Store,
    settings: &AccountsSettings,
    name: &str,
    mut groups: Vec<String>,
) -> Result<(), String> {
    let known = settings.groups.keys().cloned().collect::<Vec<_>>();
    for g in &groups {
        if !settings.groups.contains_key(g) {
            return Err(format!("no group {g:?}; groups: {}", known.join(", ")));
        }
    }
    groups.sort();
    groups.dedup();
    let (user, groups) = store
        .accounts()
        .set_groups(
            canonical_name(name),
            GroupChange::Set(groups),
            now_secs(),
            crate::service::accounts::keep_an_administrator(settings),
        )
        .await
        .map_err(|e| e.to_string())?
        .map_err(|refused| refused_message(name, refused))?;
    let t = now();
    let changes: Vec<(UnixTime, AuditEvent)> = user
        .groups
        .iter()
        .filter(|g| !groups.contains(g))
        .map(|g| (g, false))
        .chain(
            groups
                .iter()
                .filter(|g| !user.groups.contains(g))
                .map(|g| (g, true)),
        )
        .map(|(g, granted)| {
            (
                t,
                AuditEvent::RoleChanged {
                    actor: "cli".into(),
                    user: user.id.clone(),
                    group: g.clone(),
                    granted,
                },
            )
        })
        .collect();
    store
        .audit()
        .append(changes)
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "{} ({}) groups: {}",
        escape(&user.name),
        user.id,
        if groups.is_empty() {
            "none".to_owned()
        } else {
            groups.join(",")
        }
    );
    Ok(())
}
