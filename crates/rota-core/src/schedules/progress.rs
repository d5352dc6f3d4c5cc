//! Where a schedule stands, and what a scheduler does with it — pure: a
//! [`Progress`] and an instant in, the [`Step`]s to take out.
//!
//! The scheduler that owns a schedule's shard calls [`Progress::due`] once
//! the next occurrence's dispatch instant has come, [`Progress::finished`]
//! when a run's outcome arrives, [`Progress::trigger_now`] and
//! [`Progress::backfill`] on request. Each changes the progress and returns
//! the steps — runs to dispatch, runs to cancel, occurrences skipped — that
//! the store commits together with it, fenced by the shard's lease, before
//! any job is enqueued. So an occurrence is dispatched by exactly one
//! commit: a scheduler that takes the shard over finds it either not yet
//! handled (and handles it) or handled (its run among [`Progress::running`]).
//!
//! * **Missed occurrences** — those whose instant is older than the
//!   schedule's catch-up window when they are handled — are skipped and
//!   counted. Of those inside the window, [`CatchUp::Once`] fires the latest
//!   and skips the others; [`CatchUp::All`] fires them all, oldest first, up
//!   to its bound.
//! * **Overlap** — an occurrence that comes while a run is running (or
//!   waiting to) — follows the schedule's [`Overlap`] policy.
//! * **After completion** triggers compute their next occurrence only when
//!   a run finished, from the instant it finished.

use std::collections::VecDeque;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::model::{CatchUp, MAX_BUFFER, MAX_CATCH_UP, Missed, Overlap, RunRef, run_job_id};
use super::plan::{Occurrence, Plan};
use crate::jobs::{JobId, JobState};

/// Most due occurrences walked one by one in one call; beyond, the missed
/// ones are skipped in one jump (and counted as at least this many).
pub const MAX_WALK: usize = 10_000;

/// How often a schedule's occurrences went one way or another.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct Counts {
    /// Runs dispatched.
    pub fired: u64,
    /// Occurrences skipped because a run was running (or one replaced in
    /// the buffer, or dropped from it).
    pub skipped_overlap: u64,
    /// Occurrences skipped because they were missed (outside the catch-up
    /// window, or not the one that fires).
    pub skipped_missed: u64,
    /// Runs cancelled to make room for a new one.
    pub cancelled: u64,
}

/// Why an occurrence did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Skip {
    /// A run was running (the overlap policy).
    Overlap,
    /// It was missed (the missed-run policy).
    Missed,
}

/// What a scheduler does, in order, once the progress that returned it is
/// committed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// Enqueue the run of this occurrence (its job id is
    /// [`run_job_id`] of the schedule and the occurrence).
    Dispatch(RunRef),
    /// Cancel this running run's job.
    Cancel(JobId),
    /// These occurrences did not run: `count` of them, from `from_ms` to
    /// `to_ms` (Unix ms, inclusive), for this reason.
    Skipped {
        /// The first skipped.
        from_ms: i64,
        /// The last skipped.
        to_ms: i64,
        /// How many (at least, after a jump over more than [`MAX_WALK`]).
        count: u64,
        /// Why.
        why: Skip,
    },
}

/// Where a schedule stands. Stored with the schedule; changed only by the
/// owner of its shard.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct Progress {
    /// The next occurrence not yet handled; `None` when none is coming (the
    /// trigger ended, or an after-completion trigger waits for its run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<Occurrence>,
    /// Runs dispatched and not finished, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub running: Vec<RunRef>,
    /// Occurrences waiting for the running run to finish (buffered).
    #[serde(default, skip_serializing_if = "VecDeque::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<i64>))]
    pub waiting: VecDeque<i64>,
    /// The trigger's occurrences handled so far, fired or skipped (what a
    /// trigger's `max_runs` bounds; runs asked for by hand do not count).
    #[serde(default)]
    pub occurrences: u64,
    /// Whether the running runs were asked to stop (cancel-running).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cancelling: bool,
    /// Counts.
    #[serde(default)]
    pub counts: Counts,
    /// The run that finished last, if any did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<LastRun>,
}

