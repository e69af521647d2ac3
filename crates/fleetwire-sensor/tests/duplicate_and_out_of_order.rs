//! Duplicate uploads are acknowledged and dropped, overlapping ones are trimmed to what is new,
//! an upload that leaves a hole after the stored mark is acknowledged with the old mark and not
//! stored, a new epoch opens only with the exact end of the current one, and every ack covers
//! only its own epoch.
mod common;

use std::sync::Arc;
use std::time::Instant;

use common::{Link, Memory, Store, connect, key_of};
use fleetwire_sensor::cloud::{self, CloudConfig, CloudSession, LoggerRecord};
use fleetwire_sensor::logger::{self, LoggerConfig, LoggerSession};
use fleetwire_sensor::{Batch, Channel, CloseReason, EpochEnd, LoggerId, Mark, SensorError};
use fleetwire_testkit::{Endpoint, LinkConfig, Pair, VirtualClock};

fn batch(first_seq: u64, n: u64) -> Batch {
    batch_in(2, first_seq, n)
}

fn batch_in(epoch: u32, first_seq: u64, n: u64) -> Batch {
    Batch {
        logger: LoggerId(3),
        epoch,
        first_seq,
        start: 1_750_000_000 + first_seq * 60,
        interval_s: 60,
        channels: vec![Channel::TEMPERATURE_DECI_C],
        values: (first_seq..first_seq + n).map(|s| Some(s as i32)).collect(),
        ..Batch::default()
    }
}

/// Runs the given uploads against a cloud whose store holds `stored`; returns cloud events and
/// logger events.
fn run(batches: Vec<Batch>, stored: Option<Mark>) -> (Vec<cloud::Event>, Vec<logger::Event>) {
    run_closed(batches, stored, &[])
}

/// The same, with closed epochs in the store: one connection on the suite's harness, the
/// logger's uploads against a cloud that confirms every batch it hands out. Neither side may
/// fail on its input.
fn run_closed(
    batches: Vec<Batch>,
    stored: Option<Mark>,
    closed: &[EpochEnd],
) -> (Vec<cloud::Event>, Vec<logger::Event>) {
    let clock = VirtualClock::new();
    let now = clock.now();
    let id = LoggerId(3);
    let logger = Uploader {
        lg: LoggerSession::new(Arc::new(LoggerConfig::new(id, key_of(id))), now, batches).unwrap(),
        events: Vec::new(),
        errors: Vec::new(),
    };
    let cloud = Confirmer {
        cl: CloudSession::new(Arc::new(CloudConfig::default()), now),
        stored,
        closed: closed.to_vec(),
        events: Vec::new(),
        errors: Vec::new(),
    };
    let wire = || fleetwire_testkit::Link::new(LinkConfig::perfect(), 0);
    let mut p = Pair::new(logger, cloud, wire(), wire(), clock);
    p.settle();
    assert_eq!(p.a.errors, vec![], "the logger failed on the acks");
    assert_eq!(p.b.errors, vec![], "the cloud failed on the uploads");
    (p.b.events, p.a.events)
}

/// The logger side of [`run_closed`].
struct Uploader {
    lg: LoggerSession,
    events: Vec<logger::Event>,
    errors: Vec<SensorError>,
}

impl Endpoint for Uploader {
    fn handle_input(&mut self, now: Instant, data: &[u8]) {
        if let Err(e) = self.lg.handle_input(now, data) {
            self.errors.push(e);
        }
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.lg.handle_timeout(now);
    }
    fn handle_close(&mut self, now: Instant) {
        self.lg.handle_close(now);
    }
    fn process_events(&mut self, _now: Instant) {
        while let Some(ev) = self.lg.poll_event() {
            self.events.push(ev);
        }
    }
    fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> bool {
        self.lg.poll_transmit(buf).is_some()
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.lg.poll_timeout()
    }
}

/// The cloud side of [`run_closed`]: the store holds `stored` and `closed`, and confirms every
/// batch.
struct Confirmer {
    cl: CloudSession,
    stored: Option<Mark>,
    closed: Vec<EpochEnd>,
    events: Vec<cloud::Event>,
    errors: Vec<SensorError>,
}

