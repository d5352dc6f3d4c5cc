//! One queue of a worker: consumer sessions one after another, each a
//! claim loop that runs jobs with bounded concurrency and settles every
//! attempt.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use rota_core::clock::SharedClock;
use rota_core::jobs::{
    Attempt, AttemptOutcome, Job, JobConsumer, JobConsumerOptions, JobId, JobOutcome, JobState,
    JobStore, Next, Settle,
};
use rota_core::{Codec, CorrelationId, Deadline, Outcome, Reply};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::POLICY_REFRESH;
use super::handler::JobContext;
use super::options::{QueueOptions, WorkerError, WorkerOptions};
use super::worker::Kind;
use crate::runtime::tenure::{Finished, Holder, Tenure, hold_leases};

/// One queue of a worker: consumer sessions, one after another.
pub(super) struct QueueRunner {
    pub(super) store: Arc<dyn JobStore>,
    pub(super) queue: String,
    pub(super) options: QueueOptions,
    pub(super) worker: WorkerOptions,
    pub(super) kinds: Arc<HashMap<String, Kind>>,
    pub(super) global: Arc<Semaphore>,
}

impl QueueRunner {
    pub(super) async fn run(self) -> Result<(), WorkerError> {
        let mut consumer_options = JobConsumerOptions::default().lease(self.options.lease);
        if let Some(cap) = self.options.tenant_cap {
            consumer_options = consumer_options.tenant_cap(cap);
        }
        let shutdown = self.worker.shutdown.clone();
        let runner = Arc::new(self);
        let open = || async {
            let consumer = runner
                .store
                .job_consumer(&runner.queue, consumer_options.clone())
                .await?;
            Ok(Arc::<dyn JobConsumer>::from(consumer))
        };
        let session =
            |consumer, registered_at| Arc::clone(&runner).session(consumer, registered_at);
        hold_leases(&runner.queue, &shutdown, true, open, session).await?;
        Ok(())
    }

    /// Works until shutdown, a lost lease or a failed claim; returns whether
    /// a claim failed.
    async fn session(
        self: Arc<Self>,
        consumer: Arc<dyn JobConsumer>,
        registered_at: Instant,
    ) -> bool {
        let opts = &self.options;
        let shutdown = &self.worker.shutdown;
        let tenure = Tenure::begin(Holder(Arc::clone(&consumer)), registered_at, opts.lease);
        let slots = Arc::new(Semaphore::new(opts.concurrency));
        let mut tainted = false;
        // Running jobs by id, to stop those whose cancellation is asked for;
        // asked at every renewal, for as long as the session lasts.
        let stops = Stops::default();
        let _asking = AbortOnDrop(tokio::spawn(Arc::clone(&self).ask_for_cancels(
            Arc::clone(&consumer),
            stops.clone(),
            opts.lease / 3,
        )));
        // The queue's policy, read now and again every POLICY_REFRESH.
        let mut policy = match self.store.policy(&self.queue).await {
            Ok(p) => (p, Instant::now()),
            Err(e) => {
                tracing::warn!(queue = %self.queue, error = %e, "reading the queue's policy failed");
                tenure.end(self.worker.drain_timeout, &self.queue).await;
                return true;
            }
        };
        loop {
            if shutdown.is_cancelled() || tenure.fence.is_cancelled() {
                break;
            }
            if policy.1.elapsed() >= POLICY_REFRESH {
                match self.store.policy(&self.queue).await {
                    Ok(p) => policy = (p, Instant::now()),
                    // Kept as it was: a claim will say whether the store is down.
                    Err(e) => tracing::warn!(
                        queue = %self.queue, error = %e,
                        "reading the queue's policy failed; keeping the last one read"
                    ),
                }
            }
            // A slot of this queue and one of the worker, then claim as many
            // as both have free.
            let Some(first) = self.slot(&slots, shutdown, &tenure.fence).await else {
                break;
            };
            let want = (slots.available_permits() + 1)
                .min(self.global.available_permits() + 1)
                .min(opts.claim_batch);
            let claimed = tokio::select! {
                r = consumer.claim(want, opts.claim_wait) => r,
                () = tenure.fence.cancelled() => break,
            };
            let jobs = match tenure.accept(claimed, &self.queue) {
                Ok(jobs) => jobs,
                Err(claim_failed) => {
                    tainted = claim_failed;
                    break;
                }
            };
            let mut first = Some(first);
            for job in jobs {
                let permits = match first.take() {
                    Some(p) => p,
                    None => match self
                        .slot(&slots, &CancellationToken::new(), &tenure.fence)
                        .await
                    {
                        Some(p) => p,
                        None => break,
                    },
                };
                let stop = stops.register(job.id);
                let run = Run {
                    stop,
                    stops: stops.clone(),
                    job: Arc::new(job),
                    kinds: Arc::clone(&self.kinds),
                    worker_id: consumer.id().to_owned(),
                    max_attempts: policy.0.max_attempts,
                    clock: self.store.clock(),
                    fence: tenure.fence.clone(),
                    abandon: tenure.abandon.clone(),
                };
                let settler = Arc::clone(&tenure.finisher);
                tenure.handlers.spawn(async move {
                    let done = run.execute().await;
                    drop(permits);
                    if let Some(done) = done {
                        settler.finish(done).await;
                    }
                });
            }
        }
        tenure.end(self.worker.drain_timeout, &self.queue).await;
        tainted
    }

