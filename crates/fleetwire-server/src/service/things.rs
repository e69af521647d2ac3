//! Things policy (T1–T4): who may find a thing by its code, join it, administer it; over the
//! things repository and `fleetwire-codes`' access machine. Takes `now` from its caller.
//!
//! # Code attempts
//!
//! [`Things::connect`] is handed a code its caller already parsed (a typo is a 400 and costs
//! nothing), then reserves an attempt in three guards, in this order, each reserve-before-verify:
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
//! A wrong code, an expired code, a removed user's code and an uninvited user's code for an
//! invite-only thing all come to the same [`OpError::NoSuchThing`] and count as wrong: the only
//! oracle is the throttle's wait. The guards live in the memory of each node and are not
//! persisted (a restart forgets streaks). **With several nodes each node has its own guards**:
//! a source that spreads its guesses over N nodes gets at most N times each limit (the bound is
//! documented in `docs/SECURITY.md` and tested by `tests/things_multi_node.rs`). Membership,
//! requests, invites and revocations are not cached anywhere: every decision reads the
//! database, so a revocation on one node holds on every node at the next request.
//!
//! # Callers
//!
//! A [`Caller`] is a signed-in account, or — only with `[things] danger_trust_user_header` — a
//! name a gateway vouches for. Its *principal* is the account's immutable id (`u_…`), or for a
//! gateway name the account of that name if there is one, else the gateway user `ext:NAME`.

use std::sync::{Mutex, PoisonError};

use fleetwire_auth::lockout::{AttemptTicket, BlockGrowth, LockoutConfig, LockoutEngine};
use fleetwire_codes::{
    AccessError, AccessMode, AttemptGuard, Code, CodeGenerator, CodeSpec, Connected,
    DEFAULT_UNIQUE_ATTEMPTS, GcraGuard, GcraTicket, LockoutGuard, Role, ThingAccess, Throttled,
    UnixTime, UserId,
};
use rand_chacha::ChaCha12Rng;
use rand_core::SeedableRng;
use ring::rand::{SecureRandom, SystemRandom};

use crate::config::AccountsSettings;
use crate::config::ThingsSettings;
use crate::store::accounts::UserRow;
use crate::store::things::{Created, NewThing, Quota, ThingKey, ThingRow, Via};
use crate::store::{Store, StoreError};

/// The lockout namespace for code attempts.
const CODE_NS: &str = "thing-code";
/// Longest user name accepted from a header or a path.
pub(crate) const MAX_USER_NAME: usize = 64;
/// The right `POST /v1/things` needs.
pub(crate) const CREATE_RIGHT: &str = "thing.create";
/// The prefix of gateway users' principals.
const GATEWAY: &str = "ext:";

/// Why an operation on a thing did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum OpError {
    /// No thing with this id or code (or none the caller may know about).
    #[error("no such thing")]
    NoSuchThing,
    /// No account of this name (and gateway users are not trusted).
    #[error("no account named {0:?}")]
    NoSuchUser(String),
    /// The caller lacks a right or is over a quota.
    #[error("{0}")]
    Forbidden(String),
    /// The access machine refused.
    #[error("{0}")]
    Access(AccessError),
    /// Too many wrong codes from this source (or from everybody).
    #[error("{0}")]
    Throttled(Throttled),
    /// Input the operation cannot use.
    #[error("{0}")]
    Bad(String),
    /// The store or the generator failed.
    #[error("{0}")]
    Internal(String),
}

impl From<StoreError> for OpError {
    fn from(e: StoreError) -> Self {
        Self::Internal(e.to_string())
    }
}

/// Who is calling (the API's one permission check established it).
#[derive(Debug, Clone)]
pub(crate) enum Caller {
    /// A signed-in account (its row as the session check read it).
    Account(Box<UserRow>),
    /// A name from the trusted gateway header.
    Gateway(String),
}

/// An administrator's operation on another user.
pub(crate) type AdminOp = fn(&mut ThingAccess, UnixTime, UserId, UserId) -> Result<(), AccessError>;

/// A thing as a caller may see it; `full` only for administrators and the operator.
#[derive(Debug, Clone)]
pub(crate) struct ThingView {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) mode: AccessMode,
    /// The caller's role, if a member.
    pub(crate) role: Option<Role>,
    pub(crate) full: Option<FullView>,
}

