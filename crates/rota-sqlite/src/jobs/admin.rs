//! Looking jobs up and managing them from outside a worker: records,
//! counts, the dead-letter set, cancellation, the queue's policy.

use rota_core::jobs::{CancelOutcome, JobId, JobRecord, JobState, QueueCounts, QueuePolicy};
use rusqlite::{Connection, OptionalExtension, params};

use super::books::QueueRow;
use super::rows::{
    CANCELLED, DEAD, Outbox, QUEUED, RECORD_COLS, RUNNING, SCHEDULED, id_bytes, job_id,
    record_from_row, state_of, uint,
};
use crate::lease::Lease;
use crate::tx::{Result, now, write};

/// The record of job `id` of `queue`, while retained.
pub(crate) fn job(conn: &mut Connection, queue: &str, id: JobId) -> Result<Option<JobRecord>> {
    let sql = format!("SELECT {RECORD_COLS} FROM rota_jobs WHERE queue = ?1 AND id = ?2");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params![queue, &id_bytes(&id)[..]], record_from_row)
        .optional()?)
}

/// Keeps `policy` as `queue`'s.
pub(crate) fn set_policy(conn: &mut Connection, queue: &str, policy: QueuePolicy) -> Result<()> {
    write(conn, |tx| {
        let mut row = QueueRow::load(tx, queue)?;
        row.set_policy(policy);
        row.save(tx)
    })
}

/// The policy of `queue` (the default for a queue never given one).
pub(crate) fn policy(conn: &mut Connection, queue: &str) -> Result<QueuePolicy> {
    let tx = conn.transaction()?;
    let policy = QueueRow::load(&tx, queue)?.policy();
    tx.rollback()?;
    Ok(policy)
}

/// Counts of `queue` per state, and per partition of the jobs still to run.
/// Each count reads one index; none scans the queue's finished records
/// beyond the retention.
pub(crate) fn counts(conn: &mut Connection, queue: &str) -> Result<QueueCounts> {
    let mut counts = QueueCounts::default();
    let per_partition = [
        (
            JobState::Scheduled,
            "SELECT partition, count(*) FROM rota_jobs WHERE queue = ?1 AND state = 0
             GROUP BY partition",
        ),
        (
            JobState::Queued,
            "SELECT partition, count(*) FROM rota_jobs WHERE queue = ?1 AND state = 1
             GROUP BY partition",
        ),
        (
            JobState::Running,
            "SELECT partition, count(*) FROM rota_jobs INDEXED BY rota_jobs_running
             WHERE queue = ?1 AND consumer IS NOT NULL GROUP BY partition",
        ),
    ];
    debug_assert_eq!((SCHEDULED, QUEUED, RUNNING), (0, 1, 2));
    for (state, sql) in per_partition {
        let mut stmt = conn.prepare_cached(sql)?;
        let mut rows = stmt.query([queue])?;
        while let Some(row) = rows.next()? {
            let partition: String = row.get(0)?;
            let n = uint(row.get(1)?);
            counts.total.add(state, n);
            counts
                .partitions
                .entry(partition)
                .or_default()
                .add(state, n);
        }
    }
    let mut stmt = conn.prepare_cached(
        "SELECT state, count(*) FROM rota_jobs WHERE queue = ?1 AND done_seq IS NOT NULL
         GROUP BY state",
    )?;
    let mut rows = stmt.query([queue])?;
    while let Some(row) = rows.next()? {
        counts.total.add(state_of(row.get(0)?), uint(row.get(1)?));
    }
    let dead: i64 = conn
        .prepare_cached("SELECT count(*) FROM rota_jobs WHERE queue = ?1 AND dead_seq IS NOT NULL")?
        .query_row([queue], |r| r.get(0))?;
    counts.total.add(JobState::Dead, uint(dead));
    Ok(counts)
}

/// Queues dead job `id` of `queue` again, its attempts starting over (the
/// history kept). Returns whether it was dead.
pub(crate) fn requeue_dead_job(conn: &mut Connection, queue: &str, id: JobId) -> Result<bool> {
    write(conn, |tx| {
        let requeued = tx
            .prepare_cached(
                "UPDATE rota_jobs SET state = ?1, attempt = 1, due_ms = ?2, reason = NULL,
                     result = NULL, finished_at_ms = NULL, dead_seq = NULL
                 WHERE queue = ?3 AND id = ?4 AND state = ?5",
            )?
            .execute(params![QUEUED, now(), queue, &id_bytes(&id)[..], DEAD])?;
        Ok(requeued > 0)
    })
}

/// Deletes the dead jobs of `queue`; returns how many.
pub(crate) fn purge_dead_jobs(conn: &mut Connection, queue: &str) -> Result<usize> {
    write(conn, |tx| {
        Ok(tx.execute(
            "DELETE FROM rota_jobs WHERE queue = ?1 AND dead_seq IS NOT NULL",
            [queue],
        )?)
    })
}

/// The running jobs of `queue` held by `consumer` (a lease's name, or the
/// key of an unnamed one) whose cancellation was asked for.
pub(crate) fn cancel_requests(
    conn: &mut Connection,
    queue: &str,
    consumer: &str,
) -> Result<Vec<JobId>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id FROM rota_jobs INDEXED BY rota_jobs_running
         WHERE queue = ?1 AND consumer IN (?2, ?3) AND cancel_req = 1 ORDER BY id",
    )?;
    let named = Lease::key(queue, Some(consumer));
    let ids = stmt
        .query_map(params![queue, named, consumer], |r| job_id(r, 0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(ids)
}

/// Cancels job `id`: if it has not started (scheduled or queued), at once,
/// replying its outcome and applying the queue's retention; if it runs, by
/// marking it for its worker. Returns what it did and the inboxes written
/// to.
pub(crate) fn cancel(
    conn: &mut Connection,
    queue: &str,
    id: JobId,
    reply_ttl: std::time::Duration,
) -> Result<(CancelOutcome, Vec<String>)> {
    write(conn, |tx| {
        let found: Option<(i64, i64)> = tx
            .prepare_cached(
                "SELECT seq, state FROM rota_jobs
                 WHERE queue = ?1 AND id = ?2 AND state IN (?3, ?4, ?5)",
            )?
            .query_row(
                params![queue, &id_bytes(&id)[..], SCHEDULED, QUEUED, RUNNING],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((seq, state)) = found else {
            return Ok((CancelOutcome::Unchanged, Vec::new()));
        };
        if state == RUNNING {
            tx.prepare_cached("UPDATE rota_jobs SET cancel_req = 1 WHERE seq = ?1")?
                .execute([seq])?;
            return Ok((CancelOutcome::Requested, Vec::new()));
        }
        let now = now();
        let mut q = QueueRow::load(tx, queue)?;
        let done_seq = q.tick();
        tx.prepare_cached(
            "UPDATE rota_jobs SET state = ?1, reason = 'cancelled before it ran',
                 finished_at_ms = ?2, done_seq = ?3 WHERE seq = ?4",
        )?
        .execute(params![CANCELLED, now, done_seq, seq])?;
        q.add_finished(1);
        let mut outbox = Outbox::new(reply_ttl);
        outbox.outcome(tx, seq)?;
        q.enforce(tx, now)?;
        q.save(tx)?;
        Ok((CancelOutcome::Cancelled, outbox.woken))
    })
}
