//! Things (T1–T4: devices end users subscribe to): codes, access, the `/v1/things/…` HTTPS API ([`routes`]) and the
//! `thing` commands.
//!
//! # Store
//!
//! - `things`: one row per thing: a random public id (`t_` + 16 hex digits), a name, the current
//!   code (canonical form, `UNIQUE`), the mode and code expiry (copies for listing), and the
//!   whole [`ThingAccess`] state as JSON.
//! - `thing_codes`: every code ever issued (`PRIMARY KEY`), with its thing and when it was
//!   retired. It is the [`CodeRegistry`]: claiming a code is one `INSERT … ON CONFLICT DO
//!   NOTHING`, so two processes can never both win a code, and a rotated code is never issued
//!   again (an old code can never lead to somebody else's thing).
//! - `thing_principals`: who a right belongs to ↔ the machine's numeric [`UserId`]s. A
//!   principal is an account's immutable id (`u_…`, never its name: a new account with a
//!   deleted account's name inherits nothing), or, only with `danger_trust_user_header`, a
//!   gateway user with no account (`ext:NAME`). Numbers come from `AUTOINCREMENT`, so a deleted
//!   principal's number is never handed out again. Names in requests and commands are resolved
//!   to the account (by name or e-mail) when they are used.
//! - `thing_members`: (user, thing) for every member, rewritten with the state; an index for
//!   "my things", never consulted for access decisions (the state is).
//! - `thing_events`: the machine's [`AuditEvent`]s (every change and every refusal), with the
//!   acting principal's number (never a name; `''` for the operator) and `via` (`api` or `cli`).
//!
//! Deleting an account ([`forget_account`], run by `user delete` in its transaction) takes it
//! out of every thing (membership, request, invite, block; if it was the last administrator the
//! remaining member with the lowest number takes over), deletes its `thing_principals` row (the
//! events keep a number nothing maps to a person any more) and clears it as the creator of
//! things. Data directories of earlier versions (rights keyed by name in `thing_users`) are
//! migrated when the store opens ([`migrate`]).
//!
//! Every access change is one `BEGIN IMMEDIATE` transaction: load the state, apply the
//! operation, store it back and append its events. `SQLite` holds one writer at a time across
//! processes, so operations on a thing (from the server or the command line) are serialized and
//! two racing first users get exactly one administrator.
//!
//! # Code attempts
//!
//! `POST /v1/things/connect` parses the code first (a typo is a 400 and costs nothing), then
//! reserves an attempt in three guards, in this order, each reserve-before-verify:
//!
//! 1. a global [`GcraGuard`] keyed by a constant (`global_failures_per_minute`): a cap on wrong
//!    codes from everybody together, against many-source guessing;
//! 2. a per-source [`GcraGuard`] (`source_burst`, then one per `source_period_secs`): a found
//!    code refunds only its own reservation, so knowing one valid code (your own thing) buys no
//!    extra guesses;
//! 3. the lockout engine per source ([`LockoutGuard`] over `fleetwire_auth`'s `LockoutEngine`):
//!    after `max_failures` consecutive wrong codes the source is blocked for `base_block_secs`,
//!    doubling per further wrong code up to `max_block_secs`, and locked until the server
//!    restarts after `hard_limit` consecutive wrong codes. A found code ends the streak (the
//!    engine's rule) — layer 2 is what stops that from being abused.
//!
//! A source is a `fleetwire_tokio::source::Source` (an IPv4 address, or an IPv6 /64), the one key of every per-source limit. A refused attempt is a 429
//! with `Retry-After`. A wrong code, an expired code, a removed user's code and an uninvited
//! user's code for an invite-only thing all answer the same 404 "no such thing" and count as
//! wrong: the only oracle is the throttle's Retry-After. The guards live in server memory and
//! are not persisted (a restart forgets streaks).
//!
//! # Caller identity
//!
//! A caller signs in at `/v1/auth/login` and sends `Authorization: Bearer <token>`; the accounts
//! module checks the session (idle and absolute expiry, locked accounts) and names the user.
//! Behind a gateway that authenticates by itself, `[things] danger_trust_user_header = true`
//! also accepts an `X-Fleetwire-User` header (the tests use it to play many users); without it
//! that header is refused. See [`caller`].

#![allow(clippy::result_large_err)] // handlers' errors are finished responses

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::Method;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{MethodRouter, any, delete, get, post, put};
use clap::Subcommand;
use fleetwire_auth::lockout::{BlockGrowth, LockoutConfig, LockoutEngine};
use fleetwire_codes::{
    AccessError, AccessMode, Alphabet, AttemptGuard, AuditEvent, Code, CodeGenerator, CodeRegistry,
    CodeSpec, Connected, DEFAULT_UNIQUE_ATTEMPTS, GcraGuard, GcraTicket, LockoutGuard, Role,
    ThingAccess, Throttled, UnixTime, UserId,
};
use fleetwire_tokio::source::Source;
use rand_chacha::ChaCha12Rng;
use rand_core::SeedableRng;
use ring::rand::{SecureRandom, SystemRandom};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::api::{Access, Route};
use crate::app::App as Ctx;
use crate::store::Store;
use crate::util::term::{escape, escape_json};

