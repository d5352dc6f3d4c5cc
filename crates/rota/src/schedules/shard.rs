//! One shard, while this scheduler holds its lease: outcomes in, due
//! schedules handled, runs dispatched.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use rota_core::clock::SharedClock;
use rota_core::jobs::{JobOutcome, JobState, JobStore, NewJob};
use rota_core::schedules::{
    Asked, Change, Outbound, RunRecord, RunState, Schedule, ScheduleError, ScheduleStore,
    ShardLease, Step, parse_run_id,
};
use rota_core::{BrokerError, Codec, Outcome, Reply};
use tokio_util::sync::CancellationToken;

use super::rules_of;
use super::scheduler::Lateness;

/// Most schedules, replies or outbox entries handled in one round.
const BATCH: usize = 256;

/// How often a commit that met a moved schedule is made again.
const RETRIES: usize = 8;

/// What a shard task needs.
pub(super) struct ShardTask {
    pub(super) schedules: Arc<dyn ScheduleStore>,
    pub(super) jobs: Arc<dyn JobStore>,
    pub(super) clock: SharedClock,
    pub(super) lease: ShardLease,
    /// Cancelled when the lease is lost or given back.
    pub(super) fence: CancellationToken,
    /// The longest a round waits for something to come due.
    pub(super) poll: Duration,
    pub(super) lateness: Arc<Lateness>,
}