/// What administrators see of a thing.
#[derive(Debug, Clone)]
pub(crate) struct FullView {
    pub(crate) code: Code,
    pub(crate) code_expires_at: Option<UnixTime>,
    pub(crate) claimed: bool,
    pub(crate) members: Vec<MemberView>,
    pub(crate) pending: Vec<PendingView>,
    pub(crate) invites: Vec<InviteView>,
}

/// A member, by display name.
#[derive(Debug, Clone)]
pub(crate) struct MemberView {
    pub(crate) user: String,
    pub(crate) role: Role,
}

/// A pending request.
#[derive(Debug, Clone)]
pub(crate) struct PendingView {
    pub(crate) user: String,
    pub(crate) since: UnixTime,
}

/// An invite.
#[derive(Debug, Clone)]
pub(crate) struct InviteView {
    pub(crate) user: String,
    pub(crate) expires_at: Option<UnixTime>,
}

/// A line of the operator's `thing list`.
#[derive(Debug, Clone)]
pub(crate) struct Summary {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) code: Code,
    pub(crate) mode: AccessMode,
    pub(crate) members: usize,
    pub(crate) administrators: usize,
    pub(crate) pending: usize,
    pub(crate) invites: usize,
}

/// A thing just made.
#[derive(Debug, Clone)]
pub(crate) struct Made {
    pub(crate) id: String,
    pub(crate) code: Code,
    /// The creating principal (`None`: the operator).
    pub(crate) creator: Option<String>,
}

/// A code that led somewhere.
#[derive(Debug, Clone)]
pub(crate) struct Joined {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) connected: Connected,
}

/// The things service: one per `App` (and one per operator command).
pub(crate) struct Things {
    settings: ThingsSettings,
    /// Groups and rights (`[accounts.groups]`), for the rights things check.
    accounts: AccountsSettings,
    spec: CodeSpec,
    store: Store,
    generator: Mutex<CodeGenerator<ChaCha12Rng>>,
    guards: Mutex<Guards>,
}

impl Things {
    /// The service `settings` describe, or why they describe none.
    pub(crate) fn new(
        settings: &ThingsSettings,
        accounts: &AccountsSettings,
        store: Store,
    ) -> Result<Self, String> {
        let spec = settings.spec()?;
        let mut seed = [0u8; 32];
        SystemRandom::new()
            .fill(&mut seed)
            .map_err(|_| "the OS random generator failed")?;
        Ok(Self {
            generator: Mutex::new(CodeGenerator::new(
                spec.clone(),
                ChaCha12Rng::from_seed(seed),
            )),
            guards: Mutex::new(Guards::new(settings)?),
            settings: settings.clone(),
            accounts: accounts.clone(),
            spec,
            store,
        })
    }

    /// The code format.
    pub(crate) fn spec(&self) -> &CodeSpec {
        &self.spec
    }

    /// Whether gateway-named users are trusted.
    pub(crate) fn trusts_gateway(&self) -> bool {
        self.settings.danger_trust_user_header
    }

    // -- the API's operations ------------------------------------------------------------------

    /// `POST /v1/things`: the caller needs the right `thing.create` and is under its quota.
    pub(crate) async fn create(
        &self,
        now: UnixTime,
        caller: &Caller,
        mode: AccessMode,
        name: String,
    ) -> Result<Made, OpError> {
        valid_thing_name(&name).map_err(OpError::Bad)?;
        self.require(caller, CREATE_RIGHT).await?;
        let creator = self.principal(caller).await?;
        let quota = Quota {
            creator: creator.clone(),
            max: self.settings.max_things_per_user,
        };
        self.make(now, mode, name, Some(quota), Via::Api).await
    }

    /// `POST /v1/things/connect`: a code the caller typed, from `source` (a
    /// `fleetwire_tokio::source::Source` as text).
    pub(crate) async fn connect(
        &self,
        now: UnixTime,
        source: &str,
        caller: &Caller,
        code: Code,
    ) -> Result<Joined, OpError> {
        let tickets = self
            .guards()
            .begin(source, now)
            .map_err(OpError::Throttled)?;
        let r = self.try_connect(now, caller, code).await;
        let found = matches!(r, Ok(_) | Err(OpError::Access(_)));
        self.guards().finish(tickets, found, now);
        r
    }

