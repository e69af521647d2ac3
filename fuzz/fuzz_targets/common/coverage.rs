//! A coverage counter the fuzz targets share: with `FLEETWIRE_FUZZ_COVERAGE=1` in the
//! environment, every tag (a state, an event kind, a message kind sent, an error kind) is
//! printed to stderr the first time the process reaches it, as `fuzz-coverage: TAG`.
//! `scripts/fuzz-coverage.sh TARGET SECONDS` counts the distinct tags of a run: how many of the
//! machine's states and messages a run reached, which libFuzzer's edge count does not say.
//! Without the variable a call costs one load.
#![allow(dead_code)] // each target uses part of it

use std::collections::BTreeSet;
use std::sync::{Mutex, OnceLock};

fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("FLEETWIRE_FUZZ_COVERAGE").is_some_and(|v| v == "1"))
}

/// Records `tag` (built only when counting is on).
pub fn note(tag: impl FnOnce() -> String) {
    if !enabled() {
        return;
    }
    static SEEN: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let tag = tag();
    let mut seen = SEEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if !seen.contains(&tag) {
        eprintln!("fuzz-coverage: {tag}");
        seen.insert(tag);
    }
}

/// The variant name of a value's `Debug` form (`Closed { reason: X }` → `Closed`).
pub fn kind(value: &impl std::fmt::Debug) -> String {
    let s = format!("{value:?}");
    s.split([' ', '{', '(']).next().unwrap_or_default().to_owned()
}

/// With `FLEETWIRE_FUZZ_TRACE=1`, prints `line` to stderr (for reading a crash input).
pub fn trace(line: impl FnOnce() -> String) {
    static ON: OnceLock<bool> = OnceLock::new();
    if *ON.get_or_init(|| std::env::var_os("FLEETWIRE_FUZZ_TRACE").is_some_and(|v| v == "1")) {
        eprintln!("trace: {}", line());
    }
}
