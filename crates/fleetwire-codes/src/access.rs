//! Who may use a thing: the access machine.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::{Code, UnixTime};

/// Audit events kept when the host does not drain them; older ones are dropped and counted in
/// [`ThingAccess::dropped_events`].
pub const MAX_QUEUED_EVENTS: usize = 4096;

/// A user of the cloud, as the host's account store numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(pub u64);

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "user {}", self.0)
    }
}

/// How a user with the code gets access to a thing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AccessMode {
    /// The code alone is enough.
    Open,
    /// The code files a request; an administrator approves or rejects it.
    AdminConfirm,
    /// The code only locates the thing; only a user an administrator invited may join.
    InviteOnly,
}

/// What a user may do with a thing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Uses the thing.
    Member,
    /// Uses the thing and manages its users, mode and code.
    Administrator,
}

/// The result of [`ThingAccess::connect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Connected {
    /// The thing had no administrator: this user claimed it and is its administrator.
    BecameAdministrator,
    /// The user joined as a member (open mode, an invite, or an invite in the other modes).
    Joined,
    /// The user already had access; nothing changed.
    AlreadyMember(Role),
    /// A request waits for an administrator (admin-confirm mode). Connecting again is harmless.
    RequestPending,
}

/// An operation was refused. The machine is unchanged (apart from a [`AuditKind::Denied`] event).
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AccessError {
    /// The presented code is not this thing's current code (a wrong or rotated code).
    #[error("the code does not match this thing (it may have been changed)")]
    WrongCode,
    /// The thing's code has expired.
    #[error("the code expired at {expired_at:?}: ask an administrator for a new one")]
    CodeExpired {
        /// When the code stopped working.
        expired_at: UnixTime,
    },
    /// The thing is invite-only and this user holds no invite.
    #[error("this thing is invite-only: ask an administrator to invite {user}")]
    InviteRequired {
        /// The user without an invite.
        user: UserId,
    },
    /// This user's invite has expired.
    #[error("the invite for {user} expired at {expired_at:?}: ask for a new one")]
    InviteExpired {
        /// The invited user.
        user: UserId,
        /// When the invite stopped working.
        expired_at: UnixTime,
    },
    /// An administrator removed this user; only an administrator can let them back.
    #[error("{user} was removed from this thing by an administrator")]
    Blocked {
        /// The removed user.
        user: UserId,
    },
    /// The acting user is not an administrator of this thing.
    #[error("{user} is not an administrator of this thing")]
    NotAdministrator {
        /// The acting user.
        user: UserId,
    },
    /// The target user has no access to this thing.
    #[error("{user} has no access to this thing")]
    NotMember {
        /// The target user.
        user: UserId,
    },
    /// The target user already has access.
    #[error("{user} already has access to this thing")]
    AlreadyMember {
        /// The target user.
        user: UserId,
    },
    /// The change would leave the thing without an administrator.
    #[error("{user} is the last administrator: make another user administrator first")]
    LastAdministrator {
        /// The last administrator.
        user: UserId,
    },
    /// There is no pending request from this user.
    #[error("there is no pending request from {user}")]
    NoPendingRequest {
        /// The target user.
        user: UserId,
    },
    /// There is no invite for this user.
    #[error("there is no invite for {user}")]
    NoInvite {
        /// The target user.
        user: UserId,
    },
    /// This user is not blocked.
    #[error("{user} is not blocked")]
    NotBlocked {
        /// The target user.
        user: UserId,
    },
    /// A rotation must change the code.
    #[error("the new code equals the current one: generate a fresh code")]
    CodeUnchanged,
}

/// One entry of the audit trail: when, who acted (if anyone in particular), and what happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// When the change was made (the `now` of the call).
    pub at: UnixTime,
    /// The user who acted.
    pub actor: UserId,
    /// What happened.
    pub kind: AuditKind,
}

