//! [`MemoryBroker`] as a [`JobStore`]: the semantics documented in
//! [`rota_core::jobs::store`], on in-process structures.
//!
//! Jobs live in [`State`] next to the broker's queues and inboxes, behind
//! the same lock, so a settlement writes its outcome reply and lets go of the
//! job in one step. Job times (enqueued, due, finished) are wall-clock Unix
//! milliseconds, as in every backend; leases run on [`tokio::time::Instant`]
//! as the broker's own do, so tests may pause time to let them lapse.
//!
//! Per queue:
//!
//! * `records` — every retained job, with the sequence number that orders
//!   it among jobs of equal priority and due time;
//! * `partitions` — the queued jobs, per partition and tenant, ordered by
//!   priority (highest first), then due time, then sequence;
//! * `ring` — the partitions that have queued jobs, the next one to serve
//!   in front (the round-robin cursor);
//! * `scheduled` — jobs waiting for their time, by due time;
//! * `finished` and `dead` — final jobs, oldest first, for retention and
//!   listing.
//!
//! Memory is bounded by the jobs still to run plus the retention of
//! finished ones (and the dead jobs nobody purged).

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use rota_core::BrokerError;
use rota_core::broker::ReapStats;
use rota_core::jobs::model::DEFAULT_MAX_PAYLOAD;
use rota_core::jobs::validate_queue;
use rota_core::jobs::{
    Attempt, AttemptOutcome, Enqueued, Job, JobConsumer, JobConsumerOptions, JobId, JobRecord,
    JobState, JobStore, NewJob, Next, QueueCounts, Retention, Settle, validate_batch,
};
use rota_core::time::now_ms;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::memory::{MemoryBroker, State, uuid_like};

/// The jobs of a [`MemoryBroker`], per queue.
#[derive(Default)]
pub(crate) struct JobsState {
    queues: HashMap<String, JobQueue>,
    /// Orders jobs enqueued in the same millisecond, and dead jobs.
    seq: u64,
}

impl JobsState {
    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn queue(&mut self, name: &str) -> &mut JobQueue {
        self.queues.entry(name.to_owned()).or_default()
    }

    /// The queue that holds job `id`. Queues are few; a scan beats keeping
    /// an index of every job.
    fn queue_of(&mut self, id: JobId) -> Option<&mut JobQueue> {
        self.queues
            .values_mut()
            .find(|q| q.records.contains_key(&id))
    }
}

/// Order among the queued jobs of one tenant: priority (highest first), due
/// time, then sequence.
type QueuedKey = (Reverse<i32>, u64, u64);

/// Queued jobs of one partition, per tenant (so a capped tenant is skipped
/// without scanning its jobs).
type Partition = HashMap<String, BTreeMap<QueuedKey, JobId>>;

#[derive(Default)]
struct JobQueue {
    records: HashMap<JobId, Entry>,
    partitions: HashMap<String, Partition>,
    /// Partitions with queued jobs; the front one is served next.
    ring: VecDeque<String>,
    /// Scheduled jobs by (due ms, sequence).
    scheduled: BTreeMap<(u64, u64), JobId>,
    /// Idempotency keys of retained jobs.
    keys: HashMap<String, JobId>,
    /// Running jobs per tenant, across every consumer.
    running: HashMap<String, u32>,
    holders: HashMap<String, Holder>,
    /// Finished (succeeded, failed, cancelled) jobs, oldest first.
    finished: VecDeque<JobId>,
    /// Dead jobs by the sequence number they died with: oldest first.
    dead: BTreeMap<u64, JobId>,
    /// The retention given by the latest consumer (for cancellations, which
    /// have no consumer's options at hand).
    retention: Retention,
    wake: Arc<Notify>,
    /// Outcome replies the store owes (jobs it made final itself), to be
    /// pushed into inboxes once the queue's borrow ends.
    outbox: Vec<(String, Bytes)>,
}

struct Entry {
    record: JobRecord,
    seq: u64,
    /// The key in `dead`, while dead.
    dead_seq: u64,
    idempotency_key: Option<String>,
}

struct Holder {
    lease_until: Instant,
    /// Held jobs, with when each was claimed (Unix ms).
    held: HashMap<JobId, u64>,
}

