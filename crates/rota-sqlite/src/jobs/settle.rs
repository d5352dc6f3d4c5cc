//! The transactions that let go of held jobs: settle (fenced), release
//! (fenced), reap (the jobs of lapsed consumers) and close.

use rota_core::ReapStats;
use rota_core::jobs::{Attempt, AttemptOutcome, JobState, Next, Settle};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::books::QueueRow;
use super::rows::{
    APPEND_ATTEMPT, CANCELLED, DEAD, Outbox, QUEUED, SCHEDULED, attempt_json, id_bytes, int,
    state_code, uint,
};
use crate::lease::Lease;
use crate::tx::{Result, now, write};

/// A held job, as the transactions here read it.
struct Held {
    seq: i64,
    attempt: i64,
    claimed_at: i64,
    /// Its cancellation was asked for while it ran.
    cancel_req: bool,
}

/// The columns [`held`] reads (a macro, to build statements at compile time).
macro_rules! held_cols {
    () => {
        "seq, attempt, coalesce(claimed_at_ms, 0), cancel_req"
    };
}

fn held(row: &rusqlite::Row<'_>) -> rusqlite::Result<Held> {
    Ok(Held {
        seq: row.get(0)?,
        attempt: row.get(1)?,
        claimed_at: row.get(2)?,
        cancel_req: row.get::<_, i64>(3)? != 0,
    })
}

/// Why a job asked to stop while it ran ended as it did.
const CANCELLED_WHILE_RUNNING: &str = "cancelled while it ran";

/// Makes the held job in row `seq`, whose cancellation was asked for,
/// final as cancelled (with `attempt`, if it ran, in its history) instead
/// of giving it back, and owes its outcome reply.
fn cancel_held(
    tx: &Transaction<'_>,
    books: Books<'_>,
    seq: i64,
    attempt: Option<&str>,
) -> Result<()> {
    let done_seq = books.q.tick();
    let sql = format!(
        "UPDATE rota_jobs SET state = ?2, consumer = NULL, claimed_at_ms = NULL,
             attempts = CASE WHEN ?1 IS NULL THEN attempts ELSE ({}) END,
             reason = ?3, finished_at_ms = ?4, done_seq = ?5, cancel_req = 0 WHERE seq = ?6",
        APPEND_ATTEMPT.trim_start_matches("attempts = ")
    );
    tx.prepare_cached(&sql)?.execute(params![
        attempt,
        CANCELLED,
        CANCELLED_WHILE_RUNNING,
        now(),
        done_seq,
        seq
    ])?;
    books.q.add_finished(1);
    books.outbox.outcome(tx, seq)
}

/// The statement of [`held_by`].
pub(super) const HELD_BY: &str = concat!(
    "SELECT ",
    held_cols!(),
    " FROM rota_jobs INDEXED BY rota_jobs_queue_id
     WHERE queue = ?1 AND id = ?2 AND consumer = ?3"
);

/// The job `id` of `queue` if `consumer` holds it: one seek in the queue's
/// ids, however many jobs the consumer holds.
fn held_by(
    tx: &Transaction<'_>,
    queue: &str,
    id: &rota_core::jobs::JobId,
    consumer: &str,
) -> Result<Option<Held>> {
    Ok(tx
        .prepare_cached(HELD_BY)?
        .query_row(params![queue, &id_bytes(id)[..], consumer], held)
        .optional()?)
}

/// Moves the job in row `seq` to the dead-letter set with its last attempt.
fn kill(
    tx: &Transaction<'_>,
    q: &mut QueueRow,
    seq: i64,
    attempt: &str,
    reason: &str,
) -> Result<()> {
    let sql = format!(
        "UPDATE rota_jobs SET state = ?2, consumer = NULL, claimed_at_ms = NULL, {APPEND_ATTEMPT},
             reason = ?3, finished_at_ms = ?4, dead_seq = ?5 WHERE seq = ?6"
    );
    let dead_seq = q.tick();
    tx.prepare_cached(&sql)?
        .execute(params![attempt, DEAD, reason, now(), dead_seq, seq])?;
    Ok(())
}