/// How a schedule's latest finished run ended: what a list of schedules
/// shows beside the next fire, without reading each one's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct LastRun {
    /// Its occurrence (Unix ms).
    pub occurrence_ms: i64,
    /// Its job.
    pub job: JobId,
    /// How it ended.
    pub state: JobState,
    /// When it finished (Unix ms).
    pub finished_ms: i64,
}

impl LastRun {
    /// The run of `occurrence_ms`, job `job`, ended `state` at `finished_ms`.
    pub fn new(occurrence_ms: i64, job: JobId, state: JobState, finished_ms: i64) -> Self {
        Self {
            occurrence_ms,
            job,
            state,
            finished_ms,
        }
    }
}

/// What a schedule's progress needs to know of it.
#[derive(Clone, Copy)]
pub struct Rules<'a> {
    /// The schedule's id.
    pub id: &'a str,
    /// Its trigger's plan, keyed by the id.
    pub plan: &'a Plan,
    /// Whether the trigger runs after completion.
    pub after_completion: bool,
    /// The overlap policy.
    pub overlap: Overlap,
    /// The missed-run policy.
    pub missed: Missed,
}

fn ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

impl Progress {
    /// The progress of a schedule created (or resumed from scratch) at
    /// `now`: its first occurrence ahead.
    pub fn start(rules: Rules<'_>, now: Timestamp) -> Self {
        Self {
            next: rules.plan.first(now),
            ..Self::default()
        }
    }

    /// When the scheduler must next look at it (the next dispatch
    /// instant), if ever.
    pub fn due_at(&self) -> Option<Timestamp> {
        self.next.map(|o| o.fire_at)
    }

    /// Handles the occurrences whose dispatch instant is at or before `now`.
    pub fn due(&mut self, rules: Rules<'_>, now: Timestamp) -> Vec<Step> {
        let mut due: Vec<i64> = Vec::new();
        let mut jumped = 0;
        while let Some(o) = self.next.filter(|o| o.fire_at <= now) {
            if due.len() >= MAX_WALK {
                // Too many to walk: skip to the first occurrence after now.
                jumped = 1;
                self.occurrences += 1;
                self.next = rules.plan.next_after(now, self.occurrences);
                break;
            }
            due.push(ms(o.at));
            self.occurrences += 1;
            self.next = if rules.after_completion {
                None
            } else {
                rules.plan.next_after(o.at, self.occurrences)
            };
        }
        let mut steps = Vec::new();
        if due.is_empty() {
            return steps;
        }
        // Outside the catch-up window: missed.
        let window = i64::try_from(rules.missed.catch_up_window_ms).unwrap_or(i64::MAX);
        let oldest_ok = ms(now).saturating_sub(window);
        let late = due.partition_point(|&at| at < oldest_ok);
        let mut skipped: Vec<i64> = due.drain(..late).collect();
        let fire: Vec<i64> = match rules.missed.catch_up {
            CatchUp::Once => due.split_off(due.len().saturating_sub(1)),
            CatchUp::All { max } => {
                let max = max.clamp(1, MAX_CATCH_UP) as usize;
                due.split_off(due.len().saturating_sub(max))
            }
        };
        skipped.extend(due);
        if let (Some(&from), Some(&to)) = (skipped.first(), skipped.last()) {
            let count = skipped.len() as u64 + jumped;
            self.counts.skipped_missed += count;
            steps.push(Step::Skipped {
                from_ms: from,
                to_ms: to,
                count,
                why: Skip::Missed,
            });
        }
        for at in fire {
            self.arrive(rules, at, &mut steps);
        }
        steps
    }

    /// Handles a run asked for now, outside the trigger (its occurrence is
    /// `now`), as an occurrence that came due: the overlap policy applies.
    pub fn trigger_now(&mut self, rules: Rules<'_>, now: Timestamp) -> Vec<Step> {
        let mut steps = Vec::new();
        self.arrive(rules, ms(now), &mut steps);
        steps
    }

