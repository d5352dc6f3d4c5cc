//! A store that counts settlements: it passes everything to the store it
//! wraps and, each time a worker's settle write returns, adds the jobs it
//! settled and notes the instant the count reached a target. So the clock
//! of a throughput run stops when the n-th job is final in the store, not
//! when its handler starts, and without polling the store.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rota_core::jobs::{
    CancelOutcome, Enqueued, Job, JobConsumer, JobConsumerOptions, JobId, JobPage, JobQuery,
    JobRecord, JobStore, NewJob, QueueCounts, QueuePolicy, Settle,
};
use rota_core::{BrokerError, Inbox, Inboxes, Leased, ReapStats};

/// Jobs settled so far, and when the target was reached.
#[derive(Debug)]
pub(crate) struct Tally {
    settled: AtomicUsize,
    target: usize,
    reached: OnceLock<Instant>,
}

impl Tally {
    pub(crate) fn new(target: usize) -> Arc<Self> {
        Arc::new(Self {
            settled: AtomicUsize::new(0),
            target,
            reached: OnceLock::new(),
        })
    }

    /// Counts `n` more settled jobs.
    pub(crate) fn add(&self, n: usize) {
        let total = self.settled.fetch_add(n, Ordering::SeqCst) + n;
        if total >= self.target {
            let _ = self.reached.set(Instant::now());
        }
    }

    /// Jobs settled so far.
    pub(crate) fn settled(&self) -> usize {
        self.settled.load(Ordering::SeqCst)
    }

    /// Waits until the target is reached, and returns when it was; gives up
    /// with `None` once `stall` passes without a settlement.
    pub(crate) async fn reached(&self, stall: Duration) -> Option<Instant> {
        let mut last = (self.settled(), Instant::now());
        loop {
            if let Some(at) = self.reached.get() {
                return Some(*at);
            }
            // The instant is taken by the settle itself: polling only
            // decides when this wait notices it.
            tokio::time::sleep(Duration::from_millis(2)).await;
            let now = self.settled();
            if now != last.0 {
                last = (now, Instant::now());
            } else if last.1.elapsed() > stall {
                return None;
            }
        }
    }
}

/// `S`, with its workers' settlements counted in a [`Tally`].
#[derive(Clone)]
pub(crate) struct Counted<S> {
    inner: S,
    tally: Arc<Tally>,
}

impl<S> Counted<S> {
    pub(crate) fn new(inner: S, tally: Arc<Tally>) -> Self {
        Self { inner, tally }
    }
}

struct CountedConsumer {
    inner: Box<dyn JobConsumer>,
    tally: Arc<Tally>,
}

#[async_trait]
impl Leased for CountedConsumer {
    type Work = Job;
    type Done = Settle;
    type Tag = JobId;

    fn id(&self) -> &str {
        self.inner.id()
    }
    fn epoch(&self) -> u64 {
        self.inner.epoch()
    }
    async fn give_up(&self, done: Settle, reason: &str) -> Result<(), BrokerError> {
        self.inner.give_up(done, reason).await?;
        self.tally.add(1);
        Ok(())
    }
    async fn claim(&self, max: usize, wait: Duration) -> Result<Vec<Job>, BrokerError> {
        self.inner.claim(max, wait).await
    }
    async fn renew(&self) -> Result<(), BrokerError> {
        self.inner.renew().await
    }
    async fn settle(&self, done: Vec<Settle>) -> Result<usize, BrokerError> {
        let n = self.inner.settle(done).await?;
        self.tally.add(n);
        Ok(n)
    }
    async fn release(&self, ids: Vec<JobId>, attempted: bool) -> Result<(), BrokerError> {
        self.inner.release(ids, attempted).await
    }
    async fn reap(&self) -> Result<ReapStats, BrokerError> {
        self.inner.reap().await
    }
    async fn close(&self) -> Result<(), BrokerError> {
        self.inner.close().await
    }
}

#[async_trait]
impl<S: JobStore + Clone> JobStore for Counted<S> {
    async fn enqueue(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>, BrokerError> {
        self.inner.enqueue(jobs).await
    }
    async fn job_consumer(
        &self,
        queue: &str,
        options: JobConsumerOptions,
    ) -> Result<Box<dyn JobConsumer>, BrokerError> {
        let inner = self.inner.job_consumer(queue, options).await?;
        Ok(Box::new(CountedConsumer {
            inner,
            tally: Arc::clone(&self.tally),
        }))
    }
    async fn job(&self, queue: &str, id: JobId) -> Result<Option<JobRecord>, BrokerError> {
        self.inner.job(queue, id).await
    }
    async fn counts(&self, queue: &str) -> Result<QueueCounts, BrokerError> {
        self.inner.counts(queue).await
    }
    async fn list_jobs(&self, queue: &str, query: &JobQuery) -> Result<JobPage, BrokerError> {
        self.inner.list_jobs(queue, query).await
    }
    async fn queues(&self) -> Result<Vec<String>, BrokerError> {
        self.inner.queues().await
    }
    async fn requeue_dead_job(&self, queue: &str, id: JobId) -> Result<bool, BrokerError> {
        self.inner.requeue_dead_job(queue, id).await
    }
    async fn purge_dead_jobs(&self, queue: &str) -> Result<usize, BrokerError> {
        self.inner.purge_dead_jobs(queue).await
    }
    async fn cancel(&self, queue: &str, id: JobId) -> Result<CancelOutcome, BrokerError> {
        self.inner.cancel(queue, id).await
    }
    async fn cancel_requests(&self, queue: &str, holder: &str) -> Result<Vec<JobId>, BrokerError> {
        self.inner.cancel_requests(queue, holder).await
    }
    async fn set_policy(&self, queue: &str, policy: QueuePolicy) -> Result<(), BrokerError> {
        self.inner.set_policy(queue, policy).await
    }
    async fn policy(&self, queue: &str) -> Result<QueuePolicy, BrokerError> {
        self.inner.policy(queue).await
    }
    fn clock(&self) -> rota_core::clock::SharedClock {
        self.inner.clock()
    }
}

// Job outcomes travel to the wrapped store's reply inboxes.
#[async_trait]
impl<S: Inboxes + Clone> Inboxes for Counted<S> {
    async fn open_inbox(&self) -> Result<Box<dyn Inbox>, BrokerError> {
        self.inner.open_inbox().await
    }
    fn is_inbox(&self, address: &str) -> bool {
        self.inner.is_inbox(address)
    }
}
