//! The job store trait family.
//!
//! A backend that stores jobs implements [`JobStore`] beside the other
//! features' traits; job outcomes travel to the reply
//! [`Inbox`](crate::Inbox)es that every feature shares.
//!
//! # Semantics every backend keeps (checked by `rota_conformance::jobs`)
//!
//! * **Enqueue** validates every job ([`validate_job`](super::validate_job))
//!   and accepts a batch in one round trip, all or nothing **per queue**: an
//!   invalid job refuses the whole batch before anything is written, and a
//!   store that fails on one queue's part writes none of that queue's jobs
//!   — another queue's part may be in (a store may keep queues apart, as
//!   Redis keeps each under a hash tag of its own). A job whose
//!   `scheduled_for` is in the future is `Scheduled`, else `Queued`. An
//!   idempotency key seen before (within the queue, while the earlier job's
//!   record is retained) returns the earlier job with `duplicate: true`.
//! * **Claim** promotes due scheduled jobs, then takes up to `max` queued
//!   jobs, visiting the queue's partitions in turn (round-robin: one job per
//!   partition per turn), within a partition the highest priority first and
//!   then the oldest. A partition that becomes ready (queued jobs after
//!   none) is served at the next claim, before the turn reaches it: an idle
//!   tenant's job does not wait behind a round of busy tenants. With [`JobConsumerOptions::tenant_cap`], a tenant that
//!   has that many jobs running (across all consumers) is skipped. Claimed
//!   jobs are `Running`, held under the consumer's lease, and delivered with
//!   their attempt number.
//! * **Settle** is fenced: refused with [`BrokerError::LeaseLost`] once the
//!   lease lapsed. It appends the attempt to the record, then applies
//!   [`Next`]: a final state, a retry at an instant (`Scheduled`, with the
//!   next attempt number), or the dead-letter set with a reason; and writes
//!   the outcome reply, if any, before the job stops being held.
//! * **Reap** hands back the jobs of consumers whose lease lapsed: each gets a
//!   `Lost` attempt and is queued again with attempt + 1, or dead-lettered
//!   once its attempts reach its maximum (the job's own, else its queue's
//!   [`QueuePolicy::max_attempts`]).
//! * **Cancel** ([`JobStore::cancel`]) makes a scheduled or queued job
//!   final at once (`Cancelled`, never run). A running one is marked: its
//!   holder learns it from [`JobStore::cancel_requests`] (a worker asks at
//!   every lease renewal), stops its handler and settles it `Cancelled`; if
//!   the holder dies or gives the job back instead, the reap or the release
//!   makes it `Cancelled` rather than queueing it again. A job that
//!   finishes before its worker learns of the request keeps its outcome.
//! * **Outcomes the store decides** — a reap that dead-letters a job, a
//!   [`JobStore::cancel`] — are sent to the job's `reply_to` by the store
//!   ([`JobRecord::outcome_reply`](super::JobRecord::outcome_reply)), so
//!   whoever awaits the job never waits in vain.
//! * **Retention**: finished records (succeeded, failed, cancelled) beyond
//!   [`Retention::max_finished`] per queue, or older than
//!   [`Retention::max_age`], are deleted, oldest first, when jobs settle.
//!   Dead jobs stay until re-queued or purged.
//! * **Policy** ([`QueuePolicy`]: retention and maximum attempts) is kept
//!   with the queue, set by [`JobStore::set_policy`] and read by every
//!   consumer's settle and reap, whoever opened it and with which options;
//!   a queue never given one has [`QueuePolicy::default`].

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::counts::QueueCounts;
use super::list::{JobPage, JobQuery};
use super::model::{Attempt, Enqueued, Job, JobId, JobRecord, JobState, NewJob};
use crate::clock::SharedClock;
use crate::error::BrokerError;
use crate::lease::Leased;

/// What [`JobStore::cancel`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CancelOutcome {
    /// The job had not started (scheduled or queued): it is `Cancelled`
    /// and will never run.
    Cancelled,
    /// The job is running: its worker is asked to stop it, and it ends
    /// `Cancelled` (unless it finishes first). Asking again changes nothing.
    Requested,
    /// The job is final already, or not retained: nothing changed.
    Unchanged,
}

/// What happens to a job after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Next {
    /// It is finished in this state: `Succeeded`, `Failed`, `Cancelled`, or
    /// `Dead` (dead-lettered, as with [`Next::Dead`]). A state that is not
    /// final (`Scheduled`, `Queued`, `Running`) is refused with
    /// [`BrokerError::Invalid`] and no job of the batch changes state.
    Finish(JobState),
    /// It runs again at this instant (Unix ms), as attempt + 1.
    RetryAt(u64),
    /// It goes to the dead-letter set, for this reason.
    Dead(String),
}

/// A finished attempt, as a worker reports it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Settle {
    /// The job.
    pub id: JobId,
    /// The attempt, with its outcome and timings.
    pub attempt: Attempt,
    /// What happens next.
    pub next: Next,
    /// The handler's result, when it succeeded.
    pub result: Option<serde_json::Value>,
    /// The outcome reply and the inbox to write it to.
    pub reply: Option<(String, Bytes)>,
}

impl Settle {
    /// This settlement turned into the job's dead-lettering with `reason`,
    /// without its reply or result: what a worker writes when the original
    /// was refused for good (see [`Leased::give_up`]).
    pub fn given_up(mut self, reason: &str) -> Self {
        self.next = Next::Dead(reason.to_owned());
        self.reply = None;
        self.result = None;
        self
    }

    /// A settlement of `id`'s `attempt` with `next`.
    pub fn new(id: JobId, attempt: Attempt, next: Next) -> Self {
        Self {
            id,
            attempt,
            next,
            result: None,
            reply: None,
        }
    }
}