    /// Handles the trigger's occurrences from `from` to `to` (inclusive, at
    /// most [`MAX_CATCH_UP`] of them, the earliest) as occurrences that came
    /// due, whatever the catch-up window: the overlap policy applies.
    pub fn backfill(&mut self, rules: Rules<'_>, from: Timestamp, to: Timestamp) -> Vec<Step> {
        let mut steps = Vec::new();
        let start = from
            .checked_sub(jiff::SignedDuration::from_millis(1))
            .unwrap_or(from);
        let ats: Vec<i64> = rules
            .plan
            .fire_times_after(start)
            .take_while(|o| o.at <= to)
            .take(MAX_CATCH_UP as usize)
            .map(|o| ms(o.at))
            .collect();
        for at in ats {
            self.arrive(rules, at, &mut steps);
        }
        steps
    }

    /// Handles the end of the run of occurrence `occurrence_ms`, job `job`,
    /// which finished at `finished_at`: the next waiting occurrence starts,
    /// and an after-completion trigger computes its next occurrence. An
    /// unknown run (finished before, never this schedule's, or another job
    /// than the run's) changes nothing.
    pub fn finished(
        &mut self,
        rules: Rules<'_>,
        occurrence_ms: i64,
        job: JobId,
        state: JobState,
        finished_at: Timestamp,
    ) -> Vec<Step> {
        let mut steps = Vec::new();
        let Some(at) = self
            .running
            .iter()
            .position(|r| r.occurrence_ms == occurrence_ms && r.job == job)
        else {
            return steps;
        };
        self.running.remove(at);
        if state.is_final() {
            self.last = Some(LastRun::new(occurrence_ms, job, state, ms(finished_at)));
        }
        if !self.running.is_empty() {
            return steps;
        }
        self.cancelling = false;
        if let Some(next) = self.waiting.pop_front() {
            self.dispatch(rules, next, &mut steps);
        } else if rules.after_completion && self.next.is_none() {
            self.next = rules.plan.next_after(finished_at, self.occurrences);
        }
        steps
    }

    /// An occurrence comes: it runs, or the overlap policy says otherwise.
    fn arrive(&mut self, rules: Rules<'_>, at: i64, steps: &mut Vec<Step>) {
        if self.running.is_empty() && self.waiting.is_empty() {
            self.dispatch(rules, at, steps);
            return;
        }
        match rules.overlap {
            Overlap::AllowAll => self.dispatch(rules, at, steps),
            Overlap::Skip => self.skip_overlap(at, at, 1, steps),
            Overlap::BufferOne => {
                if let Some(replaced) = self.waiting.pop_front() {
                    self.skip_overlap(replaced, replaced, 1, steps);
                }
                self.waiting.push_back(at);
            }
            Overlap::BufferAll { max } => {
                self.waiting.push_back(at);
                let max = max.clamp(1, MAX_BUFFER) as usize;
                while self.waiting.len() > max {
                    if let Some(dropped) = self.waiting.pop_front() {
                        self.skip_overlap(dropped, dropped, 1, steps);
                    }
                }
            }
            Overlap::CancelRunning => {
                if !self.cancelling {
                    self.cancelling = true;
                    for run in &self.running {
                        steps.push(Step::Cancel(run.job));
                        self.counts.cancelled += 1;
                    }
                }
                // The new one starts once the cancelled ones stopped; a
                // later one replaces it meanwhile.
                if let Some(replaced) = self.waiting.pop_front() {
                    self.skip_overlap(replaced, replaced, 1, steps);
                }
                self.waiting.push_back(at);
            }
        }
    }

    fn dispatch(&mut self, rules: Rules<'_>, at: i64, steps: &mut Vec<Step>) {
        let run = RunRef {
            occurrence_ms: at,
            job: run_job_id(rules.id, at),
        };
        self.counts.fired += 1;
        self.running.push(run.clone());
        steps.push(Step::Dispatch(run));
    }

    fn skip_overlap(&mut self, from: i64, to: i64, count: u64, steps: &mut Vec<Step>) {
        self.counts.skipped_overlap += count;
        steps.push(Step::Skipped {
            from_ms: from,
            to_ms: to,
            count,
            why: Skip::Overlap,
        });
    }
}
