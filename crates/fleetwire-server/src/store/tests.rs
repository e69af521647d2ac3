//! The repository tests: each runs the same assertions against SQLite and PostgreSQL.

use fleetwire_auth::UnixTime;
use fleetwire_auth::audit::AuditEvent;
use fleetwire_session::{PlayerId, PlayerLookup, PlayerSecret, PlayerStatus};

use super::audit::{SecurityEvent, Verified};
use super::players::{NewPlayer, Seen, Transition};
use super::testing::backends;

fn new_player(n: u8, approved: bool) -> NewPlayer {
    NewPlayer {
        id: PlayerId::from_bytes([n; 16]),
        verifier: PlayerSecret::from_bytes([n; 32]).verifier(),
        name: format!("p{n}"),
        approved,
    }
}

#[tokio::test]
async fn players_are_provisioned_looked_up_approved_and_removed() {
    for (kind, store) in backends("players").await {
        let players = store.players();
        players
            .add(vec![new_player(1, true), new_player(2, false)], 100)
            .await
            .unwrap();
        // A duplicate id fails the whole batch.
        assert!(
            players
                .add(vec![new_player(3, true), new_player(1, true)], 101)
                .await
                .is_err(),
            "{kind}"
        );
        let list = players.list(100).await.unwrap();
        assert_eq!(list.len(), 2, "{kind}: the failed batch added nothing");
        assert_eq!(list[0].name, "p1");
        match players.lookup(PlayerId::from_bytes([1; 16])).await.unwrap() {
            PlayerLookup::Known {
                verifier,
                approved,
                config_hash,
            } => {
                assert_eq!(
                    verifier,
                    PlayerSecret::from_bytes([1; 32]).verifier(),
                    "{kind}"
                );
                assert!(approved);
                assert_eq!(config_hash, None);
            }
            PlayerLookup::Unknown => panic!("{kind}: player 1 unknown"),
        }
        assert_eq!(
            players.lookup(PlayerId::from_bytes([9; 16])).await.unwrap(),
            PlayerLookup::Unknown
        );
        let two = PlayerId::from_bytes([2; 16]);
        assert_eq!(
            players
                .revoked_among(vec![PlayerId::from_bytes([1; 16]), two])
                .await
                .unwrap(),
            vec![two],
            "{kind}"
        );
        assert!(players.approve(two).await.unwrap());
        assert!(
            !players
                .approve(PlayerId::from_bytes([9; 16]))
                .await
                .unwrap()
        );
        assert!(
            players.revoked_among(vec![two]).await.unwrap().is_empty(),
            "{kind}"
        );
        assert!(players.remove(two).await.unwrap());
        assert_eq!(
            players.revoked_among(vec![two]).await.unwrap(),
            vec![two],
            "{kind}: removed counts as revoked"
        );
    }
}