/// The things tables (see the module docs).
pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS things (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL DEFAULT '',
    code            TEXT NOT NULL UNIQUE,
    mode            TEXT NOT NULL,
    code_expires_ms INTEGER,
    state           TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    created_by      TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS thing_codes (
    code       TEXT PRIMARY KEY,
    thing      TEXT NOT NULL,
    claimed_at INTEGER NOT NULL,
    retired_at INTEGER
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS thing_principals (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    principal TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS thing_events (
    seq   INTEGER PRIMARY KEY AUTOINCREMENT,
    thing TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    actor TEXT NOT NULL,
    via   TEXT NOT NULL,
    event TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS thing_events_by_thing ON thing_events (thing, seq);
CREATE TABLE IF NOT EXISTS thing_members (
    user  INTEGER NOT NULL,
    thing TEXT NOT NULL,
    PRIMARY KEY (user, thing)
) WITHOUT ROWID;
";

/// The lockout namespace for code attempts.
const CODE_NS: &str = "thing-code";
/// The one answer for a code that leads nowhere the caller may go.
const NO_SUCH_THING: &str = "no such thing";
/// Longest user name accepted from a header or a path.
const MAX_USER_NAME: usize = 64;

/// `[things]` in `fleetwire.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct ThingsSettings {
    /// Random symbols per code, 6 to 10.
    pub(crate) code_length: usize,
    /// Append a check character (catches every typo and every swap of neighbours).
    pub(crate) check_character: bool,
    /// `alphanumeric` (0-9A-Z), `crockford` (base 32 without I L O U) or the symbols themselves.
    pub(crate) alphabet: String,
    /// Wrong codes from everybody together per minute (0: no global cap).
    pub(crate) global_failures_per_minute: u32,
    /// Wrong codes one source may send at once before the per-source rate applies.
    pub(crate) source_burst: u32,
    /// After the burst, one wrong code per this many seconds per source.
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
    fn spec(&self) -> Result<CodeSpec, String> {
        let alphabet = match self.alphabet.to_ascii_lowercase().as_str() {
            "alphanumeric" => Alphabet::alphanumeric(),
            "crockford" => Alphabet::crockford(),
            _ => Alphabet::new(&self.alphabet).map_err(|e| format!("[things] alphabet: {e}"))?,
        };
        CodeSpec::new(alphabet, self.code_length, self.check_character)
            .map_err(|e| format!("[things] code settings: {e}"))
    }

    fn guards(&self) -> Result<Guards, String> {
        let mut seed = [0u8; 16];
        SystemRandom::new()
            .fill(&mut seed)
            .map_err(|_| "the OS random generator failed")?;
        let lockout = LockoutConfig {
            max_failures: self.max_failures.max(1),
            base_block_secs: self.base_block_secs.max(1),
            max_block_secs: self.max_block_secs.max(self.base_block_secs.max(1)),
            growth: BlockGrowth::Exponential,
            hard_limit: self.hard_limit.clamp(1, 100),
            ..LockoutConfig::web_cms()
        };
        let engine = LockoutEngine::new(lockout, seed)
            .map_err(|e| format!("[things] throttle settings: {e}"))?;
        let per_minute = self.global_failures_per_minute;
        Ok(Guards {
            global: (per_minute > 0)
                .then(|| GcraGuard::new(per_minute, (60_000 / u64::from(per_minute)).max(1), 1)),
            source: GcraGuard::new(
                self.source_burst.max(1),
                self.source_period_secs.max(1).saturating_mul(1000),
                100_000,
            ),
            lockout: LockoutGuard::new(engine, CODE_NS),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The store
// ---------------------------------------------------------------------------------------------

/// Why an operation on a thing did not happen.
#[derive(Debug)]
enum OpError {
    /// No thing with this id or code (or none the caller may know about).
    NoSuchThing,
    /// No account of this name (and gateway users are not trusted).
    NoSuchUser(String),
    /// The caller lacks a right or is over a quota.
    Forbidden(String),
    /// The access machine refused.
    Access(AccessError),
    /// Input the operation cannot use.
    Bad(String),
    /// The store or the generator failed.
    Internal(String),
}

impl From<rusqlite::Error> for OpError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Internal(e.to_string())
    }
}

impl std::fmt::Display for OpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoSuchThing => f.write_str(NO_SUCH_THING),
            Self::NoSuchUser(name) => write!(f, "no account named {name:?}"),
            Self::Forbidden(why) => f.write_str(why),
            Self::Access(e) => write!(f, "{e}"),
            Self::Bad(e) | Self::Internal(e) => f.write_str(e),
        }
    }
}

/// The code registry on the store: `thing_codes` has the code as its primary key.
struct StoreRegistry<'a> {
    tx: &'a Transaction<'a>,
    thing: &'a str,
    now: UnixTime,
}

impl CodeRegistry for StoreRegistry<'_> {
    type Error = rusqlite::Error;

    fn try_claim(&mut self, code: &Code) -> Result<bool, rusqlite::Error> {
        let n = self.tx.execute(
            "INSERT INTO thing_codes (code, thing, claimed_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (code) DO NOTHING",
            params![code.as_str(), self.thing, ms(self.now)],
        )?;
        Ok(n == 1)
    }
}

/// Who performs an operation, for the event log.
#[derive(Clone, Copy)]
enum Via {
    Api,
    Cli,
}

impl Via {
    fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Cli => "cli",
        }
    }
}

/// A thing as loaded inside a transaction.
struct Loaded {
    id: String,
    name: String,
    access: ThingAccess,
}

/// A fresh code generator seeded from the OS.
fn generator(spec: CodeSpec) -> Result<CodeGenerator<ChaCha12Rng>, String> {
    let mut seed = [0u8; 32];
    SystemRandom::new()
        .fill(&mut seed)
        .map_err(|_| "the OS random generator failed")?;
    Ok(CodeGenerator::new(spec, ChaCha12Rng::from_seed(seed)))
}

fn now() -> UnixTime {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    UnixTime::from_millis(ms)
}

fn ms(t: UnixTime) -> i64 {
    i64::try_from(t.as_millis()).unwrap_or(i64::MAX)
}

fn immediate(conn: &mut Connection) -> rusqlite::Result<Transaction<'_>> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
}

/// The machine's number for `principal`, created on first use.
fn principal_number(tx: &Connection, principal: &str) -> rusqlite::Result<UserId> {
    tx.execute(
        "INSERT INTO thing_principals (principal) VALUES (?1) ON CONFLICT (principal) DO NOTHING",
        [principal],
    )?;
    let id: i64 = tx.query_row(
        "SELECT id FROM thing_principals WHERE principal = ?1",
        [principal],
        |r| r.get(0),
    )?;
    Ok(UserId(u64::try_from(id).unwrap_or(0)))
}

/// The machine's number for `principal`, if it has one.
fn known_number(conn: &Connection, principal: &str) -> rusqlite::Result<Option<UserId>> {
    let id: Option<i64> = conn
        .query_row(
            "SELECT id FROM thing_principals WHERE principal = ?1",
            [principal],
            |r| r.get(0),
        )
        .optional()?;
    Ok(id.and_then(|i| u64::try_from(i).ok()).map(UserId))
}

/// How a number is shown: the account's current name, a gateway user's name, or `#N` for a
/// number that maps to nobody.
fn display_name(conn: &Connection, id: UserId) -> rusqlite::Result<String> {
    let principal: Option<String> = conn
        .query_row(
            "SELECT principal FROM thing_principals WHERE id = ?1",
            [i64::try_from(id.0).unwrap_or(-1)],
            |r| r.get(0),
        )
        .optional()?;
    Ok(match principal {
        Some(p) => match p.strip_prefix(GATEWAY) {
            Some(name) => name.to_owned(),
            None => crate::accounts::user_by_id(conn, &p)?
                .map_or_else(|| format!("#{}", id.0), |u| u.name),
        },
        None => format!("#{}", id.0),
    })
}

/// The principal a user name stands for: the account with that name or e-mail (its id), or,
/// where gateway users are trusted, the gateway user of that name.
fn named_principal(conn: &Connection, name: &str, gateway: bool) -> Result<String, OpError> {
    if let Some(user) = crate::accounts::user_by_name(conn, name)? {
        return Ok(user.id);
    }
    if gateway {
        Ok(format!("{GATEWAY}{name}"))
    } else {
        Err(OpError::NoSuchUser(name.to_owned()))
    }
}

/// The prefix of gateway users' principals.
const GATEWAY: &str = "ext:";

fn mode_name(mode: AccessMode) -> &'static str {
    match mode {
        AccessMode::Open => "open",
        AccessMode::AdminConfirm => "confirm",
        AccessMode::InviteOnly => "invite",
    }
}

fn parse_mode(s: &str) -> Result<AccessMode, String> {
    match s {
        "open" => Ok(AccessMode::Open),
        "confirm" => Ok(AccessMode::AdminConfirm),
        "invite" => Ok(AccessMode::InviteOnly),
        _ => Err(format!(
            "unknown mode {s:?}: use open, confirm (an administrator approves) or invite"
        )),
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Administrator => "administrator",
        Role::Member => "member",
    }
}

