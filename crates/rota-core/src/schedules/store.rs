//! The schedule store trait and what it keeps.
//!
//! A backend that stores schedules implements [`ScheduleStore`] beside
//! [`JobStore`](crate::jobs::JobStore): the runs a scheduler dispatches are
//! jobs, and their outcomes come back to the **inbox of the schedule's
//! shard** — an inbox of the store, not of the process that dispatched, so
//! an outcome reaches whoever owns the shard when the run finishes.
//!
//! # Semantics every backend keeps (checked by `rota_conformance::schedules`)
//!
//! * **Shards.** Each schedule belongs to one of [`ScheduleStore::shards`]
//!   shards ([`shard_of`] its id). A scheduler holds a shard under a lease
//!   with a fencing epoch ([`ScheduleStore::acquire_shard`]): granted only
//!   when no live lease holds it, each grant with the next epoch. Every
//!   write a scheduler makes for a shard ([`ScheduleStore::commit`],
//!   [`ScheduleStore::ack_replies`], [`ScheduleStore::dispatched`]) is
//!   refused with [`BrokerError::LeaseLost`] once its lease lapsed or a
//!   later epoch was granted.
//! * **Changes are atomic and versioned.** Every schedule has a version,
//!   bumped by each change; a change made from a stale read (the version
//!   moved) is refused with [`ScheduleError::Conflict`] and changes nothing,
//!   so an edit through the API and the owner's progress never overwrite
//!   each other.
//! * **Due index.** [`ScheduleStore::due`] answers the shard's schedules
//!   whose next dispatch instant has come, earliest first, without reading
//!   the others; a paused schedule is not due.
//! * **Dispatch outbox.** A commit that dispatches runs records them in
//!   the shard's outbox in the same write; the scheduler enqueues their jobs
//!   and then removes them ([`ScheduleStore::dispatched`]). A scheduler
//!   that takes a shard over finds in [`ScheduleStore::outbox`] what its
//!   predecessor may not have enqueued.
//! * **Run history** ([`ScheduleStore::runs`]) keeps the last
//!   [`MAX_HISTORY`](super::MAX_HISTORY) runs of each schedule, newest first.

use std::collections::BTreeMap;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::model::{JobTemplate, Missed, NewSchedule, Overlap, RunRef};
use super::progress::{Progress, Skip};
use super::trigger::Trigger;
use crate::error::BrokerError;
use crate::jobs::{JobId, JobState};

/// A schedule as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct Schedule {
    /// Its id, unique in the store.
    pub id: String,
    /// The tenant it belongs to.
    pub tenant: String,
    /// A name for people.
    #[serde(default)]
    pub name: String,
    /// Labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The job it runs.
    pub job: JobTemplate,
    /// When it runs.
    pub trigger: Trigger,
    /// What happens when runs would overlap.
    #[serde(default)]
    pub overlap: Overlap,
    /// What happens to missed occurrences.
    #[serde(default)]
    pub missed: Missed,
    /// Whether it is paused (no occurrence is handled until it resumes;
    /// those that came meanwhile follow the missed-run policy).
    #[serde(default)]
    pub paused: bool,
    /// When it was created and last changed (Unix ms).
    pub created_ms: i64,
    /// When it was last changed (Unix ms).
    pub updated_ms: i64,
    /// Bumped by every change.
    pub version: u64,
    /// Where it stands: next occurrence, running runs, counts.
    #[serde(default)]
    pub progress: Progress,
    /// Runs asked for by hand, not yet handled by the shard's owner.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requests: Vec<Request>,
}

impl Schedule {
    /// A schedule made of `new`, with id `id`, created at `now_ms`, before
    /// any progress.
    pub fn from_new(new: NewSchedule, id: String, now_ms: i64) -> Self {
        Self {
            id,
            tenant: new.tenant,
            name: new.name,
            labels: new.labels,
            job: new.job,
            trigger: new.trigger,
            overlap: new.overlap,
            missed: new.missed,
            paused: new.paused,
            created_ms: now_ms,
            updated_ms: now_ms,
            version: 1,
            progress: Progress::default(),
            requests: Vec::new(),
        }
    }

    /// What a caller may set of it, as a [`NewSchedule`] with its id: what
    /// an export writes, and an import or upsert reads back.
    pub fn to_new(&self) -> NewSchedule {
        NewSchedule {
            id: Some(self.id.clone()),
            tenant: self.tenant.clone(),
            name: self.name.clone(),
            labels: self.labels.clone(),
            job: self.job.clone(),
            trigger: self.trigger.clone(),
            overlap: self.overlap,
            missed: self.missed,
            paused: self.paused,
        }
    }