#[tokio::test]
async fn presence_belongs_to_a_live_node_and_an_old_node_cannot_take_a_moved_player_offline() {
    for (kind, store) in backends("presence").await {
        let players = store.players();
        players
            .add(vec![new_player(1, true), new_player(2, true)], 100)
            .await
            .unwrap();
        let (a, b) = (PlayerId::from_bytes([1; 16]), PlayerId::from_bytes([2; 16]));
        players.node_alive("A".into(), 1000).await.unwrap();
        players.node_alive("B".into(), 1000).await.unwrap();
        let status = PlayerStatus {
            content: "menu\u{1b}".into(),
            ..PlayerStatus::default()
        };
        players
            .record_presence(
                "A".into(),
                vec![Transition {
                    id: a,
                    online: true,
                }],
                vec![Seen {
                    id: a,
                    at: 1000,
                    status,
                }],
            )
            .await
            .unwrap();
        players
            .record_presence(
                "B".into(),
                vec![Transition {
                    id: b,
                    online: true,
                }],
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(players.online_count(1000).await.unwrap(), 2, "{kind}");
        let list = players.list(1000).await.unwrap();
        assert_eq!(
            list[0].content.as_deref(),
            Some("menu\u{1b}"),
            "{kind}: stored as sent, escaped when printed"
        );
        assert_eq!(list[0].last_seen, Some(1000));
        // Player 1 moves to node B; node A's late offline must not undo that.
        players
            .record_presence(
                "B".into(),
                vec![Transition {
                    id: a,
                    online: true,
                }],
                vec![],
            )
            .await
            .unwrap();
        players
            .record_presence(
                "A".into(),
                vec![Transition {
                    id: a,
                    online: false,
                }],
                vec![],
            )
            .await
            .unwrap();
        assert!(players.list(1000).await.unwrap()[0].online, "{kind}");
        // Node B stops refreshing: its players count as offline once it is stale.
        assert_eq!(
            players
                .online_count(1000 + super::players::NODE_TIMEOUT_SECS + 1)
                .await
                .unwrap(),
            0,
            "{kind}"
        );
        // Node B comes back and then leaves cleanly.
        players.node_alive("B".into(), 2000).await.unwrap();
        assert_eq!(players.online_count(2000).await.unwrap(), 2, "{kind}");
        players.node_gone("B".into()).await.unwrap();
        assert_eq!(players.online_count(2000).await.unwrap(), 0, "{kind}");
    }
}

#[tokio::test]
async fn the_audit_chain_links_device_events_and_account_decisions_and_detects_an_edit() {
    for (kind, store) in backends("audit").await {
        let audit = store.audit();
        assert_eq!(
            audit.verify().await.unwrap(),
            Verified::Intact {
                entries: 0,
                head: "0".repeat(64)
            }
        );
        audit
            .record(vec![SecurityEvent {
                at: 5,
                kind: "login",
                player: Some(PlayerId::from_bytes([1; 16])),
                peer: Some("192.0.2.1:1".into()),
                detail: String::new(),
            }])
            .await
            .unwrap();
        audit
            .append(vec![(
                UnixTime::from_millis(6000),
                AuditEvent::ResetRequested { user: "u_1".into() },
            )])
            .await
            .unwrap();
        let Verified::Intact { entries, .. } = audit.verify().await.unwrap() else {
            panic!("{kind}: chain broken")
        };
        assert_eq!(entries, 2);
        let tail = audit.tail(1).await.unwrap();
        assert_eq!(tail.len(), 1);
        assert_eq!(tail[0].seq, 1);
        assert!(
            tail[0].event_json.contains("reset_requested"),
            "{kind}: {}",
            tail[0].event_json
        );
        // An edited entry is found.
        let edit = "UPDATE auth_audit SET event = REPLACE(event, 'u_1', 'u_2') WHERE seq = 1";
        match kind {
            "sqlite" => store
                .sqlite(move |c| c.execute(edit, []))
                .await
                .map(|_| ())
                .unwrap(),
            _ => store
                .postgres()
                .await
                .unwrap()
                .execute(edit, &[])
                .await
                .map(|_| ())
                .unwrap(),
        }
        assert!(
            matches!(audit.verify().await.unwrap(), Verified::Broken(_)),
            "{kind}"
        );
    }
}

#[tokio::test]
async fn several_writers_keep_one_chain() {
    for (kind, store) in backends("audit_writers").await {
        let mut tasks = Vec::new();
        for w in 0..4u8 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..10u8 {
                    store
                        .audit()
                        .append(vec![(
                            UnixTime::from_millis(u64::from(i)),
                            AuditEvent::ResetRequested {
                                user: format!("u_{w}_{i}"),
                            },
                        )])
                        .await
                        .unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert!(
            matches!(
                store.audit().verify().await.unwrap(),
                Verified::Intact { entries: 40, .. }
            ),
            "{kind}"
        );
    }
}

#[tokio::test]
async fn nodes_racing_for_a_new_key_all_get_the_first_one() {
    for (kind, store) in backends("keys").await {
        if kind == "sqlite" {
            // One node: its keys are files in the data directory.
            assert!(store.keys().get_or_insert("k", vec![1]).await.is_err());
            continue;
        }
        let mut tasks = Vec::new();
        for n in 0..8u8 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .keys()
                    .get_or_insert("content.key", vec![n; 32])
                    .await
                    .unwrap()
            }));
        }
        let mut seen = std::collections::HashSet::new();
        for t in tasks {
            seen.insert(t.await.unwrap());
        }
        assert_eq!(seen.len(), 1, "{kind}: every node holds the same key");
    }
}
