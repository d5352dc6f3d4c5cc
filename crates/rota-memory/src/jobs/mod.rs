//! [`MemoryBroker`] as a [`JobStore`]: the semantics documented in
//! [`rota_core::jobs::store`], on in-process structures.
//!
//! Jobs live next to the request queues and the inboxes, behind the same
//! lock, so a settlement writes its outcome reply and lets go of the job in
//! one step; the jobs touch the inboxes only through
//! `OpenInboxes::deliver`. Job times (enqueued, due, finished) are wall-clock Unix
//! milliseconds, as in every backend; leases run on [`tokio::time::Instant`]
//! as the broker's own do, so tests may pause time to let them lapse.
//!
//! Per queue:
//!
//! * `records` — every retained job, with the sequence number that orders
//!   it among jobs of equal priority and due time;
//! * `partitions` — the queued jobs, per partition and tenant, ordered by
//!   priority (highest first), then due time, then sequence, with each
//!   tenant's first job in that order too; the partitions, in the order of
//!   their names, are the round-robin ring;
//! * `cursor` — the partition served last: claims go on from the next
//!   name, wrapping round, so a partition that becomes ready is served
//!   within the round under way;
//! * `scheduled` — jobs waiting for their time, by due time;
//! * `finished` and `dead` — final jobs, oldest first, for retention and
//!   listing.
//!
//! Memory is bounded by the jobs still to run plus the retention of
//! finished ones (and the dead jobs nobody purged).

mod consumer;
mod list;
mod queue;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use rota_core::clock::SharedClock;
use rota_core::jobs::validate::DEFAULT_MAX_PAYLOAD;
use rota_core::jobs::validate_queue;
use rota_core::jobs::{
    CancelOutcome, Enqueued, Job, JobConsumer, JobConsumerOptions, JobId, JobPage, JobQuery,
    JobRecord, JobState, JobStore, NewJob, QueueCounts, QueuePolicy, check_fence, validate_batch,
    validate_reply_to,
};
use rota_core::{BrokerError, Inboxes};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::{MemoryBroker, State, uuid_like};

use consumer::MemoryJobConsumer;
use queue::{Entry, Holder, JobQueue};

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
        validate_reply_to(&jobs, |to| self.is_inbox(to))?;
        let now = self.now_ms();
        check_fence(&jobs, now)?;
        let mut state = self.lock();
        let jobs_state = &mut state.jobs;
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
                    cancel_requested: false,
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
        let id = match &options.name {
            Some(name) => {
                validate_queue(name)?;
                name.clone()
            }
            None => format!("jc-{}", uuid_like()),
        };
        let now = self.now_ms();
        let (epoch, wake) = {
            let mut guard = self.lock();
            let state = &mut *guard;
            let jobs = &mut state.jobs;
            let mut seq = jobs.seq;
            let q = jobs.queue(queue);
            // A live holder of the name is taken over: its jobs go back as
            // if its lease had lapsed.
            if let Some(earlier) = q.holders.remove(&id) {
                let max_attempts = q.policy.max_attempts;
                q.hand_back(&id, earlier, max_attempts, &mut seq, now);
            }
            let epoch = q.epochs.entry(id.clone()).or_default();
            *epoch += 1;
            let epoch = *epoch;
            q.holders.insert(
                id.clone(),
                Holder {
                    epoch,
                    lease_until: Instant::now() + options.lease,
                    held: HashMap::new(),
                },
            );
            let wake = Arc::clone(&q.wake);
            jobs.seq = seq;
            deliver_outbox(state);
            (epoch, wake)
        };
        Ok(Box::new(MemoryJobConsumer {
            broker: self.clone(),
            queue: queue.to_owned(),
            id,
            epoch,
            options,
            wake,
        }))
    }

    async fn job(&self, queue: &str, id: JobId) -> Result<Option<JobRecord>, BrokerError> {
        validate_queue(queue)?;
        let state = self.lock();
        Ok(state
            .jobs
            .queues
            .get(queue)
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

    async fn list_jobs(&self, queue: &str, query: &JobQuery) -> Result<JobPage, BrokerError> {
        validate_queue(queue)?;
        query.validate()?;
        let state = self.lock();
        list::list(state.jobs.queues.get(queue), query)
    }

    async fn queues(&self) -> Result<Vec<String>, BrokerError> {
        let state = self.lock();
        let mut names: Vec<String> = state.jobs.queues.keys().cloned().collect();
        names.sort();
        Ok(names)
    }

    async fn requeue_dead_job(&self, queue: &str, id: JobId) -> Result<bool, BrokerError> {
        validate_queue(queue)?;
        let now = self.now_ms();
        let mut state = self.lock();
        let Some(q) = state.jobs.queues.get_mut(queue) else {
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

    fn clock(&self) -> SharedClock {
        Arc::clone(&self.clock)
    }

    async fn set_policy(&self, queue: &str, policy: QueuePolicy) -> Result<(), BrokerError> {
        validate_queue(queue)?;
        self.lock().jobs.queue(queue).policy = policy;
        Ok(())
    }

    async fn policy(&self, queue: &str) -> Result<QueuePolicy, BrokerError> {
        validate_queue(queue)?;
        let state = self.lock();
        Ok(state
            .jobs
            .queues
            .get(queue)
            .map(|q| q.policy)
            .unwrap_or_default())
    }

    async fn cancel(&self, queue: &str, id: JobId) -> Result<CancelOutcome, BrokerError> {
        validate_queue(queue)?;
        let now = self.now_ms();
        let mut state = self.lock();
        let Some(q) = state.jobs.queues.get_mut(queue) else {
            return Ok(CancelOutcome::Unchanged);
        };
        let Some(entry) = q.records.get_mut(&id) else {
            return Ok(CancelOutcome::Unchanged);
        };
        match entry.record.state {
            JobState::Scheduled => {
                let key = (entry.record.job.scheduled_for_ms, entry.seq);
                q.scheduled.remove(&key);
            }
            JobState::Queued => q.remove_queued(id),
            JobState::Running => {
                entry.cancel_requested = true;
                return Ok(CancelOutcome::Requested);
            }
            _ => return Ok(CancelOutcome::Unchanged),
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
        let retention = q.policy.retention;
        q.enforce(retention, now);
        deliver_outbox(&mut state);
        Ok(CancelOutcome::Cancelled)
    }

    async fn cancel_requests(&self, queue: &str, holder: &str) -> Result<Vec<JobId>, BrokerError> {
        validate_queue(queue)?;
        let state = self.lock();
        let Some(q) = state.jobs.queues.get(queue) else {
            return Ok(Vec::new());
        };
        let Some(h) = q.holders.get(holder) else {
            return Ok(Vec::new());
        };
        let mut ids: Vec<JobId> = h
            .held
            .keys()
            .filter(|id| q.records.get(id).is_some_and(|e| e.cancel_requested))
            .copied()
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }
}

/// Pushes the replies the store owes into their inboxes (an inbox that is
/// gone belonged to a client that is gone).
pub(super) fn deliver_outbox(state: &mut State) {
    let mut owed = Vec::new();
    for q in state.jobs.queues.values_mut() {
        owed.append(&mut q.outbox);
    }
    for (to, reply) in owed {
        state.inboxes.deliver(&to, reply);
    }
}