    /// When the shard's owner must next look at it (Unix ms): its next
    /// dispatch instant, or now for a pending request; `None` while paused
    /// or when nothing is coming.
    pub fn due_ms(&self) -> Option<i64> {
        if self.paused {
            return None;
        }
        if let Some(r) = self.requests.first() {
            return Some(r.asked_ms);
        }
        self.progress.due_at().map(|t| t.as_millisecond())
    }
}

/// A run asked for by hand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct Request {
    /// When it was asked for (Unix ms).
    pub asked_ms: i64,
    /// What was asked.
    pub what: Asked,
}

impl Request {
    /// `what`, asked for at `asked_ms`.
    pub fn new(asked_ms: i64, what: Asked) -> Self {
        Self { asked_ms, what }
    }
}

/// What was asked for by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case", tag = "kind")]
#[non_exhaustive]
pub enum Asked {
    /// A run now (its occurrence is the instant asked).
    TriggerNow,
    /// The trigger's occurrences in a range (Unix ms, inclusive).
    Backfill {
        /// The first instant.
        from_ms: i64,
        /// The last instant.
        to_ms: i64,
    },
}

/// How a run went, as its history says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RunState {
    /// Dispatched: its job is queued or running.
    Dispatched,
    /// Finished, in this job state (succeeded, failed, cancelled, dead).
    Finished(JobState),
    /// It did not run.
    Skipped(Skip),
}

/// One entry of a schedule's run history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct RunRecord {
    /// The occurrence instant (Unix ms); for skipped ones, the first.
    pub occurrence_ms: i64,
    /// For skipped ones, the last occurrence instant, and how many.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<(i64, u64)>,
    /// Its job (none for skipped ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobId>,
    /// How it went.
    pub state: RunState,
    /// When it was dispatched (or skipped), Unix ms.
    pub at_ms: i64,
    /// When its job started its last attempt, Unix ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<i64>,
    /// When it finished, Unix ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<i64>,
    /// Attempts its job made.
    #[serde(default)]
    pub attempts: u32,
    /// Why it failed, was cancelled or dead-lettered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl RunRecord {
    /// Run `run`, dispatched at `at_ms`.
    pub fn dispatched(run: &RunRef, at_ms: i64) -> Self {
        Self {
            occurrence_ms: run.occurrence_ms,
            skipped: None,
            job: Some(run.job),
            state: RunState::Dispatched,
            at_ms,
            started_ms: None,
            finished_ms: None,
            attempts: 0,
            error: None,
        }
    }

    /// `count` occurrences from `from_ms` to `to_ms`, skipped at `at_ms`
    /// for `why`.
    pub fn skipped(from_ms: i64, to_ms: i64, count: u64, why: Skip, at_ms: i64) -> Self {
        Self {
            occurrence_ms: from_ms,
            skipped: Some((to_ms, count)),
            job: None,
            state: RunState::Skipped(why),
            at_ms,
            started_ms: None,
            finished_ms: None,
            attempts: 0,
            error: None,
        }
    }

    /// The run of occurrence `occurrence_ms`, job `job`, finished in
    /// `state` (its dispatch instant is kept from the entry it updates).
    pub fn finished(
        occurrence_ms: i64,
        job: JobId,
        state: RunState,
        started_ms: i64,
        finished_ms: i64,
        attempts: u32,
        error: Option<String>,
    ) -> Self {
        Self {
            occurrence_ms,
            skipped: None,
            job: Some(job),
            state,
            at_ms: 0,
            started_ms: Some(started_ms),
            finished_ms: Some(finished_ms),
            attempts,
            error,
        }
    }
}

/// A scheduler's lease on a shard.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShardLease {
    /// The shard.
    pub shard: u32,
    /// The scheduler holding it.
    pub holder: String,
    /// The grant's fencing token: higher than every earlier grant's.
    pub epoch: u64,
    /// When the grant ends unless renewed, by the store's clock (Unix
    /// ms): no other holder is granted the shard before. The holder fences
    /// its job enqueues with it ([`NewJob::fenced_until`]), as they cannot
    /// be checked against the epoch in the same write.
    ///
    /// [`NewJob::fenced_until`]: crate::jobs::NewJob::fenced_until
    pub until_ms: i64,
}

impl ShardLease {
    /// The lease of `holder` on `shard` at `epoch`, until `until_ms`.
    pub fn new(shard: u32, holder: impl Into<String>, epoch: u64, until_ms: i64) -> Self {
        Self {
            shard,
            holder: holder.into(),
            epoch,
            until_ms,
        }
    }
}

