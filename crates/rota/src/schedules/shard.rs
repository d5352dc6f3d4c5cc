//! One shard, while this scheduler holds its lease: outcomes in, due
//! schedules handled, runs dispatched.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use jiff::Timestamp;
use rota_core::clock::SharedClock;
use rota_core::jobs::{JobOutcome, JobState, JobStore, NewJob};
use rota_core::schedules::{
    Asked, Change, Outbound, Plan, RunRecord, RunState, Schedule, ScheduleError, ScheduleStore,
    ShardLease, Step, Trigger, parse_run_id,
};
use rota_core::{BrokerError, Codec, Outcome, Reply};
use tokio_util::sync::CancellationToken;

use super::rules_of;
use super::scheduler::Lateness;

/// Most schedules, replies or outbox entries handled in one round.
const BATCH: usize = 256;

/// The least a shard waits between rounds: what comes due meanwhile is
/// handled in one round, a few writes for many runs.
const GATHER: Duration = Duration::from_millis(10);

/// How often a commit that met a moved schedule is made again.
const RETRIES: usize = 8;

/// What a shard task needs.
pub(super) struct ShardTask {
    pub(super) schedules: Arc<dyn ScheduleStore>,
    pub(super) jobs: Arc<dyn JobStore>,
    pub(super) clock: SharedClock,
    pub(super) lease: ShardLease,
    /// When the lease ends unless renewed (the store's clock, Unix ms),
    /// moved on by each renewal: the fence of every enqueue.
    pub(super) until: Arc<AtomicI64>,
    /// Cancelled when the lease is lost or given back.
    pub(super) fence: CancellationToken,
    /// The longest a round waits for something to come due.
    pub(super) poll: Duration,
    pub(super) lateness: Arc<Lateness>,
    /// The plans of the triggers met lately, by schedule: a cron plan is
    /// costly to build (a parsed expression and its calendar), and a
    /// schedule comes due again and again with the same trigger.
    pub(super) plans: Plans,
}

/// Plans by schedule id, with the trigger each was built from; bounded
/// (cleared whole when full), so memory follows the due window, not the
/// number of schedules.
#[derive(Default)]
pub(super) struct Plans(std::sync::Mutex<HashMap<String, (Trigger, Plan)>>);

impl Plans {
    const MOST: usize = 10_000;

    /// The plan of `s`'s trigger, keyed by its id.
    fn of(&self, s: &Schedule) -> Result<Plan, ScheduleError> {
        let mut plans = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((trigger, plan)) = plans.get(&s.id)
            && *trigger == s.trigger
        {
            return Ok(plan.clone());
        }
        let plan = s.trigger.plan()?.keyed(&s.id);
        if plans.len() >= Self::MOST {
            plans.clear();
        }
        plans.insert(s.id.clone(), (s.trigger.clone(), plan.clone()));
        Ok(plan)
    }
}

