//! What a job is and what became of it.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::envelope::Headers;
use crate::error::BrokerError;
use crate::time::{Deadline, now_ms};

/// Identifies a job: a UUID v7, so ids sort by creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct JobId(Uuid);

impl JobId {
    /// A fresh id.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// The underlying UUID (also the correlation id of the job's outcome
    /// reply).
    pub fn as_uuid(&self) -> &Uuid {
        &self.0
    }

    /// The id named by `name` (a UUID v5 of it, in rota's namespace): the
    /// same for everyone who derives it, as the job of a schedule's
    /// occurrence must be.
    pub fn derived(name: &[u8]) -> Self {
        const ROTA: Uuid = Uuid::from_u128(0x6f2c_1a9e_53d4_4b0f_9a7e_2c81_d0b3_54e1);
        Self(Uuid::new_v5(&ROTA, name))
    }

    /// Parses the hyphenated text form.
    pub fn parse(s: &str) -> Result<Self, BrokerError> {
        Uuid::parse_str(s)
            .map(Self)
            .map_err(|_| BrokerError::Invalid(format!("{s:?} is not a job id (a UUID)")))
    }
}

impl Default for JobId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// A job to enqueue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NewJob {
    /// The job's id, if the enqueuer chooses it (to await its outcome); a
    /// fresh one otherwise.
    #[serde(default)]
    pub id: Option<JobId>,
    /// The queue.
    pub queue: String,
    /// Whose job it is.
    pub tenant: String,
    /// Which handler runs it.
    pub kind: String,
    /// The handler's input, as JSON text.
    #[serde(with = "json_text")]
    pub payload: Bytes,
    /// The run this job executes (the scheduler sets it; defaults to the job id).
    pub run_id: Option<String>,
    /// The partition; defaults to the tenant.
    pub partition: Option<String>,
    /// Not before this instant (Unix ms); `None` for now.
    pub scheduled_for: Option<u64>,
    /// Higher runs first within a partition; 0 by default.
    pub priority: i32,
    /// Enqueueing the same key again while the first job is retained returns
    /// the first job.
    pub idempotency_key: Option<String>,
    /// Overrides the kind's maximum attempts.
    pub max_attempts: Option<u32>,
    /// Overrides the kind's per-attempt timeout, in milliseconds.
    pub timeout_ms: Option<u64>,
    /// After this instant the job is not started any more.
    pub deadline: Option<Deadline>,
    /// Headers (trace context, …).
    pub headers: Headers,
    /// An inbox to send the outcome to.
    pub reply_to: Option<String>,
    /// Refused once the store's clock has passed this instant (Unix ms):
    /// the end of the enqueuer's lease, when the enqueuer is fenced by one
    /// (a scheduler's shard owner), so that an enqueue delayed past it — a
    /// paused process waking up — cannot land after another took over.
    /// See [`check_fence`](super::check_fence).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fenced_until: Option<u64>,
}

mod json_text {
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serializer};
    use serde_json::value::RawValue;

    pub(super) fn serialize<S: Serializer>(b: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        let text = std::str::from_utf8(b).map_err(serde::ser::Error::custom)?;
        let raw: &RawValue = serde_json::from_str(text).map_err(serde::ser::Error::custom)?;
        serde::Serialize::serialize(raw, s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        Ok(Bytes::copy_from_slice(raw.get().as_bytes()))
    }
}

impl NewJob {
    /// A job of `kind` for `tenant` on `queue`, with `payload` encoded as JSON.
    pub fn new(
        queue: impl Into<String>,
        tenant: impl Into<String>,
        kind: impl Into<String>,
        payload: &impl Serialize,
    ) -> Result<Self, BrokerError> {
        let payload = serde_json::to_vec(payload)
            .map_err(|e| BrokerError::Invalid(format!("cannot encode the payload: {e}")))?;
        Ok(Self {
            id: None,
            queue: queue.into(),
            tenant: tenant.into(),
            kind: kind.into(),
            payload: payload.into(),
            run_id: None,
            partition: None,
            scheduled_for: None,
            priority: 0,
            idempotency_key: None,
            max_attempts: None,
            timeout_ms: None,
            deadline: None,
            headers: Headers::new(),
            reply_to: None,
            fenced_until: None,
        })
    }

    /// Sets the job's id.
    pub fn with_id(mut self, id: JobId) -> Self {
        self.id = Some(id);
        self
    }

    /// Runs no earlier than `at_ms` (Unix ms).
    pub fn at(mut self, at_ms: u64) -> Self {
        self.scheduled_for = Some(at_ms);
        self
    }

