//! Changing schedules from anywhere: [`Schedules`].

use std::sync::Arc;

use jiff::Timestamp;
use rota_core::clock::SharedClock;
use rota_core::jobs::JobStore;
use rota_core::schedules::{
    Asked, NewSchedule, Page, Progress, Request, RunRecord, Schedule, ScheduleError, ScheduleStore,
    Trigger, TriggerKind,
};

use super::rules_of;

/// How often a change read from a stale schedule is tried again.
const RETRIES: usize = 16;

/// Creates, changes and reads schedules: what an API or a CLI calls. Each
/// change is atomic: it is made on the schedule as read, and made again on
/// a fresh read if the schedule moved meanwhile (its owner's progress, or
/// another change).
#[derive(Clone)]
pub struct Schedules {
    store: Arc<dyn ScheduleStore>,
    clock: SharedClock,
}

impl std::fmt::Debug for Schedules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Schedules").finish_non_exhaustive()
    }
}

impl Schedules {
    /// Schedules kept in `store`, timed by its clock.
    pub fn new<S: ScheduleStore + JobStore + Clone>(store: S) -> Self {
        let clock = JobStore::clock(&store);
        Self {
            store: Arc::new(store),
            clock,
        }
    }

    fn now(&self) -> Timestamp {
        Timestamp::from_millisecond(self.clock.now_ms() as i64).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    /// Creates a schedule, after checking it ([`NewSchedule::validate`]);
    /// its id is the one chosen, else a fresh one. A chosen id that is
    /// taken is refused with [`ScheduleError::Exists`].
    ///
    /// Cancel safe: one write; a dropped call may have created it.
    pub async fn create(&self, new: NewSchedule) -> Result<Schedule, ScheduleError> {
        let schedule = self.prepare(new)?;
        self.store.insert(schedule.clone()).await?;
        Ok(schedule)
    }

    /// Creates or replaces each of `schedules` (by id, which each must
    /// have), all or none (per shard on Redis: see
    /// [`ScheduleStore::upsert_many`]): what an import does, again and again
    /// the same.
    /// A replaced schedule starts over: new progress and counts.
    ///
    /// Cancel safe: one write.
    pub async fn upsert_many(&self, schedules: Vec<NewSchedule>) -> Result<(), ScheduleError> {
        let mut out = Vec::with_capacity(schedules.len());
        for new in schedules {
            if new.id.is_none() {
                return Err(ScheduleError::Invalid {
                    field: "id",
                    problem: "an upsert needs the id of each schedule".into(),
                });
            }
            out.push(self.prepare(new)?);
        }
        self.store.upsert_many(out).await
    }

    fn prepare(&self, new: NewSchedule) -> Result<Schedule, ScheduleError> {
        let now = self.now();
        let plan = new.validate(now)?;
        let id = new
            .id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::now_v7().simple().to_string());
        let plan = plan.keyed(&id);
        let mut schedule = Schedule::from_new(new, id, now.as_millisecond());
        schedule.progress = Progress::start(rules_of(&schedule.id, &plan, &schedule), now);
        Ok(schedule)
    }

    /// Changes schedule `id` with `edit` (its job, trigger, policies, name,
    /// labels), checked as a new one would be. A changed trigger computes
    /// the next occurrence anew from now; runs that run go on.
    ///
    /// Cancel safe: a dropped call may have changed it.
    pub async fn update(
        &self,
        id: &str,
        edit: impl Fn(&mut NewSchedule),
    ) -> Result<Schedule, ScheduleError> {
        self.change(id, |s, now| {
            let mut new = s.to_new();
            edit(&mut new);
            new.id = Some(s.id.clone());
            new.validate(now)?;
            let trigger_changed = new.trigger != s.trigger;
            s.name = new.name;
            s.labels = new.labels;
            s.job = new.job;
            s.trigger = new.trigger;
            s.overlap = new.overlap;
            s.missed = new.missed;
            if trigger_changed {
                let plan = s.trigger.plan()?.keyed(&s.id);
                s.progress.next = plan.first(now);
                s.progress.occurrences = 0;
            }
            Ok(())
        })
        .await
    }

    /// Pauses schedule `id`: no occurrence is handled until it resumes.
    ///
    /// Cancel safe: idempotent.
    pub async fn pause(&self, id: &str) -> Result<Schedule, ScheduleError> {
        self.change(id, |s, _| {
            s.paused = true;
            Ok(())
        })
        .await
    }

