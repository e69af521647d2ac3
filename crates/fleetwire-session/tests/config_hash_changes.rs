//! The heartbeat reply tells the player when its configuration changed.
#![allow(clippy::disallowed_methods)] // tests take a real origin for virtual time
mod common;
use std::time::Duration;

use common::*;
use fleetwire_session::*;

#[test]
fn the_player_hears_of_a_new_configuration_once_and_stops_hearing_after_applying_it() {
    let first = ConfigHash([1; 32]);
    let mut pair = pair(
        ClientConfig::new(player(1), secret(1)),
        ServerConfig::default(),
        PlayerLookup::Known {
            verifier: secret(1).verifier(),
            approved: true,
            config_hash: Some(first),
        },
    );
    pair.settle();
    let changed = |p: &Pair| -> Vec<ConfigHash> {
        p.a.events
            .iter()
            .filter_map(|e| match e {
                ClientEvent::ConfigChanged { hash } => Some(*hash),
                _ => None,
            })
            .collect()
    };
    assert_eq!(changed(&pair), vec![first]);
    pair.run_for(Duration::from_secs(95));
    assert_eq!(
        changed(&pair),
        vec![first],
        "announced once, not every heartbeat"
    );

    // The player applies it; later acks carry no hash (smaller replies).
    pair.a
        .client
        .set_status(PlayerStatus {
            config_hash: Some(first),
            ..PlayerStatus::default()
        })
        .unwrap();
    let bytes_before = pair.a.client.stats().bytes_in;
    pair.run_for(Duration::from_secs(30));
    assert_eq!(pair.a.client.stats().bytes_in - bytes_before, 6 + 2);

    // The operator publishes a new configuration.
    let second = ConfigHash([2; 32]);
    pair.b.server.set_config_hash(Some(second));
    pair.run_for(Duration::from_secs(30));
    assert_eq!(changed(&pair), vec![first, second]);
}

#[test]
fn status_fields_are_bounded() {
    let mut pair = standard();
    pair.settle();
    let long = "x".repeat(65);
    assert_eq!(
        pair.a.client.set_status(PlayerStatus {
            content: long,
            ..PlayerStatus::default()
        }),
        Err(ApiMisuse::TooLong {
            field: "content",
            len: 65,
            max: 64
        })
    );
}
