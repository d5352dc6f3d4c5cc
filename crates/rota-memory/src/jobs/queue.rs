//! One queue's jobs: records, queued jobs per partition and tenant, the
//! round-robin ring, scheduled jobs, holders, finished and dead jobs.
//!
//! Every step of a job is a few map operations, none of which walks the
//! partitions or the tenants: the ring is the partitions in the order of
//! their names with a cursor (the next one is the first name after it, one
//! tree seek), and a partition keeps its tenants' first jobs in order, so
//! its first job is found without looking at every tenant. A partition that
//! becomes ready (queued jobs after none) is served first, at the next
//! claim (the latest first, for up to half of a claim), as on the other
//! backends: an idle tenant does not wait for the round under way to reach
//! its name.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;
use rota_core::BrokerError;
use rota_core::ReapStats;
use rota_core::jobs::{
    Attempt, AttemptOutcome, JobId, JobRecord, JobState, QueuePolicy, Retention,
};
use tokio::sync::Notify;
use tokio::time::Instant;

/// Order among the queued jobs of one tenant: priority (highest first), due
/// time, then sequence.
pub(super) type QueuedKey = (Reverse<i32>, u64, u64);

/// Queued jobs of one partition.
#[derive(Default)]
pub(super) struct Partition {
    /// Per tenant, in order (so a capped tenant is skipped without scanning
    /// its jobs).
    tenants: HashMap<String, BTreeMap<QueuedKey, JobId>>,
    /// The first job of each tenant, in order: the partition's first job
    /// is the first of these whose tenant is under the cap.
    heads: BTreeSet<(QueuedKey, String)>,
    /// Its place among the fresh partitions, until a claim served it.
    fresh: Option<u64>,
}

impl Partition {
    fn is_empty(&self) -> bool {
        self.tenants.is_empty()
    }

    fn insert(&mut self, tenant: &str, key: QueuedKey, id: JobId) {
        let jobs = match self.tenants.get_mut(tenant) {
            Some(jobs) => jobs,
            None => self.tenants.entry(tenant.to_owned()).or_default(),
        };
        let old = jobs.keys().next().copied();
        jobs.insert(key, id);
        if old.is_none_or(|old| key < old) {
            if let Some(old) = old {
                self.heads.remove(&(old, tenant.to_owned()));
            }
            self.heads.insert((key, tenant.to_owned()));
        }
    }

    /// Takes out the job at `key` of `tenant`.
    fn remove(&mut self, tenant: &str, key: QueuedKey) -> Option<JobId> {
        let jobs = self.tenants.get_mut(tenant)?;
        let head = jobs.keys().next().copied();
        let id = jobs.remove(&key)?;
        if head == Some(key) {
            self.heads.remove(&(key, tenant.to_owned()));
            match jobs.keys().next() {
                Some(next) => {
                    self.heads.insert((*next, tenant.to_owned()));
                }
                None => {
                    self.tenants.remove(tenant);
                }
            }
        }
        Some(id)
    }
}

#[derive(Default)]
pub(super) struct JobQueue {
    pub(super) records: HashMap<JobId, Entry>,
    /// The partitions with queued jobs, by name: the round-robin ring.
    pub(super) partitions: BTreeMap<String, Partition>,
    /// The partition served last (the ring's cursor): the next one served
    /// is the first after it, going round.
    pub(super) cursor: Option<String>,
    /// Partitions that became ready and no claim served yet, in that
    /// order: claims serve them first.
    fresh: BTreeMap<u64, String>,
    fresh_seq: u64,
    /// Scheduled jobs by (due ms, sequence).
    pub(super) scheduled: BTreeMap<(u64, u64), JobId>,
    /// Idempotency keys of retained jobs.
    pub(super) keys: HashMap<String, JobId>,
    /// Running jobs per tenant, across every consumer.
    pub(super) running: HashMap<String, u32>,
    /// The live and lapsed leases, by name.
    pub(super) holders: HashMap<String, Holder>,
    /// The latest epoch granted per lease name; never goes back.
    pub(super) epochs: HashMap<String, u64>,
    /// Finished (succeeded, failed, cancelled) jobs, oldest first.
    pub(super) finished: VecDeque<JobId>,
    /// Dead jobs by the sequence number they died with: oldest first.
    pub(super) dead: BTreeMap<u64, JobId>,
    /// The queue's policy: retention and maximum attempts.
    pub(super) policy: QueuePolicy,
    pub(super) wake: Arc<Notify>,
    /// Outcome replies the store owes (jobs it made final itself), to be
    /// pushed into inboxes once the queue's borrow ends.
    pub(super) outbox: Vec<(String, Bytes)>,
}