/// What an [`AuditEvent`] records. Codes themselves are never logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AuditKind {
    /// The first user claimed the unclaimed thing and became its administrator.
    Claimed,
    /// The actor joined as a member, in open mode or with an invite.
    Joined {
        /// Whether an invite was used.
        invited: bool,
    },
    /// The actor filed a request (admin-confirm mode).
    Requested,
    /// The actor approved `user`'s request; `user` is a member now.
    Approved {
        /// The requesting user.
        user: UserId,
    },
    /// The actor rejected `user`'s request.
    Rejected {
        /// The requesting user.
        user: UserId,
    },
    /// `user`'s pending request ended without a decision (mode change or removal).
    RequestCancelled {
        /// The requesting user.
        user: UserId,
    },
    /// The actor invited `user`.
    Invited {
        /// The invited user.
        user: UserId,
        /// When the invite stops working, if ever.
        expires_at: Option<UnixTime>,
    },
    /// The actor withdrew `user`'s invite (or removal withdrew it).
    InviteCancelled {
        /// The invited user.
        user: UserId,
    },
    /// The actor made `user` an administrator.
    AdministratorGranted {
        /// The new administrator.
        user: UserId,
    },
    /// The actor took administrator rights from `user` (who stays a member).
    AdministratorRevoked {
        /// The former administrator.
        user: UserId,
    },
    /// The actor removed `user`: access, request and invite ended, and `user` is blocked.
    Removed {
        /// The removed user.
        user: UserId,
    },
    /// The actor let a removed `user` back in (they may connect again).
    Unblocked {
        /// The unblocked user.
        user: UserId,
    },
    /// The actor left the thing.
    Left,
    /// The actor changed the access mode.
    ModeChanged {
        /// The old mode.
        from: AccessMode,
        /// The new mode.
        to: AccessMode,
    },
    /// The actor replaced the code; the old one no longer works.
    CodeRotated {
        /// When the new code stops working, if ever.
        expires_at: Option<UnixTime>,
    },
    /// The actor set or cleared the code's expiry.
    CodeExpirySet {
        /// When the code stops working, if ever.
        expires_at: Option<UnixTime>,
    },
    /// The actor's account was closed: every trace of them on this thing is gone (see
    /// [`ThingAccess::forget_user`]); `successor` was made administrator in their place.
    AccountClosed {
        /// The member who became administrator because the closed account was the last one.
        successor: Option<UserId>,
    },
    /// The actor tried something and was refused.
    Denied {
        /// Why.
        error: AccessError,
    },
}

/// What [`ThingAccess::forget_user`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Forgotten {
    /// The user's role, if they were a member.
    pub role: Option<Role>,
    /// Whether a request of theirs was pending.
    pub pending: bool,
    /// Whether they held an invite.
    pub invited: bool,
    /// Whether they were blocked.
    pub blocked: bool,
    /// The member made administrator because the user was the last administrator.
    pub successor: Option<UserId>,
}

impl Forgotten {
    /// Whether the user had nothing to do with the thing.
    pub fn is_empty(&self) -> bool {
        self.role.is_none() && !self.pending && !self.invited && !self.blocked
    }
}

