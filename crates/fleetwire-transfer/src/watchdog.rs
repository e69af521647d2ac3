//! The player's watchdog (S6): keeps last-known-good signed manifests of configuration and
//! content, has files at rest verified on request or on a schedule, and on a mismatch, a
//! missing file or a configuration that fails to parse falls back to last-known-good and asks
//! the server for a fresh copy, at most `max_restore_attempts` times in a row, so it cannot
//! loop. Every anomaly is an event the player forwards to the server's security log (S9).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{ApiMisuse, TransferError};
use crate::manifest::{DEFAULT_MAX_CHUNKS, PublicKey, SignedManifest};

/// How the watchdog behaves.
#[derive(Debug, Clone)]
pub struct WatchdogConfig {
    /// Content-signing keys whose manifests are accepted.
    pub trusted_keys: Vec<PublicKey>,
    /// How often every file is verified at rest (`None`: only on request).
    pub check_interval: Option<Duration>,
    /// Consecutive restore attempts per file before the watchdog gives up on it (until a new
    /// version is installed or a check passes).
    pub max_restore_attempts: u32,
    /// Largest manifest accepted, in chunks.
    pub max_chunks: u32,
}

impl WatchdogConfig {
    /// Defaults: hourly checks, three restore attempts.
    pub fn new(trusted_keys: Vec<PublicKey>) -> Self {
        Self {
            trusted_keys,
            check_interval: Some(Duration::from_secs(3600)),
            max_restore_attempts: 3,
            max_chunks: DEFAULT_MAX_CHUNKS,
        }
    }
}

/// The result of checking one file at rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileCheck {
    /// The file matches its signed manifest (and, for configuration, parses).
    Ok,
    /// The file is gone.
    Missing,
    /// The bytes differ from the signed manifest; the first bad chunk if known.
    Corrupt {
        /// First chunk that failed, if the check got that far.
        first_bad_chunk: Option<u32>,
    },
    /// A configuration file verified but the player could not parse it.
    ParseFailed,
}

/// What the watchdog tells the player.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WatchdogEvent {
    /// Verify this file at rest ([`Watchdog::verify_file`] or [`Watchdog::report`]).
    VerifyNeeded {
        /// The file.
        file_id: u64,
        /// The version that should be on disk.
        version: u64,
    },
    /// The file checked out; it is now last-known-good.
    Verified {
        /// The file.
        file_id: u64,
        /// Its version.
        version: u64,
    },
    /// A check failed. A security event: forward it to the server's log.
    Anomaly {
        /// The file.
        file_id: u64,
        /// The version checked.
        version: u64,
        /// What was wrong.
        check: FileCheck,
    },
    /// Switch to the last-known-good copy of the file (keep it; do not delete it).
    Fallback {
        /// The file.
        file_id: u64,
        /// The version abandoned.
        from_version: u64,
        /// The last-known-good version to use.
        to_version: u64,
    },
    /// Ask the server for a fresh copy of the file.
    RequestFresh {
        /// The file.
        file_id: u64,
        /// The newest version known.
        version: u64,
        /// Restore attempt number (1-based) in this run of failures.
        attempt: u32,
    },
    /// Restore attempts are exhausted; the watchdog stops restoring this file until a check
    /// passes or a new version is installed. A security event.
    GaveUp {
        /// The file.
        file_id: u64,
        /// Attempts made.
        attempts: u32,
    },
}

/// The watchdog has no terminal state; this is for symmetry with the other machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchdogState {
    /// Watching.
    Running,
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WatchdogStats {
    /// Checks reported.
    pub checks: u64,
    /// Checks that failed.
    pub anomalies: u64,
    /// Fallbacks to last-known-good.
    pub fallbacks: u64,
    /// Fresh copies requested.
    pub requests: u64,
}

#[derive(Debug, Clone)]
struct Watched {
    current: SignedManifest,
    known_good: Option<SignedManifest>,
    newest: u64,
    attempts: u32,
    gave_up: bool,
}

/// The player's watchdog. Sans-IO like the transfer machines: the player verifies files and
/// reports; the watchdog decides.
#[derive(Debug)]
pub struct Watchdog {
    config: Arc<WatchdogConfig>,
    files: BTreeMap<u64, Watched>,
    next_check: Option<Instant>,
    events: VecDeque<WatchdogEvent>,
    stats: WatchdogStats,
}

impl Watchdog {
    /// A watchdog; the first scheduled check is one interval after `now`.
    pub fn new(config: Arc<WatchdogConfig>, now: Instant) -> Self {
        let next_check = config.check_interval.map(|i| now + i);
        Self {
            config,
            files: BTreeMap::new(),
            next_check,
            events: VecDeque::new(),
            stats: WatchdogStats::default(),
        }
    }