pub(super) struct Entry {
    pub(super) record: JobRecord,
    pub(super) seq: u64,
    /// The key in `dead`, while dead.
    pub(super) dead_seq: u64,
    pub(super) idempotency_key: Option<String>,
    /// Its cancellation was asked for while it ran.
    pub(super) cancel_requested: bool,
}

/// Why a job asked to stop while it ran ended as it did.
pub(super) const CANCELLED_WHILE_RUNNING: &str = "cancelled while it ran";

pub(super) struct Holder {
    pub(super) epoch: u64,
    pub(super) lease_until: Instant,
    /// Held jobs, with when each was claimed (Unix ms).
    pub(super) held: HashMap<JobId, u64>,
}

impl JobQueue {
    /// Puts a job among the queued ones of its partition.
    pub(super) fn push_queued(&mut self, id: JobId) {
        let Some(entry) = self.records.get_mut(&id) else {
            return;
        };
        entry.record.state = JobState::Queued;
        let job = &entry.record.job;
        let key = (Reverse(job.priority), job.scheduled_for_ms, entry.seq);
        let partition = match self.partitions.get_mut(&job.partition) {
            Some(p) => p,
            None => {
                self.fresh_seq += 1;
                self.fresh.insert(self.fresh_seq, job.partition.clone());
                let p = self.partitions.entry(job.partition.clone()).or_default();
                p.fresh = Some(self.fresh_seq);
                p
            }
        };
        partition.insert(&job.tenant, key, id);
    }

    /// Forgets an emptied partition.
    fn drop_partition(&mut self, name: &str) {
        if let Some(p) = self.partitions.remove(name)
            && let Some(n) = p.fresh
        {
            self.fresh.remove(&n);
        }
    }

    /// Takes a queued job out of its partition (to cancel it).
    pub(super) fn remove_queued(&mut self, id: JobId) {
        let Some(entry) = self.records.get(&id) else {
            return;
        };
        let job = &entry.record.job;
        let key = (Reverse(job.priority), job.scheduled_for_ms, entry.seq);
        let Some(partition) = self.partitions.get_mut(&job.partition) else {
            return;
        };
        partition.remove(&job.tenant, key);
        if partition.is_empty() {
            let name = job.partition.clone();
            self.drop_partition(&name);
        }
    }

    /// Puts a job among the scheduled ones, or the queued ones when due.
    pub(super) fn push_waiting(&mut self, id: JobId, now: u64) {
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
    pub(super) fn promote(&mut self, now: u64) {
        while let Some(entry) = self.scheduled.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let id = entry.remove();
            self.push_queued(id);
        }
    }

    /// When the next scheduled job comes due (Unix ms).
    pub(super) fn next_due(&self) -> Option<u64> {
        self.scheduled.keys().next().map(|(due, _)| *due)
    }

    /// Takes up to `max` queued jobs: one from each partition that became
    /// ready, the latest first, for up to half of them (all of a claim of
    /// one); then one per partition per turn, going round the ring from the
    /// cursor; skipping tenants at `cap`.
    pub(super) fn take(&mut self, max: usize, cap: Option<u32>) -> Vec<JobId> {
        let mut out = Vec::new();
        while out.len() < max - max / 2 {
            let Some((_, name)) = self.fresh.pop_last() else {
                break;
            };
            if let Some(p) = self.partitions.get_mut(&name) {
                p.fresh = None;
            }
            // A partition whose tenants are all capped is left to the ring.
            if let Some(id) = self.pick(&name, cap) {
                out.push(id);
            }
        }
        // Partitions passed over in a row because all their tenants are at
        // the cap; once every partition was, nothing more can be taken.
        let mut misses = 0;
        while out.len() < max && misses < self.partitions.len() {
            let Some(name) = self.next_partition() else {
                break;
            };
            match self.pick(&name, cap) {
                Some(id) => {
                    misses = 0;
                    out.push(id);
                }
                None => misses += 1,
            }
            self.cursor = Some(name);
        }
        out
    }

    /// The first partition after the cursor, or else the first of all.
    fn next_partition(&self) -> Option<String> {
        let after = match &self.cursor {
            Some(c) => Bound::Excluded(c.as_str()),
            None => Bound::Unbounded,
        };
        self.partitions
            .range::<str, _>((after, Bound::Unbounded))
            .next()
            .or_else(|| self.partitions.first_key_value())
            .map(|(name, _)| name.clone())
    }

