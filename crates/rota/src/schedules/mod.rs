//! Schedules: recurring jobs per tenant, dispatched when they come due.
//!
//! * [`Schedules`] — create, change, pause, resume, trigger, backfill,
//!   delete, read and list schedules; preview a trigger's fire times.
//! * [`Scheduler`] — the daemon that decides *when*: it holds a share of
//!   the store's shards under fenced leases, dispatches each run as a job
//!   (its id derived from the schedule and the occurrence, so a run is
//!   enqueued once however often it is dispatched), and follows the runs'
//!   outcomes, which come back to the shard's inbox in the store — to
//!   whoever holds the shard when the run finishes.
//!
//! The model (triggers, policies, the planner) and the store trait are in
//! [`rota_core::schedules`].

mod admin;
mod scheduler;
mod shard;

pub use admin::Schedules;
pub use rota_core::schedules::{
    CatchUp, Counts, JobTemplate, LastRun, Missed, NewSchedule, Overlap, Page, Progress, RunRecord,
    RunState, Schedule, ScheduleError, Trigger, TriggerKind,
};
pub use scheduler::{Lateness, Scheduler, SchedulerHandle, SchedulerOptions};

use rota_core::schedules::{Plan, Rules, Schedule as Stored};

/// The rules the planner applies to `s` (whose id is `id`), with its
/// trigger's `plan`.
pub(crate) fn rules_of<'a>(id: &'a str, plan: &'a Plan, s: &Stored) -> Rules<'a> {
    Rules {
        id,
        plan,
        after_completion: admin::is_after_completion(&s.trigger),
        overlap: s.overlap,
        missed: s.missed,
    }
}