    /// A newly downloaded (or, at start-up, a stored) signed manifest becomes the file's
    /// current version. The signature is checked; an older version than the newest known is
    /// refused (no rollback). It becomes last-known-good once a check reports [`FileCheck::Ok`].
    pub fn install(&mut self, _now: Instant, manifest: &[u8]) -> Result<(), TransferError> {
        let m =
            SignedManifest::decode(manifest, &self.config.trusted_keys, self.config.max_chunks)?;
        let file_id = m.file_id();
        match self.files.get_mut(&file_id) {
            Some(w) => {
                if m.version() < w.newest {
                    return Err(TransferError::StaleVersion {
                        file_id,
                        offered: m.version(),
                        held: w.newest,
                    });
                }
                w.newest = m.version();
                w.current = m;
                w.attempts = 0;
                w.gave_up = false;
            }
            None => {
                self.files.insert(
                    file_id,
                    Watched {
                        newest: m.version(),
                        current: m,
                        known_good: None,
                        attempts: 0,
                        gave_up: false,
                    },
                );
            }
        }
        Ok(())
    }

    /// Asks for every file to be verified now.
    pub fn check_now(&mut self, _now: Instant) {
        for (&file_id, w) in &self.files {
            self.events.push_back(WatchdogEvent::VerifyNeeded {
                file_id,
                version: w.current.version(),
            });
        }
    }

    /// Verifies the file's bytes at rest (`None`: missing) against its current manifest and
    /// reports the result. For large files, check with [`crate::Manifest::verify_file`] or
    /// chunk by chunk yourself and call [`Watchdog::report`].
    pub fn verify_file(
        &mut self,
        now: Instant,
        file_id: u64,
        data: Option<&[u8]>,
    ) -> Result<FileCheck, ApiMisuse> {
        let w = self
            .files
            .get(&file_id)
            .ok_or(ApiMisuse::InvalidConfig("file is not watched"))?;
        let check = match data {
            None => FileCheck::Missing,
            Some(d) => match w.current.verify_file(d) {
                Ok(()) => FileCheck::Ok,
                Err(first_bad_chunk) => FileCheck::Corrupt { first_bad_chunk },
            },
        };
        self.report(now, file_id, check)?;
        Ok(check)
    }

    /// Reports a check of the file's current version (including [`FileCheck::ParseFailed`]
    /// when a configuration file verified but did not parse).
    pub fn report(
        &mut self,
        _now: Instant,
        file_id: u64,
        check: FileCheck,
    ) -> Result<(), ApiMisuse> {
        let max = self.config.max_restore_attempts;
        let w = self
            .files
            .get_mut(&file_id)
            .ok_or(ApiMisuse::InvalidConfig("file is not watched"))?;
        self.stats.checks += 1;
        let version = w.current.version();
        if check == FileCheck::Ok {
            w.known_good = Some(w.current.clone());
            w.attempts = 0;
            w.gave_up = false;
            self.events
                .push_back(WatchdogEvent::Verified { file_id, version });
            return Ok(());
        }
        self.stats.anomalies += 1;
        self.events.push_back(WatchdogEvent::Anomaly {
            file_id,
            version,
            check,
        });
        if w.gave_up {
            return Ok(());
        }
        if w.attempts >= max {
            w.gave_up = true;
            self.events.push_back(WatchdogEvent::GaveUp {
                file_id,
                attempts: w.attempts,
            });
            return Ok(());
        }
        w.attempts += 1;
        if let Some(good) = &w.known_good {
            if good.version() != version {
                self.stats.fallbacks += 1;
                self.events.push_back(WatchdogEvent::Fallback {
                    file_id,
                    from_version: version,
                    to_version: good.version(),
                });
                w.current = good.clone();
            }
        }
        self.stats.requests += 1;
        self.events.push_back(WatchdogEvent::RequestFresh {
            file_id,
            version: w.newest,
            attempt: w.attempts,
        });
        Ok(())
    }

    /// The manifest of the version the player should be using.
    pub fn current(&self, file_id: u64) -> Option<&SignedManifest> {
        self.files.get(&file_id).map(|w| &w.current)
    }

    /// The last version that passed a check.
    pub fn known_good(&self, file_id: u64) -> Option<&SignedManifest> {
        self.files.get(&file_id).and_then(|w| w.known_good.as_ref())
    }

    /// Time passed: runs the scheduled check when due. Early calls are no-ops.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let (Some(at), Some(interval)) = (self.next_check, self.config.check_interval) {
            if now >= at {
                self.check_now(now);
                self.next_check = Some(now + interval);
            }
        }
    }

    /// When the next scheduled check is due.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_check
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<WatchdogEvent> {
        self.events.pop_front()
    }

    /// Always running.
    pub fn state(&self) -> WatchdogState {
        WatchdogState::Running
    }

    /// Counters.
    pub fn stats(&self) -> WatchdogStats {
        self.stats
    }
}
