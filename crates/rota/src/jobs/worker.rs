//! The worker runtime: takes jobs from queues, runs their handlers with
//! bounded concurrency and timeouts, and settles each attempt — success,
//! retry with backoff, failure, or the dead-letter set.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use rota_core::clock::SharedClock;
use rota_core::jobs::{
    Attempt, AttemptOutcome, Job, JobConsumer, JobConsumerOptions, JobOutcome, JobState, JobStore,
    Next, Retention, Settle,
};
use rota_core::names::validate_service;
use rota_core::{BrokerError, Codec, CorrelationId, Deadline, Outcome, Reply};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use super::handler::{ErasedHandler, JobContext, JobError, erase};
use super::retry::RetryPolicy;
use crate::runtime::tenure::{Finished, Holder, Tenure, hold_leases};

/// How a job kind runs.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct KindOptions {
    /// Retries after failures.
    pub retry: RetryPolicy,
    /// Longest an attempt may run before it is cancelled.
    pub timeout: Duration,
}

impl Default for KindOptions {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(30 * 60),
        }
    }
}

impl KindOptions {
    /// Sets the retry policy.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }
    /// Sets the per-attempt timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// How a worker takes jobs from one queue.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct QueueOptions {
    /// This queue's jobs that may run at once in this worker.
    pub concurrency: usize,
    /// At most this many of one tenant's jobs run at once, across all
    /// workers of the queue.
    pub tenant_cap: Option<u32>,
    /// Most jobs taken in one claim.
    pub claim_batch: usize,
    /// How long one claim blocks for work.
    pub claim_wait: Duration,
    /// The lease on claimed jobs, renewed every third of it.
    pub lease: Duration,
    /// Retention of finished jobs.
    pub retention: Retention,
}

impl Default for QueueOptions {
    fn default() -> Self {
        Self {
            concurrency: 64,
            tenant_cap: None,
            claim_batch: 128,
            claim_wait: Duration::from_secs(1),
            lease: Duration::from_secs(30),
            retention: Retention::default(),
        }
    }
}

impl QueueOptions {
    /// Sets this queue's concurrency in the worker.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }
    /// Caps the running jobs of one tenant across all workers.
    pub fn tenant_cap(mut self, cap: u32) -> Self {
        self.tenant_cap = Some(cap.max(1));
        self
    }
    /// Sets the most jobs taken in one claim.
    pub fn claim_batch(mut self, n: usize) -> Self {
        self.claim_batch = n.max(1);
        self
    }
    /// Sets how long a claim blocks.
    pub fn claim_wait(mut self, wait: Duration) -> Self {
        self.claim_wait = wait;
        self
    }
    /// Sets the lease.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }
    /// Sets the retention of finished jobs.
    pub fn retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }
}

/// Settings of a worker process.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WorkerOptions {
    /// Jobs that may run at once in this worker, over all its queues.
    pub concurrency: usize,
    /// How long shutdown waits for running jobs before giving them back.
    pub drain_timeout: Duration,
    /// Cancelled to stop the worker.
    pub shutdown: CancellationToken,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            concurrency: 256,
            drain_timeout: Duration::from_secs(30),
            shutdown: CancellationToken::new(),
        }
    }
}

impl WorkerOptions {
    /// Sets the worker's total concurrency.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }
    /// Sets the drain timeout.
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }
    /// Sets the token that stops the worker.
    pub fn shutdown(mut self, token: CancellationToken) -> Self {
        self.shutdown = token;
        self
    }
}

/// A worker could not run.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerError {
    /// A queue name is unusable, or the store refused in a way retrying
    /// won't fix.
    #[error("cannot work: {0}")]
    Store(#[from] BrokerError),
    /// The worker was given no queue to take jobs from.
    #[error("the worker has no queue; add one with Worker::queue")]
    NoQueue,
    /// A task of the worker panicked.
    #[error("a worker task panicked")]
    Panicked,
}

#[derive(Clone)]
struct Kind {
    handler: ErasedHandler,
    options: KindOptions,
}

/// A job worker: handlers per kind, queues to take jobs from.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use rota::jobs::{JobContext, JobError, Jobs, QueueOptions, Worker};
/// use rota_memory::MemoryBroker;
/// use rota_core::jobs::{JobState, NewJob};
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Email { to: String }
///
/// let store = MemoryBroker::new();
/// let worker = Worker::new(store.clone())
///     .queue("mail", QueueOptions::default())
///     .handle("send", |_ctx: JobContext, email: Email| async move {
///         Ok::<_, JobError>(format!("sent to {}", email.to))
///     })
///     .spawn();
///
/// let jobs = Jobs::new(store.clone());
/// let job = NewJob::new("mail", "acme", "send", &Email { to: "ada@acme".into() })?;
/// let outcome = jobs.run(job, std::time::Duration::from_secs(5)).await?;
/// assert_eq!(outcome.state, JobState::Succeeded);
/// assert_eq!(outcome.result, Some(serde_json::json!("sent to ada@acme")));
/// worker.shutdown().await?;
/// # Ok(()) }
/// ```
pub struct Worker {
    store: Arc<dyn JobStore>,
    kinds: HashMap<String, Kind>,
    queues: Vec<(String, QueueOptions)>,
    options: WorkerOptions,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("kinds", &self.kinds.keys().collect::<Vec<_>>())
            .field("queues", &self.queues)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// A worker on `store`, with no handlers or queues yet.
    pub fn new(store: impl JobStore) -> Self {
        Self {
            store: Arc::new(store),
            kinds: HashMap::new(),
            queues: Vec::new(),
            options: WorkerOptions::default(),
        }
    }

