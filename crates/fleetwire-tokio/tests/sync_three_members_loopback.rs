//! Three sync members on 127.0.0.1 (ephemeral ports, one process): they elect the lowest id,
//! synchronize, and play the same items from the same group instants; then the leader stops
//! and the next lowest takes over and the timeline goes on. Bounded in time; the measured
//! spread is printed, not asserted (real timing on a shared machine).
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use fleetwire_session::PlayerId;
use fleetwire_sync::*;
use fleetwire_tokio::sync::*;
use tokio::sync::mpsc;

async fn members(n: u8) -> Vec<(MemberHandle, MemberTask, mpsc::Receiver<MemberEvent>)> {
    let mut sockets = Vec::new();
    for _ in 0..n {
        sockets.push(
            SyncSockets::bind(
                "127.0.0.1:0".parse().unwrap(),
                "127.0.0.1:0".parse().unwrap(),
            )
            .await
            .unwrap(),
        );
    }
    let announce: Vec<_> = sockets.iter().map(|s| s.timeline_addr().unwrap()).collect();
    let mut out = Vec::new();
    for (i, s) in sockets.into_iter().enumerate() {
        let mut config = SyncConfig::new(
            GroupId(9),
            PlayerId::from_bytes([i as u8 + 1; 16]),
            announce.clone(),
        );
        config.lead_time = Duration::from_millis(200);
        out.push(MemberTask::new(s, config, GroupKey::new(1, [6; 32]), None).unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_elect_sync_play_and_fail_over() {
    // Every await below is inside this bound (a handle call to a task that is not running
    // would otherwise wait for ever).
    tokio::time::timeout(Duration::from_secs(150), scenario())
        .await
        .expect("the scenario did not finish within 150 s");
}

async fn scenario() {
    let playlist = Playlist {
        id: 1,
        items: vec![
            Item {
                id: 1,
                duration_ms: 700,
            },
            Item {
                id: 2,
                duration_ms: 500,
            },
        ],
    };
    let mut handles = Vec::new();
    let mut events = Vec::new();
    let mut stops = Vec::new();
    for (h, task, ev) in members(3).await {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(task.run(async move {
            let _ = stopped.await;
        }));
        h.set_playlist(playlist.clone()).await.unwrap();
        handles.push(h);
        events.push(ev);
        stops.push(stop);
    }
    // group start → (member, local start instant)
    let mut plays: BTreeMap<u64, Vec<(usize, Instant)>> = BTreeMap::new();
    let collect = |events: &mut Vec<mpsc::Receiver<MemberEvent>>,
                   plays: &mut BTreeMap<u64, Vec<(usize, Instant)>>| {
        for (i, rx) in events.iter_mut().enumerate() {
            while let Ok(ev) = rx.try_recv() {
                if let MemberEvent::Sync(SyncEvent::Play { start, at, .. }) = ev {
                    plays.entry(start).or_default().push((i, at));
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            collect(&mut events, &mut plays);
            if plays.values().filter(|v| v.len() == 3).count() >= 4 {
                break;
            }
        }
    })
    .await
    .expect("three members did not play together within 60 s");
    for h in &handles {
        let s = h.status().await.unwrap();
        assert_eq!(s.leader, Some(PlayerId::from_bytes([1; 16])));
        assert!(s.clock.is_some());
    }
    let spreads: Vec<f64> = plays
        .values()
        .filter(|v| v.len() == 3)
        .map(|v| {
            let min = v.iter().map(|x| x.1).min().unwrap();
            let max = v.iter().map(|x| x.1).max().unwrap();
            (max - min).as_secs_f64() * 1e3
        })
        .collect();
    eprintln!("loopback start spread per item (ms): {spreads:?}");

    // The leader stops; member 2 takes over and all survivors keep playing one timeline.
    drop(stops.remove(0));
    let before = plays.keys().next_back().copied().unwrap();
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            collect(&mut events, &mut plays);
            let after = plays
                .range(before + 1..)
                .filter(|(_, v)| v.iter().filter(|x| x.0 > 0).count() == 2)
                .count();
            let leaders_ok = {
                let a = handles[1].status().await.unwrap();
                let b = handles[2].status().await.unwrap();
                a.leader == Some(PlayerId::from_bytes([2; 16]))
                    && b.leader == a.leader
                    && a.role == Role::Leader
            };
            if after >= 3 && leaders_ok {
                break;
            }
        }
    })
    .await
    .expect("no takeover with continued playback within 60 s");
}
