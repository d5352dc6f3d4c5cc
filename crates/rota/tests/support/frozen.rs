//! A store that freezes like a paused process: once armed, the next job
//! enqueue stops every call (of the scheduler that uses it) until thawed,
//! then each goes on with what it held — the enqueue with jobs fenced by
//! a lease that ended meanwhile.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use rota_core::BrokerError;
use rota_core::clock::SharedClock;
use rota_core::jobs::{
    CancelOutcome, Enqueued, JobConsumer, JobConsumerOptions, JobId, JobPage, JobQuery, JobRecord,
    JobStore, NewJob, QueueCounts, QueuePolicy,
};
use rota_core::schedules::{
    Change, Outbound, Page, RunRecord, Schedule, ScheduleError, ScheduleStore, ShardLease,
    ShardOwner, ShardReply,
};
use tokio::sync::watch;

#[derive(Clone)]
pub(crate) struct Frozen<S> {
    inner: S,
    armed: Arc<AtomicBool>,
    frozen: Arc<watch::Sender<bool>>,
}

impl<S> Frozen<S> {
    /// `inner`, frozen at its next job enqueue.
    pub(crate) fn armed(inner: S) -> Self {
        Self {
            inner,
            armed: Arc::new(AtomicBool::new(true)),
            frozen: Arc::new(watch::Sender::new(false)),
        }
    }

    pub(crate) fn is_frozen(&self) -> bool {
        *self.frozen.borrow()
    }

    pub(crate) fn thaw(&self) {
        self.frozen.send_replace(false);
    }

    async fn pass(&self) {
        let mut rx = self.frozen.subscribe();
        let _ = rx.wait_for(|frozen| !frozen).await;
    }
}