impl JobQueue {
    /// Puts a job among the queued ones of its partition.
    fn push_queued(&mut self, id: JobId) {
        let Some(entry) = self.records.get_mut(&id) else {
            return;
        };
        entry.record.state = JobState::Queued;
        let job = &entry.record.job;
        let key = (Reverse(job.priority), job.scheduled_for_ms, entry.seq);
        let partition = match self.partitions.get_mut(&job.partition) {
            Some(p) => p,
            None => {
                self.ring.push_back(job.partition.clone());
                self.partitions.entry(job.partition.clone()).or_default()
            }
        };
        partition
            .entry(job.tenant.clone())
            .or_default()
            .insert(key, id);
    }

    /// Takes a queued job out of its partition (to cancel it).
    fn remove_queued(&mut self, id: JobId) {
        let Some(entry) = self.records.get(&id) else {
            return;
        };
        let job = &entry.record.job;
        let key = (Reverse(job.priority), job.scheduled_for_ms, entry.seq);
        let Some(partition) = self.partitions.get_mut(&job.partition) else {
            return;
        };
        if let Some(jobs) = partition.get_mut(&job.tenant) {
            jobs.remove(&key);
            if jobs.is_empty() {
                partition.remove(&job.tenant);
            }
        }
        if partition.is_empty() {
            self.partitions.remove(&job.partition);
            self.ring.retain(|p| *p != job.partition);
        }
    }

    /// Puts a job among the scheduled ones, or the queued ones when due.
    fn push_waiting(&mut self, id: JobId, now: u64) {
        let Some(entry) = self.records.get_mut(&id) else {
            return;
        };
        let due = entry.record.job.scheduled_for_ms;
        if due > now {
            entry.record.state = JobState::Scheduled;
            self.scheduled.insert((due, entry.seq), id);
        } else {
            self.push_queued(id);
        }
    }