    async fn try_connect(
        &self,
        now: UnixTime,
        caller: &Caller,
        code: Code,
    ) -> Result<Joined, OpError> {
        let user = self.number(caller).await?;
        let changed = self
            .store
            .things()
            .change(ThingKey::Code(code), Via::Api, now, move |a, at| {
                a.connect(at, user, &code)
            })
            .await?
            .ok_or(OpError::NoSuchThing)?;
        match changed.result {
            Ok(connected) => Ok(Joined {
                id: changed.thing.id,
                name: changed.thing.name,
                connected,
            }),
            Err(
                AccessError::WrongCode
                | AccessError::CodeExpired { .. }
                | AccessError::InviteRequired { .. }
                | AccessError::Blocked { .. },
            ) => Err(OpError::NoSuchThing),
            Err(e) => Err(OpError::Access(e)),
        }
    }

    /// `GET /v1/things`: the things the caller is a member of.
    pub(crate) async fn mine(&self, caller: &Caller) -> Result<Vec<ThingView>, OpError> {
        let principal = self.principal(caller).await?;
        let Some(user) = self.store.things().known_number(principal).await? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for thing in self.store.things().of_member(user).await? {
            if thing.access.has_access(user) {
                out.push(self.view(&thing, false, Some(user)).await);
            }
        }
        Ok(out)
    }

    /// `GET /v1/things/{id}`: administrators see everything, others their role.
    pub(crate) async fn show(&self, caller: &Caller, id: String) -> Result<ThingView, OpError> {
        let (thing, user) = self.visible_thing(caller, id).await?;
        let full = thing.access.is_administrator(user);
        Ok(self.view(&thing, full, Some(user)).await)
    }

    /// `GET /v1/things/{id}/subscribers`: administrators only.
    pub(crate) async fn subscribers(
        &self,
        caller: &Caller,
        id: String,
    ) -> Result<ThingView, OpError> {
        let (thing, user) = self.visible_thing(caller, id).await?;
        if !thing.access.is_administrator(user) {
            return Err(OpError::Access(AccessError::NotAdministrator { user }));
        }
        Ok(self.view(&thing, true, Some(user)).await)
    }

    /// `PUT /v1/things/{id}/mode`.
    pub(crate) async fn set_mode(
        &self,
        now: UnixTime,
        caller: &Caller,
        id: String,
        mode: AccessMode,
    ) -> Result<ThingView, OpError> {
        let actor = self.number(caller).await?;
        self.change_as(now, id, actor, move |a, at| {
            a.set_mode(at, actor, mode).map_err(OpError::Access)
        })
        .await
    }

    /// An administrator's operation on user `target` (approve, deny, cancel an invite, remove,
    /// grant or revoke administrator).
    pub(crate) async fn admin_op(
        &self,
        now: UnixTime,
        caller: &Caller,
        id: String,
        target: &str,
        op: AdminOp,
    ) -> Result<ThingView, OpError> {
        valid_user(target).map_err(OpError::Bad)?;
        // Strangers learn nothing, not even whether the target exists: visibility first.
        let (_, actor) = self.visible_thing(caller, id.clone()).await?;
        let target = self.target_number(target).await?;
        self.change_as(now, id, actor, move |a, at| {
            op(a, at, actor, target).map_err(OpError::Access)
        })
        .await
    }

    /// `POST /v1/things/{id}/invites`.
    pub(crate) async fn invite(
        &self,
        now: UnixTime,
        caller: &Caller,
        id: String,
        target: &str,
        expires_in_secs: Option<u64>,
    ) -> Result<ThingView, OpError> {
        valid_user(target).map_err(OpError::Bad)?;
        let (_, actor) = self.visible_thing(caller, id.clone()).await?;
        let target = self.target_number(target).await?;
        self.change_as(now, id, actor, move |a, at| {
            let expires = expires_in_secs.map(|s| at.plus_millis(s.saturating_mul(1000)));
            a.invite(at, actor, target, expires)
                .map_err(OpError::Access)
        })
        .await
    }

    /// `POST /v1/things/{id}/code/rotate`: administrators only; the old code stops working at
    /// once and is never issued again.
    pub(crate) async fn rotate(
        &self,
        now: UnixTime,
        caller: &Caller,
        id: String,
    ) -> Result<Code, OpError> {
        let (thing, actor) = self.visible_thing(caller, id.clone()).await?;
        if !thing.access.is_administrator(actor) {
            return Err(OpError::Access(AccessError::NotAdministrator {
                user: actor,
            }));
        }
        let code = self.claim(now, &id).await?;
        let changed = self
            .store
            .things()
            .change(ThingKey::Id(id), Via::Api, now, move |a, at| {
                if !a.is_administrator(actor) {
                    return Err(OpError::Access(AccessError::NotAdministrator {
                        user: actor,
                    }));
                }
                a.rotate_code(at, actor, code, None)
                    .map_err(OpError::Access)
            })
            .await?
            .ok_or(OpError::NoSuchThing)?;
        changed.result.map(|()| code)
    }