fn load(tx: &Connection, id: &str) -> Result<Loaded, OpError> {
    let row: Option<(String, String)> = tx
        .query_row("SELECT name, state FROM things WHERE id = ?1", [id], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    let (name, state) = row.ok_or(OpError::NoSuchThing)?;
    let access: ThingAccess = serde_json::from_str(&state)
        .map_err(|e| OpError::Internal(format!("thing {id}: stored state unreadable: {e}")))?;
    Ok(Loaded {
        id: id.to_owned(),
        name,
        access,
    })
}

fn thing_by_code(tx: &Connection, code: &Code) -> rusqlite::Result<Option<String>> {
    tx.query_row(
        "SELECT id FROM things WHERE code = ?1",
        [code.as_str()],
        |r| r.get(0),
    )
    .optional()
}

/// Stores the state (if `changed`) and appends the drained events.
fn save(tx: &Connection, thing: &mut Loaded, via: Via, changed: bool) -> Result<(), OpError> {
    while let Some(AuditEvent { at, actor, kind }) = thing.access.poll_event() {
        let event = serde_json::to_string(&kind).map_err(|e| OpError::Internal(e.to_string()))?;
        tx.execute(
            "INSERT INTO thing_events (thing, at_ms, actor, via, event) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![thing.id, ms(at), actor.0.to_string(), via.as_str(), event],
        )?;
    }
    if changed {
        let state =
            serde_json::to_string(&thing.access).map_err(|e| OpError::Internal(e.to_string()))?;
        tx.execute(
            "UPDATE things SET code = ?2, mode = ?3, code_expires_ms = ?4, state = ?5, updated_at = ?6 \
             WHERE id = ?1",
            params![
                thing.id,
                thing.access.code().as_str(),
                mode_name(thing.access.mode()),
                thing.access.code_expires_at().map(ms),
                state,
                ms(now())
            ],
        )?;
        tx.execute("DELETE FROM thing_members WHERE thing = ?1", [&thing.id])?;
        let mut insert =
            tx.prepare_cached("INSERT INTO thing_members (user, thing) VALUES (?1, ?2)")?;
        for (user, _) in thing.access.members() {
            insert.execute(params![i64::try_from(user.0).unwrap_or(-1), thing.id])?;
        }
    }
    Ok(())
}

/// One access change: `BEGIN IMMEDIATE`, load, `op`, store, events, commit. The events of a
/// refusal are kept too.
fn change<T>(
    conn: &mut Connection,
    id: &str,
    via: Via,
    op: impl FnOnce(&Transaction<'_>, &mut Loaded, UnixTime) -> Result<T, OpError>,
) -> Result<T, OpError> {
    let tx = immediate(conn)?;
    let mut thing = load(&tx, id)?;
    let r = op(&tx, &mut thing, now());
    if let Err(OpError::Internal(_)) = r {
        return r; // dropping `tx` rolls back
    }
    save(&tx, &mut thing, via, r.is_ok())?;
    tx.commit()?;
    r
}

/// Creates a thing with a fresh unique code.
fn create(
    conn: &mut Connection,
    generator: &mut CodeGenerator<ChaCha12Rng>,
    mode: AccessMode,
    name: &str,
    creator: Option<(&str, usize)>,
    via: Via,
) -> Result<(String, Code), OpError> {
    let mut raw = [0u8; 8];
    SystemRandom::new()
        .fill(&mut raw)
        .map_err(|_| OpError::Internal("the OS random generator failed".into()))?;
    let id = format!("t_{}", hex::encode(raw));
    let at = now();
    let tx = immediate(conn)?;
    // The quota is counted in the transaction that inserts, so parallel requests cannot pass it.
    if let Some((creator, max)) = creator {
        let made: usize = tx.query_row(
            "SELECT count(*) FROM things WHERE created_by = ?1",
            [creator],
            |r| r.get(0),
        )?;
        if made >= max {
            return Err(OpError::Forbidden(format!(
                "this account has created {made} things, the most one account may \
                 ([things] max_things_per_user = {max}); ask an operator"
            )));
        }
    }
    let code = generator
        .generate_unique(
            &mut StoreRegistry {
                tx: &tx,
                thing: &id,
                now: at,
            },
            DEFAULT_UNIQUE_ATTEMPTS,
        )
        .map_err(|e| OpError::Internal(e.to_string()))?;
    let access = ThingAccess::new(code, mode);
    let state = serde_json::to_string(&access).map_err(|e| OpError::Internal(e.to_string()))?;
    tx.execute(
        "INSERT INTO things (id, name, code, mode, state, created_at, updated_at, created_by) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7)",
        params![
            id,
            name,
            code.as_str(),
            mode_name(mode),
            state,
            ms(at),
            creator.map(|c| c.0)
        ],
    )?;
    tx.execute(
        "INSERT INTO thing_events (thing, at_ms, actor, via, event) VALUES (?1, ?2, '', ?3, ?4)",
        params![
            id,
            ms(at),
            via.as_str(),
            json!({ "Created": { "mode": mode_name(mode) } }).to_string()
        ],
    )?;
    tx.commit()?;
    Ok((id, code))
}

/// Replaces the code: a fresh one claimed in the registry, the old one retired (never issued
/// again). `actor` must be an administrator; `None` (the operator) acts as one of them, or
/// rebuilds an unclaimed thing around the new code.
fn rotate(
    conn: &mut Connection,
    generator: &mut CodeGenerator<ChaCha12Rng>,
    id: &str,
    actor: Option<&Caller>,
    via: Via,
) -> Result<Code, OpError> {
    change(conn, id, via, |tx, thing, at| {
        let admin = match actor {
            Some(caller) => Some(principal_number(tx, &caller.principal(tx)?)?),
            None => thing
                .access
                .members()
                .find(|&(_, r)| r == Role::Administrator)
                .map(|(u, _)| u),
        };
        if let Some(admin) = admin {
            if !thing.access.is_administrator(admin) {
                return Err(OpError::Access(AccessError::NotAdministrator {
                    user: admin,
                }));
            }
        }
        let old = *thing.access.code();
        let code = generator
            .generate_unique(
                &mut StoreRegistry {
                    tx,
                    thing: id,
                    now: at,
                },
                DEFAULT_UNIQUE_ATTEMPTS,
            )
            .map_err(|e| OpError::Internal(e.to_string()))?;
        match admin {
            Some(admin) => thing
                .access
                .rotate_code(at, admin, code, None)
                .map_err(OpError::Access)?,
            None => thing.access = ThingAccess::new(code, thing.access.mode()),
        }
        tx.execute(
            "UPDATE thing_codes SET retired_at = ?2 WHERE code = ?1",
            params![old.as_str(), ms(at)],
        )?;
        Ok(code)
    })
}

/// The thing `id_or_code` names: a `t_…` id, or a code (current codes only).
fn resolve(conn: &Connection, spec: &CodeSpec, id_or_code: &str) -> Result<String, String> {
    if id_or_code.starts_with("t_") {
        return Ok(id_or_code.to_owned());
    }
    let code = spec
        .parse(id_or_code)
        .map_err(|e| format!("{id_or_code:?} is not a thing id or a valid code: {e}"))?;
    thing_by_code(conn, &code)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no thing has the code {code}"))
}

/// A thing's full picture, for administrators and `thing show`.
fn describe(conn: &Connection, thing: &Loaded, full: bool, caller: Option<UserId>) -> Value {
    let a = &thing.access;
    let name = |u: UserId| display_name(conn, u).unwrap_or_else(|_| format!("#{}", u.0));
    let mut out = json!({
        "id": thing.id,
        "name": thing.name,
        "mode": mode_name(a.mode()),
    });
    if let Some(role) = caller.and_then(|u| a.role(u)) {
        out["role"] = json!(role_name(role));
    }
    if full {
        out["code"] = json!(a.code().to_string());
        out["code_expires_at_ms"] = json!(a.code_expires_at().map(UnixTime::as_millis));
        out["claimed"] = json!(a.is_claimed());
        out["members"] = a
            .members()
            .map(|(u, r)| json!({ "user": name(u), "role": role_name(r) }))
            .collect();
        out["pending"] = a
            .pending_requests()
            .map(|(u, since)| json!({ "user": name(u), "since_ms": since.as_millis() }))
            .collect();
        out["invites"] = a
            .invites()
            .map(|(u, exp)| json!({ "user": name(u), "expires_at_ms": exp.map(UnixTime::as_millis) }))
            .collect();
    }
    out
}

/// Brings a store written by an earlier version forward; idempotent, run when the store opens.
///
/// Rights keyed by user name (`thing_users`) become rights keyed by principal, keeping their
/// numbers: a name becomes the id of the account that has it (by name or e-mail) unless the
/// first thing event naming it is older than that account (the right then belonged to an
/// earlier holder of the name, such as a deleted account) or that account already has a number;
/// otherwise it becomes the gateway user `ext:NAME`, which only `danger_trust_user_header` can
/// act as. Event actors become numbers. `things.created_by` is added.
pub(crate) fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    const CREATOR: &str = "SELECT 1 FROM pragma_table_info('things') WHERE name = 'created_by'";
    const INDEX: &str =
        "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'things_by_creator'";
    const OLD_USERS: &str =
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'thing_users'";
    let exists = |c: &Connection, sql: &str| c.prepare(sql)?.exists([]);
    // Every command opens the store: take the write lock only when there is work.
    if exists(conn, CREATOR)? && exists(conn, INDEX)? && !exists(conn, OLD_USERS)? {
        return Ok(());
    }
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    if !exists(&tx, CREATOR)? {
        tx.execute("ALTER TABLE things ADD COLUMN created_by TEXT", [])?;
    }
    tx.execute(
        "CREATE INDEX IF NOT EXISTS things_by_creator ON things (created_by)",
        [],
    )?;
    if exists(&tx, OLD_USERS)? {
        let rows: Vec<(i64, String)> = tx
            .prepare("SELECT id, name FROM thing_users ORDER BY id")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        for (number, name) in &rows {
            let first_seen: Option<i64> = tx.query_row(
                "SELECT min(at_ms) FROM thing_events WHERE actor = ?1 \
                 OR instr(event, '\"user\":' || ?2 || ',') > 0 \
                 OR instr(event, '\"user\":' || ?2 || '}') > 0",
                params![name, number.to_string()],
                |r| r.get(0),
            )?;
            let account = crate::accounts::user_by_name(&tx, name)?.filter(|u| {
                first_seen.is_none_or(|seen| u.created_at.saturating_mul(1000) <= seen)
            });
            let principal = match account {
                Some(u) if known_number(&tx, &u.id)?.is_none() => u.id,
                _ => format!("{GATEWAY}{name}"),
            };
            tx.execute(
                "INSERT INTO thing_principals (id, principal) VALUES (?1, ?2)",
                params![number, principal],
            )?;
        }
        tx.execute(
            "UPDATE thing_events SET actor = \
             (SELECT CAST(u.id AS TEXT) FROM thing_users u WHERE u.name = thing_events.actor) \
             WHERE actor IN (SELECT name FROM thing_users)",
            [],
        )?;
        tx.execute("DROP TABLE thing_users", [])?;
        tracing::warn!(
            "things: {} user names migrated to account ids (rights keyed by name are gone)",
            rows.len()
        );
    }
    tx.commit()
}

/// What deleting an account removed from the things (C5), for `user delete`'s report.
#[derive(Debug, Default, Serialize)]
pub(crate) struct ThingsForgotten {
    /// Things it was a member of.
    pub(crate) memberships: usize,
    /// Of those, things it administered.
    pub(crate) as_administrator: usize,
    /// Things where another member became administrator in its place.
    pub(crate) administrator_passed_on: usize,
    /// Things it was the last member of: unclaimed again.
    pub(crate) left_unclaimed: usize,
    /// Pending requests withdrawn.
    pub(crate) pending_requests: usize,
    /// Invites withdrawn.
    pub(crate) invites: usize,
    /// Blocks lifted (there is nobody left to block).
    pub(crate) blocks: usize,
    /// Thing events that named its number (kept: nothing maps the number to anyone now).
    pub(crate) events_anonymised: usize,
    /// Things it created (the creator is cleared).
    pub(crate) things_created: usize,
}

/// Takes the account `account` (its id) out of every thing, in the caller's transaction: see
/// the module docs.
pub(crate) fn forget_account(tx: &Connection, account: &str) -> Result<ThingsForgotten, String> {
    forget(tx, account).map_err(|e| e.to_string())
}

fn forget(tx: &Connection, account: &str) -> Result<ThingsForgotten, OpError> {
    let mut out = ThingsForgotten {
        things_created: tx.execute(
            "UPDATE things SET created_by = NULL WHERE created_by = ?1",
            [account],
        )?,
        ..ThingsForgotten::default()
    };
    let Some(number) = known_number(tx, account)? else {
        return Ok(out);
    };
    let n = number.0.to_string();
    // A cheap superset: the number appears in the state of every thing it has a place in.
    let ids: Vec<String> = tx
        .prepare("SELECT id FROM things WHERE instr(state, ?1) > 0")?
        .query_map([&n], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for id in ids {
        let mut thing = load(tx, &id)?;
        let f = thing.access.forget_user(now(), number);
        if f.is_empty() {
            continue;
        }
        if let Some(role) = f.role {
            out.memberships += 1;
            if role == Role::Administrator {
                out.as_administrator += 1;
                if f.successor.is_some() {
                    out.administrator_passed_on += 1;
                } else if !thing.access.is_claimed() {
                    out.left_unclaimed += 1;
                }
            }
        }
        out.pending_requests += usize::from(f.pending);
        out.invites += usize::from(f.invited);
        out.blocks += usize::from(f.blocked);
        save(tx, &mut thing, Via::Cli, true)?;
    }
    out.events_anonymised = tx.query_row(
        "SELECT count(*) FROM thing_events WHERE actor = ?1 \
         OR instr(event, '\"user\":' || ?1 || ',') > 0 \
         OR instr(event, '\"user\":' || ?1 || '}') > 0",
        [&n],
        |r| r.get(0),
    )?;
    tx.execute(
        "DELETE FROM thing_principals WHERE id = ?1",
        [i64::try_from(number.0).unwrap_or(-1)],
    )?;
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// The HTTPS API
// ---------------------------------------------------------------------------------------------

/// The running API's state.
struct Things {
    settings: ThingsSettings,
    /// Groups and rights (`[accounts.groups]`), for the rights things check.
    accounts: crate::accounts::AccountsSettings,
    /// The accounts state the `App` holds: checks the sessions of signed-in callers.
    sessions: Arc<crate::accounts::Accounts>,
    spec: CodeSpec,
    store: Store,
    generator: Mutex<CodeGenerator<ChaCha12Rng>>,
    guards: Mutex<Guards>,
}

/// The three code-attempt guards (module docs).
struct Guards {
    global: Option<GcraGuard>,
    source: GcraGuard,
    lockout: LockoutGuard,
}

/// The reservations of one attempt.
struct Tickets {
    global: Option<GcraTicket>,
    source: GcraTicket,
    lockout: fleetwire_auth::lockout::AttemptTicket,
}

impl Guards {
    fn begin(&mut self, source: &str, now: UnixTime) -> Result<Tickets, Throttled> {
        let global = match &mut self.global {
            Some(g) => Some(g.begin("*", now)?),
            None => None,
        };
        let refund = |g: &mut Option<GcraGuard>, t: Option<GcraTicket>| {
            if let (Some(g), Some(t)) = (g.as_mut(), t) {
                g.finish(t, true, now);
            }
        };
        let src = match self.source.begin(source, now) {
            Ok(t) => t,
            Err(e) => {
                refund(&mut self.global, global);
                return Err(e);
            }
        };
        match self.lockout.begin(source, now) {
            Ok(lockout) => Ok(Tickets {
                global,
                source: src,
                lockout,
            }),
            Err(e) => {
                refund(&mut self.global, global);
                self.source.finish(src, true, now);
                Err(e)
            }
        }
    }

    fn finish(&mut self, t: Tickets, found: bool, now: UnixTime) {
        if let (Some(g), Some(ticket)) = (self.global.as_mut(), t.global) {
            g.finish(ticket, found, now);
        }
        self.source.finish(t.source, found, now);
        self.lockout.finish(t.lockout, found, now);
    }
}

type S = State<Arc<Things>>;

/// The `/v1/things` routes, merged into the HTTPS router. With invalid `[things]` settings
/// every route answers 503 with the reason (and the server log says it).
#[allow(clippy::too_many_lines)] // one row per route
pub(crate) fn routes(ctx: &Arc<Ctx>) -> Vec<Route> {
    let made = ctx.config.things.spec().and_then(|spec| {
        Ok(Things {
            generator: Mutex::new(generator(spec.clone())?),
            guards: Mutex::new(ctx.config.things.guards()?),
            settings: ctx.config.things.clone(),
            accounts: ctx.config.accounts.clone(),
            sessions: ctx.accounts.clone(),
            spec,
            store: ctx.store.clone(),
        })
    });
    let things = match made {
        Ok(t) => Arc::new(t),
        Err(e) => {
            tracing::error!("things API not available: {e}");
            let reply = move || {
                let e = e.clone();
                async move {
                    error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("things API not available: {e}"),
                    )
                }
            };
            return vec![
                Route::new(
                    Method::GET,
                    "/v1/things",
                    Access::Member,
                    any(reply.clone()),
                ),
                Route::new(
                    Method::GET,
                    "/v1/things/{*rest}",
                    Access::Member,
                    any(reply),
                ),
            ];
        }
    };
    if things.settings.danger_trust_user_header {
        tracing::warn!(
            "things.danger_trust_user_header is set: any client can act as any user on /v1/things"
        );
    }
    let row =
        |method: Method, path: &'static str, access: Access, handler: MethodRouter<Arc<Things>>| {
            Route::new(method, path, access, handler.with_state(things.clone()))
        };
    vec![
        row(Method::GET, "/v1/things", Access::Member, get(list)),
        row(
            Method::POST,
            "/v1/things",
            // Member, not Right: a gateway-named user may hold the right too; the handler checks.
            Access::Member,
            post(create_thing),
        ),
        row(
            Method::POST,
            "/v1/things/connect",
            Access::Member,
            post(connect),
        ),
        row(Method::GET, "/v1/things/{id}", Access::Member, get(show)),
        row(
            Method::GET,
            "/v1/things/{id}/subscribers",
            Access::Member,
            get(subscribers),
        ),
        row(
            Method::PUT,
            "/v1/things/{id}/mode",
            Access::Member,
            put(set_mode),
        ),
        row(
            Method::POST,
            "/v1/things/{id}/requests/{user}/approve",
            Access::Member,
            post(approve),
        ),
        row(
            Method::POST,
            "/v1/things/{id}/requests/{user}/deny",
            Access::Member,
            post(deny),
        ),
        row(
            Method::POST,
            "/v1/things/{id}/invites",
            Access::Member,
            post(invite),
        ),
        row(
            Method::DELETE,
            "/v1/things/{id}/invites/{user}",
            Access::Member,
            delete(cancel_invite),
        ),
        row(
            Method::DELETE,
            "/v1/things/{id}/members/{user}",
            Access::Member,
            delete(remove_member),
        ),
        row(
            Method::POST,
            "/v1/things/{id}/admins",
            Access::Member,
            post(grant_admin),
        ),
        row(
            Method::DELETE,
            "/v1/things/{id}/admins/{user}",
            Access::Member,
            delete(revoke_admin),
        ),
        row(
            Method::POST,
            "/v1/things/{id}/code/rotate",
            Access::Member,
            post(rotate_code),
        ),
    ]
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

fn throttled(t: Throttled) -> Response {
    let retry_after_ms = match t {
        Throttled::TooManyAttempts { retry_after_ms } | Throttled::Saturated { retry_after_ms } => {
            retry_after_ms
        }
        _ => 3_600_000,
    };
    let mut r = (
        StatusCode::TOO_MANY_REQUESTS,
        Json(json!({
            "error": format!("{NO_SUCH_THING}, or too many wrong codes from this address: {t}"),
            "retry_after_ms": retry_after_ms,
        })),
    )
        .into_response();
    if let Ok(v) = retry_after_ms.div_ceil(1000).max(1).to_string().parse() {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// The answer for a failed operation. `NotAdministrator` for a caller with no access at all is
/// "no such thing": a thing id tells nothing to strangers.
fn op_error(e: OpError) -> Response {
    match e {
        OpError::NoSuchThing => error(StatusCode::NOT_FOUND, NO_SUCH_THING),
        e @ OpError::NoSuchUser(_) => error(StatusCode::NOT_FOUND, e.to_string()),
        OpError::Forbidden(why) => error(StatusCode::FORBIDDEN, why),
        OpError::Bad(m) => error(StatusCode::BAD_REQUEST, m),
        OpError::Internal(m) => {
            tracing::error!("things: {m}");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error; try again",
            )
        }
        OpError::Access(a) => {
            let status = match &a {
                AccessError::NotAdministrator { .. } => StatusCode::FORBIDDEN,
                AccessError::NotMember { .. }
                | AccessError::NoPendingRequest { .. }
                | AccessError::NoInvite { .. }
                | AccessError::NotBlocked { .. } => StatusCode::NOT_FOUND,
                _ => StatusCode::CONFLICT,
            };
            error(status, a.to_string())
        }
    }
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Response> {
    serde_json::from_slice(body)
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("bad request body: {e}")))
}

fn valid_user(name: &str) -> Result<&str, String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_USER_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.@".contains(&b));
    if ok {
        Ok(name)
    } else {
        Err(format!(
            "bad user name {name:?}: 1 to {MAX_USER_NAME} characters of A-Z a-z 0-9 _ - . @"
        ))
    }
}

/// Who is calling: an account signed in with `Authorization: Bearer <token>` (checked by the
/// accounts module, as on `/v1/auth`), or — only with `danger_trust_user_header`, behind a
/// gateway that authenticates — the user the `X-Fleetwire-User` header names.
#[derive(Debug, Clone)]
enum Caller {
    /// A signed-in account (its row as the session check read it).
    Account(Box<crate::accounts::UserRow>),
    /// A name from the trusted gateway header.
    Gateway(String),
}

impl Caller {
    /// The principal the caller acts as: the account's id; for a gateway name, the account of
    /// that name if there is one, else the gateway user.
    fn principal(&self, conn: &Connection) -> Result<String, OpError> {
        match self {
            Self::Account(user) => Ok(user.id.clone()),
            Self::Gateway(name) => named_principal(conn, name, true),
        }
    }

    /// Whether the caller's account holds `right` (a gateway user with no account holds none).
    fn require(
        &self,
        conn: &Connection,
        settings: &crate::accounts::AccountsSettings,
        right: &str,
    ) -> Result<(), OpError> {
        let account = match self {
            Self::Account(user) => Some((**user).clone()),
            Self::Gateway(name) => crate::accounts::user_by_name(conn, name)?,
        };
        account
            .ok_or_else(|| format!("permission denied: {right}"))
            .and_then(|u| crate::accounts::check_right(settings, &u, right))
            .map_err(OpError::Forbidden)
    }
}

async fn caller(t: &Things, headers: &HeaderMap) -> Result<Caller, Response> {
    if headers.contains_key(header::AUTHORIZATION) {
        return crate::accounts::session_user(&t.sessions, headers)
            .await
            .map(|user| Caller::Account(Box::new(user)));
    }
    if !t.settings.danger_trust_user_header {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "sign in first: send Authorization: Bearer <token from /v1/auth/login> (the \
             X-Fleetwire-User header counts only with [things] danger_trust_user_header)",
        ));
    }
    gateway_user(headers).map(Caller::Gateway)
}