    /// Every `every`, asks the store which of the session's running jobs
    /// are to be cancelled, and stops them. A failed ask is retried at the
    /// next turn (claims and renewals say whether the store is down).
    async fn ask_for_cancels(
        self: Arc<Self>,
        consumer: Arc<dyn JobConsumer>,
        stops: Stops,
        every: Duration,
    ) {
        let every = every.max(Duration::from_millis(10));
        loop {
            tokio::time::sleep(every).await;
            if stops.is_empty() {
                continue;
            }
            match self.store.cancel_requests(&self.queue, consumer.id()).await {
                Ok(ids) => stops.stop(&ids),
                Err(e) => tracing::debug!(
                    queue = %self.queue, error = %e, "asking for cancelled jobs failed"
                ),
            }
        }
    }

    /// A permit of the queue and one of the worker, or `None` on shutdown
    /// or fence.
    async fn slot(
        &self,
        slots: &Arc<Semaphore>,
        shutdown: &CancellationToken,
        fence: &CancellationToken,
    ) -> Option<(OwnedSemaphorePermit, OwnedSemaphorePermit)> {
        let both = async {
            let queue = Arc::clone(slots).acquire_owned().await.ok()?;
            let worker = Arc::clone(&self.global).acquire_owned().await.ok()?;
            Some((queue, worker))
        };
        tokio::select! {
            p = both => p,
            () = shutdown.cancelled() => None,
            () = fence.cancelled() => None,
        }
    }
}

/// What a finished handler task reports.
type Done = Finished<dyn JobConsumer>;

/// The session's running jobs, each with the token that stops it when its
/// cancellation is asked for.
#[derive(Clone, Default)]
struct Stops(Arc<std::sync::Mutex<HashMap<JobId, CancellationToken>>>);

impl Stops {
    fn register(&self, id: JobId) -> CancellationToken {
        let token = CancellationToken::new();
        self.lock().insert(id, token.clone());
        token
    }
    fn forget(&self, id: &JobId) {
        self.lock().remove(id);
    }
    fn stop(&self, ids: &[JobId]) {
        let running = self.lock();
        for id in ids {
            if let Some(token) = running.get(id) {
                token.cancel();
            }
        }
    }
    fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<JobId, CancellationToken>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One attempt of one job.
struct Run {
    /// Fired when the job's cancellation is asked for.
    stop: CancellationToken,
    stops: Stops,
    job: Arc<Job>,
    kinds: Arc<HashMap<String, Kind>>,
    worker_id: String,
    /// The queue's maximum attempts, for jobs and kinds without their own.
    max_attempts: u32,
    /// The store's clock: attempts and retries are timed by it.
    clock: SharedClock,
    fence: CancellationToken,
    abandon: CancellationToken,
}

impl Run {
    async fn execute(self) -> Option<Done> {
        let done = self.attempt().await;
        self.stops.forget(&self.job.id);
        done
    }

