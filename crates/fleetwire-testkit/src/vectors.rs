//! Loading the language-neutral vectors in `test-vectors/*.json`.
//!
//! A vector file is a JSON object; tests read the fields they need. Hex strings decode with
//! [`hex_field`].

use std::path::{Path, PathBuf};

/// The repository's `test-vectors/` directory, found from this crate's manifest directory.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("..")
        .join("test-vectors")
}

/// Reads and parses `test-vectors/<name>`.
///
/// # Panics
/// If the file is missing or is not JSON (a test failure, with the path in the message).
pub fn load(name: &str) -> serde_json::Value {
    let path = dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Decodes the hex string `value[field]`.
///
/// # Panics
/// If the field is missing or not hex.
pub fn hex_field(value: &serde_json::Value, field: &str) -> Vec<u8> {
    let s = value[field]
        .as_str()
        .unwrap_or_else(|| panic!("field {field} missing or not a string"));
    hex::decode(s).unwrap_or_else(|e| panic!("field {field} is not hex: {e}"))
}
