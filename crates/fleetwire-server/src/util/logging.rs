//! The server's log: one line per event, whatever the event holds.
//!
//! Peers choose much of what the server logs: a player's close message, its status strings, a
//! claimed id, a user name. Written raw, a newline in any of them forges a log line ("INFO …
//! login player=…") and an escape sequence rewrites the operator's terminal. Every event is
//! therefore formatted into a buffer and written with its control characters escaped: C0 and
//! C1 controls and DEL as `\u{…}` (a newline as `\n`), and the Unicode bidirectional overrides
//! and isolates too, which can make a line read differently from its bytes. Only the final
//! newline is written as itself, so one event is always exactly one line.
//!
//! Log sites still pass peer text as structured fields (`content = ?status.content`); this is
//! the backstop that holds for every site, including ones written later.

use std::io::Write;

use tracing_subscriber::fmt::MakeWriter;

/// Standard error, one escaped line per event.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct EscapedStderr;

impl<'a> MakeWriter<'a> for EscapedStderr {
    type Writer = EventLine;

    fn make_writer(&'a self) -> Self::Writer {
        EventLine(Vec::with_capacity(256))
    }
}

/// One event's bytes, escaped and written when dropped.
pub(crate) struct EventLine(Vec<u8>);

impl Write for EventLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for EventLine {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let line = escape_line(&self.0);
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}

/// `bytes` as one line: every control or bidi character escaped, a single trailing newline.
pub(crate) fn escape_line(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let body = text.strip_suffix('\n').unwrap_or(&text);
    let mut out = String::with_capacity(body.len() + 1);
    for c in body.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push(c),
            c if c.is_control() || is_bidi_control(c) => {
                out.extend(c.escape_unicode());
            }
            c => out.push(c),
        }
    }
    out.push('\n');
    out
}

/// The Unicode bidirectional embeddings, overrides, isolates and marks that reorder text.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::escape_line;

    #[test]
    fn one_event_is_one_line() {
        let forged = "WARN login failed: bye\n2026-12-04T00:00:00Z  INFO login player=x\n";
        let line = escape_line(forged.as_bytes());
        assert_eq!(line.matches('\n').count(), 1);
        assert!(line.ends_with("player=x\n"));
        assert!(line.contains("bye\\n2026"));
    }

    #[test]
    fn controls_and_bidi_overrides_are_escaped() {
        let line = escape_line("a\u{1b}[2J\u{7}\r\u{9b}b\u{202e}c\u{2066}d\té\n".as_bytes());
        assert_eq!(
            line,
            "a\\u{1b}[2J\\u{7}\\u{d}\\u{9b}b\\u{202e}c\\u{2066}d\té\n"
        );
    }

    #[test]
    fn invalid_utf8_cannot_smuggle_a_newline() {
        let line = escape_line(b"x\xff\n\xfey\n");
        assert_eq!(line, "x\u{fffd}\\n\u{fffd}y\n");
    }
}
