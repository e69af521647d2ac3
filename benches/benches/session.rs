//! One heartbeat round through both session machines, the server's login decision for a known
//! player, a wrong secret and an unknown player side by side (they must cost the same), and the
//! presence registry with 1,000,000 players online.
#![allow(missing_docs, clippy::disallowed_methods)] // a real origin for virtual time

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use fleetwire_session::*;
use std::hint::black_box;

fn logged_in_pair(t0: Instant) -> (Client, ServerConnection) {
    let secret = PlayerSecret::from_bytes([7; 32]);
    let id = PlayerId::from_bytes([1; 16]);
    let mut client = Client::new(
        Arc::new(ClientConfig::new(id, secret.clone())),
        t0,
        ChannelBinding::NONE,
    );
    let mut server = ServerConnection::new(
        Arc::new(ServerConfig::default()),
        t0,
        [9; 32],
        ChannelBinding::NONE,
    );
    let mut buf = Vec::new();
    for _ in 0..3 {
        while client.poll_transmit(&mut buf).is_some() {}
        server.handle_input(t0, &buf).unwrap();
        buf.clear();
        while let Some(e) = server.poll_event() {
            if let ServerEvent::LookupPlayer { .. } = e {
                let known = PlayerLookup::Known {
                    verifier: secret.verifier(),
                    approved: true,
                    config_hash: None,
                };
                server.resolve_player(t0, known).unwrap();
            }
        }
        while server.poll_transmit(&mut buf).is_some() {}
        client.handle_input(t0, &buf).unwrap();
        buf.clear();
        while client.poll_event().is_some() {}
    }
    assert_eq!(client.state(), ClientState::Online);
    client
        .set_status(PlayerStatus {
            content: "lobby-loop".into(),
            free_storage_bytes: 8 << 30,
            versions: "app 2.4.1".into(),
            config_hash: None,
        })
        .unwrap();
    (client, server)
}

fn heartbeat_round(c: &mut Criterion) {
    let t0 = Instant::now();
    let (mut client, mut server) = logged_in_pair(t0);
    let mut buf = Vec::with_capacity(256);
    // Virtual time moves 3 s per round (the default interval is 30 s): the server admits up to
    // 20 heartbeats per interval (the flood limit), so a round at a frozen clock would be a
    // flood after 20 rounds; one every 3 s is half the allowed rate, checked on every round.
    let mut now = t0;
    c.bench_function("heartbeat round (client → server → client)", |b| {
        b.iter(|| {
            now += std::time::Duration::from_secs(3);
            client.heartbeat_now(now).unwrap();
            while client.poll_transmit(&mut buf).is_some() {}
            server.handle_input(now, &buf).unwrap();
            buf.clear();
            while let Some(e) = server.poll_event() {
                black_box(e);
            }
            while server.poll_transmit(&mut buf).is_some() {}
            client.handle_input(now, &buf).unwrap();
            buf.clear();
            while let Some(e) = client.poll_event() {
                black_box(e);
            }
        });
    });
}

/// The bytes a player sends to log in (Hello then Proof) against a server whose nonce is
/// `[9; 32]`, captured from a real client.
fn login_bytes(secret: &PlayerSecret, id: PlayerId) -> Vec<u8> {
    let t0 = Instant::now();
    let mut client = Client::new(
        Arc::new(ClientConfig::new(id, secret.clone())),
        t0,
        ChannelBinding::NONE,
    );
    let mut server = ServerConnection::new(
        Arc::new(ServerConfig::default()),
        t0,
        [9; 32],
        ChannelBinding::NONE,
    );
    let mut sent = Vec::new();
    let mut buf = Vec::new();
    for _ in 0..2 {
        while client.poll_transmit(&mut buf).is_some() {}
        sent.extend_from_slice(&buf);
        server.handle_input(t0, &buf).unwrap();
        buf.clear();
        while server.poll_event().is_some() {}
        while server.poll_transmit(&mut buf).is_some() {}
        client.handle_input(t0, &buf).unwrap();
        buf.clear();
        while client.poll_event().is_some() {}
    }
    sent
}