    /// Runs no earlier than `delay` from now.
    /// (The delay counts from the system clock's now; with a store on
    /// another clock, use [`at`](Self::at) with that clock's time.)
    pub fn after(mut self, delay: Duration) -> Self {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.scheduled_for = Some(now_ms().saturating_add(ms));
        self
    }

    /// Refused once the store's clock passed `until_ms` (the field of
    /// this name says why).
    pub fn fenced_until(mut self, until_ms: u64) -> Self {
        self.fenced_until = Some(until_ms);
        self
    }

    /// Sets the priority (higher first).
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// Sets the idempotency key.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Sets the partition (to group tenants).
    pub fn partition(mut self, partition: impl Into<String>) -> Self {
        self.partition = Some(partition.into());
        self
    }

    /// Puts the tenant in one of `groups` partitions, by a stable hash.
    pub fn tenant_group(self, groups: u32) -> Self {
        let group = fnv1a(self.tenant.as_bytes()) % u64::from(groups.max(1));
        self.partition(format!("g{group}"))
    }

    /// Sets the maximum attempts.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = Some(n.max(1));
        self
    }

    /// Sets the per-attempt timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout_ms = Some(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX));
        self
    }

    /// Sets the run id.
    pub fn run_id(mut self, run_id: impl Into<String>) -> Self {
        self.run_id = Some(run_id.into());
        self
    }

    /// Sets the deadline.
    pub fn deadline(mut self, deadline: Deadline) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }

    /// Sends the outcome to an inbox.
    pub fn reply_to(mut self, inbox: impl Into<String>) -> Self {
        self.reply_to = Some(inbox.into());
        self
    }

    /// The partition the job goes to.
    pub fn partition_key(&self) -> &str {
        self.partition.as_deref().unwrap_or(&self.tenant)
    }
}

/// 64-bit FNV-1a: stable across processes and versions, for tenant groups.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A job as a worker gets it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct Job {
    /// The job's id.
    pub id: JobId,
    /// The run it executes.
    pub run_id: String,
    /// The queue.
    pub queue: String,
    /// Whose job it is.
    pub tenant: String,
    /// The partition it was taken from.
    pub partition: String,
    /// Which handler runs it.
    pub kind: String,
    /// The handler's input, as JSON text.
    #[serde(with = "json_text")]
    #[cfg_attr(feature = "openapi", schema(value_type = Value))]
    pub payload: Bytes,
    /// Which attempt this is, from 1.
    pub attempt: u32,
    /// Maximum attempts, if the job overrides its kind's.
    pub max_attempts: Option<u32>,
    /// Per-attempt timeout in ms, if the job overrides its kind's.
    pub timeout_ms: Option<u64>,
    /// Not started after this instant.
    pub deadline: Option<Deadline>,
    /// When it was enqueued (Unix ms).
    pub enqueued_at_ms: u64,
    /// When it was due (Unix ms).
    pub scheduled_for_ms: u64,
    /// Its priority.
    pub priority: i32,
    /// Headers.
    pub headers: Headers,
    /// Where its outcome goes.
    pub reply_to: Option<String>,
}

impl Job {
    /// The job a [`NewJob`] becomes when accepted at `now` (Unix ms).
    pub fn accept(id: JobId, new: &NewJob, now: u64) -> Self {
        Self {
            id,
            run_id: new.run_id.clone().unwrap_or_else(|| id.to_string()),
            queue: new.queue.clone(),
            tenant: new.tenant.clone(),
            partition: new.partition_key().to_owned(),
            kind: new.kind.clone(),
            payload: new.payload.clone(),
            attempt: 1,
            max_attempts: new.max_attempts,
            timeout_ms: new.timeout_ms,
            deadline: new.deadline,
            enqueued_at_ms: now,
            scheduled_for_ms: new.scheduled_for.unwrap_or(now).max(now),
            priority: new.priority,
            headers: new.headers.clone(),
            reply_to: new.reply_to.clone(),
        }
    }
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum JobState {
    /// Waiting for its time (first run, or a retry's backoff).
    Scheduled,
    /// Due, waiting for a worker.
    Queued,
    /// Held by a worker.
    Running,
    /// Done.
    Succeeded,
    /// Failed for good (a non-retryable error).
    Failed,
    /// Cancelled before it ran.
    Cancelled,
    /// Out of attempts, or impossible to run (unknown kind): in the
    /// dead-letter set, to inspect, re-enqueue or purge.
    Dead,
}

impl JobState {
    /// Whether the job will not run again by itself.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled | JobState::Dead
        )
    }
}

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "outcome", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AttemptOutcome {
    /// The handler returned success.
    Succeeded,
    /// The handler returned an error (or panicked, or its payload did not
    /// decode).
    Failed {
        /// What went wrong.
        error: String,
        /// Whether another attempt may help.
        retryable: bool,
    },
    /// The attempt ran past its timeout and was cancelled.
    TimedOut,
    /// The worker gave the job up (shutdown) or it was cancelled.
    Cancelled,
    /// The worker's lease lapsed (it died or lost the store).
    Lost,
}