    /// Queues the scheduled jobs that are due.
    fn promote(&mut self, now: u64) {
        while let Some(entry) = self.scheduled.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let id = entry.remove();
            self.push_queued(id);
        }
    }

    /// When the next scheduled job comes due (Unix ms).
    fn next_due(&self) -> Option<u64> {
        self.scheduled.keys().next().map(|(due, _)| *due)
    }

    /// Takes up to `max` queued jobs: one per partition per turn, starting
    /// at the cursor, skipping tenants at `cap`.
    fn take(&mut self, max: usize, cap: Option<u32>) -> Vec<JobId> {
        let mut out = Vec::new();
        // Partitions passed over in a row because all their tenants are at
        // the cap; once every partition was, nothing more can be taken.
        let mut misses = 0;
        while out.len() < max && misses < self.ring.len() {
            let Some(name) = self.ring.pop_front() else {
                break;
            };
            match self.pick(&name, cap) {
                Some(id) => {
                    misses = 0;
                    out.push(id);
                    if self.partitions.contains_key(&name) {
                        self.ring.push_back(name);
                    }
                }
                None => {
                    misses += 1;
                    self.ring.push_back(name);
                }
            }
        }
        out
    }

    /// Takes the first job of partition `name` whose tenant is under `cap`,
    /// and counts it as running.
    fn pick(&mut self, name: &str, cap: Option<u32>) -> Option<JobId> {
        let partition = self.partitions.get_mut(name)?;
        let running = &self.running;
        let (tenant, _) = partition
            .iter()
            .filter(|(tenant, _)| {
                cap.is_none_or(|cap| running.get(tenant.as_str()).copied().unwrap_or(0) < cap)
            })
            .filter_map(|(tenant, jobs)| jobs.keys().next().map(|k| (tenant, *k)))
            .min_by_key(|(_, key)| *key)?;
        let tenant = tenant.clone();
        let jobs = partition.get_mut(&tenant)?;
        let (_, id) = jobs.pop_first()?;
        if jobs.is_empty() {
            partition.remove(&tenant);
            if partition.is_empty() {
                self.partitions.remove(name);
            }
        }
        *self.running.entry(tenant).or_default() += 1;
        Some(id)
    }

    /// A held job stops running: its tenant's count goes down.
    fn stop_running(&mut self, id: JobId) {
        let Some(entry) = self.records.get(&id) else {
            return;
        };
        let tenant = &entry.record.job.tenant;
        if let Some(n) = self.running.get_mut(tenant) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.running.remove(tenant);
            }
        }
    }

    /// Makes a job final in `state` (succeeded, failed or cancelled).
    fn finish(&mut self, id: JobId, state: JobState, reason: Option<String>, now: u64) {
        if let Some(entry) = self.records.get_mut(&id) {
            entry.record.state = state;
            entry.record.reason = reason;
            entry.record.finished_at_ms = Some(now);
            self.finished.push_back(id);
        }
    }

    /// Moves a job to the dead-letter set.
    fn kill(&mut self, id: JobId, reason: String, now: u64, seq: u64) {
        if let Some(entry) = self.records.get_mut(&id) {
            entry.record.state = JobState::Dead;
            entry.record.reason = Some(reason);
            entry.record.finished_at_ms = Some(now);
            entry.dead_seq = seq;
            self.dead.insert(seq, id);
        }
    }

    /// Forgets a job and its idempotency key.
    fn delete(&mut self, id: JobId) {
        if let Some(entry) = self.records.remove(&id)
            && let Some(key) = entry.idempotency_key
            && self.keys.get(&key) == Some(&id)
        {
            self.keys.remove(&key);
        }
    }

    /// Deletes finished records beyond the retention, oldest first.
    fn enforce(&mut self, retention: Retention, now: u64) {
        let max_age = u64::try_from(retention.max_age.as_millis()).unwrap_or(u64::MAX);
        while let Some(&id) = self.finished.front() {
            let expired = self
                .records
                .get(&id)
                .and_then(|e| e.record.finished_at_ms)
                .is_none_or(|at| now.saturating_sub(at) > max_age);
            if self.finished.len() <= retention.max_finished && !expired {
                break;
            }
            self.finished.pop_front();
            self.delete(id);
        }
    }

    /// Hands back the jobs of consumers whose lease lapsed.
    fn reap(&mut self, default_max: u32, seq: &mut u64) -> ReapStats {
        let now_i = Instant::now();
        let now = now_ms();
        let lapsed: Vec<String> = self
            .holders
            .iter()
            .filter(|(_, h)| h.lease_until <= now_i)
            .map(|(id, _)| id.clone())
            .collect();
        let mut stats = ReapStats::default();
        for worker in lapsed {
            let Some(holder) = self.holders.remove(&worker) else {
                continue;
            };
            let mut held: Vec<(JobId, u64)> = holder.held.into_iter().collect();
            held.sort_unstable();
            for (id, started) in held {
                self.stop_running(id);
                let Some(entry) = self.records.get_mut(&id) else {
                    continue;
                };
                let n = entry.record.job.attempt;
                entry.record.attempts.push(Attempt {
                    attempt: n,
                    worker: worker.clone(),
                    started_at_ms: started,
                    finished_at_ms: now.max(started),
                    outcome: AttemptOutcome::Lost,
                });
                let max = entry.record.job.max_attempts.unwrap_or(default_max);
                if n >= max {
                    *seq += 1;
                    let reason = format!(
                        "lost {n} of {max} attempts: the lease of worker {worker} lapsed \
                         while it held the job during the last one"
                    );
                    self.kill(id, reason, now, *seq);
                    if let Some(reply) =
                        self.records.get(&id).and_then(|e| e.record.outcome_reply())
                    {
                        self.outbox.push(reply);
                    }
                    stats.dead_lettered += 1;
                } else {
                    entry.record.job.attempt = n + 1;
                    self.push_queued(id);
                    stats.requeued += 1;
                }
            }
        }
        stats
    }

    /// Fails unless consumer `id` holds a live lease.
    fn check_lease(&self, id: &str) -> Result<(), BrokerError> {
        match self.holders.get(id) {
            Some(h) if h.lease_until > Instant::now() => Ok(()),
            _ => Err(BrokerError::LeaseLost),
        }
    }
}

impl MemoryBroker {
    /// Lets every job lease on `queue` lapse now, as if its workers had lost
    /// the store: they can no longer renew or settle, and a reap hands their
    /// jobs to others. For tests of fencing.
    pub fn expire_job_leases(&self, queue: &str) {
        let mut state = self.lock();
        if let Some(q) = state.jobs.queues.get_mut(queue) {
            let now = Instant::now();
            for holder in q.holders.values_mut() {
                holder.lease_until = now;
            }
        }
    }
}