/// The server's whole login for one connection: Hello, lookup answered, Proof checked, events
/// drained. Known, wrong secret and unknown must cost the same (SECURITY.md, enumeration).
fn login_decision(c: &mut Criterion) {
    let t0 = Instant::now();
    let id = PlayerId::from_bytes([1; 16]);
    let secret = PlayerSecret::from_bytes([7; 32]);
    let bytes = login_bytes(&secret, id);
    let wrong = login_bytes(&PlayerSecret::from_bytes([8; 32]), id);
    let known = PlayerLookup::Known {
        verifier: secret.verifier(),
        approved: true,
        config_hash: None,
    };
    let config = Arc::new(ServerConfig::default());
    let mut group = c.benchmark_group("server login decision");
    group.throughput(Throughput::Elements(1));
    let cases: [(&str, &[u8], PlayerLookup, ServerState); 3] = [
        (
            "known player, right secret",
            &bytes,
            known.clone(),
            ServerState::Online,
        ),
        (
            "known player, wrong secret",
            &wrong,
            known,
            ServerState::Closed,
        ),
        (
            "unknown player",
            &bytes,
            PlayerLookup::Unknown,
            ServerState::Closed,
        ),
    ];
    for (name, input, lookup, end) in cases {
        group.bench_function(name, |b| {
            let mut out = Vec::with_capacity(256);
            b.iter(|| {
                let mut s =
                    ServerConnection::new(config.clone(), t0, [9; 32], ChannelBinding::NONE);
                let _ = s.handle_input(t0, black_box(input));
                while let Some(e) = s.poll_event() {
                    if let ServerEvent::LookupPlayer { .. } = e {
                        s.resolve_player(t0, lookup.clone()).unwrap();
                    }
                }
                while s.poll_transmit(&mut out).is_some() {}
                out.clear();
                assert_eq!(s.state(), end);
                black_box(s.state())
            });
        });
    }
    group.finish();
}

fn ids(n: usize) -> Vec<PlayerId> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            let mut b = [0u8; 16];
            for half in b.chunks_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                half.copy_from_slice(&x.to_le_bytes());
            }
            PlayerId::from_bytes(b)
        })
        .collect()
}

fn presence(c: &mut Criterion) {
    const N: usize = 1_000_000;
    let t0 = Instant::now();
    let players = ids(N);
    let config = PresenceConfig::new(Duration::from_secs(50));
    let mut registry = Presence::new(config, t0);
    for id in &players {
        registry.seen(t0, *id);
    }
    while registry.poll_event().is_some() {}
    let mut group = c.benchmark_group("presence, 1,000,000 online");
    group.throughput(Throughput::Elements(1024));
    let mut i = 0usize;
    let mut now = t0;
    group.bench_function("heartbeat updates (1024 per iteration)", |b| {
        b.iter(|| {
            now += Duration::from_millis(1);
            for _ in 0..1024 {
                i = (i + 7919) % N;
                registry.seen(now, players[i]);
            }
        });
    });
    group.finish();
    // A full silence period swept by the wheel: every player's slot comes due once.
    c.bench_function(
        "presence: sweep 1,000,000 players through one 50 s period",
        |b| {
            b.iter_batched(
                || {
                    let mut r = Presence::new(config, t0);
                    for id in &players {
                        r.seen(t0, *id);
                    }
                    while r.poll_event().is_some() {}
                    r
                },
                |mut r| {
                    r.handle_timeout(t0 + Duration::from_secs(51));
                    let mut n = 0;
                    while r.poll_event().is_some() {
                        n += 1;
                    }
                    assert_eq!(n, N);
                    r
                },
                BatchSize::PerIteration,
            );
        },
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = heartbeat_round, login_decision, presence
}
criterion_main!(benches);