    async fn attempt(&self) -> Option<Done> {
        let job = &self.job;
        let started_at_ms = self.clock.now_ms();
        let settle = |outcome: AttemptOutcome, next: Next| {
            Some(Finished::Done(self.settle(started_at_ms, outcome, next)))
        };
        if job.deadline.is_some_and(Deadline::has_passed) {
            let outcome = AttemptOutcome::Failed {
                error: "the job's deadline passed before it started".into(),
                retryable: false,
            };
            return settle(outcome, Next::Finish(JobState::Cancelled));
        }
        let found = self.kinds.get(&job.kind);
        let Some(kind) = found.or_else(|| self.kinds.get(super::worker::ANY_KIND)) else {
            let reason = format!("no handler for job kind {:?} on this worker", job.kind);
            let outcome = AttemptOutcome::Failed {
                error: reason.clone(),
                retryable: false,
            };
            return settle(outcome, Next::Dead(reason));
        };
        let timeout = job
            .timeout_ms
            .map_or(kind.options.timeout, Duration::from_millis);
        let cancel = self.fence.child_token();
        let ctx = JobContext::new(Arc::clone(job), cancel.clone());
        let handler = (kind.handler)(ctx, Bytes::clone(&job.payload));
        let guarded = AssertUnwindSafe(handler).catch_unwind();
        let result = tokio::select! {
            r = tokio::time::timeout(timeout, guarded) => r,
            () = self.fence.cancelled() => {
                // The lease is lost: the job may already run elsewhere.
                return None;
            }
            () = self.abandon.cancelled() => {
                cancel.cancel();
                return Some(Finished::Abandoned(job.id));
            }
            () = self.stop.cancelled() => {
                // Its cancellation was asked for: the handler is told, and
                // the job ends here.
                cancel.cancel();
                let outcome = AttemptOutcome::Cancelled;
                return settle(outcome, Next::Finish(JobState::Cancelled));
            }
        };
        let policy = kind.options.retry;
        let max_attempts = job
            .max_attempts
            .or(policy.max_attempts)
            .unwrap_or(self.max_attempts);
        let retry = |error: String, after: Option<Duration>| {
            if job.attempt >= max_attempts {
                Next::Dead(format!(
                    "failed {} attempts (the maximum); last error: {error}",
                    job.attempt
                ))
            } else {
                let wait = after.unwrap_or_else(|| policy.delay(job.attempt));
                Next::RetryAt(self.clock.now_ms().saturating_add(wait.as_millis() as u64))
            }
        };
        match result {
            Err(_elapsed) => {
                cancel.cancel();
                let error = format!("timed out after {timeout:?}");
                settle(AttemptOutcome::TimedOut, retry(error, None))
            }
            Ok(Err(panic)) => {
                let message = panic_message(panic.as_ref());
                let error = format!("the handler panicked: {message}");
                let outcome = AttemptOutcome::Failed {
                    error: error.clone(),
                    retryable: true,
                };
                settle(outcome, retry(error, None))
            }
            Ok(Ok(Ok(value))) => {
                let mut done = self.settle(
                    started_at_ms,
                    AttemptOutcome::Succeeded,
                    Next::Finish(JobState::Succeeded),
                );
                done.result = value;
                done.reply = self.reply(&done);
                Some(Finished::Done(done))
            }
            Ok(Ok(Err(e))) => {
                let outcome = AttemptOutcome::Failed {
                    error: e.message().to_owned(),
                    retryable: e.is_retryable(),
                };
                let next = if e.is_retryable() {
                    retry(e.message().to_owned(), e.retry_after())
                } else {
                    Next::Finish(JobState::Failed)
                };
                settle(outcome, next)
            }
        }
    }

    fn settle(&self, started_at_ms: u64, outcome: AttemptOutcome, next: Next) -> Settle {
        let attempt = Attempt {
            attempt: self.job.attempt,
            worker: self.worker_id.clone(),
            started_at_ms,
            finished_at_ms: self.clock.now_ms(),
            outcome,
        };
        let mut settle = Settle::new(self.job.id, attempt, next);
        settle.reply = self.reply(&settle);
        settle
    }

    /// The outcome reply, once the job is final and someone asked for it.
    fn reply(&self, settle: &Settle) -> Option<(String, Bytes)> {
        let to = self.job.reply_to.as_ref()?;
        let (state, error) = match &settle.next {
            Next::Finish(state) => (*state, attempt_error(&settle.attempt.outcome)),
            Next::Dead(reason) => (JobState::Dead, Some(reason.clone())),
            Next::RetryAt(_) => return None,
            _ => return None,
        };
        let outcome = JobOutcome {
            id: self.job.id,
            run_id: self.job.run_id.clone(),
            state,
            attempts: self.job.attempt,
            result: settle.result.clone(),
            error,
            enqueued_at_ms: self.job.enqueued_at_ms,
            started_at_ms: settle.attempt.started_at_ms,
            finished_at_ms: settle.attempt.finished_at_ms,
        };
        let body = Codec::Json.encode(&outcome).ok()?;
        let reply = Reply {
            id: CorrelationId::from(*self.job.id.as_uuid()),
            codec: Codec::Json,
            outcome: Outcome::Ok(body.into()),
        };
        Some((to.clone(), reply.encode().ok()?.into()))
    }
}

fn attempt_error(outcome: &AttemptOutcome) -> Option<String> {
    match outcome {
        AttemptOutcome::Failed { error, .. } => Some(error.clone()),
        AttemptOutcome::TimedOut => Some("timed out".into()),
        AttemptOutcome::Cancelled => Some("cancelled".into()),
        AttemptOutcome::Lost => Some("the worker's lease lapsed".into()),
        _ => None,
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic payload".into())
}
