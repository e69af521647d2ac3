//! Argon2 on a small dedicated thread pool with a bounded queue, never on the async executor.
//!
//! A request first takes a [`Slot`] with [`HashPool::try_slot`]: there are `workers + queue`
//! slots, and when none is free the request is refused at once (503) instead of waiting. A flood
//! therefore costs at most `workers` busy threads and `queue` parked jobs; the tokio workers that
//! run heartbeats and every other protocol never hash.

use std::sync::{Arc, Mutex, PoisonError, mpsc};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

type Job = Box<dyn FnOnce() + Send>;

/// The pool: `workers` threads named `argon2-N` sharing one job channel.
pub(crate) struct HashPool {
    jobs: Mutex<mpsc::Sender<Job>>,
    slots: Arc<Semaphore>,
    workers: usize,
    queue: usize,
}

/// A reserved place in the pool (a worker or a queue position), released when the job ends.
pub(crate) struct Slot {
    _permit: OwnedSemaphorePermit,
}

impl HashPool {
    /// Starts `workers` threads (at least one) with room for `queue` waiting jobs.
    pub(crate) fn new(workers: usize, queue: usize) -> Result<Self, String> {
        let workers = workers.max(1);
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..workers {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    loop {
                        let job = rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
                        match job {
                            Ok(job) => job(),
                            Err(_) => return, // the pool was dropped
                        }
                    }
                })
                .map_err(|e| format!("cannot start a hashing thread: {e}"))?;
        }
        Ok(Self {
            jobs: Mutex::new(tx),
            slots: Arc::new(Semaphore::new(workers + queue)),
            workers,
            queue,
        })
    }

    /// A place in the pool, or `None` when every worker is busy and the queue is full.
    pub(crate) fn try_slot(&self) -> Option<Slot> {
        self.slots
            .clone()
            .try_acquire_owned()
            .ok()
            .map(|p| Slot { _permit: p })
    }

    /// Runs `f` on a hashing thread and waits for its result without blocking the executor.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        slot: Slot,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let out = f();
            drop(slot);
            let _ = tx.send(out);
        });
        self.jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .send(job)
            .ok()?;
        rx.await.ok()
    }

    /// Worker threads and queue positions, for the startup line.
    pub(crate) fn size(&self) -> (usize, usize) {
        (self.workers, self.queue)
    }
}
