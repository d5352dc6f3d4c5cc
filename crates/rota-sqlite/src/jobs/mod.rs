//! [`SqliteBroker`] as a [`JobStore`]: the semantics documented in
//! [`rota_core::jobs::store`], in the same SQLite file as the broker's
//! messages (see `schema::JOBS_SCHEMA` for the tables).
//!
//! Each operation is one `IMMEDIATE` transaction on a blocking thread;
//! batches (enqueue, claim, settle) are one transaction each, whatever
//! their size. A waiting claim wakes at once for this process's writes to
//! its queue, when the queue's next scheduled job comes due, and polls
//! every [`SqliteOptions::poll_interval`](crate::SqliteOptions) for other
//! processes' writes. Leases and job times are wall-clock Unix ms, so they
//! hold across restarts.
//!
//! * `rows` — state codes, rows to jobs and records, the reply inbox;
//! * `books` — per-queue bookkeeping: clock, finished count, retention
//!   (nothing per partition or per tenant: the claims read the ring and the
//!   running jobs from indexes of the jobs, see `claim`);
//! * `enqueue`, `claim`, `settle` (settle, release, reap, close), `admin`
//!   (records, counts, dead jobs, cancel) — the transactions.

mod admin;
mod books;
mod claim;
mod enqueue;
mod list;
mod rows;
mod settle;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rota_core::BrokerError;
use rota_core::clock::SharedClock;
use rota_core::jobs::validate::DEFAULT_MAX_PAYLOAD;
use rota_core::jobs::validate_queue;
use rota_core::jobs::{
    CancelOutcome, Enqueued, Job, JobConsumer, JobConsumerOptions, JobId, JobPage, JobQuery,
    JobRecord, JobStore, NewJob, Next, QueueCounts, QueuePolicy, Settle, validate_batch,
    validate_reply_to,
};
use rota_core::names::validate_lease_name;
use rota_core::{Inboxes, Leased, ReapStats};
use tokio::time::Instant;

use crate::SqliteBroker;
use crate::lease::Lease;

/// The key that wakes the claims waiting on `queue`.
fn queue_key(queue: &str) -> String {
    format!("j:{queue}")
}

impl SqliteBroker {
    /// Wakes the readers of inboxes written to.
    fn wake_inboxes(&self, inboxes: &[String]) {
        for inbox in inboxes {
            self.wake(&format!("i:{inbox}"));
        }
    }
}

#[async_trait]
impl JobStore for SqliteBroker {
    async fn enqueue(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>, BrokerError> {
        validate_batch(&jobs, DEFAULT_MAX_PAYLOAD)?;
        validate_reply_to(&jobs, |to| self.is_inbox(to))?;
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let (out, queues) = self.with(move |c| enqueue::enqueue(c, &jobs)).await?;
        for queue in queues {
            self.wake(&queue_key(&queue));
        }
        Ok(out)
    }

    async fn job_consumer(
        &self,
        queue: &str,
        options: JobConsumerOptions,
    ) -> Result<Box<dyn JobConsumer>, BrokerError> {
        validate_queue(queue)?;
        if let Some(name) = &options.name {
            validate_lease_name(name)?;
        }
        let key = Lease::key(queue, options.name.as_deref());
        let (q, k, length) = (queue.to_owned(), key.clone(), options.lease);
        let ttl = self.options().reply_ttl;
        let (lease, inboxes) = self
            .with(move |conn| claim::register(conn, &q, &k, length, ttl))
            .await?;
        // A taken-over holder's jobs may be waiting, and their outcomes.
        self.wake_inboxes(&inboxes);
        self.wake(&queue_key(queue));
        Ok(Box::new(SqliteJobConsumer {
            broker: self.clone(),
            queue: queue.to_owned(),
            id: options.name.clone().unwrap_or(key),
            lease: Arc::new(lease),
            options,
        }))
    }

    async fn job(&self, queue: &str, id: JobId) -> Result<Option<JobRecord>, BrokerError> {
        validate_queue(queue)?;
        let q = queue.to_owned();
        self.with(move |c| admin::job(c, &q, id)).await
    }

    async fn counts(&self, queue: &str) -> Result<QueueCounts, BrokerError> {
        validate_queue(queue)?;
        let q = queue.to_owned();
        self.with(move |c| admin::counts(c, &q)).await
    }

    async fn list_jobs(&self, queue: &str, query: &JobQuery) -> Result<JobPage, BrokerError> {
        validate_queue(queue)?;
        query.validate()?;
        let (q, query) = (queue.to_owned(), query.clone());
        self.with(move |c| list::list(c, &q, &query)).await
    }

    async fn queues(&self) -> Result<Vec<String>, BrokerError> {
        self.with(list::queues).await
    }

    async fn requeue_dead_job(&self, queue: &str, id: JobId) -> Result<bool, BrokerError> {
        validate_queue(queue)?;
        let q = queue.to_owned();
        let requeued = self
            .with(move |c| admin::requeue_dead_job(c, &q, id))
            .await?;
        if requeued {
            self.wake(&queue_key(queue));
        }
        Ok(requeued)
    }

    async fn purge_dead_jobs(&self, queue: &str) -> Result<usize, BrokerError> {
        validate_queue(queue)?;
        let q = queue.to_owned();
        self.with(move |c| admin::purge_dead_jobs(c, &q)).await
    }

    fn clock(&self) -> SharedClock {
        Arc::clone(&self.options().clock)
    }

    async fn set_policy(&self, queue: &str, policy: QueuePolicy) -> Result<(), BrokerError> {
        validate_queue(queue)?;
        let q = queue.to_owned();
        self.with(move |c| admin::set_policy(c, &q, policy)).await
    }

    async fn policy(&self, queue: &str) -> Result<QueuePolicy, BrokerError> {
        validate_queue(queue)?;
        let q = queue.to_owned();
        self.with(move |c| admin::policy(c, &q)).await
    }

    async fn cancel(&self, queue: &str, id: JobId) -> Result<CancelOutcome, BrokerError> {
        validate_queue(queue)?;
        let (q, ttl) = (queue.to_owned(), self.options().reply_ttl);
        let (outcome, inboxes) = self.with(move |c| admin::cancel(c, &q, id, ttl)).await?;
        self.wake_inboxes(&inboxes);
        Ok(outcome)
    }

    async fn cancel_requests(&self, queue: &str, holder: &str) -> Result<Vec<JobId>, BrokerError> {
        validate_queue(queue)?;
        let (q, h) = (queue.to_owned(), holder.to_owned());
        self.with(move |c| admin::cancel_requests(c, &q, &h)).await
    }
}

/// A worker's claim on one queue's jobs in a [`SqliteBroker`].
struct SqliteJobConsumer {
    broker: SqliteBroker,
    queue: String,
    /// The lease's name, as the consumer reports it.
    id: String,
    lease: Arc<Lease>,
    options: JobConsumerOptions,
}

impl SqliteJobConsumer {
    /// One claim attempt: the jobs taken, and when the next scheduled job
    /// comes due.
    async fn try_claim(&self, max: usize) -> Result<(Vec<Job>, Option<u64>), BrokerError> {
        let (q, c, cap) = (
            self.queue.clone(),
            Arc::clone(&self.lease),
            self.options.tenant_cap,
        );
        let claimed = self
            .broker
            .with(move |conn| claim::claim(conn, &q, &c, max, cap))
            .await?;
        Ok((claimed.jobs, claimed.next_due))
    }
}

#[async_trait]
impl Leased for SqliteJobConsumer {
    type Work = Job;
    type Done = Settle;
    type Tag = JobId;