    /// Takes the first job of partition `name` whose tenant is under `cap`,
    /// and counts it as running. The tenants passed over are those at the
    /// cap, no more of them than running jobs.
    pub(super) fn pick(&mut self, name: &str, cap: Option<u32>) -> Option<JobId> {
        let partition = self.partitions.get_mut(name)?;
        let running = &self.running;
        let (key, tenant) = partition
            .heads
            .iter()
            .find(|(_, tenant)| {
                cap.is_none_or(|cap| running.get(tenant.as_str()).copied().unwrap_or(0) < cap)
            })
            .cloned()?;
        let id = partition.remove(&tenant, key)?;
        if partition.is_empty() {
            self.drop_partition(name);
        }
        *self.running.entry(tenant).or_default() += 1;
        Some(id)
    }

    /// A held job stops running: its tenant's count goes down.
    pub(super) fn stop_running(&mut self, id: JobId) {
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
    pub(super) fn finish(&mut self, id: JobId, state: JobState, reason: Option<String>, now: u64) {
        if let Some(entry) = self.records.get_mut(&id) {
            entry.cancel_requested = false;
            entry.record.state = state;
            entry.record.reason = reason;
            entry.record.finished_at_ms = Some(now);
            self.finished.push_back(id);
        }
    }

    /// Moves a job to the dead-letter set.
    pub(super) fn kill(&mut self, id: JobId, reason: String, now: u64, seq: u64) {
        if let Some(entry) = self.records.get_mut(&id) {
            entry.record.state = JobState::Dead;
            entry.record.reason = Some(reason);
            entry.record.finished_at_ms = Some(now);
            entry.dead_seq = seq;
            self.dead.insert(seq, id);
        }
    }

    /// Forgets a job and its idempotency key.
    pub(super) fn delete(&mut self, id: JobId) {
        if let Some(entry) = self.records.remove(&id)
            && let Some(key) = entry.idempotency_key
            && self.keys.get(&key) == Some(&id)
        {
            self.keys.remove(&key);
        }
    }

    /// Deletes finished records beyond the retention, oldest first.
    pub(super) fn enforce(&mut self, retention: Retention, now: u64) {
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
    pub(super) fn reap(&mut self, default_max: u32, seq: &mut u64, now: u64) -> ReapStats {
        let now_i = Instant::now();
        let lapsed: Vec<String> = self
            .holders
            .iter()
            .filter(|(_, h)| h.lease_until <= now_i)
            .map(|(id, _)| id.clone())
            .collect();
        let mut stats = ReapStats::default();
        for worker in lapsed {
            if let Some(holder) = self.holders.remove(&worker) {
                let s = self.hand_back(&worker, holder, default_max, seq, now);
                stats.requeued += s.requeued;
                stats.dead_lettered += s.dead_lettered;
                stats.cancelled += s.cancelled;
            }
        }
        stats
    }

    /// Makes held job `id`, whose cancellation was asked for, final as
    /// cancelled (its outcome replied) instead of giving it back; returns
    /// whether it was asked for.
    pub(super) fn cancel_instead(&mut self, id: JobId, now: u64) -> bool {
        if !self.records.get(&id).is_some_and(|e| e.cancel_requested) {
            return false;
        }
        self.finish(
            id,
            JobState::Cancelled,
            Some(CANCELLED_WHILE_RUNNING.into()),
            now,
        );
        if let Some(reply) = self.records.get(&id).and_then(|e| e.record.outcome_reply()) {
            self.outbox.push(reply);
        }
        true
    }

    /// Hands back what `holder` (the lease `worker`) held, each job with a
    /// `Lost` attempt: queued again, or dead once out of attempts.
    pub(super) fn hand_back(
        &mut self,
        worker: &str,
        holder: Holder,
        default_max: u32,
        seq: &mut u64,
        now: u64,
    ) -> ReapStats {
        let mut stats = ReapStats::default();
        {
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
                    worker: worker.to_owned(),
                    started_at_ms: started,
                    finished_at_ms: now.max(started),
                    outcome: AttemptOutcome::Lost,
                });
                let max = entry.record.job.max_attempts.unwrap_or(default_max);
                if self.cancel_instead(id, now) {
                    stats.cancelled += 1;
                } else if n >= max {
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
                    if let Some(entry) = self.records.get_mut(&id) {
                        entry.record.job.attempt = n + 1;
                    }
                    self.push_queued(id);
                    stats.requeued += 1;
                }
            }
        }
        stats
    }

    /// Fails unless lease `id` holds at `epoch`: not lapsed, and not
    /// granted again since.
    pub(super) fn check_lease(&self, id: &str, epoch: u64) -> Result<(), BrokerError> {
        match self.holders.get(id) {
            Some(h) if h.epoch == epoch && h.lease_until > Instant::now() => Ok(()),
            _ => Err(BrokerError::LeaseLost),
        }
    }
}