/// How long finished jobs are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Retention {
    /// Finished records kept per queue.
    pub max_finished: usize,
    /// Finished records older than this are deleted.
    pub max_age: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            max_finished: 10_000,
            max_age: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// What a queue keeps and how often its jobs may run: set once per queue
/// with [`JobStore::set_policy`] and kept by the store, so every consumer of
/// the queue applies the same (no consumer's options can override another's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueuePolicy {
    /// Attempts after which a job is dead-lettered when its worker died
    /// holding it, unless the job says otherwise
    /// ([`NewJob::max_attempts`](super::NewJob::max_attempts)). Workers
    /// retrying failures use it too, unless the job kind sets its own.
    pub max_attempts: u32,
    /// Retention of finished jobs.
    pub retention: Retention,
}

impl Default for QueuePolicy {
    /// 25 attempts; the default [`Retention`].
    fn default() -> Self {
        Self {
            max_attempts: 25,
            retention: Retention::default(),
        }
    }
}

impl QueuePolicy {
    /// Sets the maximum attempts (at least 1).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }
    /// Sets the retention of finished jobs.
    pub fn retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }
}

impl Retention {
    /// Keeps at most `n` finished records per queue.
    pub fn max_finished(mut self, n: usize) -> Self {
        self.max_finished = n;
        self
    }
    /// Deletes finished records older than `age`.
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = age;
        self
    }
}

/// How a worker holds the jobs of one queue.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobConsumerOptions {
    /// How long claims hold without renewal.
    pub lease: Duration,
    /// At most this many of one tenant's jobs run at once, across every
    /// consumer of the queue.
    pub tenant_cap: Option<u32>,
    /// The lease's name; `None` (the default) for a name of its own. A
    /// consumer opened with the name of a live one takes the lease over:
    /// it gets the next epoch, the earlier holder's jobs go back to the
    /// queue, and its writes are refused from then on.
    pub name: Option<String>,
}

impl Default for JobConsumerOptions {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(30),
            tenant_cap: None,
            name: None,
        }
    }
}

impl JobConsumerOptions {
    /// Sets the lease.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }
    /// Caps the running jobs of one tenant.
    pub fn tenant_cap(mut self, cap: u32) -> Self {
        self.tenant_cap = Some(cap.max(1));
        self
    }
    /// Names the lease (see [`JobConsumerOptions::name`]).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// A store of jobs. See the module docs for the semantics.
#[async_trait]
pub trait JobStore: Send + Sync + 'static {
    /// Accepts a batch of jobs, all or none per queue (see the module docs).
    async fn enqueue(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>, BrokerError>;

    /// Registers a consumer of `queue` under a new lease.
    async fn job_consumer(
        &self,
        queue: &str,
        options: JobConsumerOptions,
    ) -> Result<Box<dyn JobConsumer>, BrokerError>;

    /// The record of job `id` of `queue`, while retained. Lookups name the
    /// queue (as BullMQ's do): a store finds a job without searching every
    /// queue, and a chosen id needs to be unique within its queue only.
    async fn job(&self, queue: &str, id: JobId) -> Result<Option<JobRecord>, BrokerError>;

    /// Counts of `queue`, in all and per partition.
    async fn counts(&self, queue: &str) -> Result<QueueCounts, BrokerError>;

    /// A page of `queue`'s jobs in one state (see [`super::list`]).
    async fn list_jobs(&self, queue: &str, query: &JobQuery) -> Result<JobPage, BrokerError>;

    /// The names of the queues, sorted: every queue a job was enqueued to,
    /// a consumer opened on or a policy set for.
    async fn queues(&self) -> Result<Vec<String>, BrokerError>;

    /// Queues dead job `id` of `queue` again, with its attempts starting
    /// over. Returns whether it was dead.
    async fn requeue_dead_job(&self, queue: &str, id: JobId) -> Result<bool, BrokerError>;

    /// Deletes the dead jobs of `queue`; returns how many.
    async fn purge_dead_jobs(&self, queue: &str) -> Result<usize, BrokerError>;

    /// Keeps `policy` as `queue`'s, for every consumer from its next settle
    /// or reap on. Idempotent; a queue needs no jobs to have a policy.
    async fn set_policy(&self, queue: &str, policy: QueuePolicy) -> Result<(), BrokerError>;

    /// The policy of `queue`: the one last set, else the default.
    async fn policy(&self, queue: &str) -> Result<QueuePolicy, BrokerError>;

    /// Cancels job `id` of `queue`: at once if it has not started, else by
    /// asking its worker to stop it (see the module docs).
    async fn cancel(&self, queue: &str, id: JobId) -> Result<CancelOutcome, BrokerError>;

    /// The jobs of `queue` held by the consumer whose [`Leased::id`] is
    /// `holder` and whose cancellation was asked for, until they settle.
    async fn cancel_requests(&self, queue: &str, holder: &str) -> Result<Vec<JobId>, BrokerError>;

    /// The clock the store keeps due times by; workers time attempts and
    /// retries by it too. The system clock unless the store was given
    /// another (a [`ManualClock`](crate::clock::ManualClock) in tests).
    fn clock(&self) -> SharedClock {
        crate::clock::system()
    }
}

/// A worker's leased claim on one queue's jobs: the shape of every leased
/// consumer ([`Leased`]) with [`Job`]s as its work, [`Settle`]ments as
/// finished work and [`JobId`]s to release. Claims are fair across
/// partitions (see the module docs). Every `Leased` of that shape is one.
pub trait JobConsumer: Leased<Work = Job, Done = Settle, Tag = JobId> {}

impl<T: Leased<Work = Job, Done = Settle, Tag = JobId> + ?Sized> JobConsumer for T {}