/// The user a trusted gateway names in `X-Fleetwire-User` (only with
/// `[things] danger_trust_user_header`; the one permission check asks first).
pub(crate) fn gateway_user(headers: &HeaderMap) -> Result<String, Response> {
    let name = headers
        .get("x-fleetwire-user")
        .ok_or_else(|| {
            error(
                StatusCode::UNAUTHORIZED,
                "send X-Fleetwire-User: <user name>",
            )
        })?
        .to_str()
        .map_err(|_| error(StatusCode::BAD_REQUEST, "X-Fleetwire-User is not text"))?;
    valid_user(name.trim())
        .map(str::to_owned)
        .map_err(|e| error(StatusCode::BAD_REQUEST, e))
}

impl Things {
    /// Runs `f` on the store off the async executor.
    async fn db<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Self, &mut Connection) -> Result<T, OpError> + Send + 'static,
    ) -> Result<T, OpError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || f(&this, &mut this.store.conn()))
            .await
            .unwrap_or_else(|e| Err(OpError::Internal(e.to_string())))
    }

    /// An operation by the administrator `actor` on user `target`.
    async fn admin_op(
        self: &Arc<Self>,
        id: String,
        actor: Caller,
        target: String,
        op: fn(&mut ThingAccess, UnixTime, UserId, UserId) -> Result<(), AccessError>,
    ) -> Response {
        if let Err(e) = valid_user(&target) {
            return error(StatusCode::BAD_REQUEST, e);
        }
        let gateway = self.settings.danger_trust_user_header;
        let r = self
            .db(move |_, c| {
                change(c, &id, Via::Api, |tx, thing, at| {
                    let actor = visible(tx, thing, &actor)?;
                    let target = principal_number(tx, &named_principal(tx, &target, gateway)?)?;
                    op(&mut thing.access, at, actor, target).map_err(OpError::Access)?;
                    Ok(describe(tx, thing, true, Some(actor)))
                })
            })
            .await;
        match r {
            Ok(v) => Json(v).into_response(),
            Err(e) => op_error(e),
        }
    }
}