#[async_trait]
impl JobStore for MemoryBroker {
    async fn enqueue(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>, BrokerError> {
        validate_batch(&jobs, DEFAULT_MAX_PAYLOAD)?;
        let now = now_ms();
        let mut state = self.lock();
        let jobs_state = &mut state.jobs;
        // A chosen id may repeat an earlier job's only within its queue.
        for new in &jobs {
            if let Some(id) = new.id
                && let Some((name, _)) = jobs_state
                    .queues
                    .iter()
                    .find(|(_, q)| q.records.contains_key(&id))
                && *name != new.queue
            {
                return Err(BrokerError::Invalid(format!(
                    "job id {id} is taken by a job of queue {name:?}; nothing was enqueued"
                )));
            }
        }
        let mut out = Vec::with_capacity(jobs.len());
        let mut woken: Vec<Arc<Notify>> = Vec::new();
        for new in jobs {
            let seq = jobs_state.next_seq();
            let q = jobs_state.queue(&new.queue);
            let earlier = new
                .idempotency_key
                .as_ref()
                .and_then(|k| q.keys.get(k).copied())
                .or_else(|| new.id.filter(|id| q.records.contains_key(id)));
            if let Some(id) = earlier {
                out.push(Enqueued {
                    id,
                    duplicate: true,
                });
                continue;
            }
            let id = new.id.unwrap_or_default();
            let record = JobRecord::new(Job::accept(id, &new, now), now);
            if let Some(key) = &new.idempotency_key {
                q.keys.insert(key.clone(), id);
            }
            q.records.insert(
                id,
                Entry {
                    record,
                    seq,
                    dead_seq: 0,
                    idempotency_key: new.idempotency_key,
                },
            );
            q.push_waiting(id, now);
            if !woken.iter().any(|w| Arc::ptr_eq(w, &q.wake)) {
                woken.push(Arc::clone(&q.wake));
            }
            out.push(Enqueued {
                id,
                duplicate: false,
            });
        }
        drop(state);
        for wake in woken {
            wake.notify_waiters();
        }
        Ok(out)
    }

    async fn job_consumer(
        &self,
        queue: &str,
        options: JobConsumerOptions,
    ) -> Result<Box<dyn JobConsumer>, BrokerError> {
        validate_queue(queue)?;
        let id = format!("jc-{}", uuid_like());
        let wake = {
            let mut state = self.lock();
            let q = state.jobs.queue(queue);
            q.retention = options.retention;
            q.holders.insert(
                id.clone(),
                Holder {
                    lease_until: Instant::now() + options.lease,
                    held: HashMap::new(),
                },
            );
            Arc::clone(&q.wake)
        };
        Ok(Box::new(MemoryJobConsumer {
            broker: self.clone(),
            queue: queue.to_owned(),
            id,
            options,
            wake,
        }))
    }

    async fn job(&self, id: JobId) -> Result<Option<JobRecord>, BrokerError> {
        let mut state = self.lock();
        Ok(state
            .jobs
            .queue_of(id)
            .and_then(|q| q.records.get(&id))
            .map(|e| e.record.clone()))
    }

    async fn counts(&self, queue: &str) -> Result<QueueCounts, BrokerError> {
        validate_queue(queue)?;
        let state = self.lock();
        let mut counts = QueueCounts::default();
        if let Some(q) = state.jobs.queues.get(queue) {
            for entry in q.records.values() {
                let state = entry.record.state;
                counts.total.add(state, 1);
                if !state.is_final() {
                    counts
                        .partitions
                        .entry(entry.record.job.partition.clone())
                        .or_default()
                        .add(state, 1);
                }
            }
        }
        Ok(counts)
    }

    async fn dead_jobs(&self, queue: &str, limit: usize) -> Result<Vec<JobRecord>, BrokerError> {
        validate_queue(queue)?;
        let state = self.lock();
        Ok(state.jobs.queues.get(queue).map_or(Vec::new(), |q| {
            q.dead
                .values()
                .filter_map(|id| q.records.get(id))
                .take(limit)
                .map(|e| e.record.clone())
                .collect()
        }))
    }

    async fn requeue_dead_job(&self, id: JobId) -> Result<bool, BrokerError> {
        let now = now_ms();
        let mut state = self.lock();
        let Some(q) = state.jobs.queue_of(id) else {
            return Ok(false);
        };
        let Some(entry) = q.records.get_mut(&id) else {
            return Ok(false);
        };
        if entry.record.state != JobState::Dead {
            return Ok(false);
        }
        let dead_seq = entry.dead_seq;
        entry.record.job.attempt = 1;
        entry.record.job.scheduled_for_ms = now;
        entry.record.reason = None;
        entry.record.result = None;
        entry.record.finished_at_ms = None;
        q.dead.remove(&dead_seq);
        q.push_queued(id);
        let wake = Arc::clone(&q.wake);
        drop(state);
        wake.notify_waiters();
        Ok(true)
    }

    async fn purge_dead_jobs(&self, queue: &str) -> Result<usize, BrokerError> {
        validate_queue(queue)?;
        let mut state = self.lock();
        let Some(q) = state.jobs.queues.get_mut(queue) else {
            return Ok(0);
        };
        let dead = std::mem::take(&mut q.dead);
        for id in dead.values() {
            q.delete(*id);
        }
        Ok(dead.len())
    }

    async fn cancel(&self, id: JobId) -> Result<bool, BrokerError> {
        let now = now_ms();
        let mut state = self.lock();
        let Some(q) = state.jobs.queue_of(id) else {
            return Ok(false);
        };
        let Some(entry) = q.records.get(&id) else {
            return Ok(false);
        };
        match entry.record.state {
            JobState::Scheduled => {
                let key = (entry.record.job.scheduled_for_ms, entry.seq);
                q.scheduled.remove(&key);
            }
            JobState::Queued => q.remove_queued(id),
            _ => return Ok(false),
        }
        q.finish(
            id,
            JobState::Cancelled,
            Some("cancelled before it ran".into()),
            now,
        );
        if let Some(reply) = q.records.get(&id).and_then(|e| e.record.outcome_reply()) {
            q.outbox.push(reply);
        }
        let retention = q.retention;
        q.enforce(retention, now);
        deliver_outbox(&mut state);
        Ok(true)
    }
}

/// Pushes the replies the store owes into their inboxes (an inbox that is
/// gone belonged to a client that is gone).
fn deliver_outbox(state: &mut crate::memory::State) {
    let mut owed = Vec::new();
    for q in state.jobs.queues.values_mut() {
        owed.append(&mut q.outbox);
    }
    for (to, reply) in owed {
        if let Some(inbox) = state.inboxes.get_mut(&to) {
            inbox.push(reply);
        }
    }
}

/// A worker's claim on one queue's jobs in a [`MemoryBroker`].
struct MemoryJobConsumer {
    broker: MemoryBroker,
    queue: String,
    id: String,
    options: JobConsumerOptions,
    wake: Arc<Notify>,
}

impl MemoryJobConsumer {
    /// One claim attempt: the jobs taken, and when the next scheduled job
    /// comes due.
    fn try_claim(&self, max: usize) -> Result<(Vec<Job>, Option<u64>), BrokerError> {
        let now = now_ms();
        let mut state = self.broker.lock();
        let q = state.jobs.queue(&self.queue);
        q.check_lease(&self.id)?;
        q.promote(now);
        let ids = q.take(max, self.options.tenant_cap);
        let mut jobs = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(entry) = q.records.get_mut(&id) {
                entry.record.state = JobState::Running;
                jobs.push(entry.record.job.clone());
            }
            if let Some(holder) = q.holders.get_mut(&self.id) {
                holder.held.insert(id, now);
            }
        }
        // Pass the wake-up on if work is left for other consumers.
        if !jobs.is_empty() && !q.ring.is_empty() {
            q.wake.notify_waiters();
        }
        Ok((jobs, q.next_due()))
    }
}

