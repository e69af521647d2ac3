//! The accounts service's state (`App.accounts`): the `fleetwire-auth` engines, the Argon2
//! pool, the mailer, the keys, and the lanes, throttles, CAPTCHAs, sessions and reset links —
//! in memory on the embedded store, rows shared by the nodes on PostgreSQL
//! ([`Accounts::shared`]). The HTTPS handlers are `api::accounts`, the `user` command
//! `cli::user`, the SQL `store::accounts`.
//!
//! What lives where:
//!
//! - **Store** (`store::accounts`): users (name, e-mail, Argon2id PHC, password version,
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
//!   attempt is untrusted). The HMAC key is `device-cookie.key` (`service::keys`: a 0600 file
//!   in the data directory, or a `server_keys` row shared by the nodes on PostgreSQL).
//! - **Several nodes** (PostgreSQL): lockout lanes, login throttles, CAPTCHA challenges,
//!   sessions and reset links are rows every node reads and changes atomically (see
//!   `store::accounts`); the in-memory engines then only cache.
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

use super::{mail, persist, pool, sealed};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use fleetwire_auth::UnixTime;
use fleetwire_auth::audit::{AuditEvent, OriginTracker};
use fleetwire_auth::captcha::{CaptchaConfig, CaptchaError, CaptchaStore, UnrenderedChallenge};
use fleetwire_auth::hash::{HashParams, PasswordHasher};
use fleetwire_auth::lockout::{
    AttemptTicket, BlockGrowth, Lane, LockStatus, Locked, LockoutConfig, LockoutEngine, LockoutKey,
    Outcome,
};
use fleetwire_auth::policy::{PasswordPolicy, PolicyContext};
use fleetwire_auth::reset::{ResetConfig, ResetTokens};
use fleetwire_auth::roles::Roles;
use fleetwire_auth::session::{SessionConfig, SessionStore};
use fleetwire_auth::throttle::{Rate, Throttle, ThrottleConfig, Throttled};
use rand_core::{OsRng, RngCore};

use crate::config::Config;
use crate::store::Store;
use crate::store::accounts::{Command, CommandKind};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub(crate) use crate::config::{AccountsSettings, PasswordPreset};

/// The lockout namespace for user logins.
pub(crate) const LOGIN_NS: &str = "user-login";
/// The lockout namespace for step-up re-authentication (password and factor changes): a lane
/// per account, apart from its login lane.
pub(crate) const REAUTH_NS: &str = "user-reauth";

impl AccountsSettings {
    pub(crate) fn policy(&self) -> PasswordPolicy {
        match self.password_preset {
            PasswordPreset::Seed => PasswordPolicy::seed(),
            PasswordPreset::Nist => PasswordPolicy::nist(),
        }
    }