/// The right `POST /v1/things` needs.
const CREATE_RIGHT: &str = "thing.create";

/// A thing name: at most 128 characters, none a terminal would act on (`term::is_unsafe`).
fn valid_thing_name(name: &str) -> Result<(), String> {
    if name.chars().count() > 128 {
        return Err("name: at most 128 characters".into());
    }
    if name.contains(crate::util::term::is_unsafe) {
        return Err("name: no control or bidirectional-override characters".into());
    }
    Ok(())
}

/// The caller's number if the thing is any of their business (member, pending, invited);
/// otherwise "no such thing".
fn visible(tx: &Connection, thing: &Loaded, caller: &Caller) -> Result<UserId, OpError> {
    let id = principal_number(tx, &caller.principal(tx)?)?;
    let a = &thing.access;
    let known = a.has_access(id)
        || a.pending_requests().any(|(u, _)| u == id)
        || a.invites().any(|(u, _)| u == id);
    if known {
        Ok(id)
    } else {
        Err(OpError::NoSuchThing)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRequest {
    mode: String,
    #[serde(default)]
    name: String,
}

async fn create_thing(State(t): S, headers: HeaderMap, body: Bytes) -> Response {
    let who = match caller(&t, &headers).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let req: CreateRequest = match parse(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let mode = match parse_mode(&req.mode) {
        Ok(m) => m,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    if let Err(e) = valid_thing_name(&req.name) {
        return error(StatusCode::BAD_REQUEST, e);
    }
    let name = req.name.clone();
    let r = t
        .db(move |t, c| {
            who.require(c, &t.accounts, CREATE_RIGHT)?;
            let creator = who.principal(c)?;
            let mut g = t.generator.lock().unwrap_or_else(PoisonError::into_inner);
            let quota = Some((creator.as_str(), t.settings.max_things_per_user));
            create(c, &mut g, mode, &name, quota, Via::Api).map(|(id, code)| (id, code, creator))
        })
        .await;
    match r {
        Ok((id, code, creator)) => {
            tracing::info!(thing = %id, by = %creator, "thing created");
            (
                StatusCode::CREATED,
                Json(json!({
                    "id": id,
                    "name": req.name,
                    "mode": mode_name(mode),
                    "code": code.to_string(),
                })),
            )
                .into_response()
        }
        Err(e) => op_error(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectRequest {
    code: String,
}

/// What a connect attempt came to.
enum Attempt {
    /// No thing for the caller behind this code (counts as a wrong code).
    Miss,
    Done(String, String, Connected),
    Refused(AccessError),
}

async fn connect(
    State(t): S,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let who = match caller(&t, &headers).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let req: ConnectRequest = match parse(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    // A typo costs nothing: the check character catches it before the throttle.
    let code = match t.spec.parse(&req.code) {
        Ok(c) => c,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("that is not a valid thing code ({e}); check it and try again"),
            );
        }
    };
    let source = Source::of_peer(peer).to_string();
    let started = now();
    let tickets = match t
        .guards
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .begin(&source, started)
    {
        Ok(tk) => tk,
        Err(e) => {
            tracing::info!(%source, "thing code attempt throttled: {e}");
            return throttled(e);
        }
    };
    let r = t
        .db(move |_, c| {
            let tx = immediate(c)?;
            let Some(id) = thing_by_code(&tx, &code)? else {
                return Ok(Attempt::Miss);
            };
            let mut thing = load(&tx, &id)?;
            let user = principal_number(&tx, &who.principal(&tx)?)?;
            let r = thing.access.connect(now(), user, &code);
            save(&tx, &mut thing, Via::Api, r.is_ok())?;
            tx.commit()?;
            Ok(match r {
                Ok(c) => Attempt::Done(thing.id, thing.name, c),
                Err(
                    AccessError::WrongCode
                    | AccessError::CodeExpired { .. }
                    | AccessError::InviteRequired { .. }
                    | AccessError::Blocked { .. },
                ) => Attempt::Miss,
                Err(e) => Attempt::Refused(e),
            })
        })
        .await;
    let found = matches!(r, Ok(Attempt::Done(..) | Attempt::Refused(_)));
    t.guards
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .finish(tickets, found, now());
    match r {
        Ok(Attempt::Done(id, name, connected)) => {
            let (status, result, role) = match connected {
                Connected::BecameAdministrator => {
                    (StatusCode::OK, "administrator", Some("administrator"))
                }
                Connected::RequestPending => (StatusCode::ACCEPTED, "pending", None),
                Connected::Joined => (StatusCode::OK, "member", Some("member")),
                Connected::AlreadyMember(role) => {
                    (StatusCode::OK, "already_member", Some(role_name(role)))
                }
            };
            (
                status,
                Json(json!({ "id": id, "name": name, "result": result, "role": role })),
            )
                .into_response()
        }
        Ok(Attempt::Miss) => error(StatusCode::NOT_FOUND, NO_SUCH_THING),
        Ok(Attempt::Refused(e)) => op_error(OpError::Access(e)),
        Err(e) => op_error(e),
    }
}

async fn list(State(t): S, headers: HeaderMap) -> Response {
    let who = match caller(&t, &headers).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let r = t
        .db(move |_, c| {
            let Some(user) = known_number(c, &who.principal(c)?)? else {
                return Ok(Vec::new());
            };
            let mut stmt = c.prepare(
                "SELECT t.id FROM thing_members m JOIN things t ON t.id = m.thing \
                 WHERE m.user = ?1 ORDER BY t.created_at, t.id",
            )?;
            let ids = stmt
                .query_map([i64::try_from(user.0).unwrap_or(-1)], |r| {
                    r.get::<_, String>(0)
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut out = Vec::new();
            for id in ids {
                let thing = load(c, &id)?;
                if thing.access.has_access(user) {
                    out.push(describe(c, &thing, false, Some(user)));
                }
            }
            Ok(out)
        })
        .await;
    match r {
        Ok(v) => Json(json!({ "things": v })).into_response(),
        Err(e) => op_error(e),
    }
}

async fn show(State(t): S, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let who = match caller(&t, &headers).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let r = t
        .db(move |_, c| {
            let thing = load(c, &id)?;
            let user = visible(c, &thing, &who)?;
            Ok(describe(
                c,
                &thing,
                thing.access.is_administrator(user),
                Some(user),
            ))
        })
        .await;
    match r {
        Ok(v) => Json(v).into_response(),
        Err(e) => op_error(e),
    }
}

async fn subscribers(State(t): S, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let who = match caller(&t, &headers).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let r = t
        .db(move |_, c| {
            let thing = load(c, &id)?;
            let user = visible(c, &thing, &who)?;
            if !thing.access.is_administrator(user) {
                return Err(OpError::Access(AccessError::NotAdministrator { user }));
            }
            let d = describe(c, &thing, true, Some(user));
            Ok(json!({ "id": thing.id, "members": d["members"], "pending": d["pending"], "invites": d["invites"] }))
        })
        .await;
    match r {
        Ok(v) => Json(v).into_response(),
        Err(e) => op_error(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModeRequest {
    mode: String,
}

async fn set_mode(
    State(t): S,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let who = match caller(&t, &headers).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let mode = match parse::<ModeRequest>(&body)
        .and_then(|m| parse_mode(&m.mode).map_err(|e| error(StatusCode::BAD_REQUEST, e)))
    {
        Ok(m) => m,
        Err(r) => return r,
    };
    let r = t
        .db(move |_, c| {
            change(c, &id, Via::Api, |tx, thing, at| {
                let actor = visible(tx, thing, &who)?;
                thing
                    .access
                    .set_mode(at, actor, mode)
                    .map_err(OpError::Access)?;
                Ok(describe(tx, thing, true, Some(actor)))
            })
        })
        .await;
    match r {
        Ok(v) => Json(v).into_response(),
        Err(e) => op_error(e),
    }
}

async fn approve(
    State(t): S,
    Path((id, user)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    match caller(&t, &headers).await {
        Ok(who) => t.admin_op(id, who, user, ThingAccess::approve).await,
        Err(r) => r,
    }
}

async fn deny(
    State(t): S,
    Path((id, user)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    match caller(&t, &headers).await {
        Ok(who) => t.admin_op(id, who, user, ThingAccess::reject).await,
        Err(r) => r,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserRequest {
    user: String,
    #[serde(default)]
    expires_in_secs: Option<u64>,
}

async fn invite(State(t): S, Path(id): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let who = match caller(&t, &headers).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let req: UserRequest = match parse(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    if let Err(e) = valid_user(&req.user) {
        return error(StatusCode::BAD_REQUEST, e);
    }
    let gateway = t.settings.danger_trust_user_header;
    let r = t
        .db(move |_, c| {
            change(c, &id, Via::Api, |tx, thing, at| {
                let actor = visible(tx, thing, &who)?;
                let target = principal_number(tx, &named_principal(tx, &req.user, gateway)?)?;
                let expires = req
                    .expires_in_secs
                    .map(|s| at.plus_millis(s.saturating_mul(1000)));
                thing
                    .access
                    .invite(at, actor, target, expires)
                    .map_err(OpError::Access)?;
                Ok(describe(tx, thing, true, Some(actor)))
            })
        })
        .await;
    match r {
        Ok(v) => (StatusCode::CREATED, Json(v)).into_response(),
        Err(e) => op_error(e),
    }
}

async fn cancel_invite(
    State(t): S,
    Path((id, user)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    match caller(&t, &headers).await {
        Ok(who) => t.admin_op(id, who, user, ThingAccess::cancel_invite).await,
        Err(r) => r,
    }
}

async fn remove_member(
    State(t): S,
    Path((id, user)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    match caller(&t, &headers).await {
        Ok(who) => t.admin_op(id, who, user, ThingAccess::remove).await,
        Err(r) => r,
    }
}

async fn grant_admin(
    State(t): S,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let who = match caller(&t, &headers).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    match parse::<UserRequest>(&body) {
        Ok(req) => {
            t.admin_op(id, who, req.user, ThingAccess::grant_admin)
                .await
        }
        Err(r) => r,
    }
}

async fn revoke_admin(
    State(t): S,
    Path((id, user)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    match caller(&t, &headers).await {
        Ok(who) => t.admin_op(id, who, user, ThingAccess::revoke_admin).await,
        Err(r) => r,
    }
}

async fn rotate_code(State(t): S, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let who = match caller(&t, &headers).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let r = t
        .db(move |t, c| {
            // Strangers learn nothing: check visibility first, in its own read.
            let thing = load(c, &id)?;
            visible(c, &thing, &who)?;
            let mut g = t.generator.lock().unwrap_or_else(PoisonError::into_inner);
            rotate(c, &mut g, &id, Some(&who), Via::Api)
        })
        .await;
    match r {
        Ok(code) => Json(json!({ "code": code.to_string() })).into_response(),
        Err(e) => op_error(e),
    }
}

// ---------------------------------------------------------------------------------------------
// The command line
// ---------------------------------------------------------------------------------------------

/// `fleetwire-server thing …`: the operator's view. Changes act with an administrator's
/// authority and are logged with `via = cli`.
#[derive(Subcommand)]
pub(crate) enum ThingCommand {
    /// Create a thing and print its code (the first user to connect with it is administrator).
    Create {
        /// open (the code is enough), confirm (an administrator approves) or invite (invited
        /// users only).
        #[arg(long, value_parser = ["open", "confirm", "invite"])]
        mode: String,
        /// A name for the operator's lists.
        #[arg(long, default_value = "")]
        name: String,
    },
    /// List every thing.
    List,
    /// Show a thing's members, pending requests and invites.
    Show {
        /// The thing's code (or its `t_…` id).
        code: String,
    },
    /// Revoke a user's access at once (they are blocked until invited again).
    Revoke {
        /// The thing's code (or its `t_…` id).
        code: String,
        /// The user to revoke.
        user: String,
    },
    /// Replace a thing's code; the old one stops working at once and is never reissued.
    Rotate {
        /// The thing's current code (or its `t_…` id).
        code: String,
    },
}

pub(crate) fn cli(
    cmd: ThingCommand,
    store: &Store,
    data_dir: &std::path::Path,
) -> Result<(), String> {
    let config = crate::config::Config::load_or_create(&data_dir.join("fleetwire.toml"))?;
    let spec = config.things.spec()?;
    let mut conn = store.conn();
    match cmd {
        ThingCommand::Create { mode, name } => {
            let mode = parse_mode(&mode)?;
            valid_thing_name(&name)?;
            let mut g = generator(spec)?;
            let (id, code) = create(&mut conn, &mut g, mode, &name, None, Via::Cli)
                .map_err(|e| e.to_string())?;
            println!("thing id: {id}");
            println!("mode: {}", mode_name(mode));
            println!("code: {code}");
            println!("The first user to connect with this code becomes its administrator.");
        }
        ThingCommand::List => {
            let mut stmt = conn
                .prepare("SELECT id FROM things ORDER BY created_at, id")
                .map_err(|e| e.to_string())?;
            let ids = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .and_then(Iterator::collect::<rusqlite::Result<Vec<String>>>)
                .map_err(|e| e.to_string())?;
            println!("{} things", ids.len());
            for id in ids {
                let t = load(&conn, &id).map_err(|e| e.to_string())?;
                let a = &t.access;
                println!(
                    "{id}  {}  {:<7}  members {:>3}  admins {:>2}  pending {:>2}  invites {:>2}  {}",
                    a.code(),
                    mode_name(a.mode()),
                    a.members().count(),
                    a.administrator_count(),
                    a.pending_requests().count(),
                    a.invites().count(),
                    escape(&t.name)
                );
            }
        }
        ThingCommand::Show { code } => {
            let id = resolve(&conn, &spec, &code)?;
            let t = load(&conn, &id).map_err(|e| e.to_string())?;
            let d = describe(&conn, &t, true, None);
            let json = serde_json::to_string_pretty(&d).map_err(|e| e.to_string())?;
            println!("{}", escape_json(&json));
        }
        ThingCommand::Revoke { code, user } => {
            valid_user(&user)?;
            let id = resolve(&conn, &spec, &code)?;
            change(&mut conn, &id, Via::Cli, |tx, thing, at| {
                let target = principal_number(tx, &named_principal(tx, &user, true)?)?;
                let admin = thing
                    .access
                    .members()
                    .find(|&(u, r)| r == Role::Administrator && u != target)
                    .map(|(u, _)| u)
                    .or_else(|| {
                        thing
                            .access
                            .members()
                            .find(|&(_, r)| r == Role::Administrator)
                            .map(|(u, _)| u)
                    })
                    .ok_or_else(|| OpError::Bad("the thing has no users yet".into()))?;
                if admin == target {
                    return Err(OpError::Access(AccessError::LastAdministrator {
                        user: target,
                    }));
                }
                thing
                    .access
                    .remove(at, admin, target)
                    .map_err(OpError::Access)
            })
            .map_err(|e| e.to_string())?;
            println!(
                "{} revoked from {id}; they are blocked until invited again",
                escape(&user)
            );
        }
        ThingCommand::Rotate { code } => {
            let id = resolve(&conn, &spec, &code)?;
            let mut g = generator(spec)?;
            let code = rotate(&mut conn, &mut g, &id, None, Via::Cli).map_err(|e| e.to_string())?;
            println!("thing id: {id}");
            println!("new code: {code}");
            println!("The old code no longer works.");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_make_a_spec_and_guards_or_say_why_not() {
        let s = ThingsSettings::default();
        assert_eq!(s.spec().unwrap().code_len(), 11);
        assert!(s.guards().is_ok());
        let crockford = ThingsSettings {
            alphabet: "crockford".into(),
            code_length: 8,
            ..ThingsSettings::default()
        };
        assert_eq!(crockford.spec().unwrap().combinations(), 32u64.pow(8));
        let bad = ThingsSettings {
            alphabet: "AAB".into(),
            ..ThingsSettings::default()
        };
        assert!(bad.spec().unwrap_err().contains("[things] alphabet"));
        let long = ThingsSettings {
            code_length: 12,
            ..ThingsSettings::default()
        };
        assert!(long.spec().is_err());
    }

    #[test]
    fn user_names_are_bounded_and_plain() {
        assert!(valid_user("alice@example.com").is_ok());
        assert!(valid_user("").is_err());
        assert!(valid_user("a b").is_err());
        assert!(valid_user(&"x".repeat(MAX_USER_NAME + 1)).is_err());
    }
}