#[async_trait]
impl JobConsumer for MemoryJobConsumer {
    fn id(&self) -> &str {
        &self.id
    }

    async fn claim(&self, max: usize, wait: Duration) -> Result<Vec<Job>, BrokerError> {
        let until = Instant::now() + wait;
        loop {
            // Registered before looking, so a wake-up in between is not missed.
            let notified = self.wake.notified();
            let (jobs, next_due) = self.try_claim(max)?;
            let now = Instant::now();
            if !jobs.is_empty() || max == 0 || now >= until {
                return Ok(jobs);
            }
            // Sleep until woken, the wait ends, or the next scheduled job is
            // due, whichever comes first.
            let wake_at = next_due.map_or(until, |due| {
                let ms = due.saturating_sub(now_ms()).max(1);
                until.min(now + Duration::from_millis(ms))
            });
            let _ = tokio::time::timeout_at(wake_at, notified).await;
        }
    }

    async fn renew(&self) -> Result<(), BrokerError> {
        let mut state = self.broker.lock();
        let q = state.jobs.queue(&self.queue);
        q.check_lease(&self.id)?;
        if let Some(holder) = q.holders.get_mut(&self.id) {
            holder.lease_until = Instant::now() + self.options.lease;
        }
        Ok(())
    }

    async fn settle(&self, done: Vec<Settle>) -> Result<usize, BrokerError> {
        for s in &done {
            if let Next::Finish(state) = &s.next
                && !state.is_final()
            {
                return Err(BrokerError::Invalid(format!(
                    "job {}: Next::Finish needs a final state (succeeded, failed, cancelled \
                     or dead), not {state:?}; nothing was settled",
                    s.id
                )));
            }
        }
        let now = now_ms();
        let mut guard = self.broker.lock();
        let state: &mut State = &mut guard;
        let q = state.jobs.queues.entry(self.queue.clone()).or_default();
        q.check_lease(&self.id)?;
        let mut settled = 0;
        for s in done {
            let held = q
                .holders
                .get(&self.id)
                .is_some_and(|h| h.held.contains_key(&s.id));
            if !held || !q.records.contains_key(&s.id) {
                continue;
            }
            // The reply first, then the job stops being held.
            if let Some((to, reply)) = s.reply {
                // An inbox that is gone belonged to a client that is gone.
                if let Some(inbox) = state.inboxes.get_mut(&to) {
                    inbox.push(reply);
                }
            }
            q.stop_running(s.id);
            if let Some(holder) = q.holders.get_mut(&self.id) {
                holder.held.remove(&s.id);
            }
            let reason = s.attempt.describe();
            let Some(entry) = q.records.get_mut(&s.id) else {
                continue;
            };
            entry.record.attempts.push(s.attempt);
            match s.next {
                Next::Finish(JobState::Dead) => {
                    state.jobs.seq += 1;
                    let reason = reason.unwrap_or_else(|| "dead-lettered by the worker".into());
                    q.kill(s.id, reason, now, state.jobs.seq);
                }
                Next::Finish(final_state) => {
                    entry.record.result = s.result;
                    let reason = reason.filter(|_| final_state != JobState::Succeeded);
                    q.finish(s.id, final_state, reason, now);
                }
                Next::RetryAt(at) => {
                    entry.record.job.attempt += 1;
                    entry.record.job.scheduled_for_ms = at;
                    q.push_waiting(s.id, now);
                }
                Next::Dead(reason) => {
                    state.jobs.seq += 1;
                    q.kill(s.id, reason, now, state.jobs.seq);
                }
                // A `Next` this store does not know: keep the job, dead, so
                // that nothing is silently dropped.
                _ => {
                    state.jobs.seq += 1;
                    q.kill(
                        s.id,
                        "settled with an unknown Next".into(),
                        now,
                        state.jobs.seq,
                    );
                }
            }
            settled += 1;
        }
        q.retention = self.options.retention;
        q.enforce(self.options.retention, now);
        drop(guard);
        // A tenant under its cap again, or a retry due now, may be claimed.
        self.wake.notify_waiters();
        Ok(settled)
    }

