#![no_main]
//! The server's command machine fed arbitrary steps: commands queued and cancelled, players
//! coming and going, raw and correctly sealed datagrams from right and wrong addresses,
//! session input, route policies and clock jumps. It never panics, never answers a datagram
//! with a larger one, never holds more than the per-player cap, and reports every terminal
//! state of a command at most once.
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arbitrary::Arbitrary;
use fleetwire_command::wire::{Header, seal};
use fleetwire_command::*;
use fleetwire_session::{ChannelBinding, PlayerId};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Step {
    Send { player: u8, action: u8, ttl_s: u16, priority: u8 },
    Cancel { player: u8, id: u8 },
    Online { player: u8, login: u8 },
    Offline(u8),
    Policy { player: u8, policy: u8 },
    Raw { player: u8, bytes: Vec<u8>, wrong_ip: bool },
    Sealed { player: u8, seq: u16, plaintext: Vec<u8>, session: bool, wrong_ip: bool },
    Advance(u16),
    Back(u16),
}

fn pid(n: u8) -> PlayerId {
    PlayerId::from_bytes([n % 4; 16])
}

fn key(n: u8, login: u8) -> CommandKey {
    CommandKey::derive(&ChannelBinding([9; 32]), &[login; 32], &pid(n))
}

fn addr(n: u8, wrong: bool) -> SocketAddr {
    SocketAddr::from(([10, 0, if wrong { 99 } else { 0 }, n % 4 + 1], 4700))
}

fuzz_target!(|steps: Vec<Step>| {
    let config = ServerConfig { max_pending_per_player: 4, ..ServerConfig::default() };
    let mut now = UnixTime::from_secs(1_700_000_000);
    let mut s = CommandServer::new(Arc::new(config), now, 7);
    let mut logins = [0u8; 4];
    let mut terminal = HashSet::new();
    let mut buf = Vec::new();
    for step in steps {
        let mut input_len = None;
        match step {
            Step::Send { player, action, ttl_s, priority } => {
                let action = match action % 9 {
                    0 => Action::Reboot,
                    1 => Action::RefreshContent,
                    2 => Action::CollectNow,
                    3 => Action::Screenshot,
                    4 => Action::SetVolume(action),
                    5 => Action::Display(action % 2 == 0),
                    6 => Action::PurgeCache,
                    _ => Action::Custom(vec![action; usize::from(action)]),
                };
                let spec = CommandSpec { action, ttl: Duration::from_secs(u64::from(ttl_s)), priority: Priority(priority) };
                let _ = s.send(now, pid(player), spec);
            }
            Step::Cancel { player, id } => {
                let _ = s.cancel(now, pid(player), CommandId(u64::from(id)));
            }
            Step::Online { player, login } => {
                logins[usize::from(player % 4)] = login;
                let _ = s.player_online(now, pid(player), key(player, login), addr(player, false));
            }
            Step::Offline(player) => s.player_offline(now, pid(player)),
            Step::Policy { player, policy } => {
                let policy = [RoutePolicy::Auto, RoutePolicy::SessionOnly, RoutePolicy::UdpOnly][usize::from(policy % 3)];
                let _ = s.set_route_policy(now, pid(player), policy);
            }
            Step::Raw { player, bytes, wrong_ip } => {
                input_len = Some(bytes.len());
                let _ = s.handle_input(now, addr(player, wrong_ip), &bytes);
            }
            Step::Sealed { player, seq, plaintext, session, wrong_ip } => {
                let k = key(player, logins[usize::from(player % 4)]);
                let mut d = Vec::new();
                seal(&k, Header { direction: Direction::ToServer, key_id: k.id(), seq: u64::from(seq) }, &plaintext, &mut d);
                input_len = Some(d.len());
                let _ = if session {
                    s.handle_session_input(now, pid(player), &d)
                } else {
                    s.handle_input(now, addr(player, wrong_ip), &d)
                };
            }
            Step::Advance(ms) => {
                now = now.plus_millis(u64::from(ms) * 100);
                s.handle_timeout(now);
            }
            Step::Back(ms) => {
                now = UnixTime::from_millis(now.as_millis().saturating_sub(u64::from(ms)));
                s.handle_timeout(now);
            }
        }
        while let Some(t) = s.poll_transmit(&mut buf) {
            if let Some(n) = input_len {
                assert!(t.transmit.len <= n, "{n}-byte datagram answered with {}", t.transmit.len);
            }
            assert!(t.transmit.len <= MAX_DATAGRAM_LEN);
            buf.clear();
        }
        while let Some(e) = s.poll_event() {
            if let ServerEvent::StateChanged { id, state, .. } = e {
                if state.is_terminal() {
                    assert!(terminal.insert(id), "{id} ended twice");
                }
            }
        }
        for n in 0..4 {
            assert!(s.commands(pid(n)).len() <= 4);
        }
    }
});