impl ShardTask {
    fn now(&self) -> Timestamp {
        Timestamp::from_millisecond(self.clock.now_ms() as i64).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    /// Works the shard until the fence: first what a predecessor may have
    /// left (outcomes, then runs committed and maybe not enqueued), then
    /// rounds. A failing store is waited out, round after round, and the
    /// outbox sent again after a failed round.
    pub(super) async fn run(self) {
        let mut resend = true;
        while !self.fence.is_cancelled() {
            let round = async {
                if resend {
                    // Outcomes first: a run that finished is not sent again.
                    self.outcomes().await?;
                    self.resend().await?;
                }
                // What came due first: its lateness is what users see.
                self.due().await?;
                self.outcomes().await
            };
            let wait = match round.await {
                Ok(()) => {
                    resend = false;
                    self.until_due().await
                }
                Err(ScheduleError::Store(BrokerError::LeaseLost)) => {
                    self.fence.cancel();
                    return;
                }
                Err(e) => {
                    resend = true;
                    tracing::warn!(shard = self.lease.shard, error = %e, "a scheduler round failed; trying again");
                    self.poll
                }
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.fence.cancelled() => {}
            }
        }
    }

    /// How long until the shard's next schedule is due, at most the poll
    /// interval.
    async fn until_due(&self) -> Duration {
        match self.schedules.next_due(&self.lease).await {
            Ok(Some(due)) => {
                let now = self.now().as_millisecond();
                Duration::from_millis(u64::try_from(due - now).unwrap_or(0))
                    .clamp(GATHER, self.poll.max(GATHER))
            }
            _ => self.poll,
        }
    }

    /// Handles the run outcomes in the shard's inbox, then lets them go.
    async fn outcomes(&self) -> Result<(), ScheduleError> {
        loop {
            let replies = self.schedules.replies(&self.lease, BATCH).await?;
            let Some(last) = replies.last().map(|r| r.seq) else {
                return Ok(());
            };
            let mut by_schedule: HashMap<String, Vec<(i64, JobOutcome)>> = HashMap::new();
            for reply in &replies {
                match decode(&reply.body) {
                    Some(outcome) => match parse_run_id(&outcome.run_id) {
                        Some((id, at)) => {
                            by_schedule
                                .entry(id.to_owned())
                                .or_default()
                                .push((at, outcome));
                        }
                        None => {
                            tracing::warn!(run = %outcome.run_id, "an outcome of no schedule's run; dropped")
                        }
                    },
                    None => tracing::warn!(
                        shard = self.lease.shard,
                        "an undecodable reply in a shard's inbox; dropped"
                    ),
                }
            }
            let (ids, outcomes): (Vec<String>, Vec<_>) = by_schedule.into_iter().unzip();
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            let found = self.schedules.get_many(&refs).await?;
            // A deleted schedule's outcomes are dropped.
            let items = found
                .into_iter()
                .zip(outcomes)
                .filter_map(|(s, outcomes)| Some((s?, Event::Finished(outcomes))))
                .collect();
            self.handle(items).await?;
            self.schedules.ack_replies(&self.lease, last).await?;
            if replies.len() < BATCH {
                return Ok(());
            }
        }
    }

    /// Handles the shard's due schedules: requests, then occurrences.
    async fn due(&self) -> Result<(), ScheduleError> {
        loop {
            let now = self.now();
            let due = self
                .schedules
                .due(&self.lease, now.as_millisecond(), BATCH)
                .await?;
            let n = due.len();
            self.handle(due.into_iter().map(|s| (s, Event::Due)).collect())
                .await?;
            if n < BATCH {
                return Ok(());
            }
        }
    }

    /// Applies each event to its schedule as read, commits the changes in
    /// one write (those whose schedule moved meanwhile again, on a fresh
    /// read), then takes the steps of those committed.
    async fn handle(&self, mut items: Vec<(Schedule, Event)>) -> Result<(), ScheduleError> {
        for _ in 0..RETRIES {
            if items.is_empty() {
                return Ok(());
            }
            let now = self.now();
            let mut changes = Vec::with_capacity(items.len());
            let mut planned = Vec::with_capacity(items.len());
            for (s, event) in items {
                let mut changed = s.clone();
                match self
                    .plans
                    .of(&changed)
                    .and_then(|plan| apply(&mut changed, &plan, &event, now))
                {
                    Ok((steps, finished)) => {
                        changes.push(change(changed, &steps, finished, now));
                        planned.push((s.id, event, steps));
                    }
                    Err(e) => tracing::error!(
                        schedule = %s.id, error = %e,
                        "a stored schedule cannot be planned; left as it is"
                    ),
                }
            }
            let results = self.schedules.commit(&self.lease, changes).await?;
            let mut committed = Vec::new();
            let mut again = Vec::new();
            for (result, (id, event, steps)) in results.into_iter().zip(planned) {
                match result {
                    Ok(s) => committed.push((s, steps)),
                    Err(ScheduleError::Conflict(_)) => again.push((id, event)),
                    Err(ScheduleError::NotFound(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            self.act(&committed, now).await?;
            let (ids, events): (Vec<String>, Vec<Event>) = again.into_iter().unzip();
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            let found = self.schedules.get_many(&refs).await?;
            items = found
                .into_iter()
                .zip(events)
                .filter_map(|(s, event)| Some((s?, event)))
                .collect();
        }
        if let Some((s, _)) = items.first() {
            return Err(ScheduleError::Conflict(s.id.clone()));
        }
        Ok(())
    }

    /// Takes the committed steps: enqueues the runs in one batch (then
    /// takes them out of the outbox), asks running ones to stop.
    async fn act(
        &self,
        committed: &[(Schedule, Vec<Step>)],
        now: Timestamp,
    ) -> Result<(), ScheduleError> {
        let reply_to = self.schedules.shard_inbox(self.lease.shard);
        let mut jobs: Vec<NewJob> = Vec::new();
        let mut runs: Vec<Outbound> = Vec::new();
        for (s, steps) in committed {
            for step in steps {
                match step {
                    Step::Dispatch(run) => {
                        jobs.push(self.fenced(s.job.to_job(
                            &s.tenant,
                            &s.id,
                            run.occurrence_ms,
                            Some(reply_to.clone()),
                        )?));
                        self.lateness
                            .record(now.as_millisecond() - run.occurrence_ms);
                        runs.push(Outbound::new(s.id.clone(), run.clone()));
                    }
                    Step::Cancel(job) => {
                        self.jobs.cancel(&s.job.queue, *job).await?;
                    }
                    _ => {}
                }
            }
        }
        if runs.is_empty() {
            return Ok(());
        }
        self.jobs.enqueue(jobs).await?;
        self.schedules.dispatched(&self.lease, &runs).await
    }

    /// Enqueues the jobs of `runs` of `s` (each by its derived id, so once
    /// however often this is done), then marks them enqueued.
    async fn send(&self, s: &Schedule, runs: &[Outbound]) -> Result<(), ScheduleError> {
        let reply_to = Some(self.schedules.shard_inbox(self.lease.shard));
        let mut jobs: Vec<NewJob> = Vec::with_capacity(runs.len());
        for o in runs {
            jobs.push(self.fenced(s.job.to_job(
                &s.tenant,
                &s.id,
                o.run.occurrence_ms,
                reply_to.clone(),
            )?));
        }
        self.jobs.enqueue(jobs).await?;
        self.schedules.dispatched(&self.lease, runs).await
    }

    /// `job` fenced by the lease: refused once the lease has ended, so
    /// that it cannot land after another owner took the shard over.
    fn fenced(&self, job: NewJob) -> NewJob {
        let until = self.until.load(Ordering::Acquire);
        job.fenced_until(u64::try_from(until).unwrap_or(0))
    }

    /// Enqueues what the outbox holds: runs committed by a predecessor, or
    /// by this owner in a round that failed, and maybe never enqueued.
    ///
    /// A run whose job exists was enqueued; it only leaves the outbox. A
    /// run whose job does not exist was either never enqueued, or it ran
    /// and its record was trimmed by the queue's retention — which can
    /// take less than a second. Its job id dedupes nothing then; what does
    /// is the order of things: a finished job's outcome reaches the inbox
    /// before its record can go (it is replied to as it is settled), and
    /// no enqueue of a predecessor lands after its lease ended (each is
    /// fenced by it). So the inbox is read *after* the lookups: a run still
    /// running then, whose job was absent, was never enqueued, and is
    /// enqueued now.
    async fn resend(&self) -> Result<(), ScheduleError> {
        loop {
            let outbox = self.schedules.outbox(&self.lease, BATCH).await?;
            if outbox.is_empty() {
                return Ok(());
            }
            let mut settled = Vec::new();
            let mut absent = Vec::new();
            for o in outbox {
                match self.schedules.get(&o.schedule).await? {
                    Some(s) if s.progress.running.contains(&o.run) => {
                        if self.jobs.job(&s.job.queue, o.run.job).await?.is_some() {
                            settled.push(o);
                        } else {
                            absent.push(o);
                        }
                    }
                    _ => settled.push(o),
                }
            }
            if !absent.is_empty() {
                self.outcomes().await?;
                for o in absent {
                    match self.schedules.get(&o.schedule).await? {
                        Some(s) if s.progress.running.contains(&o.run) => {
                            self.send(&s, std::slice::from_ref(&o)).await?;
                        }
                        _ => settled.push(o),
                    }
                }
            }
            if !settled.is_empty() {
                self.schedules.dispatched(&self.lease, &settled).await?;
            }
        }
    }
}

/// What happened to a schedule.
enum Event {
    /// It came due: its requests, then its occurrences.
    Due,
    /// Runs of it finished: (occurrence, outcome).
    Finished(Vec<(i64, JobOutcome)>),
}

/// Applies `event` to `s` at `now` through the planner: the steps to take,
/// and the history entries of the runs that finished.
fn apply(
    s: &mut Schedule,
    plan: &Plan,
    event: &Event,
    now: Timestamp,
) -> Result<(Vec<Step>, Vec<RunRecord>), ScheduleError> {
    let id = s.id.clone();
    let mut steps = Vec::new();
    let mut finished = Vec::new();
    match event {
        Event::Due => {
            for request in std::mem::take(&mut s.requests) {
                let rules = rules_of(&id, plan, s);
                steps.extend(match request.what {
                    Asked::TriggerNow => s.progress.trigger_now(rules, now),
                    Asked::Backfill { from_ms, to_ms } => {
                        s.progress.backfill(rules, instant(from_ms), instant(to_ms))
                    }
                    _ => Vec::new(),
                });
            }
            if !s.paused {
                let rules = rules_of(&id, plan, s);
                steps.extend(s.progress.due(rules, now));
            }
        }
        Event::Finished(outcomes) => {
            for (at, o) in outcomes {
                let end = instant(o.finished_at_ms as i64);
                let rules = rules_of(&id, plan, s);
                steps.extend(s.progress.finished(rules, *at, o.id, o.state, end));
                finished.push(finished_record(*at, o));
            }
        }
    }
    Ok((steps, finished))
}

/// The change of `s` that records `steps` and `finished` at `now`.
fn change(s: Schedule, steps: &[Step], finished: Vec<RunRecord>, now: Timestamp) -> Change {
    let now = now.as_millisecond();
    let mut change = Change::new(s);
    change.finished = finished;
    for step in steps {
        match step {
            Step::Dispatch(run) => {
                change.dispatch.push(run.clone());
                change.history.push(RunRecord::dispatched(run, now));
            }
            Step::Skipped {
                from_ms,
                to_ms,
                count,
                why,
            } => change
                .history
                .push(RunRecord::skipped(*from_ms, *to_ms, *count, *why, now)),
            _ => {}
        }
    }
    change
}

fn instant(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn decode(body: &[u8]) -> Option<JobOutcome> {
    let reply = Reply::decode(body).ok()?;
    match reply.outcome {
        Outcome::Ok(b) => Codec::Json.decode(&b).ok(),
        _ => None,
    }
}

fn finished_record(at: i64, o: &JobOutcome) -> RunRecord {
    let state = match o.state {
        JobState::Succeeded | JobState::Failed | JobState::Cancelled | JobState::Dead => {
            RunState::Finished(o.state)
        }
        _ => RunState::Dispatched,
    };
    RunRecord::finished(
        at,
        o.id,
        state,
        o.started_at_ms as i64,
        o.finished_at_ms as i64,
        o.attempts,
        o.error.clone(),
    )
}