    /// Takes jobs from `queue`.
    pub fn queue(mut self, queue: impl Into<String>, options: QueueOptions) -> Self {
        self.queues.push((queue.into(), options));
        self
    }

    /// Sets the worker's options.
    pub fn options(mut self, options: WorkerOptions) -> Self {
        self.options = options;
        self
    }

    /// Runs jobs of `kind` with `handler`, under the default retry policy
    /// and timeout.
    pub fn handle<P, R, F, Fut>(self, kind: &str, handler: F) -> Self
    where
        P: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
        F: Fn(JobContext, P) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, JobError>> + Send + 'static,
    {
        self.handle_with(kind, KindOptions::default(), handler)
    }

    /// Runs jobs of `kind` with `handler` and these options.
    pub fn handle_with<P, R, F, Fut>(mut self, kind: &str, options: KindOptions, handler: F) -> Self
    where
        P: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
        F: Fn(JobContext, P) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, JobError>> + Send + 'static,
    {
        self.kinds.insert(
            kind.to_owned(),
            Kind {
                handler: erase(kind, handler),
                options,
            },
        );
        self
    }

    /// Runs the worker in a task of its own. The handle stops this worker
    /// only; the options' shutdown token stops every worker sharing it.
    pub fn spawn(mut self) -> WorkerHandle {
        let stop = self.options.shutdown.child_token();
        self.options.shutdown = stop.clone();
        let run = self.run();
        WorkerHandle {
            stop,
            task: tokio::spawn(async move {
                let ran = run.await;
                if let Err(e) = &ran {
                    // Said here too: a spawned worker that stops must not go
                    // quiet.
                    tracing::error!(error = %e, "worker stopped");
                }
                ran
            }),
        }
    }

    /// Runs until the shutdown token is cancelled, then drains: running jobs
    /// finish within the drain timeout, the rest go back to their queues at
    /// once. [`spawn`](Self::spawn) and [`WorkerHandle::shutdown`] are the
    /// easy way to run and stop a worker.
    ///
    /// **Stop it with its shutdown token, not by dropping it.** Dropping this
    /// future (say, the losing branch of a `select!` against `ctrl_c()`)
    /// stops everything at once without a drain: handlers are cancelled,
    /// leases stop being renewed, and the jobs held go back to their queues
    /// only when the leases lapse (with attempt + 1).
    pub async fn run(self) -> Result<(), WorkerError> {
        if self.queues.is_empty() {
            return Err(WorkerError::NoQueue);
        }
        for (queue, _) in &self.queues {
            validate_service(queue)?;
        }
        let kinds = Arc::new(self.kinds);
        let global = Arc::new(Semaphore::new(self.options.concurrency));
        let tasks: Vec<_> = self
            .queues
            .into_iter()
            .map(|(queue, options)| {
                let runner = QueueRunner {
                    store: Arc::clone(&self.store),
                    queue,
                    options,
                    worker: self.options.clone(),
                    kinds: Arc::clone(&kinds),
                    global: Arc::clone(&global),
                };
                // Aborted if this future is dropped: each queue's tenure then
                // stops renewing and stops its handlers.
                AbortOnDropHandle::new(tokio::spawn(runner.run()))
            })
            .collect();
        let mut result = Ok(());
        for task in tasks {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => result = Err(e),
                Err(_) => result = Err(WorkerError::Panicked),
            }
        }
        result
    }
}

/// A worker running in its own task.
#[derive(Debug)]
pub struct WorkerHandle {
    stop: CancellationToken,
    task: JoinHandle<Result<(), WorkerError>>,
}

impl WorkerHandle {
    /// Stops taking jobs, drains, and waits for the worker to end.
    pub async fn shutdown(self) -> Result<(), WorkerError> {
        self.stop.cancel();
        self.join().await
    }

    /// Waits for the worker to end: after its shutdown token is cancelled
    /// (it drains first), or on an error retrying won't fix.
    ///
    /// Cancel safe: dropping the future leaves the worker running; use
    /// [`shutdown`](Self::shutdown) to stop it.
    pub async fn join(self) -> Result<(), WorkerError> {
        self.task.await.unwrap_or(Err(WorkerError::Panicked))
    }

    /// The token that stops this worker.
    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.stop
    }
}

/// One queue of a worker: consumer sessions, one after another.
struct QueueRunner {
    store: Arc<dyn JobStore>,
    queue: String,
    options: QueueOptions,
    worker: WorkerOptions,
    kinds: Arc<HashMap<String, Kind>>,
    global: Arc<Semaphore>,
}

impl QueueRunner {
    async fn run(self) -> Result<(), WorkerError> {
        let mut consumer_options = JobConsumerOptions::default()
            .lease(self.options.lease)
            .retention(self.options.retention);
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
        loop {
            if shutdown.is_cancelled() || tenure.fence.is_cancelled() {
                break;
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
                let run = Run {
                    job: Arc::new(job),
                    kinds: Arc::clone(&self.kinds),
                    worker_id: consumer.id().to_owned(),
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

/// One attempt of one job.
struct Run {
    job: Arc<Job>,
    kinds: Arc<HashMap<String, Kind>>,
    worker_id: String,
    /// The store's clock: attempts and retries are timed by it.
    clock: SharedClock,
    fence: CancellationToken,
    abandon: CancellationToken,
}

impl Run {
    async fn execute(self) -> Option<Done> {
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
        let Some(kind) = self.kinds.get(&job.kind) else {
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
        };
        let policy = kind.options.retry;
        let max_attempts = job.max_attempts.unwrap_or(policy.max_attempts);
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
