//! The loggers repository on both backends (see `store/testing.rs`).

use fleetwire_sensor::cloud::StatusStamp;
use fleetwire_sensor::{Batch, Channel, EpochEnd, LoggerId, Mark, Status};

use super::{NewLogger, Outcome, Write};
use crate::store::testing::backends;
use crate::util::civil;

fn batch(logger: u64, epoch: u32, first_seq: u64, n: u64) -> Batch {
    Batch {
        logger: LoggerId(logger),
        epoch,
        first_seq,
        start: 1_750_000_000,
        interval_s: 60,
        channels: vec![Channel::TEMPERATURE_DECI_C],
        values: (0..n).map(|v| Some(i32::try_from(v).unwrap())).collect(),
        ..Batch::default()
    }
}

fn status(counter: u32, battery_percent: u8) -> Status {
    Status {
        counter,
        battery_mv: 3000,
        battery_percent,
        firmware: fleetwire_sensor::Firmware {
            major: 1,
            minor: 2,
            patch: 3,
        },
    }
}

fn new(key: u8) -> NewLogger {
    NewLogger {
        name: format!("l{key}"),
        key: [key; 32],
    }
}

async fn month(store: &crate::store::Store, at: i64) {
    let (year, month) = civil::month_of(at);
    let (start, end) = civil::month_bounds(year, month);
    store.loggers().ensure_month(start, end).await.unwrap();
    // Twice, as a second node would: nothing happens.
    store.loggers().ensure_month(start, end).await.unwrap();
}

#[tokio::test]
async fn loggers_are_provisioned_with_increasing_ids() {
    for (kind, store) in backends("loggers_add").await {
        let l = store.loggers();
        assert_eq!(
            l.add(vec![new(1), new(2)], 5).await.unwrap(),
            vec![1001, 1002],
            "{kind}"
        );
        assert_eq!(l.add(vec![new(3)], 6).await.unwrap(), vec![1003], "{kind}");
        let state = l.lookup(LoggerId(1002), 64).await.unwrap().unwrap();
        assert_eq!(state.key, [2; 32]);
        assert_eq!((state.stored, state.status), (None, None));
        assert!(state.closed.is_empty());
        assert!(l.lookup(LoggerId(9), 64).await.unwrap().is_none(), "{kind}");
        assert!(l.exists(LoggerId(1003)).await.unwrap());
        assert!(!l.exists(LoggerId(1004)).await.unwrap());
        let list = l.list().await.unwrap();
        assert_eq!(list.len(), 3, "{kind}");
        assert_eq!(
            (list[0].id, list[0].name.as_str(), list[0].readings),
            (1001, "l1", 0)
        );
    }
}

#[tokio::test]
#[allow(clippy::too_many_lines)] // one story
async fn a_group_commit_keeps_every_write_but_the_conflicting_ones() {
    for (kind, store) in backends("loggers_group").await {
        let l = store.loggers();
        l.add(vec![new(1), new(2)], 0).await.unwrap();
        month(&store, 1_750_000_000).await;
        let (one, two) = (1001, 1002);
        let m = |epoch, seq| Some(Mark { epoch, seq });
        let stamp = |epoch, counter| StatusStamp { epoch, counter };
        let writes = vec![
            Write::Batch {
                after: None,
                closes: None,
                batch: batch(one, 0, 0, 10),
            },
            // The same slots again, from a connection that looked up before: nothing written.
            Write::Batch {
                after: None,
                closes: None,
                batch: batch(one, 0, 0, 10),
            },
            Write::Status {
                logger: LoggerId(two),
                stamp: stamp(0, 5),
                status: status(5, 80),
            },
            // A replayed older status: kept out.
            Write::Status {
                logger: LoggerId(two),
                stamp: stamp(0, 4),
                status: status(4, 99),
            },
            Write::Batch {
                after: m(0, 9),
                closes: Some(EpochEnd {
                    epoch: 0,
                    next_seq: 10,
                    abandoned: true,
                }),
                batch: batch(one, 1, 0, 5),
            },
            Write::Batch {
                after: m(3, 3),
                closes: None,
                batch: batch(two, 3, 4, 5),
            },
            // Unknown logger.
            Write::Batch {
                after: None,
                closes: None,
                batch: batch(77, 0, 0, 1),
            },
        ];
        let results = l.commit(writes, 100).await.unwrap();
        let results: Vec<Outcome> = results.into_iter().map(Result::unwrap).collect();
        assert_eq!(
            results,
            vec![
                Outcome::Stored,
                Outcome::Conflict { stored: m(0, 9) },
                Outcome::Stored,
                Outcome::Stored,
                Outcome::Stored,
                Outcome::Conflict { stored: None },
                Outcome::Conflict { stored: None },
            ],
            "{kind}"
        );
        let readings = l.readings(LoggerId(one), i64::MIN).await.unwrap();
        assert_eq!(
            readings.len(),
            15,
            "{kind}: each reading once, the conflict wrote nothing"
        );
        assert_eq!(readings[0].channels, vec![Channel::TEMPERATURE_DECI_C]);
        assert_eq!(readings[0].values, vec![Some(0)]);
        assert_eq!(
            l.readings(LoggerId(one), 1_750_000_000 + 9 * 60)
                .await
                .unwrap()
                .len(),
            1,
            "{kind}: since is inclusive (epoch 0 seq 9; epoch 1 ends at 1_750_000_240)"
        );
        let state = l.lookup(LoggerId(one), 64).await.unwrap().unwrap();
        assert_eq!(state.stored, m(1, 4), "{kind}");
        assert_eq!(
            state.closed,
            vec![EpochEnd {
                epoch: 0,
                next_seq: 10,
                abandoned: true
            }]
        );
        let state = l.lookup(LoggerId(two), 64).await.unwrap().unwrap();
        assert_eq!(
            (state.stored, state.status),
            (None, Some(stamp(0, 5))),
            "{kind}"
        );
        let list = l.list().await.unwrap();
        assert_eq!(
            list[1].battery_percent,
            Some(80),
            "{kind}: the newest status stays"
        );
        assert_eq!(list[1].firmware.as_deref(), Some("1.2.3"));
        assert_eq!((list[0].readings, list[0].last_upload), (15, Some(100)));
    }
}

