//! The per-queue bookkeeping the claims rely on, kept in step with the
//! jobs in the same transaction: the queue's row (clock, finished count,
//! retention), the queued count and turn of each partition, the running
//! count of each tenant.

use std::collections::HashMap;

use rota_core::jobs::Retention;
use rusqlite::{OptionalExtension, Transaction, params};

use super::rows::int;
use crate::tx::Result;

/// A queue's row, read in a transaction and written back at its end.
pub(crate) struct QueueRow {
    name: String,
    /// Last value handed out for a turn or a final order.
    clock: i64,
    /// Finished (succeeded, failed, cancelled) records kept.
    pub(crate) finished: i64,
    max_finished: i64,
    max_age_ms: i64,
    dirty: bool,
}

impl QueueRow {
    /// Reads (or creates, with the default retention) the row of `queue`.
    pub(crate) fn load(tx: &Transaction<'_>, queue: &str) -> Result<Self> {
        let row = tx
            .prepare_cached(
                "SELECT clock, finished, max_finished, max_age_ms FROM rota_job_queues
                 WHERE queue = ?1",
            )?
            .query_row([queue], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .optional()?;
        let fresh = row.is_none();
        let (clock, finished, max_finished, max_age_ms) = row.unwrap_or_else(|| {
            let r = Retention::default();
            (
                0,
                0,
                int(r.max_finished as u64),
                int(r.max_age.as_millis() as u64),
            )
        });
        Ok(Self {
            name: queue.to_owned(),
            clock,
            finished,
            max_finished,
            max_age_ms,
            dirty: fresh,
        })
    }

    /// The queue's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The last value of the clock handed out.
    pub(crate) fn clock(&self) -> i64 {
        self.clock
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

    /// Keeps `retention` as the queue's (for cancellations, which have no
    /// consumer's options at hand).
    pub(crate) fn set_retention(&mut self, retention: Retention) {
        let max_finished = int(retention.max_finished as u64);
        let max_age_ms = int(u64::try_from(retention.max_age.as_millis()).unwrap_or(u64::MAX));
        if (max_finished, max_age_ms) != (self.max_finished, self.max_age_ms) {
            (self.max_finished, self.max_age_ms) = (max_finished, max_age_ms);
            self.dirty = true;
        }
    }

    /// Writes the row back, if anything changed.
    pub(crate) fn save(&self, tx: &Transaction<'_>) -> Result<()> {
        if self.dirty {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO rota_job_queues
                 (queue, clock, finished, max_finished, max_age_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                self.name,
                self.clock,
                self.finished,
                self.max_finished,
                self.max_age_ms
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

/// Changes to the queued counts of a queue's partitions, in the order they
/// were first touched (a partition that gets its first queued job goes to
/// the back of the round-robin, so the order matters).
#[derive(Default)]
pub(crate) struct Partitions {
    order: Vec<String>,
    delta: HashMap<String, i64>,
}

impl Partitions {
    /// `n` more (or fewer) queued jobs in `partition`.
    pub(crate) fn add(&mut self, partition: &str, n: i64) {
        match self.delta.get_mut(partition) {
            Some(d) => *d += n,
            None => {
                self.order.push(partition.to_owned());
                self.delta.insert(partition.to_owned(), n);
            }
        }
    }

    /// Writes the changes; a partition that had no queued jobs takes the
    /// next turn of the queue's clock.
    pub(crate) fn flush(&mut self, tx: &Transaction<'_>, queue: &mut QueueRow) -> Result<()> {
        let mut grow = tx.prepare_cached(
            "INSERT INTO rota_job_partitions (queue, partition, queued, turn)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (queue, partition) DO UPDATE SET
                 turn = CASE WHEN queued <= 0 THEN excluded.turn ELSE turn END,
                 queued = queued + excluded.queued",
        )?;
        let mut shrink = tx.prepare_cached(
            "UPDATE rota_job_partitions SET queued = max(queued + ?3, 0)
             WHERE queue = ?1 AND partition = ?2",
        )?;
        for partition in self.order.drain(..) {
            let n = self.delta.remove(&partition).unwrap_or(0);
            if n > 0 {
                let turn = queue.tick();
                grow.execute(params![queue.name, partition, n, turn])?;
            } else if n < 0 {
                shrink.execute(params![queue.name, partition, n])?;
            }
        }
        Ok(())
    }
}

/// Changes to the running counts of a queue's tenants.
#[derive(Default)]
pub(crate) struct Tenants {
    delta: HashMap<String, i64>,
}

impl Tenants {
    /// `n` more (or fewer) running jobs of `tenant`.
    pub(crate) fn add(&mut self, tenant: &str, n: i64) {
        match self.delta.get_mut(tenant) {
            Some(d) => *d += n,
            None => {
                self.delta.insert(tenant.to_owned(), n);
            }
        }
    }

    /// Writes the changes.
    pub(crate) fn flush(&mut self, tx: &Transaction<'_>, queue: &str) -> Result<()> {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO rota_job_tenants (queue, tenant, running) VALUES (?1, ?2, max(?3, 0))
             ON CONFLICT (queue, tenant) DO UPDATE SET running = max(running + ?3, 0)",
        )?;
        for (tenant, n) in self.delta.drain() {
            if n != 0 {
                stmt.execute(params![queue, tenant, n])?;
            }
        }
        Ok(())
    }
}