    // -- the operator's operations (the command line) -------------------------------------------

    /// `thing create`: no right, no quota.
    pub(crate) async fn operator_create(
        &self,
        now: UnixTime,
        mode: AccessMode,
        name: String,
    ) -> Result<Made, OpError> {
        valid_thing_name(&name).map_err(OpError::Bad)?;
        self.make(now, mode, name, None, Via::Cli).await
    }

    /// `thing list`.
    pub(crate) async fn operator_list(&self) -> Result<Vec<Summary>, OpError> {
        Ok(self
            .store
            .things()
            .all()
            .await?
            .into_iter()
            .map(|t| {
                let a = &t.access;
                Summary {
                    code: *a.code(),
                    mode: a.mode(),
                    members: a.members().count(),
                    administrators: a.administrator_count(),
                    pending: a.pending_requests().count(),
                    invites: a.invites().count(),
                    id: t.id,
                    name: t.name,
                }
            })
            .collect())
    }

    /// `thing show`.
    pub(crate) async fn operator_show(&self, id_or_code: &str) -> Result<ThingView, OpError> {
        let id = self.resolve(id_or_code).await?;
        let thing = self
            .store
            .things()
            .load(id)
            .await?
            .ok_or(OpError::NoSuchThing)?;
        Ok(self.view(&thing, true, None).await)
    }

    /// `thing revoke`: acts as an administrator other than the user (they are blocked until
    /// invited again). The thing's id.
    pub(crate) async fn operator_revoke(
        &self,
        now: UnixTime,
        id_or_code: &str,
        user: &str,
    ) -> Result<String, OpError> {
        valid_user(user).map_err(OpError::Bad)?;
        let id = self.resolve(id_or_code).await?;
        let target = self
            .store
            .things()
            .number(self.named_principal(user, true).await?)
            .await?;
        let changed = self
            .store
            .things()
            .change(ThingKey::Id(id.clone()), Via::Cli, now, move |a, at| {
                let admin = a
                    .members()
                    .find(|&(u, r)| r == Role::Administrator && u != target)
                    .or_else(|| a.members().find(|&(_, r)| r == Role::Administrator))
                    .map(|(u, _)| u)
                    .ok_or_else(|| OpError::Bad("the thing has no users yet".into()))?;
                if admin == target {
                    return Err(OpError::Access(AccessError::LastAdministrator {
                        user: target,
                    }));
                }
                a.remove(at, admin, target).map_err(OpError::Access)
            })
            .await?
            .ok_or(OpError::NoSuchThing)?;
        changed.result.map(|()| id)
    }

    /// `thing rotate`: as one of the administrators, or, for an unclaimed thing, rebuilt around
    /// the new code. The thing's id and its new code.
    pub(crate) async fn operator_rotate(
        &self,
        now: UnixTime,
        id_or_code: &str,
    ) -> Result<(String, Code), OpError> {
        let id = self.resolve(id_or_code).await?;
        let code = self.claim(now, &id).await?;
        let changed = self
            .store
            .things()
            .change(ThingKey::Id(id.clone()), Via::Cli, now, move |a, at| {
                let admin = a
                    .members()
                    .find(|&(_, r)| r == Role::Administrator)
                    .map(|(u, _)| u);
                if let Some(admin) = admin {
                    a.rotate_code(at, admin, code, None)
                        .map_err(OpError::Access)
                } else {
                    *a = ThingAccess::new(code, a.mode());
                    Ok(())
                }
            })
            .await?
            .ok_or(OpError::NoSuchThing)?;
        changed.result.map(|()| (id, code))
    }

    // -- helpers -------------------------------------------------------------------------------

