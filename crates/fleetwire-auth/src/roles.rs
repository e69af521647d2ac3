//! Groups and rights (seed 001, A4) with least privilege: nothing is allowed unless a group the
//! user belongs to grants it. [`Roles::check`] is the one permission check the server calls for
//! every operation.
//!
//! Rights are dotted names (`player.command.send`); a group may grant a prefix with `.*`
//! (`player.*` grants `player.command.send`) or everything with `*` (use for the built-in
//! administrator group only).
//!
//! No escalation: [`Roles::check_grant`] lets a user give or take a group only if they hold
//! every right the group grants (a grant of `player.*` needs `player.*` or `*`; `*` needs `*`),
//! so the right to change roles is not the right to become an administrator.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// Why a role operation or check failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RoleError {
    /// The user lacks the right. Deliberately names neither groups nor holders.
    #[error("permission denied: {right}")]
    Denied {
        /// The right that was checked.
        right: String,
    },
    /// No group of that name.
    #[error("no group named {0:?}; define it first")]
    UnknownGroup(String),
    /// A right name that is empty, too long or has characters other than `a-z0-9_-.*`.
    #[error("invalid right name {0:?}: use dotted lower-case names such as player.command.send")]
    BadRight(String),
    /// The group grants a right the acting user does not hold: giving or taking it would be
    /// an escalation.
    #[error(
        "permission denied: the group {group:?} grants {right}, which you do not hold; only a holder of every right a group grants may give or take it"
    )]
    Escalation {
        /// The group.
        group: String,
        /// A right of the group the actor lacks.
        right: String,
    },
}

/// Groups, their rights and their members. Serializable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roles {
    groups: BTreeMap<String, BTreeSet<String>>,
    members: BTreeMap<String, BTreeSet<String>>,
}

impl Roles {
    /// No groups, no members: everything is denied.
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates or redefines a group with exactly these rights.
    pub fn define_group(&mut self, group: &str, rights: &[&str]) -> Result<(), RoleError> {
        let mut set = BTreeSet::new();
        for r in rights {
            if !valid_right(r) {
                return Err(RoleError::BadRight((*r).to_owned()));
            }
            set.insert((*r).to_owned());
        }
        self.groups.insert(group.to_owned(), set);
        Ok(())
    }

    /// Adds `user` to `group`.
    pub fn assign(&mut self, user: &str, group: &str) -> Result<(), RoleError> {
        if !self.groups.contains_key(group) {
            return Err(RoleError::UnknownGroup(group.to_owned()));
        }
        self.members
            .entry(user.to_owned())
            .or_default()
            .insert(group.to_owned());
        Ok(())
    }

    /// Removes `user` from `group` (effective at the next check).
    pub fn revoke(&mut self, user: &str, group: &str) {
        if let Some(g) = self.members.get_mut(user) {
            g.remove(group);
            if g.is_empty() {
                self.members.remove(user);
            }
        }
    }

    /// Removes a user from every group (account closed).
    pub fn remove_user(&mut self, user: &str) {
        self.members.remove(user);
    }

