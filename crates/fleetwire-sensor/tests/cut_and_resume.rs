//! The connection is cut at 10,000 random byte positions of an upload (uplink and downlink
//! bytes both count), then the logger wakes again and resumes. Every reading ends up stored
//! exactly once, nothing is lost, and the logger's memory ends empty.

mod common;

use common::{Link, Memory, Store, connect, temperature};
use fleetwire_sensor::{Channel, CloseReason, LoggerId};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A logged slot: its sequence number and its values (`None` = lost).
type Slot = (u64, Option<Vec<Option<i32>>>);

/// A logger holding `count` new slots from `first` on (everything before was acknowledged
/// earlier); returns its memory, the store's starting point and what it logged.
fn scenario(rng: &mut ChaCha8Rng) -> (Memory, u64, Vec<Slot>) {
    let channels = if rng.gen_bool(0.5) {
        vec![Channel::TEMPERATURE_DECI_C]
    } else {
        vec![Channel::TEMPERATURE_DECI_C, Channel::HUMIDITY_DECI_PCT]
    };
    let first = rng.gen_range(0..10_000u64);
    let mut mem = Memory::starting_at(
        LoggerId(rng.gen_range(1..1_000_000)),
        channels.clone(),
        first,
    );
    mem.batch_slots = rng.gen_range(20..120);
    let count = rng.gen_range(1..300u64);
    let mut logged = Vec::new();
    for seq in first..first + count {
        let slot = if rng.gen_bool(0.03) {
            None // overwritten before upload: a gap
        } else {
            let mut v = vec![Some(temperature(seq, rng.gen_range(-2..=2)))];
            if channels.len() == 2 {
                v.push(if rng.gen_bool(0.02) {
                    None
                } else {
                    Some(450 + rng.gen_range(-30..=30))
                });
            }
            Some(v)
        };
        mem.log(seq, slot.clone());
        logged.push((seq, slot));
    }
    (mem, first, logged)
}

#[test]
fn cut_at_10000_random_positions_then_resume_stores_everything_exactly_once() {
    let mut rng = ChaCha8Rng::seed_from_u64(0x5e45_0001);
    let mut cut_in_downlink = 0;
    let mut partial_progress = 0;
    for iteration in 0..10_000 {
        let (mem0, first, logged) = scenario(&mut rng);
        // Length of the whole exchange, uncut.
        let (total, uplink) = {
            let (mut m, mut s) = (mem0.clone(), Store::holding_through(first));
            let o = connect(&mut m, &mut s, &Link::default());
            assert_eq!(o.logger_close, Some(CloseReason::Finished));
            assert_eq!(o.flights, 2, "one round trip");
            (o.up_bytes + o.down_bytes, o.up_bytes)
        };
        let cut_after = rng.gen_range(0..total);
        let mut mem = mem0.clone();
        let mut store = Store::holding_through(first);
        let link = Link::cut_after(cut_after, uplink, rng.gen_bool(0.5));
        let first = connect(&mut mem, &mut store, &link);
        assert!(first.cut, "iteration {iteration}: the cut did not happen");
        if first.up_bytes == uplink {
            cut_in_downlink += 1;
        }
        if mem.held() < mem0.held() {
            partial_progress += 1;
        }
        // Resume until the logger's memory is empty (one more connection must do it).
        let second = connect(&mut mem, &mut store, &Link::default());
        assert_eq!(
            second.logger_close,
            Some(CloseReason::Finished),
            "iteration {iteration}, cut after {cut_after} of {total}"
        );
        assert_eq!(second.cloud_close, Some(CloseReason::Finished));
        assert!(mem.is_empty(), "iteration {iteration}: memory not freed");
        for (seq, slot) in &logged {
            match slot {
                Some(values) => {
                    assert_eq!(
                        store.readings.get(&(0, *seq)),
                        Some(values),
                        "iteration {iteration} seq {seq}"
                    );
                    assert_eq!(
                        store.writes.get(&(0, *seq)),
                        Some(&1),
                        "iteration {iteration} seq {seq}"
                    );
                }
                None => assert!(!store.readings.contains_key(&(0, *seq))),
            }
        }
        assert_eq!(
            store.readings.len(),
            logged.iter().filter(|(_, s)| s.is_some()).count()
        );
    }
    // The positions really covered both directions and partial progress.
    assert!(cut_in_downlink > 100, "{cut_in_downlink}");
    assert!(partial_progress > 100, "{partial_progress}");
}
