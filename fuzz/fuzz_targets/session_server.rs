#![no_main]
//! The server session machine driven by a program read from the input, beside a real player
//! (`Client`) that holds the secret: the harness forwards the player's bytes when the input asks
//! (so a valid proof for the server's nonce reaches the server and the session logs in), answers
//! the lookup as the input says (known or not, approved or not, the right verifier or another),
//! and mixes in forged messages, arbitrary frames, raw bytes, clock jumps, configuration-hash
//! changes and closes. Every byte stream is fed in pieces cut at many points (sizes from the
//! input).
//!
//! Checked: no panic; at most one `Closed`, nothing after it, no timer once closed; `LoggedIn`
//! only for the player whose secret signed, after a lookup that was known, approved and held
//! its verifier; heartbeats only after login; a heartbeat acknowledgement carries the server's
//! current configuration hash or none.
//!
//! Program: `[split count][split sizes…]` then operations, one byte each (mod 13) with their
//! operands; see `Op` below. Past the end of the input every read is 0.
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleetwire_session::*;
use fleetwire_wire::FrameDecoder;
use libfuzzer_sys::fuzz_target;

#[path = "common/coverage.rs"]
mod coverage;
#[path = "common/ops.rs"]
mod ops;

use ops::{Ops, Splitter};

const HASHES: [ConfigHash; 3] = [ConfigHash([0xa1; 32]), ConfigHash([0xb2; 32]), ConfigHash([0xc3; 32])];

fn hash(sel: u8) -> Option<ConfigHash> {
    (sel % 4 != 0).then(|| HASHES[usize::from(sel % 4) - 1])
}

/// What the harness knows of the server's state from the calls it made.
#[derive(Default)]
struct Model {
    /// The last lookup the server accepted: (known, approved, right verifier).
    lookup: Option<(bool, bool, bool)>,
    /// The hash the server should announce.
    hash: Option<ConfigHash>,
    logged_in: bool,
    closed: u32,
}

