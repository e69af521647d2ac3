#![no_main]
//! The player session machine fed arbitrary server bytes and clock jumps: it never panics and
//! ends with at most one `Closed`, after which it is silent.
use std::sync::Arc;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use fleetwire_session::*;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Step {
    Input(Vec<u8>),
    Advance(u16),
    Heartbeat,
    Status(String),
    /// The transport ended (`handle_close`).
    Close,
}

fuzz_target!(|steps: Vec<Step>| {
    let mut now = Instant::now();
    let config = ClientConfig::new(PlayerId::from_bytes([1; 16]), PlayerSecret::from_bytes([2; 32]));
    let mut c = Client::new(Arc::new(config), now, ChannelBinding::NONE);
    let mut closed = 0;
    let mut out = Vec::new();
    for step in steps {
        match step {
            Step::Input(bytes) => {
                let _ = c.handle_input(now, &bytes);
            }
            Step::Advance(ms) => {
                now += Duration::from_millis(u64::from(ms) * 10);
                c.handle_timeout(now);
            }
            Step::Heartbeat => {
                let _ = c.heartbeat_now(now);
            }
            Step::Status(content) => {
                let _ = c.set_status(PlayerStatus { content, ..PlayerStatus::default() });
            }
            Step::Close => c.handle_close(now),
        }
        while c.poll_transmit(&mut out).is_some() {}
        while let Some(e) = c.poll_event() {
            assert_eq!(closed, 0, "event after Closed: {e:?}");
            if matches!(e, ClientEvent::Closed { .. }) {
                closed += 1;
            }
        }
        out.clear();
    }
});
