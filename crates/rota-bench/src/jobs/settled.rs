//! A store that counts settlements: it passes everything to the store it
//! wraps and, each time a worker's settle write returns, adds the jobs it
//! settled and notes the instant the count reached a target. So the clock
//! of a throughput run stops when the n-th job is final in the store, not
//! when its handler starts, and without polling the store.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use rota_core::jobs::{
    Enqueued, Job, JobConsumer, JobConsumerOptions, JobId, JobRecord, JobStore, NewJob,
    QueueCounts, Settle,
};
use rota_core::{Broker, BrokerError, Consumer, ConsumerOptions, DeadLetter, Inbox, ReapStats};

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
impl JobConsumer for CountedConsumer {
    fn id(&self) -> &str {
        self.inner.id()
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
    async fn job(&self, id: JobId) -> Result<Option<JobRecord>, BrokerError> {
        self.inner.job(id).await
    }
    async fn counts(&self, queue: &str) -> Result<QueueCounts, BrokerError> {
        self.inner.counts(queue).await
    }
    async fn dead_jobs(&self, queue: &str, limit: usize) -> Result<Vec<JobRecord>, BrokerError> {
        self.inner.dead_jobs(queue, limit).await
    }
    async fn requeue_dead_job(&self, id: JobId) -> Result<bool, BrokerError> {
        self.inner.requeue_dead_job(id).await
    }
    async fn purge_dead_jobs(&self, queue: &str) -> Result<usize, BrokerError> {
        self.inner.purge_dead_jobs(queue).await
    }
    async fn cancel(&self, id: JobId) -> Result<bool, BrokerError> {
        self.inner.cancel(id).await
    }
}

// A job store is a broker too (job outcomes travel to reply inboxes).
#[async_trait]
impl<S: Broker + Clone> Broker for Counted<S> {
    async fn publish(&self, service: &str, message: Bytes) -> Result<(), BrokerError> {
        self.inner.publish(service, message).await
    }
    async fn open_inbox(&self) -> Result<Box<dyn Inbox>, BrokerError> {
        self.inner.open_inbox().await
    }
    async fn consumer(
        &self,
        service: &str,
        options: ConsumerOptions,
    ) -> Result<Box<dyn Consumer>, BrokerError> {
        self.inner.consumer(service, options).await
    }
    async fn queued(&self, service: &str) -> Result<usize, BrokerError> {
        self.inner.queued(service).await
    }
    async fn dead_letters(
        &self,
        service: &str,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, BrokerError> {
        self.inner.dead_letters(service, limit).await
    }
    async fn requeue_dead(&self, service: &str, id: Option<&str>) -> Result<usize, BrokerError> {
        self.inner.requeue_dead(service, id).await
    }
    async fn purge_dead(&self, service: &str) -> Result<usize, BrokerError> {
        self.inner.purge_dead(service).await
    }
}