fuzz_target!(|data: &[u8]| {
    let mut ops = Ops::new(data);
    let mut split = Splitter::read(&mut ops);
    #[allow(clippy::disallowed_methods)]
    let mut now = Instant::now();
    let binding = ChannelBinding([0x42; 32]);
    let id = PlayerId::from_bytes([1; 16]);
    let other_id = PlayerId::from_bytes([2; 16]);
    let secret = PlayerSecret::from_bytes([3; 32]);
    let other_secret = PlayerSecret::from_bytes([4; 32]);
    // Signs proofs for `id` whose verifier the server is never given.
    let stranger = PlayerSecret::from_bytes([5; 32]);
    let mut client = Client::new(Arc::new(ClientConfig::new(id, secret.clone())), now, binding);
    let config = ServerConfig::default();
    let mut s = ServerConnection::new(Arc::new(config), now, [7; 32], binding);
    let mut m = Model::default();
    let mut out = Vec::new();
    let mut steps = 0;
    while !ops.is_empty() && steps < 512 {
        steps += 1;
        let mut to_server = Vec::new();
        match ops.u8() % 13 {
            // The player's queued bytes (Hello, then the Proof once it saw the challenge,
            // heartbeats, a close).
            0 => while client.poll_transmit(&mut to_server).is_some() {},
            // The player sends a heartbeat now, with a status from the input.
            1 => {
                let status = PlayerStatus {
                    content: ops.text(MAX_TEXT_LEN),
                    free_storage_bytes: u64::from(ops.u8()) << 30,
                    versions: ops.text(MAX_TEXT_LEN),
                    config_hash: hash(ops.u8()),
                };
                let _ = client.set_status(status);
                let _ = client.heartbeat_now(now);
                while client.poll_transmit(&mut to_server).is_some() {}
            }
            // A Hello the harness writes (this player or another).
            2 => {
                let player_id = if ops.u8() & 1 == 0 { id } else { other_id };
                Message::Hello { player_id, software: ops.text(MAX_TEXT_LEN) }.encode_frame(&mut to_server);
            }
            // A proof: forged bytes, or signed (for this player's id) by a secret whose verifier
            // the server never gets.
            3 => {
                if ops.u8() & 1 == 0 {
                    let signature: [u8; 64] = std::array::from_fn(|_| ops.u8());
                    Message::Proof { signature }.encode_frame(&mut to_server);
                } else {
                    to_server = proof_from(&stranger, id, now, binding);
                }
            }
            // A heartbeat the harness writes (any sequence number, before or after login).
            4 => {
                let status = PlayerStatus { content: ops.text(MAX_TEXT_LEN), config_hash: hash(ops.u8()), ..PlayerStatus::default() };
                Message::Heartbeat { seq: ops.u64(), status }.encode_frame(&mut to_server);
            }
            // A frame with any version, type and body.
            5 => {
                let (version, msg_type) = (ops.u8(), ops.u8());
                fleetwire_wire::encode_frame(&mut to_server, version, msg_type, ops.blob());
            }
            // Raw bytes.
            6 => to_server.extend_from_slice(ops.blob()),
            // Time passes.
            7 => {
                now += Duration::from_millis(u64::from(ops.u16()) * 10);
                s.handle_timeout(now);
                client.handle_timeout(now);
            }
            // The lookup answer.
            8 => {
                let bits = ops.u8();
                let (known, approved, right) = (bits & 1 != 0, bits & 2 != 0, bits & 4 != 0);
                let config_hash = hash(bits >> 3);
                let lookup = if known {
                    let verifier = if right { secret.verifier() } else { other_secret.verifier() };
                    PlayerLookup::Known { verifier, approved, config_hash }
                } else {
                    PlayerLookup::Unknown
                };
                if s.resolve_player(now, lookup).is_ok() {
                    m.lookup = Some((known, approved, right));
                    if known {
                        m.hash = config_hash;
                    }
                }
            }
            9 => {
                m.hash = hash(ops.u8());
                s.set_config_hash(m.hash);
            }
            10 => {
                let _ = s.close(now, CloseCode::from_byte(ops.u8()), "bye");
            }
            11 => s.handle_close(now),
            _ => {
                let _ = client.close(now, "player closing");
                while client.poll_transmit(&mut to_server).is_some() {}
            }
        }
        split.feed(&to_server, |piece| {
            if let Err(e) = s.handle_input(now, piece) {
                coverage::note(|| format!("input-err:{}", coverage::kind(&e)));
            }
        });
        out.clear();
        while s.poll_transmit(&mut out).is_some() {}
        check_sent(&out, &m);
        // The player hears the server (its own errors are not under test here).
        split.feed(&out, |piece| {
            let _ = client.handle_input(now, piece);
        });
        while client.poll_event().is_some() {}
        coverage::note(|| format!("state:{:?}", s.state()));
        while let Some(e) = s.poll_event() {
            assert_eq!(m.closed, 0, "event after Closed: {e:?}");
            coverage::note(|| match &e {
                ServerEvent::Closed { reason } => format!("closed:{}", coverage::kind(reason)),
                e => format!("event:{}", coverage::kind(e)),
            });
            match e {
                ServerEvent::LoggedIn { player_id } => {
                    assert_eq!(player_id, id, "logged in as a player whose secret nobody holds");
                    assert_eq!(m.lookup, Some((true, true, true)), "logged in without a known, approved, matching verifier");
                    m.logged_in = true;
                }
                ServerEvent::Heartbeat { .. } => assert!(m.logged_in, "heartbeat event before login"),
                ServerEvent::Closed { .. } => m.closed += 1,
                _ => {}
            }
        }
        if s.state() == ServerState::Closed {
            assert_eq!(s.poll_timeout(), None);
        }
    }
});

/// The Hello and Proof a player holding `secret` sends, claiming `id`, to a server with this
/// harness's nonce.
fn proof_from(secret: &PlayerSecret, id: PlayerId, now: Instant, binding: ChannelBinding) -> Vec<u8> {
    let mut c = Client::new(Arc::new(ClientConfig::new(id, secret.clone())), now, binding);
    let mut out = Vec::new();
    while c.poll_transmit(&mut out).is_some() {}
    out.clear();
    let mut challenge = Vec::new();
    Message::Challenge { nonce: [7; 32] }.encode_frame(&mut challenge);
    let _ = c.handle_input(now, &challenge);
    while c.poll_transmit(&mut out).is_some() {}
    out
}

/// Checks and counts what the server sent.
fn check_sent(out: &[u8], m: &Model) {
    let mut decoder = FrameDecoder::new(1 << 16);
    let mut input = out;
    while !input.is_empty() {
        // INVARIANT: the server writes whole, valid frames.
        let (used, frame) = decoder.decode(input).expect("server sent a bad frame");
        input = &input[used..];
        let Some(f) = frame else { continue };
        let msg = Message::decode(f.msg_type, f.body).expect("server sent an undecodable message");
        coverage::note(|| match &msg {
            Message::HeartbeatAck { config_hash: Some(_), .. } => "sent:HeartbeatAck+hash".into(),
            m => format!("sent:{}", coverage::kind(m)),
        });
        if let Message::HeartbeatAck { config_hash: Some(h), .. } = msg {
            assert_eq!(Some(h), m.hash, "acknowledgement announced a hash the server was not given");
        }
    }
}