    fn guards(&self) -> std::sync::MutexGuard<'_, Guards> {
        self.guards.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes a thing: a fresh id, a fresh code claimed in the registry, the row.
    async fn make(
        &self,
        now: UnixTime,
        mode: AccessMode,
        name: String,
        quota: Option<Quota>,
        via: Via,
    ) -> Result<Made, OpError> {
        let mut raw = [0u8; 8];
        SystemRandom::new()
            .fill(&mut raw)
            .map_err(|_| OpError::Internal("the OS random generator failed".into()))?;
        let id = format!("t_{}", hex::encode(raw));
        let code = self.claim(now, &id).await?;
        let creator = quota.as_ref().map(|q| q.creator.clone());
        let made = self
            .store
            .things()
            .create(
                NewThing {
                    id: id.clone(),
                    name,
                    code,
                    mode,
                    created_by: creator.clone(),
                    via,
                },
                quota.clone(),
                now,
            )
            .await?;
        match made {
            Created::Created => Ok(Made { id, code, creator }),
            Created::OverQuota { made } => Err(OpError::Forbidden(format!(
                "this account has created {made} things, the most one account may \
                 ([things] max_things_per_user = {}); ask an operator",
                quota.map_or(0, |q| q.max)
            ))),
        }
    }

    /// A fresh code, claimed for `thing` in the registry (never issued before, on any node).
    async fn claim(&self, now: UnixTime, thing: &str) -> Result<Code, OpError> {
        for _ in 0..DEFAULT_UNIQUE_ATTEMPTS {
            let code = self
                .generator
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .generate()
                .map_err(|e| OpError::Internal(e.to_string()))?;
            if self
                .store
                .things()
                .claim_code(code, thing.to_owned(), now)
                .await?
            {
                return Ok(code);
            }
        }
        Err(OpError::Internal(format!(
            "no unused code in {DEFAULT_UNIQUE_ATTEMPTS} attempts: the code space is nearly \
             full; raise [things] code_length"
        )))
    }

    /// A change by `actor`, who must still see the thing when the change runs; the thing as
    /// an administrator sees it after.
    async fn change_as(
        &self,
        now: UnixTime,
        id: String,
        actor: UserId,
        op: impl FnOnce(&mut ThingAccess, UnixTime) -> Result<(), OpError> + Send + 'static,
    ) -> Result<ThingView, OpError> {
        let changed = self
            .store
            .things()
            .change(ThingKey::Id(id), Via::Api, now, move |a, at| {
                if !sees(a, actor) {
                    return Err(OpError::NoSuchThing);
                }
                op(a, at)
            })
            .await?
            .ok_or(OpError::NoSuchThing)?;
        changed.result?;
        Ok(self.view(&changed.thing, true, Some(actor)).await)
    }

    /// The thing and the caller's number, if the thing is any of the caller's business
    /// (member, pending, invited); otherwise "no such thing".
    async fn visible_thing(
        &self,
        caller: &Caller,
        id: String,
    ) -> Result<(ThingRow, UserId), OpError> {
        let user = self.number(caller).await?;
        let thing = self
            .store
            .things()
            .load(id)
            .await?
            .ok_or(OpError::NoSuchThing)?;
        if sees(&thing.access, user) {
            Ok((thing, user))
        } else {
            Err(OpError::NoSuchThing)
        }
    }

    /// The thing `id_or_code` names: a `t_…` id, or a current code.
    async fn resolve(&self, id_or_code: &str) -> Result<String, OpError> {
        if id_or_code.starts_with("t_") {
            return Ok(id_or_code.to_owned());
        }
        let code = self.spec.parse(id_or_code).map_err(|e| {
            OpError::Bad(format!(
                "{id_or_code:?} is not a thing id or a valid code: {e}"
            ))
        })?;
        self.store
            .things()
            .by_code(code)
            .await?
            .ok_or_else(|| OpError::Bad(format!("no thing has the code {code}")))
    }

    /// The caller's number, given on first use.
    async fn number(&self, caller: &Caller) -> Result<UserId, OpError> {
        let principal = self.principal(caller).await?;
        Ok(self.store.things().number(principal).await?)
    }

    /// The number of a user named in a request (an account, or a gateway user if trusted).
    async fn target_number(&self, name: &str) -> Result<UserId, OpError> {
        let principal = self
            .named_principal(name, self.settings.danger_trust_user_header)
            .await?;
        Ok(self.store.things().number(principal).await?)
    }

    async fn principal(&self, caller: &Caller) -> Result<String, OpError> {
        match caller {
            Caller::Account(user) => Ok(user.id.clone()),
            Caller::Gateway(name) => self.named_principal(name, true).await,
        }
    }

    /// The principal a user name stands for: the account with that name or e-mail (its id), or,
    /// where gateway users are trusted, the gateway user of that name.
    async fn named_principal(&self, name: &str, gateway: bool) -> Result<String, OpError> {
        if let Some(user) = self.account_by_name(name).await? {
            return Ok(user.id);
        }
        if gateway {
            Ok(format!("{GATEWAY}{name}"))
        } else {
            Err(OpError::NoSuchUser(name.to_owned()))
        }
    }