    /// The groups of `user`.
    pub fn groups_of(&self, user: &str) -> Vec<String> {
        self.members
            .get(user)
            .map(|g| g.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The one permission check: `Ok` only if some group of `user` grants `right`.
    pub fn check(&self, user: &str, right: &str) -> Result<(), RoleError> {
        let denied = || RoleError::Denied {
            right: right.to_owned(),
        };
        if !valid_right(right) || right.contains('*') {
            return Err(denied());
        }
        let groups = self.members.get(user).ok_or_else(denied)?;
        let granted = groups
            .iter()
            .filter_map(|g| self.groups.get(g))
            .flatten()
            .any(|grant| grants(grant, right));
        if granted { Ok(()) } else { Err(denied()) }
    }

    /// The rights `group` grants (as written, wildcards included), or `None` if it is unknown.
    pub fn rights_of(&self, group: &str) -> Option<impl Iterator<Item = &str> + '_> {
        self.groups.get(group).map(|g| g.iter().map(String::as_str))
    }

    /// Whether some group of `user` grants everything `grant` does: `grant` may be a right, a
    /// prefix (`player.*`) or `*` (held only by a user with `*`). [`check`](Self::check) is for
    /// single rights; this compares grants, for the rule against escalation.
    pub fn holds(&self, user: &str, grant: &str) -> bool {
        self.members.get(user).is_some_and(|groups| {
            groups
                .iter()
                .filter_map(|g| self.groups.get(g))
                .flatten()
                .any(|mine| covers(mine, grant))
        })
    }

    /// `Ok` if `actor` may give `group` to a user or take it away: `actor` holds every right
    /// the group grants. Checking the right to change roles at all is the caller's
    /// ([`check`](Self::check) with its own right name, such as `user.roles`).
    pub fn check_grant(&self, actor: &str, group: &str) -> Result<(), RoleError> {
        let rights = self
            .groups
            .get(group)
            .ok_or_else(|| RoleError::UnknownGroup(group.to_owned()))?;
        match rights.iter().find(|r| !self.holds(actor, r)) {
            None => Ok(()),
            Some(right) => Err(RoleError::Escalation {
                group: group.to_owned(),
                right: right.clone(),
            }),
        }
    }
}

/// Whether holding the grant `mine` means holding everything the grant `theirs` gives.
fn covers(mine: &str, theirs: &str) -> bool {
    if mine == "*" || mine == theirs {
        return true;
    }
    if theirs == "*" {
        return false;
    }
    // `player.*` covers `player.read` and `player.command.*`, not `playerx.read` or `player`.
    mine.strip_suffix(".*").is_some_and(|prefix| {
        theirs.len() > prefix.len()
            && theirs.starts_with(prefix)
            && theirs.as_bytes()[prefix.len()] == b'.'
    })
}

fn grants(grant: &str, right: &str) -> bool {
    if grant == "*" || grant == right {
        return true;
    }
    grant.strip_suffix(".*").is_some_and(|prefix| {
        right.len() > prefix.len()
            && right.starts_with(prefix)
            && right.as_bytes()[prefix.len()] == b'.'
    })
}

fn valid_right(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 128
        && r.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-*".contains(&b))
        && !r.split('.').any(str::is_empty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_privilege_and_wildcards() {
        let mut r = Roles::new();
        r.define_group("operators", &["player.*", "sensor.read"])
            .unwrap();
        r.define_group("admins", &["*"]).unwrap();
        assert!(r.check("olga", "player.command.send").is_err());
        r.assign("olga", "operators").unwrap();
        assert_eq!(r.check("olga", "player.command.send"), Ok(()));
        assert_eq!(r.check("olga", "sensor.read"), Ok(()));
        assert!(r.check("olga", "sensor.delete").is_err());
        assert!(r.check("olga", "playerx.command").is_err());
        assert!(r.check("olga", "player.*").is_err());
        r.revoke("olga", "operators");
        assert!(r.check("olga", "player.command.send").is_err());
        assert_eq!(
            r.assign("olga", "nope"),
            Err(RoleError::UnknownGroup("nope".into()))
        );
        assert!(r.define_group("x", &["Bad Right"]).is_err());
    }

    #[test]
    fn only_a_holder_of_every_right_may_grant_a_group() {
        let mut r = Roles::new();
        r.define_group("admins", &["*"]).unwrap();
        r.define_group("operators", &["player.*", "content.read"])
            .unwrap();
        r.define_group("players", &["player.read", "player.command.*"])
            .unwrap();
        r.define_group("roles", &["user.roles"]).unwrap();
        r.assign("root", "admins").unwrap();
        r.assign("olga", "operators").unwrap();
        r.assign("manny", "roles").unwrap();
        for g in ["admins", "operators", "players", "roles"] {
            assert_eq!(r.check_grant("root", g), Ok(()), "{g}");
        }
        assert_eq!(
            r.check_grant("olga", "players"),
            Ok(()),
            "player.* covers both"
        );
        assert!(matches!(
            r.check_grant("olga", "admins"),
            Err(RoleError::Escalation { right, .. }) if right == "*"
        ));
        assert!(matches!(
            r.check_grant("manny", "operators"),
            Err(RoleError::Escalation { .. })
        ));
        assert_eq!(r.check_grant("manny", "roles"), Ok(()));
        assert_eq!(
            r.check_grant("root", "nope"),
            Err(RoleError::UnknownGroup("nope".into()))
        );
        assert!(r.holds("root", "*") && !r.holds("olga", "*"));
        assert!(!covers("player.*", "player") && !covers("player.*", "playerx.read"));
        assert!(covers("player.*", "player.command.*"));
    }
}
