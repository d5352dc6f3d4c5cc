//! The enqueue transaction: a batch of jobs, all or none.

use std::collections::HashSet;

use rota_core::BrokerError;
use rota_core::jobs::{Enqueued, NewJob, check_fence};
use rusqlite::{Connection, OptionalExtension, params};

use super::books::QueueRow;
use super::rows::{QUEUED, SCHEDULED, id_bytes, int, job_id};
use crate::tx::{Error, Result, now, write};

/// Inserts `jobs` (already validated) in one transaction. Returns what
/// became of each, and the queues that got jobs (to wake their claims).
pub(crate) fn enqueue(
    conn: &mut Connection,
    jobs: &[NewJob],
) -> Result<(Vec<Enqueued>, Vec<String>)> {
    write(conn, |tx| {
        let now = now();
        // The fence is checked in the transaction that writes: a lease
        // that ends later cannot have been taken over yet.
        check_fence(jobs, u64::try_from(now).unwrap_or(0)).map_err(|_| Error::LeaseLost)?;
        let mut by_id =
            tx.prepare_cached("SELECT 1 FROM rota_jobs WHERE queue = ?1 AND id = ?2")?;
        let mut by_key =
            tx.prepare_cached("SELECT id FROM rota_jobs WHERE queue = ?1 AND idem_key = ?2")?;
        let mut insert = tx.prepare_cached(
            "INSERT INTO rota_jobs (id, queue, partition, tenant, kind, payload, run_id, state,
                 priority, enqueued_ms, due_ms, max_attempts, timeout_ms, deadline_ms, headers,
                 reply_to, idem_key)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
        )?;
        let mut has_queued = tx.prepare_cached(super::claim::HAS_QUEUED)?;
        let mut freshen = tx.prepare_cached(super::claim::FRESHEN)?;
        // The queues touched, in order; the partitions whose readiness was
        // looked at.
        let mut touched: Vec<&str> = Vec::new();
        let mut seen: HashSet<&str> = HashSet::new();
        let mut looked: HashSet<(&str, &str)> = HashSet::new();
        let mut out = Vec::with_capacity(jobs.len());
        for new in jobs {
            // A chosen id names one job within its queue.
            let same_id = match new.id {
                Some(id) => by_id
                    .query_row(params![new.queue, &id_bytes(&id)[..]], |_| Ok(()))
                    .optional()?
                    .is_some(),
                None => false,
            };
            let earlier = match &new.idempotency_key {
                Some(key) => by_key
                    .query_row(params![new.queue, key], |r| job_id(r, 0))
                    .optional()?,
                None => None,
            };
            if let Some(id) = earlier.or(new.id.filter(|_| same_id)) {
                out.push(Enqueued {
                    id,
                    duplicate: true,
                });
                continue;
            }
            let id = new.id.unwrap_or_default();
            let due = int(new.scheduled_for.unwrap_or(0)).max(now);
            let state = if due > now { SCHEDULED } else { QUEUED };
            let headers = if new.headers.is_empty() {
                None
            } else {
                Some(serde_json::to_string(&new.headers).map_err(|e| {
                    Error::Broker(BrokerError::Invalid(format!("cannot encode headers: {e}")))
                })?)
            };
            // A partition with no queued jobs becomes ready with this one:
            // claims serve it first (see `claim`).
            let partition = new.partition_key();
            let fresh = state == QUEUED
                && looked.insert((&new.queue, partition))
                && has_queued
                    .query_row(params![new.queue, partition], |_| Ok(()))
                    .optional()?
                    .is_none();
            insert.execute(params![
                &id_bytes(&id)[..],
                new.queue,
                partition,
                new.tenant,
                new.kind,
                &new.payload[..],
                new.run_id,
                state,
                new.priority,
                now,
                due,
                new.max_attempts,
                new.timeout_ms.map(int),
                new.deadline.map(|d| int(d.as_unix_ms())),
                headers,
                new.reply_to,
                new.idempotency_key,
            ])?;
            if fresh {
                freshen.execute(params![new.queue, tx.last_insert_rowid(), partition])?;
            }
            if seen.insert(&new.queue) {
                touched.push(&new.queue);
            }
            out.push(Enqueued {
                id,
                duplicate: false,
            });
        }
        // A queued job is in the ring as it is (see `claim`): only the
        // queue's row, if new, is written.
        let mut queues = Vec::with_capacity(touched.len());
        for queue in touched {
            QueueRow::load(tx, queue)?.save(tx)?;
            queues.push(queue.to_owned());
        }
        Ok((out, queues))
    })
}