/// One attempt of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Attempt {
    /// Which attempt, from 1.
    pub attempt: u32,
    /// The worker (consumer id) that ran it.
    pub worker: String,
    /// When it started (Unix ms).
    pub started_at_ms: u64,
    /// When it ended (Unix ms).
    pub finished_at_ms: u64,
    /// How it ended.
    pub outcome: AttemptOutcome,
}

impl Attempt {
    /// Why the attempt ended, in words; `None` when it succeeded.
    pub fn describe(&self) -> Option<String> {
        match &self.outcome {
            AttemptOutcome::Succeeded => None,
            AttemptOutcome::Failed { error, .. } => Some(error.clone()),
            AttemptOutcome::TimedOut => Some(format!("attempt {} timed out", self.attempt)),
            AttemptOutcome::Cancelled => Some(format!("attempt {} was cancelled", self.attempt)),
            AttemptOutcome::Lost => Some(format!(
                "attempt {} was lost: its worker's lease lapsed",
                self.attempt
            )),
        }
    }
}

/// Everything known about a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct JobRecord {
    /// The job.
    pub job: Job,
    /// Its state.
    pub state: JobState,
    /// Its finished attempts, oldest first.
    pub attempts: Vec<Attempt>,
    /// The handler's result (JSON), once succeeded.
    pub result: Option<serde_json::Value>,
    /// Why it failed or was dead-lettered.
    pub reason: Option<String>,
    /// When it reached a final state (Unix ms).
    pub finished_at_ms: Option<u64>,
}

impl JobRecord {
    /// A record of a job just accepted.
    pub fn new(job: Job, now: u64) -> Self {
        let state = if job.scheduled_for_ms > now {
            JobState::Scheduled
        } else {
            JobState::Queued
        };
        Self {
            job,
            state,
            attempts: Vec::new(),
            result: None,
            reason: None,
            finished_at_ms: None,
        }
    }
}

/// The outcome of a job, as sent to its `reply_to` inbox once the job is
/// final: the body of an `ok` reply whose correlation id is the job id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobOutcome {
    /// The job.
    pub id: JobId,
    /// The run it executed (a schedule's run says which schedule and
    /// occurrence; else the job id).
    #[serde(default)]
    pub run_id: String,
    /// Its final state: succeeded, failed, cancelled or dead.
    pub state: JobState,
    /// Attempts made.
    pub attempts: u32,
    /// The handler's result, when it succeeded.
    pub result: Option<serde_json::Value>,
    /// Why it failed, was cancelled or dead-lettered.
    pub error: Option<String>,
    /// When it was enqueued (Unix ms).
    pub enqueued_at_ms: u64,
    /// When its last attempt started (Unix ms).
    pub started_at_ms: u64,
    /// When it became final (Unix ms).
    pub finished_at_ms: u64,
}

impl JobRecord {
    /// The outcome of this record, as sent to `reply_to` once final.
    pub fn outcome(&self) -> JobOutcome {
        let last = self.attempts.last();
        JobOutcome {
            run_id: self.job.run_id.clone(),
            id: self.job.id,
            state: self.state,
            attempts: self.attempts.len() as u32,
            result: self.result.clone(),
            error: self.reason.clone().or_else(|| {
                last.and_then(|a| match &a.outcome {
                    AttemptOutcome::Failed { error, .. } => Some(error.clone()),
                    _ => None,
                })
            }),
            enqueued_at_ms: self.job.enqueued_at_ms,
            started_at_ms: last.map_or(0, |a| a.started_at_ms),
            finished_at_ms: self.finished_at_ms.unwrap_or(0),
        }
    }

    /// The outcome reply to send when the store itself makes the job final
    /// (a reap dead-letters it, a cancel stops it): the inbox and the encoded
    /// reply, if the job asked for one.
    pub fn outcome_reply(&self) -> Option<(String, Bytes)> {
        let to = self.job.reply_to.as_ref()?;
        let codec = crate::Codec::Json;
        let body = codec.encode(&self.outcome()).ok()?;
        let reply = crate::Reply {
            id: crate::CorrelationId::from(*self.job.id.as_uuid()),
            codec,
            outcome: crate::Outcome::Ok(body.into()),
        };
        Some((to.clone(), reply.encode().ok()?.into()))
    }
}

/// What an enqueue did with one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Enqueued {
    /// The job's id (the earlier job's, for a repeated idempotency key).
    pub id: JobId,
    /// Whether an earlier job with the same idempotency key was returned.
    pub duplicate: bool,
}
