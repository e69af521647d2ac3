#![no_main]
//! The server session machine fed arbitrary bytes in arbitrary pieces, with arbitrary lookups
//! and clock jumps: it never panics, emits at most one `Closed`, and nothing follows it.
use std::sync::Arc;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use fleetwire_session::*;
use libfuzzer_sys::fuzz_target;

#[path = "common/coverage.rs"]
mod coverage;

#[derive(Arbitrary, Debug)]
enum Step {
    Input(Vec<u8>),
    Advance(u16),
    Resolve { known: bool, approved: bool },
    SetHash(Option<[u8; 32]>),
    Close,
}

fuzz_target!(|steps: Vec<Step>| {
    let t0 = Instant::now();
    let mut now = t0;
    let secret = PlayerSecret::from_bytes([3; 32]);
    let mut s = ServerConnection::new(Arc::new(ServerConfig::default()), now, [7; 32], ChannelBinding::NONE);
    let mut closed = 0;
    let mut out = Vec::new();
    for step in steps {
        match step {
            Step::Input(bytes) => {
                if let Err(e) = s.handle_input(now, &bytes) {
                    coverage::note(|| format!("input-err:{}", coverage::kind(&e)));
                }
            }
            Step::Advance(ms) => {
                now += Duration::from_millis(u64::from(ms) * 10);
                s.handle_timeout(now);
            }
            Step::Resolve { known, approved } => {
                let lookup = if known {
                    PlayerLookup::Known { verifier: secret.verifier(), approved, config_hash: None }
                } else {
                    PlayerLookup::Unknown
                };
                let _ = s.resolve_player(now, lookup);
            }
            Step::SetHash(h) => s.set_config_hash(h.map(ConfigHash)),
            Step::Close => {
                let _ = s.close(now, CloseCode::Normal, "bye");
            }
        }
        while s.poll_transmit(&mut out).is_some() {}
        note_sent(&out);
        coverage::note(|| format!("state:{:?}", s.state()));
        while let Some(e) = s.poll_event() {
            coverage::note(|| match &e {
                ServerEvent::Closed { reason } => format!("closed:{}", coverage::kind(reason)),
                e => format!("event:{}", coverage::kind(e)),
            });
            assert_eq!(closed, 0, "event after Closed: {e:?}");
            if matches!(e, ServerEvent::Closed { .. }) {
                closed += 1;
            }
        }
        if s.state() == ServerState::Closed {
            assert_eq!(s.poll_timeout(), None);
        }
        out.clear();
    }
});

/// Counts the kinds of message the server sent (coverage only).
fn note_sent(out: &[u8]) {
    let mut decoder = fleetwire_wire::FrameDecoder::new(1 << 16);
    let mut input = out;
    while let Ok((used, frame)) = decoder.decode(input) {
        if let Some(f) = frame {
            if let Ok(m) = Message::decode(f.msg_type, f.body) {
                coverage::note(|| match &m {
                    Message::HeartbeatAck { config_hash: Some(_), .. } => "sent:HeartbeatAck+hash".into(),
                    m => format!("sent:{}", coverage::kind(m)),
                });
            }
        }
        if used == 0 {
            break;
        }
        input = &input[used..];
    }
}
