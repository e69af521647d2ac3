//! The content repository's tests: each runs the same assertions against SQLite and PostgreSQL
//! (the file pieces and the nonces, which only PostgreSQL keeps, on PostgreSQL).

use fleetwire_session::{PlayerId, PlayerLookup, PlayerSecret};

use super::{Admission, Assignee, BytesSent, NewItem, Nonce, config_hash};
use crate::store::Store;
use crate::store::players::NewPlayer;
use crate::store::testing::backends;

fn player(n: u8) -> PlayerId {
    PlayerId::from_bytes([n; 16])
}

async fn add_players(store: &Store, ids: &[u8]) {
    let players = ids
        .iter()
        .map(|&n| NewPlayer {
            id: player(n),
            verifier: PlayerSecret::from_bytes([n; 32]).verifier(),
            name: format!("p{n}"),
            approved: true,
        })
        .collect();
    store.players().add(players, 100).await.unwrap();
}

fn item(id: i64, to: Assignee) -> NewItem {
    NewItem {
        id,
        name: format!("file-{id}"),
        sha256: format!("{id:064x}"),
        length: 1000 + id,
        manifest: vec![u8::try_from(id).unwrap(); 40],
        added_at: 500 + id,
        to,
    }
}

async fn stored_hash(store: &Store, p: PlayerId) -> Option<[u8; 32]> {
    match store.players().lookup(p).await.unwrap() {
        PlayerLookup::Known { config_hash, .. } => config_hash.map(|h| h.0),
        PlayerLookup::Unknown => panic!("player {p} unknown"),
    }
}

#[tokio::test]
async fn items_are_published_assigned_and_hashed_the_same_on_both_backends() {
    for (kind, store) in backends("content_items").await {
        add_players(&store, &[1, 2]).await;
        let content = store.content();
        let first = content.reserve_id().await.unwrap();
        content.publish(item(first, Assignee::All)).await.unwrap();
        let second = content.reserve_id().await.unwrap();
        assert!(second > first, "{kind}: ids grow");
        content
            .publish(item(second, Assignee::Player(player(1))))
            .await
            .unwrap();

        // Player 1 holds both, player 2 only the one for everyone; others see nothing.
        let ids = |items: Vec<super::Item>| items.iter().map(|i| i.id).collect::<Vec<_>>();
        assert_eq!(
            ids(content.for_player(player(1)).await.unwrap()),
            [first, second],
            "{kind}"
        );
        assert_eq!(
            ids(content.for_player(player(2)).await.unwrap()),
            [first],
            "{kind}"
        );
        assert!(content.find_for(player(2), second).await.unwrap().is_none());
        let served = content.find_for(player(1), second).await.unwrap().unwrap();
        assert_eq!(served.sha256, format!("{second:064x}"), "{kind}");
        assert_eq!(served.length, 1000 + second);
        assert_eq!(served.manifest, item(second, Assignee::All).manifest);
        assert_eq!(content.served_to(player(1)).await.unwrap().len(), 2);
        assert_eq!(
            ids(content.newer_than(first).await.unwrap()),
            [second],
            "{kind}"
        );

        // `content list`: every item with its assignments.
        let list = content.list().await.unwrap();
        assert_eq!(list.len(), 2, "{kind}");
        assert_eq!(list[0].to, [Assignee::All], "{kind}");
        assert_eq!(list[1].to, [Assignee::Player(player(1))], "{kind}");
        assert_eq!(list[1].item.name, format!("file-{second}"));

        // The stored hashes are the documented digest (PostgreSQL computes it in SQL).
        let m1 = item(first, Assignee::All).manifest;
        let m2 = item(second, Assignee::All).manifest;
        let both = config_hash([(first, &m1[..]), (second, &m2[..])]);
        let only_first = config_hash([(first, &m1[..])]);
        assert_eq!(stored_hash(&store, player(1)).await, Some(both), "{kind}");
        assert_eq!(
            stored_hash(&store, player(2)).await,
            Some(only_first),
            "{kind}"
        );
        let hashes = content
            .config_hashes(vec![player(1), player(2), player(9)])
            .await
            .unwrap();
        assert_eq!(hashes.len(), 2, "{kind}: an unknown player has none");
        assert!(
            hashes
                .iter()
                .any(|h| h.player == player(1) && h.hash == both)
        );

        // An id taken meanwhile fails the publish and changes nothing.
        assert!(
            content.publish(item(first, Assignee::All)).await.is_err(),
            "{kind}"
        );
        assert_eq!(content.list().await.unwrap().len(), 2, "{kind}");
    }
}

