//! A worker's leased claim on one queue's jobs.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rota_core::BrokerError;
use rota_core::jobs::{
    Attempt, AttemptOutcome, Job, JobConsumerOptions, JobId, JobState, Next, Settle,
};
use rota_core::{Leased, ReapStats};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::deliver_outbox;
use crate::{MemoryBroker, State};

/// A worker's claim on one queue's jobs in a [`MemoryBroker`].
pub(super) struct MemoryJobConsumer {
    pub(super) broker: MemoryBroker,
    pub(super) queue: String,
    pub(super) id: String,
    pub(super) epoch: u64,
    pub(super) options: JobConsumerOptions,
    pub(super) wake: Arc<Notify>,
}

impl MemoryJobConsumer {
    /// One claim attempt: the jobs taken, and when the next scheduled job
    /// comes due.
    fn try_claim(&self, max: usize) -> Result<(Vec<Job>, Option<u64>), BrokerError> {
        let now = self.broker.now_ms();
        let mut state = self.broker.lock();
        let q = state.jobs.queue(&self.queue);
        q.check_lease(&self.id, self.epoch)?;
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
        if !jobs.is_empty() && !q.partitions.is_empty() {
            q.wake.notify_waiters();
        }
        Ok((jobs, q.next_due()))
    }
}

#[async_trait]
impl Leased for MemoryJobConsumer {
    type Work = Job;
    type Done = Settle;
    type Tag = JobId;

    fn id(&self) -> &str {
        &self.id
    }

    fn epoch(&self) -> u64 {
        self.epoch
    }

    async fn give_up(&self, done: Settle, reason: &str) -> Result<(), BrokerError> {
        self.settle(vec![done.given_up(reason)]).await.map(|_| ())
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
                let ms = due.saturating_sub(self.broker.now_ms()).max(1);
                until.min(now + Duration::from_millis(ms))
            });
            let _ = tokio::time::timeout_at(wake_at, notified).await;
        }
    }

    async fn renew(&self) -> Result<(), BrokerError> {
        let mut state = self.broker.lock();
        let q = state.jobs.queue(&self.queue);
        q.check_lease(&self.id, self.epoch)?;
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
        let now = self.broker.now_ms();
        let mut guard = self.broker.lock();
        let state: &mut State = &mut guard;
        let q = state.jobs.queues.entry(self.queue.clone()).or_default();
        q.check_lease(&self.id, self.epoch)?;
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
                state.inboxes.deliver(&to, reply);
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
        let retention = q.policy.retention;
        q.enforce(retention, now);
        drop(guard);
        // A tenant under its cap again, or a retry due now, may be claimed.
        self.wake.notify_waiters();
        Ok(settled)
    }

    async fn release(&self, ids: Vec<JobId>, attempted: bool) -> Result<(), BrokerError> {
        let now = self.broker.now_ms();
        let mut state = self.broker.lock();
        let q = state.jobs.queue(&self.queue);
        q.check_lease(&self.id, self.epoch)?;
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
                if !entry.cancel_requested {
                    entry.record.job.attempt = n + 1;
                }
            }
            // Given back after its cancellation was asked for: it ends here.
            if !q.cancel_instead(id, now) {
                q.push_queued(id);
            }
        }
        deliver_outbox(&mut state);
        drop(state);
        self.wake.notify_waiters();
        Ok(())
    }

    async fn reap(&self) -> Result<ReapStats, BrokerError> {
        let now = self.broker.now_ms();
        let mut state = self.broker.lock();
        let jobs = &mut state.jobs;
        let mut seq = jobs.seq;
        let q = jobs.queues.entry(self.queue.clone()).or_default();
        let max_attempts = q.policy.max_attempts;
        let stats = q.reap(max_attempts, &mut seq, now);
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
        if q.holders
            .get(&self.id)
            .is_some_and(|h| h.epoch == self.epoch)
            && let Some(holder) = q.holders.remove(&self.id)
        {
            let mut held: Vec<JobId> = holder.held.into_keys().collect();
            held.sort_unstable();
            let now = self.broker.now_ms();
            for id in held {
                q.stop_running(id);
                if !q.cancel_instead(id, now) {
                    q.push_queued(id);
                }
            }
        }
        deliver_outbox(&mut state);
        drop(state);
        self.wake.notify_waiters();
        Ok(())
    }
}