    async fn release(&self, ids: Vec<JobId>, attempted: bool) -> Result<(), BrokerError> {
        let now = now_ms();
        let mut state = self.broker.lock();
        let q = state.jobs.queue(&self.queue);
        q.check_lease(&self.id)?;
        for id in ids {
            let Some(started) = q.holders.get_mut(&self.id).and_then(|h| h.held.remove(&id)) else {
                continue;
            };
            q.stop_running(id);
            let Some(entry) = q.records.get_mut(&id) else {
                continue;
            };
            if attempted {
                // The handler had started: the attempt counts, and the
                // history says how it ended.
                let n = entry.record.job.attempt;
                entry.record.attempts.push(Attempt {
                    attempt: n,
                    worker: self.id.clone(),
                    started_at_ms: started,
                    finished_at_ms: now.max(started),
                    outcome: AttemptOutcome::Cancelled,
                });
                entry.record.job.attempt = n + 1;
            }
            q.push_queued(id);
        }
        drop(state);
        self.wake.notify_waiters();
        Ok(())
    }

    async fn reap(&self) -> Result<ReapStats, BrokerError> {
        let mut state = self.broker.lock();
        let jobs = &mut state.jobs;
        let mut seq = jobs.seq;
        let q = jobs.queues.entry(self.queue.clone()).or_default();
        let stats = q.reap(self.options.max_attempts, &mut seq);
        jobs.seq = seq;
        deliver_outbox(&mut state);
        drop(state);
        if stats.requeued > 0 {
            self.wake.notify_waiters();
        }
        Ok(stats)
    }