impl Endpoint for Confirmer {
    fn handle_input(&mut self, now: Instant, data: &[u8]) {
        if let Err(e) = self.cl.handle_input(now, data) {
            self.errors.push(e);
        }
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.cl.handle_timeout(now);
    }
    fn handle_close(&mut self, now: Instant) {
        self.cl.handle_close(now);
    }
    fn process_events(&mut self, now: Instant) {
        while let Some(ev) = self.cl.poll_event() {
            match &ev {
                cloud::Event::KeyNeeded { logger } => {
                    let record = LoggerRecord {
                        key: key_of(*logger),
                        stored: self.stored,
                        closed: self.closed.clone(),
                        status: None,
                        settings: None,
                        server_time: 0,
                    };
                    self.cl.provide_key(now, *logger, Some(record)).unwrap();
                }
                cloud::Event::Batch { id, .. } => self.cl.confirm_stored(now, *id).unwrap(),
                _ => {}
            }
            self.events.push(ev);
        }
    }
    fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> bool {
        self.cl.poll_transmit(buf).is_some()
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.cl.poll_timeout()
    }
}

fn stored_marks(events: &[logger::Event]) -> Vec<Option<Mark>> {
    events
        .iter()
        .filter_map(|e| match e {
            logger::Event::Acked { stored, .. } => Some(*stored),
            _ => None,
        })
        .collect()
}

#[test]
fn the_same_batch_twice_in_one_connection_is_stored_once() {
    let (cloud_events, logger_events) = run(vec![batch_in(0, 0, 10), batch_in(0, 0, 10)], None);
    let stored: Vec<_> = cloud_events
        .iter()
        .filter(|e| matches!(e, cloud::Event::Batch { .. }))
        .collect();
    assert_eq!(stored.len(), 1);
    assert!(cloud_events.contains(&cloud::Event::Duplicate {
        logger: LoggerId(3),
        last: Mark { epoch: 0, seq: 9 }
    }));
    let mark = Some(Mark { epoch: 0, seq: 9 });
    assert_eq!(stored_marks(&logger_events), vec![mark, mark]);
    assert!(logger_events.contains(&logger::Event::Closed {
        reason: CloseReason::Finished
    }));
}

#[test]
fn a_batch_the_store_already_has_is_acknowledged_and_dropped() {
    let mark = Some(Mark { epoch: 2, seq: 50 });
    let (cloud_events, logger_events) = run(vec![batch(10, 20)], mark);
    assert!(
        !cloud_events
            .iter()
            .any(|e| matches!(e, cloud::Event::Batch { .. }))
    );
    assert_eq!(stored_marks(&logger_events), vec![mark]);
}

#[test]
fn an_upload_of_a_closed_epoch_is_acknowledged_with_what_that_epoch_holds() {
    let mark = Some(Mark { epoch: 3, seq: 0 });
    let closed = vec![EpochEnd {
        epoch: 2,
        next_seq: 40,
        abandoned: false,
    }];
    let (cloud_events, logger_events) = run_closed(vec![batch(10, 20)], mark, &closed);
    assert!(
        cloud_events
            .iter()
            .any(|e| matches!(e, cloud::Event::Duplicate { .. }))
    );
    // The ack covers epoch 2 through 39, never epoch 3's mark.
    assert_eq!(
        stored_marks(&logger_events),
        vec![Some(Mark { epoch: 2, seq: 39 })]
    );
    // Slots beyond the closed epoch's end are never stored.
    let (cloud_events, logger_events) = run_closed(vec![batch(30, 20)], mark, &closed);
    assert!(
        cloud_events
            .iter()
            .any(|e| matches!(e, cloud::Event::OutOfOrder { .. }))
    );
    assert_eq!(
        stored_marks(&logger_events),
        vec![Some(Mark { epoch: 2, seq: 39 })]
    );
}

#[test]
fn an_upload_of_an_epoch_the_store_does_not_know_is_acknowledged_as_holding_nothing() {
    let mark = Some(Mark { epoch: 3, seq: 70 });
    let (cloud_events, logger_events) = run(vec![batch(10, 20)], mark);
    assert!(
        cloud_events
            .iter()
            .any(|e| matches!(e, cloud::Event::OutOfOrder { .. }))
    );
    assert_eq!(stored_marks(&logger_events), vec![None]);
}

#[test]
fn an_overlapping_batch_is_trimmed_to_the_new_slots() {
    let mark = Some(Mark { epoch: 2, seq: 14 });
    let (cloud_events, logger_events) = run(vec![batch(10, 10)], mark);
    let trimmed = cloud_events
        .iter()
        .find_map(|e| match e {
            cloud::Event::Batch { after, batch, .. } => Some((*after, batch.clone())),
            _ => None,
        })
        .unwrap();
    assert_eq!(trimmed.0, mark);
    assert_eq!(trimmed.1.first_seq, 15);
    assert_eq!(trimmed.1.values, (15..20).map(Some).collect::<Vec<_>>());
    assert_eq!(trimmed.1.start, 1_750_000_000 + 15 * 60);
    assert_eq!(
        stored_marks(&logger_events),
        vec![Some(Mark { epoch: 2, seq: 19 })]
    );
}

