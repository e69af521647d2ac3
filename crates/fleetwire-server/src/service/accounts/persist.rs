//! What the accounts engines keep across restarts.
//!
//! - `accounts-state.json` in the data directory (mode 0600, replaced atomically): a snapshot of
//!   the lockout engine, the login and reset throttles, the session store (idle timers),
//!   the reset tokens and the new-origin tracker. It is written when something changed, at most
//!   every `[accounts] state_save_secs`, and on a graceful stop; it is read at start. The
//!   engines' keyed-hash secrets are in it, so it lives beside the other keys, not in the store
//!   (the store keeps verifiers only). A crash loses what changed since the last save: at most
//!   a few seconds of failure counts.
//! - Settings come from `fleetwire.toml`, never from the snapshot: each engine's `config` is
//!   replaced with the current one before the engine is rebuilt.
//! - Sessions: the `auth_sessions` rows decide which sessions exist (a row is written before the
//!   token is handed out and deleted on sign-out, reset, lock and delete); the snapshot adds
//!   their idle timers. At start, snapshot sessions without a row are dropped and rows without a
//!   snapshot entry are restored with their creation time as the last activity, so a restart
//!   never lengthens a session.
//! - Not saved: CAPTCHA challenges (they live two minutes, and anyone may ask for them, so they
//!   must not make the file large or dirty; a client fetches a new one after a restart; a
//!   `captcha` entry in an older snapshot is ignored).
//! - `device-cookie.key`: the 32-byte HMAC key of the device cookies, created on first start
//!   (`service::keys`; a `server_keys` row on PostgreSQL, the same for every node).

use std::path::Path;

use fleetwire_auth::UnixTime;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::Engines;

/// The snapshot file, in the data directory.
pub(super) const STATE_FILE: &str = "accounts-state.json";
/// The device-cookie key file, in the data directory.
pub(super) const DEVICE_KEY_FILE: &str = "device-cookie.key";
/// The snapshot format; a file of another version is ignored (with a warning).
const VERSION: u64 = 1;

/// The engines as saved: each engine's own serde form.
pub(super) fn snapshot(e: &Engines, at: UnixTime) -> Result<Vec<u8>, String> {
    let v = serde_json::json!({
        "version": VERSION,
        "saved_ms": at.as_millis(),
        "lockout": &e.lockout,
        "throttle": &e.throttle,
        "sessions": &e.sessions,
        "resets": &e.resets,
        "origins": &e.origins,
    });
    serde_json::to_vec(&v).map_err(|e| e.to_string())
}

/// Writes a snapshot atomically: a new 0600 temporary file (exclusive, random name), synced,
/// then renamed over the old one (the server's one secret-file writer).
pub(super) fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    crate::util::secret_file::write(path, bytes, crate::util::secret_file::Overwrite::Replace)
        .map_err(|e| e.to_string())
}

/// Loads a snapshot into `e`, keeping `e`'s settings. Returns `Ok(false)` when there is no file.
/// On any error `e` is left as it was.
pub(super) fn load(path: &Path, e: &mut Engines) -> Result<bool, String> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(err) => return Err(format!("{}: {err}", path.display())),
    };
    let mut v: Value =
        serde_json::from_slice(&bytes).map_err(|err| format!("{}: {err}", path.display()))?;
    if v["version"].as_u64() != Some(VERSION) {
        return Err(format!(
            "{}: snapshot version {} (this server reads {VERSION})",
            path.display(),
            v["version"]
        ));
    }
    let lockout = with_config(&e.lockout, v["lockout"].take())?;
    let throttle = with_config(&e.throttle, v["throttle"].take())?;
    let sessions = with_config(&e.sessions, v["sessions"].take())?;
    let resets = with_config(&e.resets, v["resets"].take())?;
    let origins = serde_json::from_value(v["origins"].take()).map_err(|err| err.to_string())?;
    e.lockout = lockout;
    e.throttle = throttle;
    e.sessions = sessions;
    e.resets = resets;
    e.origins = origins;
    Ok(true)
}

/// The saved engine with the running engine's `config`.
fn with_config<T: Serialize + DeserializeOwned>(
    current: &T,
    mut saved: Value,
) -> Result<T, String> {
    let mut fresh = serde_json::to_value(current).map_err(|e| e.to_string())?;
    match (saved.get_mut("config"), fresh.get_mut("config")) {
        (Some(slot), Some(config)) => *slot = config.take(),
        _ => return Err("an engine in the snapshot has no settings to replace".into()),
    }
    serde_json::from_value(saved).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AccountsSettings;
    use crate::service::accounts::LOGIN_NS;
    use fleetwire_auth::lockout::{LockStatus, LockoutKey, Outcome};

    #[test]
    fn snapshot_round_trip_keeps_state_and_takes_new_settings() {
        let t = UnixTime::from_millis(1_700_000_000_000);
        let old = AccountsSettings {
            max_failures: 2,
            ..AccountsSettings::default()
        };
        let mut e = Engines::new(&old).unwrap();
        let key = LockoutKey::untrusted(LOGIN_NS, b"alice");
        for _ in 0..2 {
            let ticket = e.lockout.begin_attempt(&key, t).unwrap();
            e.lockout.finish(ticket, Outcome::Failure, t);
        }
        let (token, _) = e.sessions.create("u_1", t, &mut rand_core::OsRng);
        let bytes = snapshot(&e, t).unwrap();

        let new = AccountsSettings {
            max_failures: 7,
            ..AccountsSettings::default()
        };
        let mut loaded = Engines::new(&new).unwrap();
        let path = std::env::temp_dir().join(format!("fw-state-{}.json", std::process::id()));
        write(&path, &bytes).unwrap();
        assert!(load(&path, &mut loaded).unwrap());
        let _ = std::fs::remove_file(&path);
        assert_eq!(loaded.lockout.config().max_failures, 7, "settings win");
        assert_eq!(loaded.lockout.failures(&key, t), 2, "the streak survives");
        assert!(matches!(
            loaded.lockout.status(&key, t),
            LockStatus::Open { remaining: 5 }
        ));
        assert!(
            loaded
                .sessions
                .check(&token, t, fleetwire_auth::session::Activity::User)
                .is_ok()
        );
        assert!(!load(Path::new("/nonexistent/fw-state.json"), &mut loaded).unwrap());
    }
}