    async fn close(&self) -> Result<(), BrokerError> {
        let mut state = self.broker.lock();
        let q = state.jobs.queue(&self.queue);
        if let Some(holder) = q.holders.remove(&self.id) {
            let mut held: Vec<JobId> = holder.held.into_keys().collect();
            held.sort_unstable();
            for id in held {
                q.stop_running(id);
                q.push_queued(id);
            }
        }
        drop(state);
        self.wake.notify_waiters();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_secs(10);

    fn job(queue: &str, tenant: &str) -> NewJob {
        NewJob::new(queue, tenant, "k", &serde_json::json!({})).expect("encodes")
    }

    fn opts() -> JobConsumerOptions {
        JobConsumerOptions::default().lease(LEASE)
    }

    fn succeeded(job: &Job, worker: &str) -> Settle {
        Settle::new(
            job.id,
            Attempt {
                attempt: job.attempt,
                worker: worker.into(),
                started_at_ms: now_ms(),
                finished_at_ms: now_ms(),
                outcome: AttemptOutcome::Succeeded,
            },
            Next::Finish(JobState::Succeeded),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_claim_wakes_on_enqueue_not_at_the_end_of_its_wait() {
        let broker = MemoryBroker::new();
        let c = broker.job_consumer("q", opts()).await.unwrap();
        let start = Instant::now();
        let (got, ()) = tokio::join!(c.claim(1, Duration::from_secs(60)), async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            broker.enqueue(vec![job("q", "a")]).await.unwrap();
        });
        assert_eq!(got.unwrap().len(), 1);
        assert_eq!(start.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn an_empty_claim_returns_when_its_wait_ends() {
        let broker = MemoryBroker::new();
        let c = broker.job_consumer("q", opts()).await.unwrap();
        let start = Instant::now();
        assert!(c.claim(5, Duration::from_secs(3)).await.unwrap().is_empty());
        assert_eq!(start.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn a_lapsed_lease_is_fenced_and_its_jobs_reaped() {
        let broker = MemoryBroker::new();
        broker.enqueue(vec![job("q", "a")]).await.unwrap();
        let a = broker.job_consumer("q", opts()).await.unwrap();
        let got = a.claim(1, Duration::ZERO).await.unwrap();
        tokio::time::advance(LEASE / 2).await;
        a.renew().await.unwrap();
        tokio::time::advance(LEASE / 2).await;
        let b = broker.job_consumer("q", opts()).await.unwrap();
        assert_eq!(b.reap().await.unwrap(), ReapStats::default(), "renewed");
        tokio::time::advance(LEASE).await;
        assert_eq!(a.renew().await, Err(BrokerError::LeaseLost));
        assert_eq!(
            a.settle(vec![succeeded(&got[0], a.id())]).await,
            Err(BrokerError::LeaseLost)
        );
        assert_eq!(
            a.claim(1, Duration::ZERO).await,
            Err(BrokerError::LeaseLost)
        );
        let b = broker.job_consumer("q", opts()).await.unwrap();
        assert_eq!(b.reap().await.unwrap().requeued, 1);
        let again = b.claim(1, Duration::ZERO).await.unwrap();
        assert_eq!(again[0].attempt, 2);
        assert_eq!(b.settle(vec![succeeded(&again[0], b.id())]).await, Ok(1));
    }

    #[tokio::test(start_paused = true)]
    async fn expiring_job_leases_fences_their_holders() {
        let broker = MemoryBroker::new();
        broker.enqueue(vec![job("q", "a")]).await.unwrap();
        let a = broker.job_consumer("q", opts()).await.unwrap();
        let got = a.claim(1, Duration::ZERO).await.unwrap();
        broker.expire_job_leases("q");
        assert_eq!(
            a.settle(vec![succeeded(&got[0], a.id())]).await,
            Err(BrokerError::LeaseLost)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_capped_claim_wakes_when_its_tenant_frees_a_slot() {
        let broker = MemoryBroker::new();
        broker
            .enqueue(vec![job("q", "a"), job("q", "a")])
            .await
            .unwrap();
        let a = broker
            .job_consumer("q", opts().tenant_cap(1))
            .await
            .unwrap();
        let b = broker
            .job_consumer("q", opts().tenant_cap(1))
            .await
            .unwrap();
        let first = a.claim(5, Duration::ZERO).await.unwrap();
        assert_eq!(first.len(), 1, "the cap holds within one claim");
        let start = Instant::now();
        let (got, settled) = tokio::join!(b.claim(5, Duration::from_secs(60)), async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            a.settle(vec![succeeded(&first[0], a.id())]).await
        });
        assert_eq!(settled, Ok(1));
        assert_eq!(got.unwrap().len(), 1);
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test]
    async fn memory_stays_bounded_by_retention() {
        let broker = MemoryBroker::new();
        let mut retention = Retention::default();
        retention.max_finished = 10;
        let c = broker
            .job_consumer("q", opts().retention(retention))
            .await
            .unwrap();
        for i in 0..500 {
            let tenant = format!("t{}", i % 7);
            broker
                .enqueue(vec![job("q", &tenant).idempotency_key(format!("k{i}"))])
                .await
                .unwrap();
            let got = c.claim(1, Duration::ZERO).await.unwrap();
            c.settle(vec![succeeded(&got[0], c.id())]).await.unwrap();
        }
        let state = broker.lock();
        let q = &state.jobs.queues["q"];
        assert_eq!(q.records.len(), 10);
        assert_eq!(q.keys.len(), 10);
        assert_eq!(q.finished.len(), 10);
        assert!(q.partitions.is_empty() && q.ring.is_empty() && q.running.is_empty());
        assert!(q.holders[c.id()].held.is_empty());
    }

    #[tokio::test]
    async fn finished_records_older_than_max_age_are_deleted_on_settle() {
        let broker = MemoryBroker::new();
        let mut retention = Retention::default();
        retention.max_age = Duration::from_millis(20);
        let c = broker
            .job_consumer("q", opts().retention(retention))
            .await
            .unwrap();
        let old = broker.enqueue(vec![job("q", "a")]).await.unwrap()[0].id;
        let got = c.claim(1, Duration::ZERO).await.unwrap();
        c.settle(vec![succeeded(&got[0], c.id())]).await.unwrap();
        assert!(broker.job(old).await.unwrap().is_some());
        tokio::time::sleep(Duration::from_millis(50)).await;
        broker.enqueue(vec![job("q", "a")]).await.unwrap();
        let got = c.claim(1, Duration::ZERO).await.unwrap();
        c.settle(vec![succeeded(&got[0], c.id())]).await.unwrap();
        assert!(broker.job(old).await.unwrap().is_none(), "expired");
        assert!(broker.job(got[0].id).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_partition_of_several_tenants_skips_only_the_capped_one() {
        let broker = MemoryBroker::new();
        let jobs = vec![
            job("q", "a").partition("g").priority(5),
            job("q", "a").partition("g").priority(5),
            job("q", "b").partition("g"),
        ];
        broker.enqueue(jobs).await.unwrap();
        let c = broker
            .job_consumer("q", opts().tenant_cap(1))
            .await
            .unwrap();
        let got = c.claim(5, Duration::ZERO).await.unwrap();
        let tenants: Vec<_> = got.iter().map(|j| j.tenant.as_str()).collect();
        assert_eq!(tenants, ["a", "b"]);
    }

    #[tokio::test]
    async fn finishing_in_a_state_that_is_not_final_is_refused() {
        let broker = MemoryBroker::new();
        broker.enqueue(vec![job("q", "a")]).await.unwrap();
        let c = broker.job_consumer("q", opts()).await.unwrap();
        let got = c.claim(1, Duration::ZERO).await.unwrap();
        let mut s = succeeded(&got[0], c.id());
        s.next = Next::Finish(JobState::Queued);
        let err = c.settle(vec![s]).await.unwrap_err();
        assert!(err.to_string().contains("final state"), "{err}");
        let record = broker.job(got[0].id).await.unwrap().unwrap();
        assert_eq!(record.state, JobState::Running);
    }

    #[tokio::test]
    async fn a_chosen_id_repeats_within_its_queue_only() {
        let broker = MemoryBroker::new();
        let id = JobId::new();
        let first = broker
            .enqueue(vec![job("q", "a").with_id(id)])
            .await
            .unwrap();
        assert_eq!(first[0].id, id);
        assert!(!first[0].duplicate);
        let again = broker
            .enqueue(vec![job("q", "a").with_id(id)])
            .await
            .unwrap();
        assert!(again[0].duplicate);
        let err = broker
            .enqueue(vec![job("other", "a").with_id(id)])
            .await
            .unwrap_err();
        assert!(err.to_string().contains("taken"), "{err}");
    }
}
