//! An upload of several batches takes one round trip: one flight up (hello + every batch), one
//! flight of acks down.

mod common;

use common::{Link, Memory, Store, connect, temperature};
use fleetwire_sensor::{Channel, CloseReason, LoggerId};

#[test]
fn three_batches_in_one_round_trip() {
    let mut mem = Memory::new(LoggerId(77), vec![Channel::TEMPERATURE_DECI_C]);
    for seq in 0..300 {
        mem.log(seq, Some(vec![Some(temperature(seq, 0))]));
    }
    assert_eq!(mem.batches().len(), 3);
    let mut store = Store::default();
    let out = connect(&mut mem, &mut store, &Link::default());
    assert_eq!(out.flights, 2);
    assert_eq!(out.logger_close, Some(CloseReason::Finished));
    assert_eq!(out.cloud_close, Some(CloseReason::Finished));
    assert_eq!(store.readings.len(), 300);
    assert!(mem.is_empty());
}

#[test]
fn check_in_without_data_is_one_round_trip_too() {
    let mut mem = Memory::new(LoggerId(78), vec![Channel::TEMPERATURE_DECI_C]);
    let mut store = Store::default();
    let out = connect(&mut mem, &mut store, &Link::default());
    assert_eq!(out.flights, 2);
    assert_eq!(out.logger_close, Some(CloseReason::Finished));
    assert!(store.readings.is_empty());
}