#[tokio::test]
async fn bytes_sent_add_up_per_player() {
    for (kind, store) in backends("content_sent").await {
        let content = store.content();
        let sent = |n: u8, bytes: u64| BytesSent {
            player: player(n),
            bytes,
        };
        content
            .add_sent(vec![sent(1, 10), sent(2, 5)])
            .await
            .unwrap();
        content.add_sent(vec![sent(1, 7)]).await.unwrap();
        content.add_sent(Vec::new()).await.unwrap();
        // Two "nodes" flushing at once lose nothing.
        let (a, b) = (store.clone(), store.clone());
        let (ra, rb) = tokio::join!(
            async move { a.content().add_sent(vec![sent(2, 100)]).await },
            async move { b.content().add_sent(vec![sent(2, 1000)]).await },
        );
        ra.unwrap();
        rb.unwrap();
        assert_eq!(
            content.sent().await.unwrap(),
            [sent(1, 17), sent(2, 1105)],
            "{kind}"
        );
    }
}

#[tokio::test]
async fn file_pieces_are_shared_through_the_store() {
    for (kind, store) in backends("content_pieces").await {
        let content = store.content();
        if !content.is_shared() {
            assert_eq!(kind, "sqlite");
            continue; // the one node's disk is the only copy
        }
        let sha = "ab".repeat(32);
        content.put_piece(&sha, 0, b"hello ").await.unwrap();
        content.put_piece(&sha, 6, b"world").await.unwrap();
        // A piece already there is kept.
        content.put_piece(&sha, 0, b"HELLO ").await.unwrap();
        assert_eq!(
            content.piece(&sha, 0).await.unwrap().as_deref(),
            Some(&b"hello "[..])
        );
        assert_eq!(
            content.piece(&sha, 6).await.unwrap().as_deref(),
            Some(&b"world"[..])
        );
        assert_eq!(content.piece(&sha, 11).await.unwrap(), None);
    }
}

#[tokio::test]
async fn a_nonce_is_admitted_once_on_every_node_until_it_expires() {
    for (kind, store) in backends("content_nonces").await {
        if !store.content().is_shared() {
            assert_eq!(kind, "sqlite");
            continue; // one node: the service keeps them in memory (service::content tests)
        }
        // A second handle on the same database stands for a second node.
        let other = store.clone();
        let nonce = |p: u8, n: u8, expires: i64| Nonce {
            player: player(p),
            value: [n; 16],
            expires,
        };
        let a = store.content();
        let b = other.content();
        assert_eq!(
            a.admit_nonce(nonce(1, 1, 1300), 1000, 3).await.unwrap(),
            Admission::Fresh
        );
        assert_eq!(
            b.admit_nonce(nonce(1, 1, 1300), 1001, 3).await.unwrap(),
            Admission::Replayed,
            "accepted on one node, refused on the other"
        );
        // The key is (player, nonce).
        assert_eq!(
            b.admit_nonce(nonce(2, 1, 1300), 1001, 3).await.unwrap(),
            Admission::Fresh
        );
        // Bounded per player: two more fit, the fourth does not; others are not affected.
        for n in 2..4 {
            assert_eq!(
                a.admit_nonce(nonce(1, n, 1300), 1002, 3).await.unwrap(),
                Admission::Fresh
            );
        }
        assert_eq!(
            b.admit_nonce(nonce(1, 9, 1300), 1002, 3).await.unwrap(),
            Admission::Full
        );
        assert_eq!(
            b.admit_nonce(nonce(3, 9, 1300), 1002, 3).await.unwrap(),
            Admission::Fresh
        );
        // Expired ones no longer count and leave at the purge.
        assert_eq!(
            a.admit_nonce(nonce(1, 9, 1700), 1301, 3).await.unwrap(),
            Admission::Fresh
        );
        assert_eq!(a.purge_nonces(1301).await.unwrap(), 5, "{kind}");
        assert_eq!(
            a.admit_nonce(nonce(1, 9, 1700), 1302, 3).await.unwrap(),
            Admission::Replayed
        );
        // Many nodes racing with the same nonce: exactly one admits it.
        let mut racers = Vec::new();
        for _ in 0..8 {
            let s = store.clone();
            racers.push(tokio::spawn(async move {
                s.content()
                    .admit_nonce(nonce(5, 5, 2000), 1500, 100)
                    .await
                    .unwrap()
            }));
        }
        let mut fresh = 0;
        for r in racers {
            match r.await.unwrap() {
                Admission::Fresh => fresh += 1,
                Admission::Replayed => {}
                Admission::Full => panic!("{kind}: a race is not a full cache"),
            }
        }
        assert_eq!(fresh, 1, "{kind}");
    }
}