/// Who holds a shard, for operators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct ShardOwner {
    /// The shard.
    pub shard: u32,
    /// Its holder, while a live lease holds it.
    pub holder: Option<String>,
    /// The latest epoch granted.
    pub epoch: u64,
}

impl ShardOwner {
    /// Shard `shard`, held by `holder`, at `epoch`.
    pub fn new(shard: u32, holder: Option<String>, epoch: u64) -> Self {
        Self {
            shard,
            holder,
            epoch,
        }
    }
}

/// One schedule's change, as the owner of its shard commits it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Change {
    /// The schedule as changed; its `version` is the one read (the store
    /// refuses the change if the stored one moved, and writes version + 1).
    pub schedule: Schedule,
    /// Runs to dispatch (recorded in the shard's outbox).
    pub dispatch: Vec<RunRef>,
    /// Entries for the run history, oldest first.
    pub history: Vec<RunRecord>,
    /// Finished runs, to update in the history by occurrence instant.
    pub finished: Vec<RunRecord>,
}

impl Change {
    /// `schedule` as changed, with nothing else to write.
    pub fn new(schedule: Schedule) -> Self {
        Self {
            schedule,
            dispatch: Vec::new(),
            history: Vec::new(),
            finished: Vec::new(),
        }
    }
}

/// A run dispatched by a commit and not yet known to be enqueued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Outbound {
    /// The schedule.
    pub schedule: String,
    /// The run.
    pub run: RunRef,
}

impl Outbound {
    /// Run `run` of schedule `schedule`.
    pub fn new(schedule: impl Into<String>, run: RunRef) -> Self {
        Self {
            schedule: schedule.into(),
            run,
        }
    }
}

/// A reply in a shard's inbox: an outcome of a run.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ShardReply {
    /// Its place in the inbox (to acknowledge it).
    pub seq: u64,
    /// The reply as sent ([`Reply`](crate::Reply) encoding).
    pub body: Bytes,
}

impl ShardReply {
    /// Reply number `seq`.
    pub fn new(seq: u64, body: Bytes) -> Self {
        Self { seq, body }
    }
}

/// A page of schedules.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Page {
    /// The schedules, by id.
    pub schedules: Vec<Schedule>,
    /// Where the next page starts, if there is one.
    pub next: Option<String>,
}

impl Page {
    /// `schedules`, the next page after `next`.
    pub fn new(schedules: Vec<Schedule>, next: Option<String>) -> Self {
        Self { schedules, next }
    }

    /// The page of the first `limit` of `schedules`, read one beyond the
    /// limit to know whether more follow: then the page's `next` is its
    /// last id.
    pub fn of_read(mut schedules: Vec<Schedule>, limit: usize) -> Self {
        let next = if schedules.len() > limit {
            schedules.truncate(limit);
            schedules.last().map(|s| s.id.clone())
        } else {
            None
        };
        Self { schedules, next }
    }
}

/// What can go wrong with a schedule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleError {
    /// Its trigger is wrong.
    #[error("trigger: {0}")]
    Trigger(#[from] super::TriggerError),
    /// A field is wrong.
    #[error("{field}: {problem}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// No schedule has this id.
    #[error("no schedule has id {0:?}")]
    NotFound(String),
    /// A schedule with this id exists already.
    #[error("a schedule with id {0:?} exists already")]
    Exists(String),
    /// The schedule changed since it was read; read it again.
    #[error("schedule {0:?} changed since it was read")]
    Conflict(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] BrokerError),
}

/// The shard of schedule `id` among `shards` (FNV-1a of the id: the same in
/// every process and release).
pub fn shard_of(id: &str, shards: u32) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % u64::from(shards.max(1))) as u32
}

