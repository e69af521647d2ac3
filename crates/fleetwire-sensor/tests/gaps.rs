//! Slots the logger's memory overwrote travel as explicit gap records, and the cloud stores the
//! gaps along with the readings around them.

mod common;

use common::{Link, Memory, Store, connect, temperature};
use fleetwire_sensor::{Channel, CloseReason, Gap, LoggerId};

#[test]
fn gaps_reach_the_store_and_readings_keep_their_sequence_numbers() {
    let mut mem = Memory::new(LoggerId(5), vec![Channel::TEMPERATURE_DECI_C]);
    mem.batch_slots = 1000;
    for seq in 0..100 {
        let lost = (10..15).contains(&seq) || seq == 40 || seq >= 97;
        mem.log(seq, (!lost).then(|| vec![Some(temperature(seq, 0))]));
    }
    let batches = mem.batches();
    assert_eq!(batches.len(), 1);
    assert_eq!(
        batches[0].gaps,
        vec![
            Gap { seq: 10, count: 5 },
            Gap { seq: 40, count: 1 },
            Gap { seq: 97, count: 3 }
        ]
    );
    let mut store = Store::default();
    let out = connect(&mut mem, &mut store, &Link::default());
    assert_eq!(out.logger_close, Some(CloseReason::Finished));
    assert_eq!(
        store.gaps,
        batches[0].gaps.iter().map(|g| (0, *g)).collect::<Vec<_>>()
    );
    assert_eq!(store.readings.len(), 100 - 5 - 1 - 3);
    assert_eq!(store.readings[&(0, 15)], vec![Some(temperature(15, 0))]);
    assert_eq!(store.mark.map(|m| m.seq), Some(99));
    assert!(mem.is_empty());
}

#[test]
fn a_batch_that_starts_with_a_gap() {
    let mut mem = Memory::new(LoggerId(6), vec![Channel::TEMPERATURE_DECI_C]);
    for seq in 0..20 {
        mem.log(seq, (seq >= 8).then(|| vec![Some(200)]));
    }
    let mut store = Store::default();
    connect(&mut mem, &mut store, &Link::default());
    assert_eq!(store.gaps, vec![(0, Gap { seq: 0, count: 8 })]);
    assert_eq!(store.readings.len(), 12);
}
