//! Bounded memory per player: the queue refuses commands beyond its cap with a clear error;
//! cancel stops a command that was not delivered; a delivered one cannot be cancelled; bad
//! specs are refused before anything is queued.
mod common;
use std::time::Duration;

use common::*;
use fleetwire_command::*;
use fleetwire_testkit::LinkConfig;

#[test]
fn the_per_player_cap_holds_and_cancel_works() {
    let config = ServerConfig {
        max_pending_per_player: 5,
        ..ServerConfig::default()
    };
    let mut w = World::new(1, &LinkConfig::perfect(), config, 41);
    w.logout(0);
    let p = w.nodes[0].id;
    let now = w.now();
    let ids: Vec<_> = (0..5)
        .map(|_| {
            w.server
                .send(
                    now,
                    p,
                    CommandSpec::new(Action::Reboot, Duration::from_secs(60)),
                )
                .unwrap()
        })
        .collect();
    let err = w
        .server
        .send(
            now,
            p,
            CommandSpec::new(Action::Reboot, Duration::from_secs(60)),
        )
        .unwrap_err();
    assert_eq!(err, ApiMisuse::QueueFull { player: p, max: 5 });
    assert!(
        err.to_string().contains("already has 5 commands waiting"),
        "{err}"
    );
    w.server.cancel(now, p, ids[0]).unwrap();
    w.flush();
    assert_eq!(w.final_state(ids[0]), Some(CommandState::Cancelled));
    assert_eq!(
        w.server.cancel(now, p, ids[0]),
        Err(ApiMisuse::UnknownCommand { id: ids[0] })
    );
    w.server
        .send(
            now,
            p,
            CommandSpec::new(Action::Reboot, Duration::from_secs(60)),
        )
        .unwrap();
    // Delivered commands cannot be cancelled.
    w.nodes[0].auto_report = None;
    w.login(0);
    assert!(
        w.run_until(Duration::from_secs(5), |w| w.final_state(ids[1])
            == Some(CommandState::Delivered))
    );
    let now = w.now();
    assert_eq!(
        w.server.cancel(now, p, ids[1]),
        Err(ApiMisuse::TooLate {
            id: ids[1],
            state: "delivered"
        })
    );
    assert_eq!(w.runs(0, ids[0]), 0, "the cancelled command never ran");
}

#[test]
fn bad_specs_are_refused() {
    let mut w = World::new(1, &LinkConfig::perfect(), ServerConfig::default(), 42);
    let p = w.nodes[0].id;
    let now = w.now();
    let s = &mut w.server;
    assert!(matches!(
        s.send(now, p, CommandSpec::new(Action::Reboot, Duration::ZERO)),
        Err(ApiMisuse::BadTtl { .. })
    ));
    assert!(matches!(
        s.send(
            now,
            p,
            CommandSpec::new(Action::Reboot, MAX_TTL + Duration::from_secs(1))
        ),
        Err(ApiMisuse::BadTtl { .. })
    ));
    assert_eq!(
        s.send(
            now,
            p,
            CommandSpec::new(Action::SetVolume(101), Duration::from_secs(1))
        ),
        Err(ApiMisuse::BadVolume(101))
    );
    assert!(matches!(
        s.send(
            now,
            p,
            CommandSpec::new(
                Action::Custom(vec![0; MAX_CUSTOM_PAYLOAD + 1]),
                Duration::from_secs(1)
            )
        ),
        Err(ApiMisuse::TooLong { .. })
    ));
    assert!(s.commands(p).is_empty());
    let config = ServerConfig {
        max_players: 1,
        ..ServerConfig::default()
    };
    let mut s = CommandServer::new(std::sync::Arc::new(config), now, 0);
    s.send(
        now,
        player_id(1),
        CommandSpec::new(Action::Reboot, Duration::from_secs(1)),
    )
    .unwrap();
    assert_eq!(
        s.send(
            now,
            player_id(2),
            CommandSpec::new(Action::Reboot, Duration::from_secs(1))
        ),
        Err(ApiMisuse::TooManyPlayers { max: 1 })
    );
}

#[test]
fn a_delivered_command_without_a_result_fails_after_the_result_timeout() {
    let config = ServerConfig {
        result_timeout: Duration::from_secs(30),
        ..ServerConfig::default()
    };
    let mut w = World::new(1, &LinkConfig::perfect(), config, 43);
    w.nodes[0].auto_report = None;
    let id = w.send(0, Action::CollectNow, Duration::from_secs(10));
    w.run_for(Duration::from_secs(60));
    assert_eq!(
        w.states(id),
        vec![
            CommandState::Sent,
            CommandState::Delivered,
            CommandState::Failed(Failure::NoResult)
        ]
    );
    let now = w.now();
    assert_eq!(
        w.nodes[0]
            .machine
            .report(now, CommandId(999), Outcome::Succeeded),
        Err(ApiMisuse::UnknownCommand { id: CommandId(999) })
    );
}
