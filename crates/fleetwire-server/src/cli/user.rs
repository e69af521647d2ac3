//! `fleetwire-server user …`: accounts from the command line, on the store repository (so on
//! PostgreSQL too). Running servers pick up lock, unlock, session ends and deletions from the
//! command queue.

use std::fmt::Write as _;
use std::io::BufRead as _;
use std::path::Path;

use clap::Subcommand;
use fleetwire_auth::UnixTime;
use fleetwire_auth::audit::AuditEvent;
use fleetwire_auth::policy::PolicyContext;
use fleetwire_auth::recovery::RecoveryCodes;
use rand_core::OsRng;

use crate::config::{AccountsSettings, Config};
use crate::service::accounts::{canonical_name, now, now_secs, random16};
use crate::store::Store;
use crate::store::accounts::{GroupChange, NewUser, Refused};
use crate::util::term::escape;

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
                    fleetwire_auth::UnixTime::from_millis(crate::util::clock::unix_millis()),
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
