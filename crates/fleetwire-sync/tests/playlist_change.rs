//! A new playlist reaches every member through the leader and starts, on every screen at the
//! same group time, at the first item boundary at least `switch_margin` ahead.
mod common;
use std::time::Duration;

use common::*;
use fleetwire_sync::*;

#[test]
fn a_newer_playlist_starts_everywhere_at_one_boundary() {
    let mut lan = Lan::new(
        3,
        jittery(Duration::from_micros(200), Duration::from_millis(2)),
        4,
    );
    lan.add(1, 30e-6, Duration::ZERO);
    lan.add(2, -30e-6, Duration::from_secs(1));
    lan.add(3, 0.0, Duration::from_secs(2));
    lan.run_for(Duration::from_secs(30));
    let next = Playlist {
        id: 2,
        items: vec![
            Item {
                id: 900,
                duration_ms: 2500,
            },
            Item {
                id: 901,
                duration_ms: 2500,
            },
        ],
    };
    // Only the leader is told (the followers learn it from the announcement).
    let now = lan.now_of(0);
    lan.screens[0].member.set_playlist(now, next).unwrap();
    lan.run_for(Duration::from_secs(30));
    let firsts: Vec<_> = (0..3)
        .map(|i| *lan.screens[i].shown.iter().find(|s| s.item == 900).unwrap())
        .collect();
    assert!(
        firsts
            .iter()
            .all(|f| f.group_start == firsts[0].group_start)
    );
    let spread = firsts.iter().map(|f| f.true_ns).fold(f64::MIN, f64::max)
        - firsts.iter().map(|f| f.true_ns).fold(f64::MAX, f64::min);
    assert!(spread < 1e6, "{spread}");
    for i in 0..3 {
        assert!(
            lan.screens[i]
                .shown
                .iter()
                .skip_while(|s| s.item < 900)
                .all(|s| s.item >= 900)
        );
    }
    let bad = Playlist {
        id: 3,
        items: vec![],
    };
    assert_eq!(
        lan.screens[0].member.set_playlist(now, bad),
        Err(ApiMisuse::BadPlaylist { items: 0 })
    );
}