impl ShardTask {
    fn now(&self) -> Timestamp {
        Timestamp::from_millisecond(self.clock.now_ms() as i64).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    /// Works the shard until the fence: first what a predecessor may have
    /// left (outcomes, then runs committed and maybe not enqueued), then
    /// rounds. A failing store is waited out, round after round.
    pub(super) async fn run(self) {
        let mut started = false;
        while !self.fence.is_cancelled() {
            let round = async {
                self.outcomes().await?;
                if !started {
                    self.resend().await?;
                    started = true;
                }
                self.due().await?;
                self.outcomes().await
            };
            let wait = match round.await {
                Ok(()) => self.until_due().await,
                Err(ScheduleError::Store(BrokerError::LeaseLost)) => {
                    self.fence.cancel();
                    return;
                }
                Err(e) => {
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
                Duration::from_millis(u64::try_from(due - now).unwrap_or(0)).min(self.poll)
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
            for (id, outcomes) in by_schedule {
                self.finish(&id, &outcomes).await?;
            }
            self.schedules.ack_replies(&self.lease, last).await?;
            if replies.len() < BATCH {
                return Ok(());
            }
        }
    }

    /// Records that runs of schedule `id` finished, and dispatches what
    /// that lets start.
    async fn finish(&self, id: &str, outcomes: &[(i64, JobOutcome)]) -> Result<(), ScheduleError> {
        self.with_schedule(id, |s, _now| {
            let id = s.id.clone();
            let plan = s.trigger.plan()?.keyed(&id);
            let mut change_steps = Vec::new();
            let mut finished = Vec::new();
            for (at, o) in outcomes {
                let end = Timestamp::from_millisecond(o.finished_at_ms as i64)
                    .unwrap_or(Timestamp::UNIX_EPOCH);
                let rules = rules_of(&id, &plan, s);
                change_steps.extend(s.progress.finished(rules, *at, end));
                finished.push(finished_record(*at, o));
            }
            Ok((change_steps, finished))
        })
        .await
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
            for s in due {
                self.with_schedule(&s.id, |s, now| {
                    let id = s.id.clone();
                    let plan = s.trigger.plan()?.keyed(&id);
                    let mut steps = Vec::new();
                    for request in std::mem::take(&mut s.requests) {
                        let rules = rules_of(&id, &plan, s);
                        steps.extend(match request.what {
                            Asked::TriggerNow => s.progress.trigger_now(rules, now),
                            Asked::Backfill { from_ms, to_ms } => {
                                s.progress.backfill(rules, instant(from_ms), instant(to_ms))
                            }
                            _ => Vec::new(),
                        });
                    }
                    if !s.paused {
                        let rules = rules_of(&id, &plan, s);
                        steps.extend(s.progress.due(rules, now));
                    }
                    Ok((steps, Vec::new()))
                })
                .await?;
            }
            if n < BATCH {
                return Ok(());
            }
        }
    }

    /// Reads schedule `id`, applies `step` to it, commits the change
    /// (again on a fresh read if it moved), then takes the steps.
    async fn with_schedule(
        &self,
        id: &str,
        step: impl Fn(&mut Schedule, Timestamp) -> Result<(Vec<Step>, Vec<RunRecord>), ScheduleError>,
    ) -> Result<(), ScheduleError> {
        for _ in 0..RETRIES {
            let Some(mut s) = self.schedules.get(id).await? else {
                // Deleted: its runs go on, their outcomes are dropped.
                return Ok(());
            };
            let now = self.now();
            let (steps, finished) = step(&mut s, now)?;
            let mut change = Change::new(s.clone());
            change.finished = finished;
            for st in &steps {
                match st {
                    Step::Dispatch(run) => {
                        change.dispatch.push(run.clone());
                        change
                            .history
                            .push(RunRecord::dispatched(run, now.as_millisecond()));
                    }
                    Step::Skipped {
                        from_ms,
                        to_ms,
                        count,
                        why,
                    } => {
                        change.history.push(RunRecord::skipped(
                            *from_ms,
                            *to_ms,
                            *count,
                            *why,
                            now.as_millisecond(),
                        ));
                    }
                    _ => {}
                }
            }
            let mut results = self.schedules.commit(&self.lease, vec![change]).await?;
            match results.pop() {
                Some(Ok(committed)) => {
                    self.act(&committed, &steps, now).await?;
                    return Ok(());
                }
                Some(Err(ScheduleError::Conflict(_))) => continue,
                Some(Err(ScheduleError::NotFound(_))) => return Ok(()),
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            }
        }
        Err(ScheduleError::Conflict(id.to_owned()))
    }

    /// Takes the committed steps: enqueues the runs (then takes them out
    /// of the outbox), asks running ones to stop.
    async fn act(&self, s: &Schedule, steps: &[Step], now: Timestamp) -> Result<(), ScheduleError> {
        let mut runs = Vec::new();
        for step in steps {
            match step {
                Step::Dispatch(run) => runs.push(Outbound::new(s.id.clone(), run.clone())),
                Step::Cancel(job) => {
                    self.jobs.cancel(&s.job.queue, *job).await?;
                }
                _ => {}
            }
        }
        if !runs.is_empty() {
            self.send(s, &runs, now).await?;
        }
        Ok(())
    }

    /// Enqueues the jobs of `runs` of `s` (each by its derived id, so once
    /// however often this is done), then marks them enqueued.
    async fn send(
        &self,
        s: &Schedule,
        runs: &[Outbound],
        now: Timestamp,
    ) -> Result<(), ScheduleError> {
        let reply_to = Some(self.schedules.shard_inbox(self.lease.shard));
        let mut jobs: Vec<NewJob> = Vec::with_capacity(runs.len());
        for o in runs {
            let job = s
                .job
                .to_job(&s.tenant, &s.id, o.run.occurrence_ms, reply_to.clone())?;
            self.lateness
                .record(now.as_millisecond() - o.run.occurrence_ms);
            jobs.push(job);
        }
        self.jobs.enqueue(jobs).await?;
        self.schedules.dispatched(&self.lease, runs).await
    }

    /// Enqueues what the outbox holds — runs committed by a predecessor
    /// that may not have been enqueued — unless their run is over (its
    /// outcome handled, which a caller does first).
    async fn resend(&self) -> Result<(), ScheduleError> {
        loop {
            let outbox = self.schedules.outbox(&self.lease, BATCH).await?;
            if outbox.is_empty() {
                return Ok(());
            }
            let now = self.now();
            let mut stale = Vec::new();
            for o in &outbox {
                match self.schedules.get(&o.schedule).await? {
                    Some(s) if s.progress.running.contains(&o.run) => {
                        self.send(&s, std::slice::from_ref(o), now).await?;
                    }
                    _ => stale.push(o.clone()),
                }
            }
            if !stale.is_empty() {
                self.schedules.dispatched(&self.lease, &stale).await?;
            }
        }
    }
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
