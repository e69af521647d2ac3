//! Reconnects back off exponentially with full jitter.
#![allow(clippy::disallowed_methods)] // tests take a real origin for virtual time
mod common;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use fleetwire_session::*;

/// The server is down for ten minutes; the player retries with growing, jittered delays, then
/// logs in once the server is back, and its backoff resets.
#[test]
fn reconnect_backs_off_then_resets_after_login() {
    let config = Arc::new(ClientConfig::new(player(1), secret(1)));
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
    let mut rng: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next_random = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let server_up_at = Duration::from_secs(600);
    let mut elapsed = Duration::ZERO;
    let mut delays = Vec::new();
    loop {
        let mut pair = pair(
            (*config).clone(),
            ServerConfig::default(),
            known(&secret(1), true),
        );
        pair.set_link_up(elapsed >= server_up_at);
        pair.settle();
        if pair.a.client.state() == ClientState::Online {
            backoff.reset();
            break;
        }
        // Nothing answers: the client gives up at its login deadline, exactly once.
        while pair.advance() {}
        assert_eq!(
            pair.client_closed(),
            vec![&SessionError::LoginTimeout(10_000)]
        );
        elapsed += Duration::from_secs(10);
        let ceiling = backoff.ceiling();
        let delay = backoff.next_delay(next_random());
        assert!(delay <= ceiling);
        delays.push(delay);
        elapsed += delay;
    }
    assert!(delays.len() >= 8, "{delays:?}");
    assert!(delays.iter().skip(7).all(|d| *d <= Duration::from_secs(60)));
    // Jittered: no two late delays are equal.
    let late: Vec<_> = delays.iter().skip(6).collect();
    assert!(late.windows(2).all(|w| w[0] != w[1]), "{late:?}");
    assert_eq!(backoff.attempts(), 0);
}
