//! Jobs: enqueue background work per tenant, process it with workers.
//!
//! * [`Jobs`] — enqueue (now, later, in bulk, idempotently, by priority),
//!   await an outcome, look a job up, set a queue's [`QueuePolicy`]
//!   (retention and maximum attempts, kept with the queue).
//! * [`Worker`] — handlers per job kind, queues to take jobs from; bounded
//!   concurrency per worker and per queue, a timeout per attempt that
//!   cancels the handler, retries with backoff, dead-letters, and a lease
//!   renewed while jobs run so that a job never runs twice at once.
//! * [`RetryPolicy`], [`KindOptions`], [`QueueOptions`], [`WorkerOptions`].
//!
//! The model and the store trait are in [`rota_core::jobs`]; every backend
//! (in memory, Redis, embedded) implements [`JobStore`](rota_core::jobs::JobStore).

mod enqueue;
mod handler;
mod options;
mod retry;
mod runner;
mod worker;

pub use enqueue::{Jobs, WaitError};
pub use handler::{JobContext, JobError};
pub use options::{KindOptions, QueueOptions, WorkerError, WorkerOptions};
pub use retry::RetryPolicy;
pub use rota_core::jobs::{
    Attempt, AttemptOutcome, CancelOutcome, Enqueued, Job, JobId, JobOutcome, JobPage, JobQuery,
    JobRecord, JobState, NewJob, QueueCounts, QueuePolicy, Retention, StateCounts,
};
pub use worker::{Worker, WorkerHandle};

/// How stale a worker's copy of its queue's [`QueuePolicy`] may get: it
/// reads the policy when it registers and again before a claim once this
/// long has passed.
pub const POLICY_REFRESH: std::time::Duration = std::time::Duration::from_secs(10);