#[async_trait]
impl<S: JobStore + Clone> JobStore for Frozen<S> {
    async fn enqueue(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>, BrokerError> {
        if !jobs.is_empty() && self.armed.swap(false, Ordering::SeqCst) {
            self.frozen.send_replace(true);
        }
        self.pass().await;
        self.inner.enqueue(jobs).await
    }
    async fn job_consumer(
        &self,
        queue: &str,
        options: JobConsumerOptions,
    ) -> Result<Box<dyn JobConsumer>, BrokerError> {
        self.pass().await;
        self.inner.job_consumer(queue, options).await
    }
    async fn job(&self, queue: &str, id: JobId) -> Result<Option<JobRecord>, BrokerError> {
        self.pass().await;
        self.inner.job(queue, id).await
    }
    async fn counts(&self, queue: &str) -> Result<QueueCounts, BrokerError> {
        self.pass().await;
        self.inner.counts(queue).await
    }
    async fn list_jobs(&self, queue: &str, query: &JobQuery) -> Result<JobPage, BrokerError> {
        self.pass().await;
        self.inner.list_jobs(queue, query).await
    }
    async fn queues(&self) -> Result<Vec<String>, BrokerError> {
        self.pass().await;
        self.inner.queues().await
    }
    async fn requeue_dead_job(&self, queue: &str, id: JobId) -> Result<bool, BrokerError> {
        self.pass().await;
        self.inner.requeue_dead_job(queue, id).await
    }
    async fn purge_dead_jobs(&self, queue: &str) -> Result<usize, BrokerError> {
        self.pass().await;
        self.inner.purge_dead_jobs(queue).await
    }
    async fn set_policy(&self, queue: &str, policy: QueuePolicy) -> Result<(), BrokerError> {
        self.pass().await;
        self.inner.set_policy(queue, policy).await
    }
    async fn policy(&self, queue: &str) -> Result<QueuePolicy, BrokerError> {
        self.pass().await;
        self.inner.policy(queue).await
    }
    async fn cancel(&self, queue: &str, id: JobId) -> Result<CancelOutcome, BrokerError> {
        self.pass().await;
        self.inner.cancel(queue, id).await
    }
    async fn cancel_requests(&self, queue: &str, holder: &str) -> Result<Vec<JobId>, BrokerError> {
        self.pass().await;
        self.inner.cancel_requests(queue, holder).await
    }
    fn clock(&self) -> SharedClock {
        self.inner.clock()
    }
}

#[async_trait]
impl<S: ScheduleStore + Clone> ScheduleStore for Frozen<S> {
    fn shards(&self) -> u32 {
        self.inner.shards()
    }
    fn shard_inbox(&self, shard: u32) -> String {
        self.inner.shard_inbox(shard)
    }
    async fn insert(&self, schedule: Schedule) -> Result<(), ScheduleError> {
        self.pass().await;
        self.inner.insert(schedule).await
    }
    async fn upsert_many(&self, schedules: Vec<Schedule>) -> Result<(), ScheduleError> {
        self.pass().await;
        self.inner.upsert_many(schedules).await
    }
    async fn replace(&self, schedule: Schedule) -> Result<Schedule, ScheduleError> {
        self.pass().await;
        self.inner.replace(schedule).await
    }
    async fn delete(&self, id: &str) -> Result<bool, ScheduleError> {
        self.pass().await;
        self.inner.delete(id).await
    }
    async fn get(&self, id: &str) -> Result<Option<Schedule>, ScheduleError> {
        self.pass().await;
        self.inner.get(id).await
    }
    async fn list(
        &self,
        tenant: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page, ScheduleError> {
        self.pass().await;
        self.inner.list(tenant, after, limit).await
    }
    async fn runs(&self, id: &str, limit: usize) -> Result<Vec<RunRecord>, ScheduleError> {
        self.pass().await;
        self.inner.runs(id, limit).await
    }
    async fn acquire_shard(
        &self,
        shard: u32,
        holder: &str,
        ttl_ms: u64,
    ) -> Result<Option<ShardLease>, ScheduleError> {
        self.pass().await;
        self.inner.acquire_shard(shard, holder, ttl_ms).await
    }
    async fn renew_shard(&self, lease: &ShardLease, ttl_ms: u64) -> Result<i64, ScheduleError> {
        self.pass().await;
        self.inner.renew_shard(lease, ttl_ms).await
    }
    async fn release_shard(&self, lease: &ShardLease) -> Result<(), ScheduleError> {
        self.pass().await;
        self.inner.release_shard(lease).await
    }
    async fn shard_owners(&self) -> Result<Vec<ShardOwner>, ScheduleError> {
        self.pass().await;
        self.inner.shard_owners().await
    }
    async fn heartbeat(&self, scheduler: &str, ttl_ms: u64) -> Result<Vec<String>, ScheduleError> {
        self.pass().await;
        self.inner.heartbeat(scheduler, ttl_ms).await
    }
    async fn due(
        &self,
        lease: &ShardLease,
        until_ms: i64,
        limit: usize,
    ) -> Result<Vec<Schedule>, ScheduleError> {
        self.pass().await;
        self.inner.due(lease, until_ms, limit).await
    }
    async fn next_due(&self, lease: &ShardLease) -> Result<Option<i64>, ScheduleError> {
        self.pass().await;
        self.inner.next_due(lease).await
    }
    async fn commit(
        &self,
        lease: &ShardLease,
        changes: Vec<Change>,
    ) -> Result<Vec<Result<Schedule, ScheduleError>>, ScheduleError> {
        self.pass().await;
        self.inner.commit(lease, changes).await
    }
    async fn outbox(
        &self,
        lease: &ShardLease,
        limit: usize,
    ) -> Result<Vec<Outbound>, ScheduleError> {
        self.pass().await;
        self.inner.outbox(lease, limit).await
    }
    async fn dispatched(&self, lease: &ShardLease, runs: &[Outbound]) -> Result<(), ScheduleError> {
        self.pass().await;
        self.inner.dispatched(lease, runs).await
    }
    async fn replies(
        &self,
        lease: &ShardLease,
        limit: usize,
    ) -> Result<Vec<ShardReply>, ScheduleError> {
        self.pass().await;
        self.inner.replies(lease, limit).await
    }
    async fn ack_replies(&self, lease: &ShardLease, seq: u64) -> Result<(), ScheduleError> {
        self.pass().await;
        self.inner.ack_replies(lease, seq).await
    }
}
