//! The enqueuing side: put jobs in, await their outcome, look them up.

use std::sync::Arc;
use std::time::Duration;

use rota_core::jobs::{
    CancelOutcome, Enqueued, JobId, JobOutcome, JobRecord, JobStore, NewJob, QueuePolicy,
};
use rota_core::{BrokerError, Codec, CorrelationId, Inboxes, Outcome, RpcError};

use crate::rpc::client::Client;

/// A handle for enqueuing jobs and following them. Cheap to clone.
#[derive(Clone)]
pub struct Jobs {
    store: Arc<dyn JobStore>,
    client: Client,
}

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jobs").finish_non_exhaustive()
    }
}

/// Waiting for a job's outcome failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum WaitError {
    /// The job could not be enqueued.
    #[error(transparent)]
    Enqueue(#[from] BrokerError),
    /// No outcome came in time (the job may still run), or the reply could
    /// not be read.
    #[error(transparent)]
    Wait(#[from] RpcError),
}

impl Jobs {
    /// A handle on `store`; outcomes are awaited in one reply inbox of the
    /// store's, opened on first use.
    pub fn new<S: JobStore + Inboxes + Clone>(store: S) -> Self {
        Self {
            client: Client::replies_only(store.clone()),
            store: Arc::new(store),
        }
    }

    /// The store.
    pub fn store(&self) -> &dyn JobStore {
        &*self.store
    }

    /// Enqueues one job.
    ///
    /// Not cancel safe: a dropped call may have enqueued the job all the same.
    /// Give jobs an idempotency key or a chosen id, and enqueue again.
    pub async fn enqueue(&self, job: NewJob) -> Result<Enqueued, BrokerError> {
        let mut done = self.store.enqueue(vec![job]).await?;
        done.pop()
            .ok_or_else(|| BrokerError::Protocol("the store accepted no job".into()))
    }

    /// Enqueues a batch in one round trip, all or none per queue: a batch
    /// over several queues may be refused for one queue and kept for another
    /// (each queue lives in its own Redis hash slot).
    ///
    /// Not cancel safe: a dropped call may have enqueued the batch all the
    /// same. Give jobs an idempotency key or a chosen id, and enqueue again.
    pub async fn enqueue_many(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>, BrokerError> {
        self.store.enqueue(jobs).await
    }

    /// Enqueues a job and waits up to `timeout` for its outcome (success,
    /// failure, cancellation or dead-lettering — not the retries between).
    ///
    /// Cancel safety: dropping the future forgets the wait (a late outcome is
    /// dropped); the job, once enqueued, still runs.
    pub async fn run(&self, job: NewJob, timeout: Duration) -> Result<JobOutcome, WaitError> {
        let id = job.id.unwrap_or_default();
        let queue = job.queue.clone();
        let waiter = self
            .client
            .expect_reply(CorrelationId::from(*id.as_uuid()))
            .await?;
        let job = job.with_id(id).reply_to(waiter.address());
        let enqueued = self.enqueue(job).await?;
        if enqueued.duplicate {
            // The key belongs to an earlier job: follow that one instead.
            drop(waiter);
            return self.follow(&queue, enqueued.id, timeout).await;
        }
        let reply = waiter.wait(timeout).await?;
        decode(reply.codec, reply.outcome)
    }

    /// Waits for a job enqueued earlier, by polling its record (the outcome
    /// reply goes to whoever enqueued it).
    async fn follow(
        &self,
        queue: &str,
        id: JobId,
        timeout: Duration,
    ) -> Result<JobOutcome, WaitError> {
        let until = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(record) = self.store.job(queue, id).await?
                && record.state.is_final()
            {
                return Ok(record.outcome());
            }
            if tokio::time::Instant::now() >= until {
                return Err(RpcError::DeadlineExceeded(timeout).into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The record of job `id` of `queue`, while retained.
    ///
    /// Cancel safe: a read.
    pub async fn job(&self, queue: &str, id: JobId) -> Result<Option<JobRecord>, BrokerError> {
        self.store.job(queue, id).await
    }

    /// Keeps `policy` (retention, maximum attempts) as `queue`'s, for every
    /// worker of the queue. Workers read it when they register and at least
    /// every [`POLICY_REFRESH`](super::POLICY_REFRESH) after.
    ///
    /// Cancel safe: one idempotent write.
    pub async fn set_policy(&self, queue: &str, policy: QueuePolicy) -> Result<(), BrokerError> {
        self.store.set_policy(queue, policy).await
    }

    /// The policy of `queue`: the one last set, else the default.
    ///
    /// Cancel safe: a read.
    pub async fn policy(&self, queue: &str) -> Result<QueuePolicy, BrokerError> {
        self.store.policy(queue).await
    }

    /// Cancels job `id` of `queue`: at once if it has not started; if it
    /// runs, its worker is asked to stop it — the handler's cancellation
    /// token fires within one lease renewal (a third of the queue's lease)
    /// and the job ends `Cancelled`, unless it finishes first.
    ///
    /// Not cancel safe: a dropped call may have cancelled the job all the same;
    /// look it up to know.
    pub async fn cancel(&self, queue: &str, id: JobId) -> Result<CancelOutcome, BrokerError> {
        self.store.cancel(queue, id).await
    }
}

fn decode(codec: Codec, outcome: Outcome) -> Result<JobOutcome, WaitError> {
    match outcome {
        Outcome::Ok(body) => codec
            .decode(&body)
            .map_err(|e| RpcError::Decode(e.to_string()).into()),
        Outcome::Err(_) => {
            Err(RpcError::Decode("a job outcome carried an error body".into()).into())
        }
        Outcome::Fault(f) => Err(RpcError::Remote(f).into()),
    }
}