/// One thing's access state: its code, mode, administrators, members, pending requests,
/// invites and blocked users.
///
/// A plain value: every method takes plain data (`UnixTime`, [`UserId`], [`Code`]) and returns
/// a `Result`; every change (and every refusal) queues an [`AuditEvent`] to drain with
/// [`poll_event`](Self::poll_event). It serializes with serde so a store can keep it; loading
/// checks the invariants.
///
/// Invariants, held after every call: once claimed a thing always has at least one
/// administrator; a pending request exists only in admin-confirm mode and only for a user who
/// is neither a member nor blocked; an invite exists only for a user who is not a member.
///
/// The machine is a single-owner value (`&mut self`): "the first user to connect becomes
/// administrator" is atomic because two claims are processed one after the other. A server must
/// serialize the operations on one thing (a row lock or a serializable transaction around
/// load → call → store, or one actor per thing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "State", into = "State")]
pub struct ThingAccess {
    s: State,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct State {
    code: Code,
    mode: AccessMode,
    code_expires_at: Option<UnixTime>,
    members: BTreeMap<UserId, Role>,
    pending: BTreeMap<UserId, UnixTime>,
    invites: BTreeMap<UserId, Invite>,
    blocked: BTreeSet<UserId>,
    events: VecDeque<AuditEvent>,
    dropped_events: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Invite {
    by: UserId,
    expires_at: Option<UnixTime>,
}

impl ThingAccess {
    /// A new, unclaimed thing with `code` in `mode`. The first user to
    /// [`connect`](Self::connect) with the code becomes its administrator, in every mode (the
    /// code comes with the thing; an invite-only thing cannot invite before it has an
    /// administrator).
    pub fn new(code: Code, mode: AccessMode) -> Self {
        Self {
            s: State {
                code,
                mode,
                code_expires_at: None,
                members: BTreeMap::new(),
                pending: BTreeMap::new(),
                invites: BTreeMap::new(),
                blocked: BTreeSet::new(),
                events: VecDeque::new(),
                dropped_events: 0,
            },
        }
    }

    /// `user` presents `code`. Checks, in order: the code (constant-time), its expiry, whether
    /// `user` already has access, whether the thing is unclaimed (then `user` becomes its
    /// administrator), whether `user` was removed, an invite, and then the mode.
    pub fn connect(
        &mut self,
        now: UnixTime,
        user: UserId,
        code: &Code,
    ) -> Result<Connected, AccessError> {
        let r = self.connect_inner(now, user, code);
        self.audit_result(now, user, r)
    }

    /// An administrator approves `user`'s pending request; `user` becomes a member.
    pub fn approve(
        &mut self,
        now: UnixTime,
        admin: UserId,
        user: UserId,
    ) -> Result<(), AccessError> {
        let r = self.require_admin(admin).and_then(|()| {
            self.s
                .pending
                .remove(&user)
                .ok_or(AccessError::NoPendingRequest { user })?;
            self.s.members.insert(user, Role::Member);
            self.s.invites.remove(&user);
            self.push(now, admin, AuditKind::Approved { user });
            Ok(())
        });
        self.audit_result(now, admin, r)
    }

    /// An administrator rejects `user`'s pending request. `user` may ask again; to stop that,
    /// [`remove`](Self::remove) them.
    pub fn reject(
        &mut self,
        now: UnixTime,
        admin: UserId,
        user: UserId,
    ) -> Result<(), AccessError> {
        let r = self.require_admin(admin).and_then(|()| {
            self.s
                .pending
                .remove(&user)
                .ok_or(AccessError::NoPendingRequest { user })?;
            self.push(now, admin, AuditKind::Rejected { user });
            Ok(())
        });
        self.audit_result(now, admin, r)
    }

    /// An administrator invites `user`, until `expires_at` if given. The invite lets `user` join
    /// with the code in any mode, and lifts a block. Inviting again replaces the invite.
    pub fn invite(
        &mut self,
        now: UnixTime,
        admin: UserId,
        user: UserId,
        expires_at: Option<UnixTime>,
    ) -> Result<(), AccessError> {
        let r = self.require_admin(admin).and_then(|()| {
            if self.s.members.contains_key(&user) {
                return Err(AccessError::AlreadyMember { user });
            }
            if self.s.blocked.remove(&user) {
                self.push(now, admin, AuditKind::Unblocked { user });
            }
            self.s.invites.insert(
                user,
                Invite {
                    by: admin,
                    expires_at,
                },
            );
            self.push(now, admin, AuditKind::Invited { user, expires_at });
            Ok(())
        });
        self.audit_result(now, admin, r)
    }

    /// An administrator withdraws `user`'s invite.
    pub fn cancel_invite(
        &mut self,
        now: UnixTime,
        admin: UserId,
        user: UserId,
    ) -> Result<(), AccessError> {
        let r = self.require_admin(admin).and_then(|()| {
            self.s
                .invites
                .remove(&user)
                .ok_or(AccessError::NoInvite { user })?;
            self.push(now, admin, AuditKind::InviteCancelled { user });
            Ok(())
        });
        self.audit_result(now, admin, r)
    }

    /// An administrator makes member `user` an administrator too. Granting to an administrator
    /// changes nothing and succeeds.
    pub fn grant_admin(
        &mut self,
        now: UnixTime,
        admin: UserId,
        user: UserId,
    ) -> Result<(), AccessError> {
        let r = self.require_admin(admin).and_then(|()| {
            let role = self
                .s
                .members
                .get_mut(&user)
                .ok_or(AccessError::NotMember { user })?;
            if *role != Role::Administrator {
                *role = Role::Administrator;
                self.push(now, admin, AuditKind::AdministratorGranted { user });
            }
            Ok(())
        });
        self.audit_result(now, admin, r)
    }

    /// An administrator takes administrator rights from `user` (possibly themselves), who stays
    /// a member. Refused for the last administrator.
    pub fn revoke_admin(
        &mut self,
        now: UnixTime,
        admin: UserId,
        user: UserId,
    ) -> Result<(), AccessError> {
        let r = self.require_admin(admin).and_then(|()| {
            match self.s.members.get(&user) {
                None => return Err(AccessError::NotMember { user }),
                Some(Role::Member) => return Ok(()),
                Some(Role::Administrator) => {}
            }
            if self.administrator_count() == 1 {
                return Err(AccessError::LastAdministrator { user });
            }
            self.s.members.insert(user, Role::Member);
            self.push(now, admin, AuditKind::AdministratorRevoked { user });
            Ok(())
        });
        self.audit_result(now, admin, r)
    }

    /// Revokes `user`, effective at once: their access, pending request and invite end, and
    /// they are blocked from connecting until an administrator [`unblock`](Self::unblock)s or
    /// invites them (a user who never joined can be blocked the same way). With `actor == user`
    /// a member leaves, or withdraws their request, instead (no block). Refused for the last
    /// administrator.
    pub fn remove(
        &mut self,
        now: UnixTime,
        actor: UserId,
        user: UserId,
    ) -> Result<(), AccessError> {
        let r = if actor == user {
            self.leave(now, user)
        } else {
            self.require_admin(actor)
                .and_then(|()| self.revoke(now, actor, user))
        };
        self.audit_result(now, actor, r)
    }

    /// An administrator lets a removed `user` connect again.
    pub fn unblock(
        &mut self,
        now: UnixTime,
        admin: UserId,
        user: UserId,
    ) -> Result<(), AccessError> {
        let r = self.require_admin(admin).and_then(|()| {
            if !self.s.blocked.remove(&user) {
                return Err(AccessError::NotBlocked { user });
            }
            self.push(now, admin, AuditKind::Unblocked { user });
            Ok(())
        });
        self.audit_result(now, admin, r)
    }

    /// An administrator changes the mode. Pending requests end when leaving admin-confirm mode
    /// (their users may connect again under the new mode).
    pub fn set_mode(
        &mut self,
        now: UnixTime,
        admin: UserId,
        mode: AccessMode,
    ) -> Result<(), AccessError> {
        let r = self.require_admin(admin).map(|()| {
            let from = self.s.mode;
            if from == mode {
                return;
            }
            self.s.mode = mode;
            self.push(now, admin, AuditKind::ModeChanged { from, to: mode });
            if mode != AccessMode::AdminConfirm {
                for user in std::mem::take(&mut self.s.pending).into_keys() {
                    self.push(now, admin, AuditKind::RequestCancelled { user });
                }
            }
        });
        self.audit_result(now, admin, r)
    }

    /// An administrator replaces the code with `code` (expiring at `expires_at`, if given). The
    /// old code stops working at once; members, requests and invites are kept. The caller
    /// claims the new code in its registry and releases the old one.
    pub fn rotate_code(
        &mut self,
        now: UnixTime,
        admin: UserId,
        code: Code,
        expires_at: Option<UnixTime>,
    ) -> Result<(), AccessError> {
        let r = self.require_admin(admin).and_then(|()| {
            if code == self.s.code {
                return Err(AccessError::CodeUnchanged);
            }
            self.s.code = code;
            self.s.code_expires_at = expires_at;
            self.push(now, admin, AuditKind::CodeRotated { expires_at });
            Ok(())
        });
        self.audit_result(now, admin, r)
    }

    /// An administrator sets (or, with `None`, clears) the time the current code stops working.
    pub fn set_code_expiry(
        &mut self,
        now: UnixTime,
        admin: UserId,
        expires_at: Option<UnixTime>,
    ) -> Result<(), AccessError> {
        let r = self.require_admin(admin).map(|()| {
            self.s.code_expires_at = expires_at;
            self.push(now, admin, AuditKind::CodeExpirySet { expires_at });
        });
        self.audit_result(now, admin, r)
    }

    /// `user`'s account was closed: removes every trace of them (membership, pending request,
    /// invite, block) without the checks of [`remove`](Self::remove), which an administrator
    /// makes. If they were the last administrator and members remain, the member with the
    /// lowest [`UserId`] (the longest known to the host, when ids are issued in order) becomes
    /// administrator, so the invariants hold; if no member remains the thing is unclaimed
    /// again and its pending requests end (nobody is left to decide them; each is audited as
    /// [`AuditKind::RequestCancelled`]). Invites they issued stay valid. Audited as
    /// [`AuditKind::AccountClosed`] (with `user` as the actor) when anything changed.
    pub fn forget_user(&mut self, now: UnixTime, user: UserId) -> Forgotten {
        let mut f = Forgotten {
            role: self.s.members.remove(&user),
            pending: self.s.pending.remove(&user).is_some(),
            invited: self.s.invites.remove(&user).is_some(),
            blocked: self.s.blocked.remove(&user),
            successor: None,
        };
        if f.is_empty() {
            return f;
        }
        if f.role == Some(Role::Administrator) && self.administrator_count() == 0 {
            if let Some((&next, role)) = self.s.members.iter_mut().next() {
                *role = Role::Administrator;
                f.successor = Some(next);
            }
        }
        self.push(
            now,
            user,
            AuditKind::AccountClosed {
                successor: f.successor,
            },
        );
        if self.s.members.is_empty() {
            for pending in std::mem::take(&mut self.s.pending).into_keys() {
                self.push(now, user, AuditKind::RequestCancelled { user: pending });
            }
        }
        debug_assert_eq!(self.s.check(), Ok(()));
        f
    }

    /// The next audit event, oldest first. Drain after every call, until `None`.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<AuditEvent> {
        self.s.events.pop_front()
    }

    /// The current code.
    pub fn code(&self) -> &Code {
        &self.s.code
    }

    /// The access mode.
    pub fn mode(&self) -> AccessMode {
        self.s.mode
    }

    /// When the current code stops working, if ever.
    pub fn code_expires_at(&self) -> Option<UnixTime> {
        self.s.code_expires_at
    }

    /// `user`'s role, or `None` without access.
    pub fn role(&self, user: UserId) -> Option<Role> {
        self.s.members.get(&user).copied()
    }

    /// Whether `user` may use the thing now. Checked on every use: a removal takes effect on
    /// the next check.
    pub fn has_access(&self, user: UserId) -> bool {
        self.s.members.contains_key(&user)
    }

    /// Whether `user` is an administrator.
    pub fn is_administrator(&self, user: UserId) -> bool {
        self.role(user) == Some(Role::Administrator)
    }

    /// Whether anyone has claimed the thing yet.
    pub fn is_claimed(&self) -> bool {
        !self.s.members.is_empty()
    }

    /// Users with access and their roles, by user id.
    pub fn members(&self) -> impl Iterator<Item = (UserId, Role)> + '_ {
        self.s.members.iter().map(|(&u, &r)| (u, r))
    }

