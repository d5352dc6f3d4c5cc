//! The per-queue bookkeeping kept in step with the jobs in the same
//! transaction: the queue's row (clock, finished count, policy).
//!
//! Nothing is kept per partition or per tenant: the claims read the ring of
//! partitions and the running jobs of a tenant from indexes of the jobs
//! (see `claim`), so no write of a job touches a row shared with other jobs
//! of its partition or tenant.

use rota_core::jobs::{QueuePolicy, Retention};
use rusqlite::{OptionalExtension, Transaction, params};

use super::rows::int;
use crate::tx::Result;

/// A queue's row, read in a transaction and written back at its end.
pub(crate) struct QueueRow {
    name: String,
    /// Last value handed out for a final order.
    clock: i64,
    /// Finished (succeeded, failed, cancelled) records kept.
    pub(crate) finished: i64,
    max_finished: i64,
    max_age_ms: i64,
    max_attempts: i64,
    dirty: bool,
}

impl QueueRow {
    /// Reads (or creates, with the default policy) the row of `queue`.
    pub(crate) fn load(tx: &Transaction<'_>, queue: &str) -> Result<Self> {
        let row = tx
            .prepare_cached(
                "SELECT clock, finished, max_finished, max_age_ms, max_attempts
                 FROM rota_job_queues WHERE queue = ?1",
            )?
            .query_row([queue], |r| {
                Ok(Self {
                    name: queue.to_owned(),
                    clock: r.get(0)?,
                    finished: r.get(1)?,
                    max_finished: r.get(2)?,
                    max_age_ms: r.get(3)?,
                    max_attempts: r.get(4)?,
                    dirty: false,
                })
            })
            .optional()?;
        Ok(row.unwrap_or_else(|| {
            let mut fresh = Self {
                name: queue.to_owned(),
                clock: 0,
                finished: 0,
                max_finished: 0,
                max_age_ms: 0,
                max_attempts: 0,
                dirty: true,
            };
            fresh.set_policy(QueuePolicy::default());
            fresh
        }))
    }

    /// The queue's policy.
    pub(crate) fn policy(&self) -> QueuePolicy {
        let retention = Retention::default()
            .max_finished(usize::try_from(self.max_finished).unwrap_or(usize::MAX))
            .max_age(std::time::Duration::from_millis(
                u64::try_from(self.max_age_ms).unwrap_or(0),
            ));
        QueuePolicy::default()
            .max_attempts(u32::try_from(self.max_attempts).unwrap_or(u32::MAX))
            .retention(retention)
    }

    /// Attempts after which a job without a maximum of its own is
    /// dead-lettered when its worker died holding it.
    pub(crate) fn max_attempts(&self) -> i64 {
        self.max_attempts
    }

    /// The queue's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The next value of the clock.
    pub(crate) fn tick(&mut self) -> i64 {
        self.clock += 1;
        self.dirty = true;
        self.clock
    }

    /// Counts `n` more finished records.
    pub(crate) fn add_finished(&mut self, n: i64) {
        self.finished += n;
        self.dirty = true;
    }

    /// Keeps `policy` as the queue's.
    pub(crate) fn set_policy(&mut self, policy: QueuePolicy) {
        let retention = policy.retention;
        let max_finished = int(retention.max_finished as u64);
        let max_age_ms = int(u64::try_from(retention.max_age.as_millis()).unwrap_or(u64::MAX));
        let max_attempts = i64::from(policy.max_attempts.max(1));
        let new = (max_finished, max_age_ms, max_attempts);
        if new != (self.max_finished, self.max_age_ms, self.max_attempts) {
            (self.max_finished, self.max_age_ms, self.max_attempts) = new;
            self.dirty = true;
        }
    }

    /// Writes the row back, if anything changed.
    pub(crate) fn save(&self, tx: &Transaction<'_>) -> Result<()> {
        if self.dirty {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO rota_job_queues
                 (queue, clock, finished, max_finished, max_age_ms, max_attempts)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                self.name,
                self.clock,
                self.finished,
                self.max_finished,
                self.max_age_ms,
                self.max_attempts
            ])?;
        }
        Ok(())
    }

    /// Deletes finished records beyond the retention, oldest first: those
    /// over `max_finished`, then those older than `max_age`.
    pub(crate) fn enforce(&mut self, tx: &Transaction<'_>, now: i64) -> Result<()> {
        let mut oldest = tx.prepare_cached(
            "SELECT seq, finished_at_ms FROM rota_jobs
             WHERE queue = ?1 AND done_seq IS NOT NULL ORDER BY done_seq LIMIT ?2",
        )?;
        let mut delete = tx.prepare_cached("DELETE FROM rota_jobs WHERE seq = ?1")?;
        let cutoff = now.saturating_sub(self.max_age_ms);
        loop {
            let over = (self.finished - self.max_finished).max(0);
            let rows: Vec<(i64, Option<i64>)> = oldest
                .query_map(params![self.name, over.clamp(1, 256)], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?
                .collect::<rusqlite::Result<_>>()?;
            let fetched = rows.len();
            let mut deleted = 0;
            for (n, (seq, at)) in rows.into_iter().enumerate() {
                let expired = at.is_none_or(|at| at < cutoff);
                if (n as i64) >= over && !expired {
                    break;
                }
                delete.execute([seq])?;
                deleted += 1;
            }
            self.add_finished(-deleted);
            if deleted == 0 || deleted < fetched as i64 {
                return Ok(());
            }
        }
    }
}