#[tokio::test]
async fn batches_of_one_logger_chain_within_a_group_and_resends_store_nothing() {
    for (kind, store) in backends("loggers_chain").await {
        let l = store.loggers();
        l.add(vec![new(1)], 0).await.unwrap();
        let m = |epoch, seq| Some(Mark { epoch, seq });
        let writes = vec![
            Write::Batch {
                after: None,
                closes: None,
                batch: batch(1001, 0, 0, 3),
            },
            Write::Batch {
                after: m(0, 2),
                closes: None,
                batch: batch(1001, 0, 3, 3),
            },
        ];
        let results: Vec<Outcome> = l
            .commit(writes.clone(), 1)
            .await
            .unwrap()
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(results, vec![Outcome::Stored, Outcome::Stored], "{kind}");
        // The same group again (a node that looked up before the first committed).
        let again: Vec<Outcome> = l
            .commit(writes, 2)
            .await
            .unwrap()
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            again,
            vec![
                Outcome::Conflict { stored: m(0, 5) },
                Outcome::Conflict { stored: m(0, 5) }
            ],
            "{kind}"
        );
        // Readings outside any month partition go to the default partition (PostgreSQL).
        let mut far = batch(1001, 0, 6, 1);
        far.start = 4_102_444_800;
        let r = l
            .commit(
                vec![Write::Batch {
                    after: m(0, 5),
                    closes: None,
                    batch: far,
                }],
                3,
            )
            .await
            .unwrap();
        assert_eq!(r[0].as_ref().unwrap(), &Outcome::Stored, "{kind}");
        assert_eq!(
            l.readings(LoggerId(1001), 0).await.unwrap().len(),
            7,
            "{kind}"
        );
    }
}

#[tokio::test]
async fn concurrent_groups_of_the_same_logger_store_each_slot_once() {
    for (kind, store) in backends("loggers_race").await {
        let l = store.loggers();
        l.add(vec![new(1)], 0).await.unwrap();
        month(&store, 1_750_000_000).await;
        // Eight writers offer the same first batch at once: one wins, the others conflict.
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .loggers()
                    .commit(
                        vec![Write::Batch {
                            after: None,
                            closes: None,
                            batch: batch(1001, 0, 0, 50),
                        }],
                        1,
                    )
                    .await
                    .unwrap()
                    .remove(0)
                    .unwrap()
            }));
        }
        let mut stored = 0;
        for t in tasks {
            if t.await.unwrap() == Outcome::Stored {
                stored += 1;
            }
        }
        assert_eq!(stored, 1, "{kind}");
        assert_eq!(
            l.readings(LoggerId(1001), 0).await.unwrap().len(),
            50,
            "{kind}"
        );
    }
}

#[tokio::test]
async fn a_reading_already_there_is_kept_once_on_postgresql() {
    for (kind, store) in backends("loggers_dup").await {
        if kind != "postgresql" {
            continue; // SQLite fails that one write (its savepoint), tested by the legacy suite
        }
        let l = store.loggers();
        l.add(vec![new(1)], 0).await.unwrap();
        let first = vec![Write::Batch {
            after: None,
            closes: None,
            batch: batch(1001, 0, 0, 5),
        }];
        assert_eq!(
            l.commit(first.clone(), 1).await.unwrap()[0]
                .as_ref()
                .unwrap(),
            &Outcome::Stored
        );
        // The mark forgotten by hand: the same slots arrive again and pass the mark check.
        store
            .postgres()
            .await
            .unwrap()
            .execute("UPDATE loggers SET mark_epoch = NULL, mark_seq = NULL", &[])
            .await
            .unwrap();
        let more = batch(1001, 0, 0, 7);
        let again = vec![Write::Batch {
            after: None,
            closes: None,
            batch: more,
        }];
        assert_eq!(
            l.commit(again, 2).await.unwrap()[0].as_ref().unwrap(),
            &Outcome::Stored
        );
        assert_eq!(
            l.readings(LoggerId(1001), 0).await.unwrap().len(),
            7,
            "each slot once"
        );
        assert_eq!(
            l.lookup(LoggerId(1001), 64).await.unwrap().unwrap().stored,
            Some(Mark { epoch: 0, seq: 6 })
        );
    }
}