/// Settles `done` for `consumer` of `queue`: the reply (if any) first, then
/// the attempt and what comes next; then the retention. Returns how many
/// jobs were held and are settled, and the inboxes written to.
pub(crate) fn settle(
    conn: &mut Connection,
    queue: &str,
    lease: &Lease,
    done: Vec<Settle>,
    reply_ttl: std::time::Duration,
) -> Result<(usize, Vec<String>)> {
    let consumer = lease.key.as_str();
    write(conn, |tx| {
        lease.check(tx)?;
        let now = now();
        let mut q = QueueRow::load(tx, queue)?;
        let mut outbox = Outbox::new(reply_ttl);
        let mut finish = tx.prepare_cached(&format!(
            "UPDATE rota_jobs SET state = ?2, consumer = NULL, claimed_at_ms = NULL,
                 {APPEND_ATTEMPT}, result = ?3, reason = ?4, finished_at_ms = ?5, done_seq = ?6
             WHERE seq = ?7"
        ))?;
        let mut retry = tx.prepare_cached(&format!(
            "UPDATE rota_jobs SET state = ?2, consumer = NULL, claimed_at_ms = NULL,
                 {APPEND_ATTEMPT}, attempt = attempt + 1, due_ms = ?3
             WHERE seq = ?4"
        ))?;
        let mut settled = 0;
        for s in done {
            let Some(job) = held_by(tx, queue, &s.id, consumer)? else {
                continue;
            };
            // The reply first, then the job stops being held.
            if let Some((to, reply)) = &s.reply {
                outbox.push(tx, to, reply)?;
            }
            let attempt = attempt_json(&s.attempt)?;
            let reason = s.attempt.describe();
            match s.next {
                Next::Finish(JobState::Dead) => {
                    let reason = reason.unwrap_or_else(|| "dead-lettered by the worker".into());
                    kill(tx, &mut q, job.seq, &attempt, &reason)?;
                }
                Next::Finish(state) => {
                    let result = match &s.result {
                        Some(v) => Some(serde_json::to_string(v).map_err(|e| {
                            crate::tx::Error::Broker(rota_core::BrokerError::Invalid(format!(
                                "cannot encode the result of job {}: {e}",
                                s.id
                            )))
                        })?),
                        None => None,
                    };
                    let reason = reason.filter(|_| state != JobState::Succeeded);
                    let done_seq = q.tick();
                    finish.execute(params![
                        attempt,
                        state_code(state),
                        result,
                        reason,
                        now,
                        done_seq,
                        job.seq
                    ])?;
                    q.add_finished(1);
                }
                Next::RetryAt(at) => {
                    let at = int(at);
                    let state = if at > now { SCHEDULED } else { QUEUED };
                    retry.execute(params![attempt, state, at, job.seq])?;
                }
                Next::Dead(reason) => kill(tx, &mut q, job.seq, &attempt, &reason)?,
                // A `Next` this store does not know: keep the job, dead, so
                // that nothing is silently dropped.
                _ => kill(
                    tx,
                    &mut q,
                    job.seq,
                    &attempt,
                    "settled with an unknown Next",
                )?,
            }
            settled += 1;
        }
        q.enforce(tx, now)?;
        q.save(tx)?;
        Ok((settled, outbox.woken))
    })
}

/// Puts the job in row `seq` back among the queued, appending `attempt` and
/// counting it when given.
fn requeue(tx: &Transaction<'_>, seq: i64, attempt: Option<&str>) -> Result<()> {
    match attempt {
        Some(attempt) => {
            let sql = format!(
                "UPDATE rota_jobs SET state = ?2, consumer = NULL, claimed_at_ms = NULL,
                     {APPEND_ATTEMPT}, attempt = attempt + 1 WHERE seq = ?3"
            );
            tx.prepare_cached(&sql)?
                .execute(params![attempt, QUEUED, seq])?;
        }
        None => {
            tx.prepare_cached(
                "UPDATE rota_jobs SET state = ?1, consumer = NULL, claimed_at_ms = NULL
                 WHERE seq = ?2",
            )?
            .execute(params![QUEUED, seq])?;
        }
    }
    Ok(())
}

/// An attempt that ended without its handler's say.
fn ended(job: &Held, worker: &str, now: i64, outcome: AttemptOutcome) -> Result<String> {
    let started = uint(job.claimed_at);
    attempt_json(&Attempt {
        attempt: u32::try_from(job.attempt).unwrap_or(u32::MAX),
        worker: worker.to_owned(),
        started_at_ms: started,
        finished_at_ms: uint(now).max(started),
        outcome,
    })
}

/// Gives `ids` held by `consumer` back to the queue; with `attempted`, the
/// attempt counts (a `Cancelled` one in the history). A job whose
/// cancellation was asked for ends there instead, cancelled. Returns the
/// inboxes written to.
pub(crate) fn release(
    conn: &mut Connection,
    queue: &str,
    lease: &Lease,
    ids: &[rota_core::jobs::JobId],
    attempted: bool,
    reply_ttl: std::time::Duration,
) -> Result<Vec<String>> {
    let consumer = lease.key.as_str();
    write(conn, |tx| {
        lease.check(tx)?;
        let now = now();
        let mut q = QueueRow::load(tx, queue)?;
        let mut outbox = Outbox::new(reply_ttl);
        for id in ids {
            let Some(job) = held_by(tx, queue, id, consumer)? else {
                continue;
            };
            let attempt = if attempted {
                Some(ended(&job, consumer, now, AttemptOutcome::Cancelled)?)
            } else {
                None
            };
            if job.cancel_req {
                let books = Books {
                    q: &mut q,
                    outbox: &mut outbox,
                };
                cancel_held(tx, books, job.seq, attempt.as_deref())?;
            } else {
                requeue(tx, job.seq, attempt.as_deref())?;
            }
        }
        q.save(tx)?;
        Ok(outbox.woken)
    })
}

