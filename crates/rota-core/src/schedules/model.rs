//! What a schedule is: the job it runs, when ([`Trigger`]), and what to do
//! when runs would overlap or were missed.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::plan::Plan;
use super::store::ScheduleError;
use super::trigger::Trigger;
use crate::jobs::validate::DEFAULT_MAX_PAYLOAD;
use crate::jobs::{JobId, NewJob, validate_job};

/// Longest schedule id, tenant, name, label key or value, in bytes.
pub const MAX_NAME: usize = 200;

/// Most labels on one schedule.
pub const MAX_LABELS: usize = 32;

/// Most runs kept in a schedule's history.
pub const MAX_HISTORY: usize = 100;

/// Most occurrences waiting with [`Overlap::BufferAll`].
pub const MAX_BUFFER: u32 = 1_000;

/// Most missed occurrences fired with [`CatchUp::All`].
pub const MAX_CATCH_UP: u32 = 1_000;

/// The job a schedule enqueues at each occurrence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct JobTemplate {
    /// The queue it goes to.
    pub queue: String,
    /// Its kind (the handler that runs it).
    pub kind: String,
    /// Its payload (JSON).
    pub payload: serde_json::Value,
    /// Its priority within its partition (higher first).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub priority: i32,
    /// Longest an attempt may run, in ms; the worker's default if unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Attempts in all; the queue's policy if unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// The partition it is fair within; the schedule's tenant if unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

impl JobTemplate {
    /// A job of `kind` on `queue` with `payload`.
    pub fn new(
        queue: impl Into<String>,
        kind: impl Into<String>,
        payload: serde_json::Value,
    ) -> Self {
        Self {
            queue: queue.into(),
            kind: kind.into(),
            payload,
            priority: 0,
            timeout_ms: None,
            max_attempts: None,
            partition: None,
        }
    }
    /// Sets the priority.
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }
    /// Sets the per-attempt timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout_ms = Some(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX));
        self
    }
    /// Sets the attempts in all.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = Some(n.max(1));
        self
    }
    /// Sets the partition.
    pub fn partition(mut self, partition: impl Into<String>) -> Self {
        self.partition = Some(partition.into());
        self
    }
}

impl JobTemplate {
    /// The job that runs occurrence `occurrence_ms` of schedule `schedule`
    /// of `tenant`, its outcome sent to `reply_to`: its id derived from the
    /// two ([`run_job_id`]), its run id `<schedule>@<occurrence ms>`.
    pub fn to_job(
        &self,
        tenant: &str,
        schedule: &str,
        occurrence_ms: i64,
        reply_to: Option<String>,
    ) -> Result<NewJob, crate::BrokerError> {
        let mut job = NewJob::new(&self.queue, tenant, &self.kind, &self.payload)?;
        job.id = Some(run_job_id(schedule, occurrence_ms));
        job.run_id = Some(format!("{schedule}@{occurrence_ms}"));
        job.priority = self.priority;
        job.timeout_ms = self.timeout_ms;
        job.max_attempts = self.max_attempts;
        job.partition = self.partition.clone();
        job.reply_to = reply_to;
        Ok(job)
    }
}

/// The schedule and occurrence a run id names (`<schedule>@<occurrence
/// ms>`), if it is one.
pub fn parse_run_id(run_id: &str) -> Option<(&str, i64)> {
    let (schedule, at) = run_id.rsplit_once('@')?;
    Some((schedule, at.parse().ok()?))
}

/// What happens when an occurrence comes due while the schedule's previous
/// run still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case", tag = "policy")]
#[non_exhaustive]
pub enum Overlap {
    /// The occurrence is skipped, and counted (the default).
    #[default]
    Skip,
    /// It waits for the running one to finish; a later one replaces it
    /// (the replaced one is counted as skipped).
    BufferOne,
    /// Each waits, in order, for the one before to finish; beyond `max`
    /// waiting, the oldest is dropped and counted.
    BufferAll {
        /// Most occurrences waiting (at most [`MAX_BUFFER`]).
        max: u32,
    },
    /// It runs anyway, beside the running one.
    AllowAll,
    /// The running one is cancelled (its handler told to stop), and the
    /// new one starts once it has stopped.
    CancelRunning,
}

/// What happens to occurrences that were missed — every scheduler was
/// down, the schedule was paused, the scheduler fell behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct Missed {
    /// How late an occurrence may still fire, in ms; older ones are
    /// skipped, counted and recorded.
    pub catch_up_window_ms: u64,
    /// Which of the missed occurrences inside the window fire.
    pub catch_up: CatchUp,
}

impl Default for Missed {
    /// A minute's window; the latest missed occurrence fires once.
    fn default() -> Self {
        Self {
            catch_up_window_ms: 60_000,
            catch_up: CatchUp::Once,
        }
    }
}

/// Which missed occurrences inside the catch-up window fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case", tag = "mode")]
#[non_exhaustive]
pub enum CatchUp {
    /// One run, for the latest of them (the default); the others are
    /// counted as skipped.
    #[default]
    Once,
    /// Each of them, oldest first, up to `max` (at most [`MAX_CATCH_UP`]);
    /// the older ones beyond are skipped.
    All {
        /// Most missed occurrences fired at once.
        max: u32,
    },
}