    /// Whether the caller's account holds `right` (a gateway user with no account holds none).
    async fn require(&self, caller: &Caller, right: &str) -> Result<(), OpError> {
        let account = match caller {
            Caller::Account(user) => Some((**user).clone()),
            Caller::Gateway(name) => self.account_by_name(name).await?,
        };
        account
            .ok_or_else(|| format!("permission denied: {right}"))
            .and_then(|u| crate::service::accounts::check_right(&self.accounts, &u, right))
            .map_err(OpError::Forbidden)
    }

    /// A thing as `caller` may see it, with names for the numbers.
    async fn view(&self, thing: &ThingRow, full: bool, caller: Option<UserId>) -> ThingView {
        let a = &thing.access;
        let full = if full {
            let mut numbers: Vec<UserId> = a.members().map(|(u, _)| u).collect();
            numbers.extend(a.pending_requests().map(|(u, _)| u));
            numbers.extend(a.invites().map(|(u, _)| u));
            let names = self.names(numbers).await;
            let name = |u: UserId| {
                names
                    .iter()
                    .find(|(n, _)| *n == u)
                    .map_or_else(|| format!("#{}", u.0), |(_, s)| s.clone())
            };
            Some(FullView {
                code: *a.code(),
                code_expires_at: a.code_expires_at(),
                claimed: a.is_claimed(),
                members: a
                    .members()
                    .map(|(u, role)| MemberView {
                        user: name(u),
                        role,
                    })
                    .collect(),
                pending: a
                    .pending_requests()
                    .map(|(u, since)| PendingView {
                        user: name(u),
                        since,
                    })
                    .collect(),
                invites: a
                    .invites()
                    .map(|(u, expires_at)| InviteView {
                        user: name(u),
                        expires_at,
                    })
                    .collect(),
            })
        } else {
            None
        };
        ThingView {
            id: thing.id.clone(),
            name: thing.name.clone(),
            mode: a.mode(),
            role: caller.and_then(|u| a.role(u)),
            full,
        }
    }

    /// How numbers are shown: the account's current name, a gateway user's name; numbers that
    /// map to nobody (or whose lookup failed) are left out and shown as `#N`.
    async fn names(&self, numbers: Vec<UserId>) -> Vec<(UserId, String)> {
        let principals = match self.store.things().principals(numbers).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!("things: names not available: {e}");
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for p in principals {
            let name = match p.principal.strip_prefix(GATEWAY) {
                Some(name) => Some(name.to_owned()),
                None => self
                    .account_by_id(&p.principal)
                    .await
                    .ok()
                    .flatten()
                    .map(|u| u.name),
            };
            if let Some(name) = name {
                out.push((p.number, name));
            }
        }
        out
    }

    // -- accounts, as things sees them ---------------------------------------------------------
    //
    async fn account_by_name(&self, name: &str) -> Result<Option<UserRow>, OpError> {
        self.store
            .accounts()
            .user_by_name(crate::service::accounts::canonical_name(name))
            .await
            .map_err(|e| OpError::Internal(e.to_string()))
    }

    async fn account_by_id(&self, id: &str) -> Result<Option<UserRow>, OpError> {
        self.store
            .accounts()
            .user_by_id(id.to_owned())
            .await
            .map_err(|e| OpError::Internal(e.to_string()))
    }
}

/// Whether `user` has any business with the thing: member, pending request, invite.
fn sees(a: &ThingAccess, user: UserId) -> bool {
    a.has_access(user)
        || a.pending_requests().any(|(u, _)| u == user)
        || a.invites().any(|(u, _)| u == user)
}

/// A user name from a header, a path or a command: bounded and plain.
pub(crate) fn valid_user(name: &str) -> Result<&str, String> {
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

/// A thing name: at most 128 characters, none a terminal would act on (`term::is_unsafe`).
pub(crate) fn valid_thing_name(name: &str) -> Result<(), String> {
    if name.chars().count() > 128 {
        return Err("name: at most 128 characters".into());
    }
    if name.contains(crate::util::term::is_unsafe) {
        return Err("name: no control or bidirectional-override characters".into());
    }
    Ok(())
}

/// A mode by the name requests and commands use.
pub(crate) fn parse_mode(s: &str) -> Result<AccessMode, String> {
    match s {
        "open" => Ok(AccessMode::Open),
        "confirm" => Ok(AccessMode::AdminConfirm),
        "invite" => Ok(AccessMode::InviteOnly),
        _ => Err(format!(
            "unknown mode {s:?}: use open, confirm (an administrator approves) or invite"
        )),
    }
}

/// The name a role is shown under.
pub(crate) fn role_name(role: Role) -> &'static str {
    match role {
        Role::Administrator => "administrator",
        Role::Member => "member",
    }
}