/// The jobs of `queue` that `consumer` holds, in id order (read from the
/// queue's running jobs).
fn held_jobs(tx: &Transaction<'_>, queue: &str, consumer: &str) -> Result<Vec<(Held, i64)>> {
    const SQL: &str = concat!(
        "SELECT ",
        held_cols!(),
        ", max_attempts FROM rota_jobs INDEXED BY rota_jobs_running
         WHERE queue = ?1 AND consumer = ?2 ORDER BY id"
    );
    let mut stmt = tx.prepare_cached(SQL)?;
    let rows = stmt
        .query_map([queue, consumer], |r| {
            Ok((held(r)?, r.get::<_, Option<i64>>(4)?.unwrap_or(0)))
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

/// Hands back the jobs of `queue`'s consumers whose lease lapsed: each gets
/// a `Lost` attempt and is queued again, or dead-lettered (with its outcome
/// replied) once its attempts reach its maximum (else the queue's).
pub(crate) fn reap(
    conn: &mut Connection,
    queue: &str,
    reply_ttl: std::time::Duration,
) -> Result<(ReapStats, Vec<String>)> {
    write(conn, |tx| {
        let now = now();
        let lapsed: Vec<String> = tx
            .prepare_cached(
                "SELECT id FROM rota_job_consumers WHERE queue = ?1 AND lease_until <= ?2
                 ORDER BY id",
            )?
            .query_map(params![queue, now], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let mut stats = ReapStats::default();
        let mut outbox = Outbox::new(reply_ttl);
        if lapsed.is_empty() {
            return Ok((stats, outbox.woken));
        }
        let mut q = QueueRow::load(tx, queue)?;
        for worker in lapsed {
            let books = Books {
                q: &mut q,
                outbox: &mut outbox,
            };
            let s = hand_back(tx, books, &worker, now)?;
            stats.requeued += s.requeued;
            stats.dead_lettered += s.dead_lettered;
            stats.cancelled += s.cancelled;
        }
        q.save(tx)?;
        Ok((stats, outbox.woken))
    })
}

/// The books a hand-back keeps: the queue's row (its clock orders the
/// dead), and the replies owed.
pub(crate) struct Books<'a> {
    pub(crate) q: &'a mut QueueRow,
    pub(crate) outbox: &'a mut Outbox,
}

/// Hands back what lease `worker` held, each job with a `Lost` attempt:
/// queued again, or dead once out of attempts (its outcome replied); then
/// forgets the lease's row.
pub(crate) fn hand_back(
    tx: &Transaction<'_>,
    books: Books<'_>,
    worker: &str,
    now: i64,
) -> Result<ReapStats> {
    let mut stats = ReapStats::default();
    // The history names the worker by its lease name, not its row key.
    let name = worker.rsplit_once('/').map_or(worker, |(_, name)| name);
    let queue = books.q.name().to_owned();
    for (job, own_max) in held_jobs(tx, &queue, worker)? {
        let attempt = ended(&job, name, now, AttemptOutcome::Lost)?;
        let n = job.attempt;
        let max = if own_max > 0 {
            own_max
        } else {
            books.q.max_attempts()
        };
        if job.cancel_req {
            let again = Books {
                q: &mut *books.q,
                outbox: &mut *books.outbox,
            };
            cancel_held(tx, again, job.seq, Some(&attempt))?;
            stats.cancelled += 1;
        } else if n >= max {
            let reason = format!(
                "lost {n} of {max} attempts: the lease of worker {name} lapsed \
                 while it held the job during the last one"
            );
            kill(tx, books.q, job.seq, &attempt, &reason)?;
            books.outbox.outcome(tx, job.seq)?;
            stats.dead_lettered += 1;
        } else {
            requeue(tx, job.seq, Some(&attempt))?;
            stats.requeued += 1;
        }
    }
    tx.prepare_cached("DELETE FROM rota_job_consumers WHERE id = ?1")?
        .execute([worker])?;
    Ok(stats)
}

/// Gives back everything this grant of the lease holds, as it was (the
/// attempt not counted), and forgets it — unless the lease was granted
/// again since.
pub(crate) fn close(
    conn: &mut Connection,
    queue: &str,
    lease: &Lease,
    reply_ttl: std::time::Duration,
) -> Result<Vec<String>> {
    write(conn, |tx| {
        if !lease.is_current(tx)? {
            return Ok(Vec::new());
        }
        let consumer = lease.key.as_str();
        let mut q = QueueRow::load(tx, queue)?;
        let mut outbox = Outbox::new(reply_ttl);
        for (job, _) in held_jobs(tx, queue, consumer)? {
            if job.cancel_req {
                let books = Books {
                    q: &mut q,
                    outbox: &mut outbox,
                };
                cancel_held(tx, books, job.seq, None)?;
            } else {
                requeue(tx, job.seq, None)?;
            }
        }
        tx.prepare_cached("DELETE FROM rota_job_consumers WHERE id = ?1")?
            .execute([consumer])?;
        q.save(tx)?;
        Ok(outbox.woken)
    })
}
