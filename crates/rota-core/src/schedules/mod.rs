//! Schedules: when recurring jobs fire.
//!
//! A schedule pairs a **trigger** — when — with a job to enqueue each time.
//! This module holds the triggers: pure functions of the instants they are
//! given, with no clock and no I/O, so that every scheduler (a restarted
//! one, the next owner of a shard) computes the same occurrences.
//!
//! * [`Trigger`] — what is written and stored: a [`TriggerKind`] plus
//!   optional `start`, `end`, `jitter` and `max_runs`.
//! * [`Trigger::validate`] — the check before a trigger is stored; it gives
//!   a [`Plan`], or a [`TriggerError`] that names the problem.
//! * [`Plan`] — computes [`Occurrence`]s: [`Plan::first`],
//!   [`Plan::next_after`], and [`Plan::fire_times_after`] for previews.
//!
//! ```
//! use jiff::{SignedDuration, Timestamp};
//! use rota_core::schedules::Trigger;
//!
//! let now: Timestamp = "2026-06-01T08:00:00Z".parse().unwrap();
//! let plan = Trigger::cron_in("0 9 * * MON-FRI", "Europe/Lisbon")
//!     .with_jitter(SignedDuration::from_secs(60))
//!     .validate(now)?
//!     .keyed("schedule-42");
//! let first = plan.first(now).unwrap();
//! assert_eq!(first.at.to_string(), "2026-06-01T08:00:00Z"); // 09:00 WEST
//! assert!(first.fire_at >= first.at);
//! assert!(first.fire_at < first.at + SignedDuration::from_secs(60));
//! # Ok::<(), rota_core::schedules::TriggerError>(())
//! ```
//!
//! # The triggers
//!
//! * **Cron** — `Trigger::cron_in("30 2 * * *", "America/New_York")`: fires
//!   when the wall clock of an IANA time zone (UTC if none is given) matches
//!   the expression. 5 fields, `minute hour day-of-month month
//!   day-of-week`, or 6 with seconds first. Each field takes `*`, values,
//!   ranges `a-b`, steps `*/n` and `a-b/n`, and lists `a,b`; months take
//!   `JAN`-`DEC` and days of the week `SUN`-`SAT` (0 and 7 are Sunday). The
//!   day-of-month field also takes `L` (last day), `LW` (last weekday) and
//!   `15W` (the weekday nearest the 15th, within the month); the
//!   day-of-week field `5L` (last Friday) and `1#2` (second Monday); `?`
//!   stands for `*` in both. When both day fields are restricted, a day that
//!   matches either one matches, as in Vixie cron. `@yearly` (or
//!   `@annually`), `@monthly`, `@weekly`, `@daily` (or `@midnight`) and
//!   `@hourly` stand for `0 0 1 1 *`, `0 0 1 * *`, `0 0 * * 0`, `0 0 * * *`
//!   and `0 * * * *`.
//! * **After completion** — `Trigger::after_completion(every)`: the next run
//!   starts `every` after the previous one *finished*, so runs never overlap
//!   and a slow run pushes the rest back. [`Plan::next_after`] takes the
//!   finish instant. Before any run it fires at the start, or at once.
//! * **Fixed rate** — `Trigger::fixed_rate(every, anchor)`: fires at
//!   `anchor`, `anchor + every`, `anchor + 2·every`, … whatever runs do.
//! * **Once** — `Trigger::once(at)`.
//!
//! Every kind takes the same bounds: no occurrence before `start` or after
//! `end` (both inclusive), at most `max_runs` occurrences, and a `jitter`.
//!
//! # Occurrences and jitter
//!
//! An [`Occurrence`] has two instants. `at` is the instant the trigger names;
//! it identifies the run (with the schedule's id), and the next occurrence is
//! computed from it. `fire_at` is when to dispatch: `at` delayed by up to
//! `jitter`, to spread schedules that would all fire at the same second. The
//! delay is not random but a hash of the plan's key ([`Plan::keyed`], the
//! schedule's id) and `at`, so every scheduler computes the same `fire_at`.
//! The jitter must be shorter than the interval (or, for cron, than the
//! shortest gap between its next [`JITTER_GAP_SAMPLE`] fires), so that a
//! dispatch never comes after the next occurrence.
//!
//! # Daylight-saving time, as classic cron does it
//!
//! A cron trigger reads a wall clock that jumps forward in spring (a gap:
//! some times never happen) and back in autumn (a fold: some times happen
//! twice). What it does there depends on the expression:
//!
//! * **Fixed time of day** — the minute and hour fields (and second, with 6
//!   fields) are single values, as in `30 2 * * *`: it fires **once per
//!   matching day**. A time in a gap fires at the **first instant after the
//!   gap**: `30 2 * * *` in New York on 2026-03-08, when 02:00 EST jumps to
//!   03:00 EDT, fires at 03:00 EDT (07:00Z). A time in a fold fires at its
//!   **first occurrence only**: `15 1 * * *` on 2026-11-01, when 02:00 EDT
//!   goes back to 01:00 EST, fires at 01:15 EDT (05:15Z), not at 01:15 EST
//!   (06:15Z).
//! * **Anything else** — a `*`, range, step or list in the minute or hour
//!   field, as in `0 * * * *`: it fires on **real instants**. Each time in a
//!   fold fires twice (`0 * * * *` fires at 05:00Z and 06:00Z on 2026-11-01,
//!   both 01:00 in New York) and a time in a gap not at all (no 02:00 on
//!   2026-03-08).
//!
//! The same holds in every zone: in Europe/Lisbon (01:00→02:00 on
//! 2026-03-29, 02:00→01:00 on 2026-10-25) and in Australia/Lord_Howe, whose
//! clock moves by 30 minutes (02:00→02:30 on 2026-10-04, 02:00→01:30 on
//! 2026-04-05).
//!
//! # What validation refuses
//!
//! [`Trigger::validate`] runs before a trigger is stored and returns a
//! [`TriggerError`] for: a cron field that is wrong (naming the field, its
//! position and the value: `hour field (position 2): 25 is out of range
//! 0-23`) or an expression with the wrong shape; an unknown time zone; an
//! interval that is not positive; an end before the start; a negative
//! jitter, or one not shorter than the interval (cron: the shortest gap
//! between fires); `max_runs` of 0; and a trigger that never fires again —
//! a `once` in the past, bounds that leave no occurrence, or a cron
//! expression with no fire within [`NEVER_FIRES_HORIZON`] (8 years), such
//! as `0 0 30 2 *`.
//!
//! Instants and durations count in whole milliseconds, the unit they are
//! stored in; a plan drops finer parts so that it computes the same fires
//! before and after a round trip through the store. Time zones come from the
//! IANA database built into the program, not the host's, so that every
//! scheduler of a release agrees on them.

mod calendar;
mod cron;
mod error;
mod jitter;
mod model;
mod plan;
mod progress;
mod store;
mod stored;
mod trigger;
mod wire;

#[cfg(test)]
mod tests;

pub use error::{CronField, TriggerError};
pub use model::{
    CatchUp, JobTemplate, MAX_BUFFER, MAX_CATCH_UP, MAX_HISTORY, MAX_LABELS, MAX_NAME, Missed,
    NewSchedule, Overlap, RunRef, parse_run_id, run_job_id,
};
pub use plan::{FireTimes, JITTER_GAP_SAMPLE, NEVER_FIRES_HORIZON, Occurrence, Plan};
pub use progress::{Counts, LastRun, MAX_WALK, Progress, Rules, Skip, Step};
pub use store::{
    Asked, Change, Outbound, Page, Request, RunRecord, RunState, Schedule, ScheduleError,
    ScheduleStore, ShardLease, ShardOwner, ShardReply, shard_of,
};
pub use stored::STORED_FORMAT;
pub use trigger::{Trigger, TriggerKind};