    fn id(&self) -> &str {
        &self.id
    }

    fn epoch(&self) -> u64 {
        u64::try_from(self.lease.epoch).unwrap_or(0)
    }

    async fn give_up(&self, done: Settle, reason: &str) -> Result<(), BrokerError> {
        self.settle(vec![done.given_up(reason)]).await.map(|_| ())
    }

    async fn claim(&self, max: usize, wait: Duration) -> Result<Vec<Job>, BrokerError> {
        let until = Instant::now() + wait;
        let waker = self.broker.waker(&queue_key(&self.queue));
        let poll = self.broker.options().poll_interval;
        loop {
            // Registered before looking, so a wake-up in between is not missed.
            let notified = waker.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (jobs, next_due) = self.try_claim(max).await?;
            let now = Instant::now();
            if !jobs.is_empty() || max == 0 || now >= until {
                return Ok(jobs);
            }
            // Sleep until woken, the wait ends, the next scheduled job is
            // due, or it is time to look for other processes' writes.
            let mut wake_at = until.min(now + poll);
            if let Some(due) = next_due {
                let ms = due
                    .saturating_sub(self.broker.options().clock.now_ms())
                    .max(1);
                wake_at = wake_at.min(now + Duration::from_millis(ms));
            }
            let _ = tokio::time::timeout_at(wake_at, notified).await;
        }
    }

    async fn renew(&self) -> Result<(), BrokerError> {
        let (c, lease) = (Arc::clone(&self.lease), self.options.lease);
        self.broker
            .with(move |conn| claim::renew(conn, &c, lease))
            .await
    }

    async fn settle(&self, done: Vec<Settle>) -> Result<usize, BrokerError> {
        for s in &done {
            if let Next::Finish(state) = &s.next
                && !state.is_final()
            {
                return Err(BrokerError::Invalid(format!(
                    "job {}: Next::Finish needs a final state (succeeded, failed, cancelled \
                     or dead), not {state:?}; nothing was settled",
                    s.id
                )));
            }
        }
        let (q, c) = (self.queue.clone(), Arc::clone(&self.lease));
        let ttl = self.broker.options().reply_ttl;
        let (settled, inboxes) = self
            .broker
            .with(move |conn| settle::settle(conn, &q, &c, done, ttl))
            .await?;
        self.broker.wake_inboxes(&inboxes);
        // A tenant under its cap again, or a retry due now, may be claimed.
        self.broker.wake(&queue_key(&self.queue));
        Ok(settled)
    }

    async fn release(&self, ids: Vec<JobId>, attempted: bool) -> Result<(), BrokerError> {
        let (q, c) = (self.queue.clone(), Arc::clone(&self.lease));
        let ttl = self.broker.options().reply_ttl;
        let inboxes = self
            .broker
            .with(move |conn| settle::release(conn, &q, &c, &ids, attempted, ttl))
            .await?;
        self.broker.wake_inboxes(&inboxes);
        self.broker.wake(&queue_key(&self.queue));
        Ok(())
    }

    async fn reap(&self) -> Result<ReapStats, BrokerError> {
        let (q, ttl) = (self.queue.clone(), self.broker.options().reply_ttl);
        let (stats, inboxes) = self
            .broker
            .with(move |conn| settle::reap(conn, &q, ttl))
            .await?;
        self.broker.wake_inboxes(&inboxes);
        if stats.requeued > 0 {
            self.broker.wake(&queue_key(&self.queue));
        }
        Ok(stats)
    }

    async fn close(&self) -> Result<(), BrokerError> {
        let (q, c) = (self.queue.clone(), Arc::clone(&self.lease));
        let ttl = self.broker.options().reply_ttl;
        let inboxes = self
            .broker
            .with(move |conn| settle::close(conn, &q, &c, ttl))
            .await?;
        self.broker.wake_inboxes(&inboxes);
        self.broker.wake(&queue_key(&self.queue));
        Ok(())
    }
}