/// The three code-attempt guards (module docs), in this node's memory.
struct Guards {
    global: Option<GcraGuard>,
    source: GcraGuard,
    lockout: LockoutGuard,
}

/// The reservations of one attempt.
struct Tickets {
    global: Option<GcraTicket>,
    source: GcraTicket,
    lockout: AttemptTicket,
}

impl Guards {
    fn new(settings: &ThingsSettings) -> Result<Self, String> {
        let mut seed = [0u8; 16];
        SystemRandom::new()
            .fill(&mut seed)
            .map_err(|_| "the OS random generator failed")?;
        let lockout = LockoutConfig {
            max_failures: settings.max_failures.max(1),
            base_block_secs: settings.base_block_secs.max(1),
            max_block_secs: settings.max_block_secs.max(settings.base_block_secs.max(1)),
            growth: BlockGrowth::Exponential,
            hard_limit: settings.hard_limit.clamp(1, 100),
            ..LockoutConfig::web_cms()
        };
        let engine = LockoutEngine::new(lockout, seed)
            .map_err(|e| format!("[things] throttle settings: {e}"))?;
        let per_minute = settings.global_failures_per_minute;
        Ok(Self {
            global: (per_minute > 0)
                .then(|| GcraGuard::new(per_minute, (60_000 / u64::from(per_minute)).max(1), 1)),
            source: GcraGuard::new(
                settings.source_burst.max(1),
                settings.source_period_secs.max(1).saturating_mul(1000),
                100_000,
            ),
            lockout: LockoutGuard::new(engine, CODE_NS),
        })
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_make_a_spec_and_guards_or_say_why_not() {
        let s = ThingsSettings::default();
        assert_eq!(s.spec().unwrap().code_len(), 11);
        assert!(Guards::new(&s).is_ok());
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

    fn gateway(name: &str) -> Caller {
        Caller::Gateway(name.into())
    }

    fn at(ms: u64) -> UnixTime {
        UnixTime::from_millis(1_700_000_000_000 + ms)
    }

    /// The service's policy on both backends, with gateway users (no accounts needed).
    #[allow(clippy::too_many_lines)] // one story
    #[tokio::test]
    async fn policy_on_both_backends() {
        let settings = ThingsSettings {
            danger_trust_user_header: true,
            ..ThingsSettings::default()
        };
        for (kind, store) in crate::store::testing::backends("things_service").await {
            let t = Things::new(&settings, &AccountsSettings::default(), store).unwrap();
            let made = t
                .operator_create(at(0), AccessMode::Open, "lamp".into())
                .await
                .unwrap();
            let id = made.id.clone();
            let joined = t
                .connect(at(1), "192.0.2.1", &gateway("alice"), made.code)
                .await
                .unwrap();
            assert_eq!(joined.connected, Connected::BecameAdministrator, "{kind}");
            let joined = t
                .connect(at(2), "192.0.2.1", &gateway("bob"), made.code)
                .await
                .unwrap();
            assert_eq!(joined.connected, Connected::Joined, "{kind}");
            // Strangers learn nothing; members see their role; administrators everything.
            let e = t.show(&gateway("eve"), id.clone()).await.unwrap_err();
            assert_eq!(e, OpError::NoSuchThing, "{kind}");
            let v = t.show(&gateway("bob"), id.clone()).await.unwrap();
            assert!(v.full.is_none() && v.role == Some(Role::Member), "{kind}");
            let v = t.show(&gateway("alice"), id.clone()).await.unwrap();
            let members: Vec<String> = v
                .full
                .unwrap()
                .members
                .into_iter()
                .map(|m| m.user)
                .collect();
            assert_eq!(members, ["alice", "bob"], "{kind}");
            let e = t
                .admin_op(
                    at(3),
                    &gateway("eve"),
                    id.clone(),
                    "bob",
                    ThingAccess::remove,
                )
                .await
                .unwrap_err();
            assert_eq!(e, OpError::NoSuchThing, "{kind}");
            let e = t
                .rotate(at(3), &gateway("bob"), id.clone())
                .await
                .unwrap_err();
            assert!(
                matches!(e, OpError::Access(AccessError::NotAdministrator { .. })),
                "{kind}"
            );
            // Revocation: refused at once, and the code leads nowhere for them.
            t.admin_op(
                at(4),
                &gateway("alice"),
                id.clone(),
                "bob",
                ThingAccess::remove,
            )
            .await
            .unwrap();
            assert_eq!(
                t.show(&gateway("bob"), id.clone()).await.unwrap_err(),
                OpError::NoSuchThing,
                "{kind}"
            );
            assert!(t.mine(&gateway("bob")).await.unwrap().is_empty(), "{kind}");
            assert_eq!(
                t.connect(at(5), "192.0.2.2", &gateway("bob"), made.code)
                    .await
                    .unwrap_err(),
                OpError::NoSuchThing,
                "{kind}"
            );
            // Invite-only: the invitee joins once; others find nothing.
            t.set_mode(at(6), &gateway("alice"), id.clone(), AccessMode::InviteOnly)
                .await
                .unwrap();
            t.invite(at(7), &gateway("alice"), id.clone(), "carol", Some(60))
                .await
                .unwrap();
            assert_eq!(
                t.connect(at(8), "192.0.2.3", &gateway("dave"), made.code)
                    .await
                    .unwrap_err(),
                OpError::NoSuchThing,
                "{kind}"
            );
            let joined = t
                .connect(at(9), "192.0.2.3", &gateway("carol"), made.code)
                .await
                .unwrap();
            assert_eq!(joined.connected, Connected::Joined, "{kind}");
            let v = t.subscribers(&gateway("alice"), id.clone()).await.unwrap();
            assert!(
                v.full.unwrap().invites.is_empty(),
                "{kind}: the invite is used up"
            );
            // Rotation: the old code leads nowhere, the new one works.
            let new = t
                .rotate(at(10), &gateway("alice"), id.clone())
                .await
                .unwrap();
            assert_ne!(new, made.code);
            assert!(t.resolve(&made.code.to_string()).await.is_err(), "{kind}");
            assert_eq!(t.resolve(&new.to_string()).await.unwrap(), id, "{kind}");
            // The operator: revoke, rotate, list.
            t.operator_revoke(at(11), &new.to_string(), "carol")
                .await
                .unwrap();
            let (_, newer) = t.operator_rotate(at(12), &id).await.unwrap();
            let list = t.operator_list().await.unwrap();
            assert_eq!(
                (list.len(), list[0].code, list[0].members),
                (1, newer, 1),
                "{kind}"
            );
            // A gateway user without an account holds no rights.
            let e = t
                .create(at(13), &gateway("alice"), AccessMode::Open, String::new())
                .await
                .unwrap_err();
            assert_eq!(
                e,
                OpError::Forbidden("permission denied: thing.create".into()),
                "{kind}"
            );
        }
    }

    #[tokio::test]
    async fn wrong_codes_are_throttled_per_source() {
        let settings = ThingsSettings {
            danger_trust_user_header: true,
            source_burst: 2,
            max_failures: 100,
            ..ThingsSettings::default()
        };
        for (kind, store) in crate::store::testing::backends("things_throttle").await {
            let t = Things::new(&settings, &AccountsSettings::default(), store).unwrap();
            let made = t
                .operator_create(at(0), AccessMode::Open, String::new())
                .await
                .unwrap();
            let wrong = t.spec().parse(&made.code.to_string()).unwrap();
            let rotated = t.operator_rotate(at(1), &made.id).await.unwrap().1;
            for _ in 0..2 {
                assert_eq!(
                    t.connect(at(2), "192.0.2.9", &gateway("m"), wrong)
                        .await
                        .unwrap_err(),
                    OpError::NoSuchThing,
                    "{kind}"
                );
            }
            let e = t
                .connect(at(2), "192.0.2.9", &gateway("m"), rotated)
                .await
                .unwrap_err();
            assert!(matches!(e, OpError::Throttled(_)), "{kind}: {e:?}");
            // Another source is not held back.
            t.connect(at(2), "192.0.2.10", &gateway("n"), rotated)
                .await
                .unwrap();
        }
    }

    #[test]
    fn user_names_are_bounded_and_plain() {
        assert!(valid_user("alice@example.com").is_ok());
        assert!(valid_user("").is_err());
        assert!(valid_user("a b").is_err());
        assert!(valid_user(&"x".repeat(MAX_USER_NAME + 1)).is_err());
    }
}