/// A store of schedules. See the module docs for the semantics.
#[async_trait]
pub trait ScheduleStore: Send + Sync + 'static {
    /// How many shards the schedules are spread over.
    fn shards(&self) -> u32;

    /// The address of `shard`'s inbox, to send run outcomes to.
    fn shard_inbox(&self, shard: u32) -> String;

    // -- Changes from anywhere (the API, the CLI) --

    /// Stores `schedule` (validated by the caller) unless its id is taken.
    async fn insert(&self, schedule: Schedule) -> Result<(), ScheduleError>;

    /// Stores each of `schedules` (validated, ids distinct), replacing one
    /// with the same id whole, at a version past the replaced one's (so a
    /// change read before cannot be made over it). All or none — per shard
    /// on a store that keeps shards apart (Redis, where shards may live on
    /// different nodes): the error then names what was not written, and
    /// the same upsert again completes it.
    async fn upsert_many(&self, schedules: Vec<Schedule>) -> Result<(), ScheduleError>;

    /// Replaces schedule `schedule.id` if its stored version is still
    /// `schedule.version`; returns the stored one (version + 1).
    async fn replace(&self, schedule: Schedule) -> Result<Schedule, ScheduleError>;

    /// Deletes schedule `id` (its running runs go on; their outcomes are
    /// dropped); returns whether it existed.
    async fn delete(&self, id: &str) -> Result<bool, ScheduleError>;

    /// Schedule `id`.
    async fn get(&self, id: &str) -> Result<Option<Schedule>, ScheduleError>;

    /// Schedules `ids`, in their order, `None` for each there is none of:
    /// what a scheduler reads of the schedules whose runs finished. Each
    /// is read as [`get`](Self::get) reads it, not all at one instant. The
    /// default reads them one by one; a backend over a network reads them
    /// in one round trip.
    async fn get_many(&self, ids: &[&str]) -> Result<Vec<Option<Schedule>>, ScheduleError> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(self.get(id).await?);
        }
        Ok(out)
    }

    /// Up to `limit` schedules of `tenant` with ids after `after`, by id.
    async fn list(
        &self,
        tenant: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page, ScheduleError>;

    /// The run history of schedule `id`, newest first, at most `limit`.
    async fn runs(&self, id: &str, limit: usize) -> Result<Vec<RunRecord>, ScheduleError>;

    // -- The owner of a shard --

    /// Grants `holder` a lease of `ttl_ms` on `shard`, with the next epoch,
    /// if no live lease holds it; `None` if one does.
    async fn acquire_shard(
        &self,
        shard: u32,
        holder: &str,
        ttl_ms: u64,
    ) -> Result<Option<ShardLease>, ScheduleError>;

    /// Extends `lease` by `ttl_ms` and returns its new end (the store's
    /// clock, Unix ms); [`BrokerError::LeaseLost`] if it lapsed or a later
    /// epoch was granted.
    async fn renew_shard(&self, lease: &ShardLease, ttl_ms: u64) -> Result<i64, ScheduleError>;

    /// Gives `lease` up at once (if it is still the current grant).
    async fn release_shard(&self, lease: &ShardLease) -> Result<(), ScheduleError>;

    /// Every shard's holder and latest epoch.
    async fn shard_owners(&self) -> Result<Vec<ShardOwner>, ScheduleError>;

    /// Says `scheduler` is alive for `ttl_ms`, and returns the schedulers
    /// alive (itself included), sorted: each takes its share of the shards.
    /// A `ttl_ms` of 0 says it left: no later call lists it.
    async fn heartbeat(&self, scheduler: &str, ttl_ms: u64) -> Result<Vec<String>, ScheduleError>;

    /// Up to `limit` schedules of the lease's shard due at or before
    /// `until_ms`, earliest first.
    async fn due(
        &self,
        lease: &ShardLease,
        until_ms: i64,
        limit: usize,
    ) -> Result<Vec<Schedule>, ScheduleError>;

    /// When the lease's shard has its next schedule due (Unix ms), if any.
    async fn next_due(&self, lease: &ShardLease) -> Result<Option<i64>, ScheduleError>;

    /// Commits `changes`, fenced by `lease`: each one atomically (a change
    /// whose schedule moved or is gone answers its error and changes
    /// nothing), in order. Returns each one's result.
    async fn commit(
        &self,
        lease: &ShardLease,
        changes: Vec<Change>,
    ) -> Result<Vec<Result<Schedule, ScheduleError>>, ScheduleError>;

    /// Runs of the lease's shard dispatched and not yet marked enqueued,
    /// oldest first, at most `limit`.
    async fn outbox(
        &self,
        lease: &ShardLease,
        limit: usize,
    ) -> Result<Vec<Outbound>, ScheduleError>;

    /// Marks `runs` of the lease's shard enqueued (out of the outbox).
    async fn dispatched(&self, lease: &ShardLease, runs: &[Outbound]) -> Result<(), ScheduleError>;

    /// Up to `limit` replies in the lease's shard's inbox, oldest first
    /// (they stay until acknowledged).
    async fn replies(
        &self,
        lease: &ShardLease,
        limit: usize,
    ) -> Result<Vec<ShardReply>, ScheduleError>;

    /// Removes replies up to and including `seq` from the lease's shard's
    /// inbox, fenced.
    async fn ack_replies(&self, lease: &ShardLease, seq: u64) -> Result<(), ScheduleError>;
}