#[test]
fn out_of_order_batches_are_not_stored_and_the_ack_keeps_the_old_mark() {
    let mark = Some(Mark { epoch: 2, seq: 4 });
    // 0..5 stored; this connection sends 20..30 then 5..10: the first leaves a hole.
    let (cloud_events, logger_events) = run(vec![batch(20, 10), batch(5, 5)], mark);
    assert!(cloud_events.contains(&cloud::Event::OutOfOrder {
        logger: LoggerId(3),
        stored: mark,
        first: Mark { epoch: 2, seq: 20 }
    }));
    let stored: Vec<u64> = cloud_events
        .iter()
        .filter_map(|e| match e {
            cloud::Event::Batch { batch, .. } => Some(batch.first_seq),
            _ => None,
        })
        .collect();
    assert_eq!(stored, vec![5]);
    assert_eq!(
        stored_marks(&logger_events),
        vec![mark, Some(Mark { epoch: 2, seq: 9 })]
    );
}

#[test]
fn a_new_epoch_opens_only_at_zero_with_the_exact_end_of_the_current_one() {
    let mark = Some(Mark { epoch: 1, seq: 400 });
    let opener = |next_seq, abandoned| Batch {
        previous: Some(EpochEnd {
            epoch: 1,
            next_seq,
            abandoned,
        }),
        ..batch(0, 3)
    };
    for abandoned in [false, true] {
        let (cloud_events, logger_events) = run(vec![opener(401, abandoned)], mark);
        let closes = Some(EpochEnd {
            epoch: 1,
            next_seq: 401,
            abandoned,
        });
        assert!(
            cloud_events.iter().any(|e| matches!(e,
                cloud::Event::Batch { after, closes: c, .. } if *after == mark && *c == closes)),
            "{cloud_events:?}"
        );
        assert_eq!(
            stored_marks(&logger_events),
            vec![Some(Mark { epoch: 2, seq: 2 })]
        );
    }
    // Without a statement, with a wrong end (the store holds 0..=400 of epoch 1), naming
    // another epoch, or not at 0: not stored, and the ack covers nothing of epoch 2.
    let wrong_epoch = Batch {
        previous: Some(EpochEnd {
            epoch: 0,
            next_seq: 401,
            abandoned: true,
        }),
        ..batch(0, 3)
    };
    for b in [
        batch(0, 3),
        opener(400, false),
        opener(402, true),
        wrong_epoch,
        batch(7, 3),
    ] {
        let (cloud_events, logger_events) = run(vec![b], mark);
        assert!(
            cloud_events
                .iter()
                .any(|e| matches!(e, cloud::Event::OutOfOrder { .. })),
            "{cloud_events:?}"
        );
        assert_eq!(stored_marks(&logger_events), vec![None]);
    }
}

#[test]
fn the_first_upload_into_an_empty_store_must_start_at_zero() {
    let (cloud_events, logger_events) = run(vec![batch_in(0, 5, 3)], None);
    assert!(
        cloud_events
            .iter()
            .any(|e| matches!(e, cloud::Event::OutOfOrder { .. }))
    );
    assert_eq!(stored_marks(&logger_events), vec![None]);
}

#[test]
fn after_resume_the_logger_holds_only_unacknowledged_data() {
    let mut mem = Memory::new(LoggerId(4), vec![Channel::TEMPERATURE_DECI_C]);
    for seq in 0..30 {
        mem.log(seq, Some(vec![Some(1)]));
    }
    let mut store = Store::default();
    connect(&mut mem, &mut store, &Link::default());
    assert!(mem.is_empty());
    for seq in 30..40 {
        mem.log(seq, Some(vec![Some(2)]));
    }
    let out = connect(&mut mem, &mut store, &Link::default());
    let first = out.cloud_events.iter().find_map(|e| match e {
        cloud::Event::Batch { batch, .. } => Some(batch.first_seq),
        _ => None,
    });
    assert_eq!(first, Some(30), "resumes from N+1");
    assert_eq!(store.readings.len(), 40);
}