    /// The number of administrators.
    pub fn administrator_count(&self) -> usize {
        self.s
            .members
            .values()
            .filter(|&&r| r == Role::Administrator)
            .count()
    }

    /// Users whose request waits for an administrator, with the time they asked.
    pub fn pending_requests(&self) -> impl Iterator<Item = (UserId, UnixTime)> + '_ {
        self.s.pending.iter().map(|(&u, &t)| (u, t))
    }

    /// Invited users, with the invite's expiry.
    pub fn invites(&self) -> impl Iterator<Item = (UserId, Option<UnixTime>)> + '_ {
        self.s.invites.iter().map(|(&u, i)| (u, i.expires_at))
    }

    /// Whether `user` is blocked (removed by an administrator).
    pub fn is_blocked(&self, user: UserId) -> bool {
        self.s.blocked.contains(&user)
    }

    /// Audit events dropped because more than [`MAX_QUEUED_EVENTS`] were queued undrained.
    pub fn dropped_events(&self) -> u64 {
        self.s.dropped_events
    }

    /// Checks the invariants listed on [`ThingAccess`]; `Err` names the first one broken. Every
    /// method keeps them; deserialization runs this, and the fuzz target after every step.
    pub fn check_invariants(&self) -> Result<(), &'static str> {
        self.s.check()
    }

    fn connect_inner(
        &mut self,
        now: UnixTime,
        user: UserId,
        code: &Code,
    ) -> Result<Connected, AccessError> {
        if *code != self.s.code {
            return Err(AccessError::WrongCode);
        }
        if let Some(expired_at) = self.s.code_expires_at.filter(|&t| now >= t) {
            return Err(AccessError::CodeExpired { expired_at });
        }
        if let Some(&role) = self.s.members.get(&user) {
            return Ok(Connected::AlreadyMember(role));
        }
        if self.s.members.is_empty() {
            self.s.members.insert(user, Role::Administrator);
            self.s.blocked.remove(&user);
            self.s.invites.remove(&user);
            self.s.pending.remove(&user);
            self.push(now, user, AuditKind::Claimed);
            return Ok(Connected::BecameAdministrator);
        }
        if self.s.blocked.contains(&user) {
            return Err(AccessError::Blocked { user });
        }
        if let Some(invite) = self.s.invites.get(&user).copied() {
            if let Some(expired_at) = invite.expires_at.filter(|&t| now >= t) {
                return Err(AccessError::InviteExpired { user, expired_at });
            }
            self.s.invites.remove(&user);
            self.s.pending.remove(&user);
            self.s.members.insert(user, Role::Member);
            self.push(now, user, AuditKind::Joined { invited: true });
            return Ok(Connected::Joined);
        }
        match self.s.mode {
            AccessMode::Open => {
                self.s.members.insert(user, Role::Member);
                self.push(now, user, AuditKind::Joined { invited: false });
                Ok(Connected::Joined)
            }
            AccessMode::AdminConfirm => {
                if let Entry::Vacant(slot) = self.s.pending.entry(user) {
                    slot.insert(now);
                    self.push(now, user, AuditKind::Requested);
                }
                Ok(Connected::RequestPending)
            }
            AccessMode::InviteOnly => Err(AccessError::InviteRequired { user }),
        }
    }

    fn leave(&mut self, now: UnixTime, user: UserId) -> Result<(), AccessError> {
        match self.s.members.get(&user) {
            None => {
                // Withdrawing one's own request counts as leaving too.
                if self.s.pending.remove(&user).is_some() {
                    self.push(now, user, AuditKind::RequestCancelled { user });
                    return Ok(());
                }
                Err(AccessError::NotMember { user })
            }
            Some(Role::Administrator) if self.administrator_count() == 1 => {
                Err(AccessError::LastAdministrator { user })
            }
            Some(_) => {
                self.s.members.remove(&user);
                self.push(now, user, AuditKind::Left);
                Ok(())
            }
        }
    }

    fn revoke(&mut self, now: UnixTime, admin: UserId, user: UserId) -> Result<(), AccessError> {
        if self.s.members.get(&user) == Some(&Role::Administrator)
            && self.administrator_count() == 1
        {
            return Err(AccessError::LastAdministrator { user });
        }
        let was_member = self.s.members.remove(&user).is_some();
        let had_request = self.s.pending.remove(&user).is_some();
        let had_invite = self.s.invites.remove(&user).is_some();
        let newly_blocked = self.s.blocked.insert(user);
        if !(was_member || had_request || had_invite || newly_blocked) {
            return Err(AccessError::NotMember { user });
        }
        if had_request {
            self.push(now, admin, AuditKind::RequestCancelled { user });
        }
        if had_invite {
            self.push(now, admin, AuditKind::InviteCancelled { user });
        }
        self.push(now, admin, AuditKind::Removed { user });
        Ok(())
    }

    fn require_admin(&self, user: UserId) -> Result<(), AccessError> {
        if self.is_administrator(user) {
            Ok(())
        } else {
            Err(AccessError::NotAdministrator { user })
        }
    }

    fn audit_result<T>(
        &mut self,
        now: UnixTime,
        actor: UserId,
        r: Result<T, AccessError>,
    ) -> Result<T, AccessError> {
        if let Err(error) = &r {
            self.push(
                now,
                actor,
                AuditKind::Denied {
                    error: error.clone(),
                },
            );
        }
        debug_assert_eq!(self.s.check(), Ok(()));
        r
    }

    fn push(&mut self, at: UnixTime, actor: UserId, kind: AuditKind) {
        if self.s.events.len() >= MAX_QUEUED_EVENTS {
            self.s.events.pop_front();
            self.s.dropped_events += 1;
        }
        self.s.events.push_back(AuditEvent { at, actor, kind });
    }
}

