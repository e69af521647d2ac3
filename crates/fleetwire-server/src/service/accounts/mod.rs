//! Accounts policy: rights and groups, the last-administrator rule, idle timeouts, password
//! policy context, the canonical login name and token digests. No SQL (the store's
//! `store::accounts`), no axum (the api's).
//!
//! The api guard and other domains (things) check sessions and rights through here.

pub(crate) mod mail;
mod persist;
mod pool;
mod sealed;
mod state;

pub(crate) use state::*;

use fleetwire_auth::policy::PolicyContext;
use fleetwire_auth::roles::Roles;
use ring::digest;

use crate::config::AccountsSettings;
use crate::store::accounts::{Guard, UserRow};
use crate::util::term::escape;

/// The canonical login name: trimmed and lower-cased (names and e-mail addresses compare
/// without case).
pub(crate) fn canonical_name(name: &str) -> String {
    name.trim().to_lowercase()
}

/// The stored form of a bearer or reset token: its SHA-256, hex.
pub(crate) fn token_digest(token: &str) -> String {
    hex::encode(digest::digest(&digest::SHA256, token.as_bytes()))
}

/// The groups and rights `settings` define.
pub(crate) fn roles(settings: &AccountsSettings) -> Roles {
    let mut roles = Roles::new();
    for (group, rights) in &settings.groups {
        let rights: Vec<&str> = rights.iter().map(String::as_str).collect();
        if let Err(e) = roles.define_group(group, &rights) {
            tracing::error!("[accounts.groups] {group}: {e}");
        }
    }
    roles
}

/// The roles with `user`'s groups assigned.
pub(crate) fn user_roles(settings: &AccountsSettings, user: &UserRow) -> Roles {
    let mut roles = roles(settings);
    for g in &user.groups {
        let _ = roles.assign(&user.id, g);
    }
    roles
}

/// An administrator: an account that can sign in (not locked) whose groups grant `*`.
pub(crate) fn is_administrator(settings: &AccountsSettings, user: &UserRow) -> bool {
    !user.locked && user_roles(settings, user).holds(&user.id, "*")
}

/// Whether `user` holds `right` under `settings`' groups; `Err` is the message for a 403.
pub(crate) fn check_right(
    settings: &AccountsSettings,
    user: &UserRow,
    right: &str,
) -> Result<(), String> {
    user_roles(settings, user)
        .check(&user.id, right)
        .map_err(|e| e.to_string())
}

/// The last-administrator rule as a store [`Guard`]: a change may not leave the server without
/// an administrator. The store runs it in the transaction that makes the change, on the account
/// as stored, as the change would leave it (`None`: deleted) and every other unlocked account,
/// so two changes cannot each remove "another" one.
pub(crate) fn keep_an_administrator(settings: &AccountsSettings) -> Guard {
    let settings = settings.clone();
    Box::new(move |before, after, others| {
        if !is_administrator(&settings, before)
            || after.is_some_and(|a| is_administrator(&settings, a))
            || others.iter().any(|u| is_administrator(&settings, u))
        {
            Ok(())
        } else {
            Err(last_administrator_message(&before.name))
        }
    })
}

/// Why a change was refused by [`keep_an_administrator`].
pub(crate) fn last_administrator_message(name: &str) -> String {
    format!(
        "{} is the last administrator (an unlocked account whose groups grant \"*\"): \
         make another account administrator first (fleetwire-server user groups NAME admin)",
        escape(name)
    )
}

/// The default idle timeout in milliseconds (`None`: off).
pub(crate) fn default_idle_ms(settings: &AccountsSettings) -> Option<u64> {
    (settings.idle_timeout_secs > 0).then(|| settings.idle_timeout_secs.saturating_mul(1000))
}

/// A user's idle timeout column as milliseconds for the session store (`None`: off).
pub(crate) fn idle_ms(column: Option<u64>, settings: &AccountsSettings) -> Option<u64> {
    match column {
        None => default_idle_ms(settings),
        Some(0) => None,
        Some(s) => Some(s.saturating_mul(1000)),
    }
}

/// The words a password must not be built from, and whether a second factor is enrolled.
pub(crate) fn policy_context(user: &UserRow) -> PolicyContext {
    let mut words = vec![user.name.clone()];
    if let Some(e) = &user.email {
        words.push(e.clone());
        words.extend(e.split('@').next().map(str::to_owned));
    }
    words.extend(user.name.split('@').next().map(str::to_owned));
    PolicyContext {
        words,
        has_mfa: user.mfa,
    }
}
