//! Text from users and peers on the operator's terminal: the one escaping rule for every command
//! that prints stored text (`player list`, `thing list`/`show`, `user list`, `audit tail`, …).
//!
//! A player's status strings, thing names, e-mail addresses and audit details come from people
//! and devices the operator does not control. Printed raw, ESC sequences set the terminal's
//! title, clear the screen or move the cursor, CR and LF forge lines of a listing, and
//! bidirectional overrides make text read differently from what it is. [`escape`] replaces
//! every such character with a visible `\u{…}`; [`escape_json`] does the same with JSON's own
//! `\uXXXX`, so a line of JSON stays JSON and decodes to the stored text.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` must not reach a terminal raw: C0 controls (ESC, CR, LF, BEL, backspace, …),
/// DEL, C1 controls (U+0080–U+009F: U+009B is a one-character CSI), the bidirectional controls
/// (U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069), zero-width characters (U+200B–U+200D,
/// U+2060, U+FEFF) and the line and paragraph separators (U+2028, U+2029).
pub(crate) fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'
                | '\u{2066}'..='\u{2069}'
                | '\u{feff}'
        )
}

/// `text` with every [`is_unsafe`] character written as `\u{1b}`; borrowed when there is none.
pub(crate) fn escape(text: &str) -> Cow<'_, str> {
    replace(text, |out, c| {
        let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
    })
}

/// JSON written by `serde_json` with every [`is_unsafe`] character written as `\u001b`.
/// `serde_json` already escapes C0 controls inside strings, but not DEL, C1 or the
/// bidirectional controls; a line feed outside a string is the layout of pretty-printed JSON and
/// is kept.
pub(crate) fn escape_json(json: &str) -> Cow<'_, str> {
    replace_if(
        json,
        |c| c != '\n' && is_unsafe(c),
        |out, c| {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        },
    )
}

fn replace(text: &str, write: impl FnMut(&mut String, char)) -> Cow<'_, str> {
    replace_if(text, is_unsafe, write)
}

fn replace_if(
    text: &str,
    unsafe_char: impl Fn(char) -> bool,
    mut write: impl FnMut(&mut String, char),
) -> Cow<'_, str> {
    if !text.chars().any(&unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if unsafe_char(c) {
            write(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_bidi_become_visible() {
        assert!(matches!(escape("lobby café"), Cow::Borrowed(_)));
        assert_eq!(
            escape("a\u{1b}[2J\r\n\u{7}\u{9b}\u{202e}b\u{2066}"),
            "a\\u{1b}[2J\\u{d}\\u{a}\\u{7}\\u{9b}\\u{202e}b\\u{2066}"
        );
        assert_eq!(
            escape("\u{7f}\u{200b}\u{feff}"),
            "\\u{7f}\\u{200b}\\u{feff}"
        );
    }

    #[test]
    fn json_stays_json_and_decodes_to_the_same_text() {
        let text = "x\u{1b}\u{7f}\u{9b}\u{202e}\u{2028}é";
        for json in [
            serde_json::to_string(&serde_json::json!({ "name": text })).unwrap(),
            serde_json::to_string_pretty(&serde_json::json!({ "name": text, "n": 1 })).unwrap(),
        ] {
            let escaped = escape_json(&json);
            assert!(
                !escaped.chars().any(|c| c != '\n' && is_unsafe(c)),
                "{escaped}"
            );
            let back: serde_json::Value = serde_json::from_str(&escaped).unwrap();
            assert_eq!(back["name"], text);
        }
    }
}