impl State {
    fn check(&self) -> Result<(), &'static str> {
        if !self.members.is_empty() && !self.members.values().any(|&r| r == Role::Administrator) {
            return Err("a claimed thing has no administrator");
        }
        if !self.pending.is_empty() && self.mode != AccessMode::AdminConfirm {
            return Err("a request is pending outside admin-confirm mode");
        }
        if !self.pending.is_empty() && self.members.is_empty() {
            return Err("a request is pending on an unclaimed thing");
        }
        if self.pending.keys().any(|u| self.members.contains_key(u)) {
            return Err("a member has a pending request");
        }
        if self.pending.keys().any(|u| self.blocked.contains(u)) {
            return Err("a blocked user has a pending request");
        }
        if self.invites.keys().any(|u| self.members.contains_key(u)) {
            return Err("a member holds an invite");
        }
        if self.members.keys().any(|u| self.blocked.contains(u)) {
            return Err("a member is blocked");
        }
        if self.invites.keys().any(|u| self.blocked.contains(u)) {
            return Err("a blocked user holds an invite");
        }
        Ok(())
    }
}

impl TryFrom<State> for ThingAccess {
    type Error = &'static str;
    fn try_from(s: State) -> Result<Self, &'static str> {
        s.check()?;
        Ok(Self { s })
    }
}