    pub(crate) fn hasher(&self) -> Result<PasswordHasher, String> {
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

use super::canonical_name;
use crate::store::accounts::UserRow;

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

use super::idle_ms;

/// Milliseconds since the Unix epoch, from the system clock.
pub(crate) fn now() -> UnixTime {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    UnixTime::from_millis(ms)
}

pub(crate) fn now_secs() -> i64 {
    crate::unix_now()
}

// ---------------------------------------------------------------------------------------------
// The running server's state
// ---------------------------------------------------------------------------------------------

/// Everything the API handlers share.
pub(crate) struct Accounts {
    pub(crate) settings: AccountsSettings,
    pub(crate) data_dir: PathBuf,
    pub(crate) store: Store,
    pub(crate) hasher: Arc<PasswordHasher>,
    pub(crate) policy: PasswordPolicy,
    pub(crate) pool: pool::HashPool,
    pub(crate) engines: Mutex<Engines>,
    /// CAPTCHA challenges and the throttle on fetching them: a lock of their own, off the path
    /// of session checks, not saved (a challenge lives two minutes; after a restart the client
    /// fetches a new one).
    pub(crate) captchas: Mutex<Captchas>,
    /// Challenge fetches refused by the throttle since the last audit entry.
    pub(crate) captcha_refused: std::sync::atomic::AtomicU64,
    /// Set by every use of the engines; cleared when a snapshot is taken.
    pub(crate) dirty: AtomicBool,
    pub(crate) audit_buf: Mutex<Vec<(UnixTime, AuditEvent)>>,
    /// Keys the lane rows the nodes share on PostgreSQL (derived from the device-cookie key,
    /// which every node reads from the store): a lane's row id and jitter seed.
    pub(crate) shared_lanes: ring::hmac::Key,
    /// The lockout rules, for the lanes kept in the store.
    pub(crate) lockout: LockoutConfig,
    /// The CAPTCHA rules, for the challenges kept in the store.
    pub(crate) captcha: CaptchaConfig,
    /// The login throttle's rates, for the arrival times kept in the store.
    pub(crate) login_throttle: ThrottleConfig,
    /// The keys of the sign-in flow (pseudonyms of unknown names, device cookies): derived
    /// from the device-cookie key, so the same on every node.
    pub(crate) login_config: fleetwire_auth::login_flow::LoginConfig,
    /// The device-cookie HMAC key (`device-cookie.key`).
    pub(crate) device_key: [u8; 32],
    /// The outgoing-mail queue.
    pub(crate) mailer: mail::Mailer,
    /// Seals TOTP secrets in the store (`totp.key`).
    pub(crate) sealer: Arc<sealed::Sealer>,
}

/// A reserved login attempt: in this server's engine (embedded store), or in the lane row the
/// nodes share (PostgreSQL).
pub(crate) enum LaneTicket {
    Local(AttemptTicket),
    Shared([u8; 16]),
}

/// Pending CAPTCHA challenges and the per-source throttle on fetching them.
pub(crate) struct Captchas {
    pub(crate) store: CaptchaStore,
    pub(crate) fetch: Throttle,
}

/// The `fleetwire-auth` engines, in memory (and in the snapshot, see [`persist`]).
#[derive(Clone)]
pub(crate) struct Engines {
    pub(crate) lockout: LockoutEngine,
    pub(crate) throttle: Throttle,
    pub(crate) sessions: SessionStore,
    pub(crate) resets: ResetTokens,
    pub(crate) origins: OriginTracker,
    pub(crate) throttled: u64,
    pub(crate) busy: u64,
}

impl Engines {
    pub(crate) fn new(settings: &AccountsSettings) -> Result<Self, String> {
        let mut rng = OsRng;
        Ok(Self {
            lockout: LockoutEngine::generate(settings.lockout(), &mut rng)
                .map_err(|e| format!("[accounts] lockout settings: {e}"))?,
            throttle: Throttle::generate(settings.throttle(), &mut rng),
            sessions: SessionStore::new(SessionConfig {
                absolute_lifetime_ms: settings.session_lifetime_secs.saturating_mul(1000),
                default_idle_timeout_ms: crate::service::accounts::default_idle_ms(settings),
                max_sessions_per_user: MAX_SESSIONS_PER_USER,
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

    /// On PostgreSQL, whether `origin` is new among the account's recent origins in the fleet
    /// (and records it); `None` on the embedded store (the in-memory tracker decides).
    pub(crate) async fn new_origin(
        &self,
        user: &str,
        origin: &str,
        t: UnixTime,
    ) -> Result<Option<bool>, String> {
        if !self.shared() {
            return Ok(None);
        }
        let tag = ring::hmac::sign(&self.shared_lanes, format!("origin\0{origin}").as_bytes());
        self.store
            .accounts()
            .observe_origin(
                user.to_owned(),
                hex::encode(&tag.as_ref()[..16]),
                t.as_millis(),
                8,
            )
            .await
            .map(Some)
            .map_err(|e| e.to_string())
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

    pub(crate) fn engines(&self) -> std::sync::MutexGuard<'_, Engines> {
        self.dirty.store(true, Ordering::Relaxed);
        self.engines.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The CAPTCHA lock. Held for O(1) table operations only: pictures are drawn outside it.
    pub(crate) fn captchas(&self) -> std::sync::MutexGuard<'_, Captchas> {
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
    pub(crate) fn audit(&self, event: AuditEvent) {
        self.audit_buf
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((now(), event));
    }

    /// How the audit log names a submitted login name that matches no account.
    pub(crate) fn pseudonym(&self, name: &str) -> String {
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

pub(crate) fn random16() -> [u8; 16] {
    let mut b = [0u8; 16];
    OsRng.fill_bytes(&mut b);
    b
}

/// Housekeeping ticks (250 ms each) between purges of the engines' expired entries.
const PURGE_TICKS: u64 = 240;

/// The session store's per-user cap; the rows follow it.
pub(crate) const MAX_SESSIONS_PER_USER: u32 = 16;

/// Starts the accounts housekeeping: audit writes, refusal counts, CLI commands, purges.
pub(crate) async fn start(
    accounts: Arc<Accounts>,
    mut stop: watch::Receiver<bool>,
) -> Result<JoinHandle<Result<(), String>>, String> {
    accounts.restore_state().await?;
    let sealer = accounts.sealer.clone();
    let sealed = sealed::migrate(&accounts.store, &sealer).await?;
    if sealed > 0 {
        println!("accounts: {sealed} TOTP secrets were stored in clear; now encrypted");
    }
    let (workers, queue) = accounts.pool.size();
    println!("accounts: argon2 on {workers} threads, {queue} queued at most");
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