/// A schedule as it is created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct NewSchedule {
    /// Its id, if chosen (unique in the store); else one is generated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The tenant it belongs to.
    pub tenant: String,
    /// A name for people.
    #[serde(default)]
    pub name: String,
    /// Labels, to find and group schedules.
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
    /// Whether it starts paused.
    #[serde(default)]
    pub paused: bool,
}

impl NewSchedule {
    /// A schedule of `tenant` running `job` when `trigger` fires.
    pub fn new(tenant: impl Into<String>, job: JobTemplate, trigger: Trigger) -> Self {
        Self {
            id: None,
            tenant: tenant.into(),
            name: String::new(),
            labels: BTreeMap::new(),
            job,
            trigger,
            overlap: Overlap::default(),
            missed: Missed::default(),
            paused: false,
        }
    }
    /// Chooses its id.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }
    /// Names it.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
    /// Adds a label.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }
    /// Sets the overlap policy.
    pub fn overlap(mut self, overlap: Overlap) -> Self {
        self.overlap = overlap;
        self
    }
    /// Sets the missed-run policy.
    pub fn missed(mut self, missed: Missed) -> Self {
        self.missed = missed;
        self
    }
    /// Creates it paused.
    pub fn paused(mut self) -> Self {
        self.paused = true;
        self
    }

    /// Checks it before it is stored, at `now`: the id, tenant, name and
    /// labels; the job (as a job of the tenant would be checked); the
    /// policies' bounds; the trigger ([`Trigger::validate`]). Returns the
    /// trigger's plan.
    pub fn validate(&self, now: jiff::Timestamp) -> Result<Plan, ScheduleError> {
        if let Some(id) = &self.id {
            check_name("id", id, ":")?;
        }
        check_name("tenant", &self.tenant, "@")?;
        if self.name.len() > MAX_NAME {
            return Err(invalid("name", format!("at most {MAX_NAME} bytes")));
        }
        if self.labels.len() > MAX_LABELS {
            return Err(invalid("labels", format!("at most {MAX_LABELS} of them")));
        }
        for (k, v) in &self.labels {
            if k.is_empty() || k.len() > MAX_NAME || v.len() > MAX_NAME {
                return Err(invalid(
                    "labels",
                    format!("{k:?}: keys of 1 to {MAX_NAME} bytes, values of at most {MAX_NAME}"),
                ));
            }
        }
        let job = self
            .job
            .to_job(&self.tenant, self.id.as_deref().unwrap_or("x"), 0, None)
            .map_err(|e| invalid("job", e.to_string()))?;
        validate_job(&job, DEFAULT_MAX_PAYLOAD).map_err(|e| invalid("job", e.to_string()))?;
        if let Overlap::BufferAll { max } = self.overlap
            && !(1..=MAX_BUFFER).contains(&max)
        {
            return Err(invalid("overlap.max", format!("from 1 to {MAX_BUFFER}")));
        }
        if let CatchUp::All { max } = self.missed.catch_up
            && !(1..=MAX_CATCH_UP).contains(&max)
        {
            return Err(invalid(
                "missed.catch_up.max",
                format!("from 1 to {MAX_CATCH_UP}"),
            ));
        }
        Ok(self.trigger.validate(now)?)
    }
}

fn invalid(field: &'static str, problem: String) -> ScheduleError {
    ScheduleError::Invalid { field, problem }
}

/// A schedule id (it becomes part of keys and of run ids, so no `@`) or a
/// tenant (as jobs take it): 1 to 128 bytes of ASCII letters, digits,
/// `- _ . /` and the characters of `extra`.
fn check_name(field: &'static str, value: &str, extra: &str) -> Result<(), ScheduleError> {
    if value.is_empty() || value.len() > 128 {
        return Err(invalid(
            field,
            format!("{value:?} must be 1 to 128 bytes long"),
        ));
    }
    if let Some(bad) = value.chars().find(|&c| {
        !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/') || extra.contains(c))
    }) {
        return Err(invalid(
            field,
            format!(
                "{value:?} holds {bad:?}; use ASCII letters, digits, '-', '_', '.', '/' or {extra:?}"
            ),
        ));
    }
    Ok(())
}

/// A run of a schedule: one occurrence's job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct RunRef {
    /// The occurrence instant (Unix ms) it runs for.
    pub occurrence_ms: i64,
    /// Its job, whose id is [`run_job_id`] of the schedule and occurrence.
    pub job: JobId,
}

impl RunRef {
    /// The run of occurrence `occurrence_ms` of schedule `schedule`.
    pub fn of(schedule: &str, occurrence_ms: i64) -> Self {
        Self {
            occurrence_ms,
            job: run_job_id(schedule, occurrence_ms),
        }
    }
}

/// The id of the job that runs occurrence `occurrence_ms` of schedule
/// `schedule`: the same for every scheduler that dispatches it, so that
/// dispatching it twice enqueues it once.
pub fn run_job_id(schedule: &str, occurrence_ms: i64) -> JobId {
    JobId::derived(format!("{schedule}@{occurrence_ms}").as_bytes())
}