impl From<ThingAccess> for State {
    fn from(t: ThingAccess) -> Self {
        t.s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CodeSpec;

    const T0: UnixTime = UnixTime::from_millis(1_700_000_000_000);
    const A: UserId = UserId(1);
    const B: UserId = UserId(2);
    const C: UserId = UserId(3);

    fn code(s: &str) -> Code {
        CodeSpec::new(crate::Alphabet::alphanumeric(), 10, false)
            .unwrap()
            .parse(s)
            .unwrap()
    }

    fn drain(t: &mut ThingAccess) -> Vec<AuditKind> {
        std::iter::from_fn(|| t.poll_event())
            .map(|e| e.kind)
            .collect()
    }

    #[test]
    fn denial_is_audited_and_changes_nothing() {
        let mut t = ThingAccess::new(code("ABCDEFGHIJ"), AccessMode::Open);
        t.connect(T0, A, &code("ABCDEFGHIJ")).unwrap();
        drain(&mut t);
        let before = t.clone();
        assert_eq!(
            t.grant_admin(T0, B, A),
            Err(AccessError::NotAdministrator { user: B })
        );
        let events = drain(&mut t);
        assert_eq!(
            events,
            vec![AuditKind::Denied {
                error: AccessError::NotAdministrator { user: B }
            }]
        );
        assert_eq!(t, before);
    }

    #[test]
    fn a_closed_account_leaves_no_trace_and_no_headless_thing() {
        let c = code("ABCDEFGHIJ");
        let mut t = ThingAccess::new(c, AccessMode::AdminConfirm);
        t.connect(T0, A, &c).unwrap();
        t.connect(T0, C, &c).unwrap();
        t.approve(T0, A, C).unwrap();
        t.connect(T0, B, &c).unwrap();
        drain(&mut t);
        // A pending requester goes without a trace.
        let f = t.forget_user(T0, B);
        assert!(f.pending && f.role.is_none());
        assert_eq!(t.pending_requests().count(), 0);
        // The last administrator: the remaining member takes over.
        let f = t.forget_user(T0, A);
        assert_eq!((f.role, f.successor), (Some(Role::Administrator), Some(C)));
        assert!(t.is_administrator(C) && !t.has_access(A));
        assert_eq!(
            drain(&mut t),
            vec![
                AuditKind::AccountClosed { successor: None },
                AuditKind::AccountClosed { successor: Some(C) }
            ]
        );
        // Nothing to forget: no event.
        assert!(t.forget_user(T0, A).is_empty());
        assert!(t.poll_event().is_none());
        // Blocked and invited users are forgotten too; the last member leaves it unclaimed.
        t.remove(T0, C, A).unwrap();
        t.invite(T0, C, B, None).unwrap();
        assert!(t.forget_user(T0, A).blocked && !t.is_blocked(A));
        assert!(t.forget_user(T0, B).invited);
        assert!(t.forget_user(T0, C).role.is_some());
        assert!(!t.is_claimed());
        assert_eq!(t.check_invariants(), Ok(()));
    }

    /// Found by the `codes_access` fuzz target: the last member's account closes while a
    /// request waits; the requester must not end up administrator with a request pending.
    #[test]
    fn an_unclaimed_thing_keeps_no_pending_requests() {
        let c = code("ABCDEFGHIJ");
        let mut t = ThingAccess::new(c, AccessMode::AdminConfirm);
        t.connect(T0, A, &c).unwrap();
        assert_eq!(t.connect(T0, B, &c), Ok(Connected::RequestPending));
        drain(&mut t);
        let f = t.forget_user(T0, A);
        assert_eq!((f.role, f.successor), (Some(Role::Administrator), None));
        assert_eq!(t.pending_requests().count(), 0);
        assert_eq!(
            drain(&mut t),
            vec![
                AuditKind::AccountClosed { successor: None },
                AuditKind::RequestCancelled { user: B }
            ]
        );
        assert_eq!(t.connect(T0, B, &c), Ok(Connected::BecameAdministrator));
        assert_eq!(t.check_invariants(), Ok(()));
    }

    #[test]
    fn event_queue_is_bounded() {
        let mut t = ThingAccess::new(code("ABCDEFGHIJ"), AccessMode::Open);
        for _ in 0..MAX_QUEUED_EVENTS + 10 {
            let _ = t.connect(T0, C, &code("ABCDEFGHIK"));
        }
        assert_eq!(t.dropped_events(), 10);
        assert_eq!(drain(&mut t).len(), MAX_QUEUED_EVENTS);
    }

    #[test]
    fn serde_round_trip_and_invariants_on_load() {
        let mut t = ThingAccess::new(code("ABCDEFGHIJ"), AccessMode::AdminConfirm);
        t.connect(T0, A, &code("ABCDEFGHIJ")).unwrap();
        t.connect(T0, B, &code("ABCDEFGHIJ")).unwrap();
        let json = serde_json::to_string(&t).unwrap();
        let back: ThingAccess = serde_json::from_str(&json).unwrap();
        assert_eq!(back, t);
        // A stored state without an administrator is refused.
        let broken = json.replace("\"Administrator\"", "\"Member\"");
        assert!(serde_json::from_str::<ThingAccess>(&broken).is_err());
    }
}