    /// Resumes schedule `id`; the occurrences that came while it was paused
    /// follow its missed-run policy.
    ///
    /// Cancel safe: idempotent.
    pub async fn resume(&self, id: &str) -> Result<Schedule, ScheduleError> {
        self.change(id, |s, _| {
            s.paused = false;
            Ok(())
        })
        .await
    }

    /// Asks for a run of schedule `id` now, outside its trigger; the
    /// overlap policy applies. The shard's owner dispatches it at its next
    /// look (within its poll interval).
    ///
    /// Not cancel safe: a dropped call may have asked for the run.
    pub async fn trigger(&self, id: &str) -> Result<Schedule, ScheduleError> {
        self.change(id, |s, now| {
            ask(s, now, Asked::TriggerNow);
            Ok(())
        })
        .await
    }

    /// Asks for the runs of the trigger's occurrences from `from` to `to`
    /// (inclusive, at most
    /// [`MAX_CATCH_UP`](rota_core::schedules::MAX_CATCH_UP)), whatever the catch-up window;
    /// the overlap policy applies.
    ///
    /// Not cancel safe: a dropped call may have asked for the runs.
    pub async fn backfill(
        &self,
        id: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Schedule, ScheduleError> {
        if to < from {
            return Err(ScheduleError::Invalid {
                field: "to",
                problem: format!("{to} is before {from}"),
            });
        }
        self.change(id, |s, now| {
            let from_ms = from.as_millisecond();
            let to_ms = to.as_millisecond();
            ask(s, now, Asked::Backfill { from_ms, to_ms });
            Ok(())
        })
        .await
    }

    /// Deletes schedule `id`: no more occurrences; runs that run go on.
    /// Returns whether it existed.
    ///
    /// Cancel safe: idempotent.
    pub async fn delete(&self, id: &str) -> Result<bool, ScheduleError> {
        self.store.delete(id).await
    }

    /// Schedule `id`.
    ///
    /// Cancel safe: a read.
    pub async fn get(&self, id: &str) -> Result<Option<Schedule>, ScheduleError> {
        self.store.get(id).await
    }

    /// A page of `tenant`'s schedules, by id, after `after`.
    ///
    /// Cancel safe: a read.
    pub async fn list(
        &self,
        tenant: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page, ScheduleError> {
        self.store.list(tenant, after, limit.clamp(1, 1000)).await
    }

    /// The run history of schedule `id`, newest first.
    ///
    /// Cancel safe: a read.
    pub async fn runs(&self, id: &str, limit: usize) -> Result<Vec<RunRecord>, ScheduleError> {
        self.store.runs(id, limit).await
    }

    /// The next `count` fire instants of `trigger` after `after`, for
    /// previews (no schedule needed).
    pub fn preview(
        trigger: &Trigger,
        after: Timestamp,
        count: usize,
    ) -> Result<Vec<Timestamp>, ScheduleError> {
        let plan = trigger.validate(after)?;
        Ok(plan
            .fire_times_after(after)
            .take(count)
            .map(|o| o.at)
            .collect())
    }

    /// Makes `edit` on schedule `id` as read, again on a fresh read while
    /// it moved meanwhile.
    async fn change(
        &self,
        id: &str,
        edit: impl Fn(&mut Schedule, Timestamp) -> Result<(), ScheduleError>,
    ) -> Result<Schedule, ScheduleError> {
        for _ in 0..RETRIES {
            let mut s = self
                .store
                .get(id)
                .await?
                .ok_or_else(|| ScheduleError::NotFound(id.to_owned()))?;
            let now = self.now();
            edit(&mut s, now)?;
            s.updated_ms = now.as_millisecond();
            match self.store.replace(s).await {
                Err(ScheduleError::Conflict(_)) => continue,
                other => return other,
            }
        }
        Err(ScheduleError::Conflict(id.to_owned()))
    }
}

fn ask(s: &mut Schedule, now: Timestamp, what: Asked) {
    s.requests.push(Request::new(now.as_millisecond(), what));
}

/// Whether `trigger` runs after completion.
pub(crate) fn is_after_completion(trigger: &Trigger) -> bool {
    matches!(trigger.kind, TriggerKind::AfterCompletion { .. })
}
