//! Registering a consumer, renewing its lease, and the claim transaction.
//!
//! A claim promotes the queue's due scheduled jobs, then serves its ready
//! partitions round-robin: the one with the smallest `turn` gives one job
//! and takes the next turn of the queue's clock (the back of the ring).
//! Within a partition the job taken is the first, by priority (highest
//! first), due time and enqueue order, among tenants under the cap. The
//! ring is read from `rota_job_partitions` lazily, a few partitions at a
//! time, so a claim costs what it takes, not what the queue holds.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use rota_core::jobs::{Job, Retention};
use rusqlite::{CachedStatement, Connection, OptionalExtension, Transaction, params};

use super::books::{Partitions, QueueRow, Tenants};
use super::rows::{JOB_COLS, Outbox, RUNNING, job_from_row, uint};
use super::settle::{Books, hand_back};
use crate::lease::{Lease, Table};
use crate::tx::{Result, ms, now, write};

/// Grants the lease `key` on `queue` (the next epoch, taking over from an
/// earlier holder of the key, whose jobs are handed back as if its lease had
/// lapsed), and keeps its retention as the queue's. Returns the lease and
/// the inboxes written to (outcomes of jobs the takeover dead-lettered).
pub(crate) fn register(
    conn: &mut Connection,
    queue: &str,
    key: &str,
    lease: Duration,
    retention: Retention,
    default_max: u32,
    reply_ttl: Duration,
) -> Result<(Lease, Vec<String>)> {
    write(conn, |tx| {
        let mut woken = Vec::new();
        let mut row = QueueRow::load(tx, queue)?;
        if Lease::held(tx, Table::Jobs, key)? {
            let mut outbox = Outbox::new(reply_ttl);
            let mut partitions = Partitions::default();
            let mut tenants = Tenants::default();
            let books = Books {
                q: &mut row,
                partitions: &mut partitions,
                tenants: &mut tenants,
                outbox: &mut outbox,
            };
            hand_back(tx, books, key, default_max, now())?;
            partitions.flush(tx, &mut row)?;
            tenants.flush(tx, queue)?;
            woken = outbox.woken;
        }
        let epoch = Lease::next_epoch(tx, Table::Jobs, key)?;
        tx.execute(
            "INSERT INTO rota_job_consumers (id, queue, lease_until, epoch) VALUES (?1, ?2, ?3, ?4)",
            params![key, queue, now().saturating_add(ms(lease)), epoch],
        )?;
        row.set_retention(retention);
        row.save(tx)?;
        let lease = Lease {
            table: Table::Jobs,
            key: key.to_owned(),
            epoch,
        };
        Ok((lease, woken))
    })
}

/// Extends the lease by `length`, unless it lapsed or was granted again.
pub(crate) fn renew(conn: &mut Connection, lease: &Lease, length: Duration) -> Result<()> {
    write(conn, |tx| lease.renew(tx, length))
}

/// What a claim took, and when the queue's next scheduled job is due
/// (Unix ms), when it took nothing.
pub(crate) struct Claimed {
    pub(crate) jobs: Vec<Job>,
    pub(crate) next_due: Option<u64>,
}

/// A ready partition, as the claim sees it.
struct Part {
    name: String,
    queued: i64,
    turn: i64,
    /// Its tenants with queued jobs, once listed.
    tenants: Option<Vec<String>>,
}

/// Claims up to `max` jobs of `queue` for `consumer`.
pub(crate) fn claim(
    conn: &mut Connection,
    queue: &str,
    lease: &Lease,
    max: usize,
    cap: Option<u32>,
) -> Result<Claimed> {
    let consumer = lease.key.as_str();
    write(conn, |tx| {
        lease.check(tx)?;
        let now = now();
        let mut row = QueueRow::load(tx, queue)?;
        promote(tx, &mut row, now)?;
        let mut claim = Claim::new(tx, queue, cap)?;
        let jobs = claim.run(&mut row, consumer, max, now)?;
        let mut tenants = std::mem::take(&mut claim.tenants);
        tenants.flush(tx, queue)?;
        row.save(tx)?;
        let next_due = if jobs.is_empty() {
            tx.prepare_cached("SELECT min(due_ms) FROM rota_jobs WHERE queue = ?1 AND state = 0")?
                .query_row(params![queue], |r| r.get::<_, Option<i64>>(0))?
                .map(uint)
        } else {
            None
        };
        Ok(Claimed { jobs, next_due })
    })
}

/// Queues the scheduled jobs of the queue that are due, in due order.
fn promote(tx: &Transaction<'_>, row: &mut QueueRow, now: i64) -> Result<()> {
    let mut due: Vec<(i64, i64, String)> = tx
        .prepare_cached(
            "UPDATE rota_jobs SET state = 1 WHERE queue = ?1 AND state = 0 AND due_ms <= ?2
             RETURNING due_ms, seq, partition",
        )?
        .query_map(params![row.name(), now], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    if due.is_empty() {
        return Ok(());
    }
    due.sort_unstable();
    let mut partitions = Partitions::default();
    for (_, _, partition) in &due {
        partitions.add(partition, 1);
    }
    partitions.flush(tx, row)
}

/// One claim transaction: what it read, and its statements, taken from the
/// connection's cache once for the whole claim. A statement with an `ORDER
/// BY` or a bound `LIMIT` is prepared again each time it goes back to the
/// cache (the cache clears its bindings, and SQLite then re-plans it), so
/// taking one from the cache per visit of a partition prepared it per job.
struct Claim<'a, 't> {
    tx: &'a Transaction<'t>,
    queue: &'a str,
    cap: Option<i64>,
    /// Running jobs per tenant, as read in this claim (with its takes).
    running: HashMap<String, i64>,
    tenants: Tenants,
    ring: CachedStatement<'a>,
    head: CachedStatement<'a>,
    next_tenant: CachedStatement<'a>,
    running_of: CachedStatement<'a>,
}

impl<'a, 't> Claim<'a, 't> {
    fn new(tx: &'a Transaction<'t>, queue: &'a str, cap: Option<u32>) -> Result<Self> {
        Ok(Self {
            tx,
            queue,
            cap: cap.map(i64::from),
            running: HashMap::new(),
            tenants: Tenants::default(),
            ring: tx.prepare_cached(
                "SELECT partition, queued, turn FROM rota_job_partitions
                 WHERE queue = ?1 AND queued > 0 AND turn > ?2 AND turn < ?3
                 ORDER BY turn LIMIT ?4",
            )?,
            head: tx.prepare_cached(
                "SELECT priority, due_ms, seq FROM rota_jobs
                 WHERE queue = ?1 AND partition = ?2 AND tenant = ?3 AND state = 1
                 ORDER BY priority DESC, due_ms, seq LIMIT 1",
            )?,
            next_tenant: tx.prepare_cached(
                "SELECT tenant FROM rota_jobs
                 WHERE queue = ?1 AND partition = ?2 AND state = 1 AND tenant > ?3
                 ORDER BY tenant LIMIT 1",
            )?,
            running_of: tx.prepare_cached(
                "SELECT running FROM rota_job_tenants WHERE queue = ?1 AND tenant = ?2",
            )?,
        })
    }

    fn run(
        &mut self,
        row: &mut QueueRow,
        consumer: &str,
        max: usize,
        now: i64,
    ) -> Result<Vec<Job>> {
        let mut jobs = Vec::new();
        if max == 0 {
            return Ok(jobs);
        }
        // Partitions whose turn was before this claim, read in turn order;
        // those served in this claim go to `back` with a new turn, after
        // every partition still in the table's order.
        let first_new_turn = row.clock() + 1;
        let mut ahead: VecDeque<Part> = VecDeque::new();
        let mut read_to = i64::MIN;
        let mut table_done = false;
        let mut back: VecDeque<Part> = VecDeque::new();
        let mut emptied: Vec<Part> = Vec::new();
        // Partitions passed over (all tenants capped) since the last take.
        let mut missed: HashSet<String> = HashSet::new();
        let tx = self.tx;
        let mut take = tx.prepare_cached(&format!(
            "UPDATE rota_jobs SET state = ?1, consumer = ?2, claimed_at_ms = ?3 WHERE seq = ?4
             RETURNING {JOB_COLS}"
        ))?;
        while jobs.len() < max {
            let mut part = match ahead.pop_front() {
                Some(p) => p,
                None if !table_done => {
                    ahead = self.read_ring(read_to, first_new_turn, max - jobs.len())?;
                    match ahead.back() {
                        Some(p) => read_to = p.turn,
                        None => table_done = true,
                    }
                    continue;
                }
                None => match back.pop_front() {
                    Some(p) => p,
                    None => break,
                },
            };
            if missed.contains(&part.name) {
                // A whole round passed over: nothing more can be taken.
                back.push_front(part);
                break;
            }
            match self.pick(&mut part)? {
                Some((seq, tenant)) => {
                    missed.clear();
                    let job = take.query_row(params![RUNNING, consumer, now, seq], job_from_row)?;
                    jobs.push(job);
                    if let Some(n) = self.running.get_mut(&tenant) {
                        *n += 1;
                    }
                    self.tenants.add(&tenant, 1);
                    part.queued -= 1;
                    part.turn = row.tick();
                    if part.queued > 0 {
                        back.push_back(part);
                    } else {
                        emptied.push(part);
                    }
                }
                None if part.tenants.as_ref().is_some_and(Vec::is_empty) => {
                    // Counted as ready but holds nothing: set it right.
                    part.queued = 0;
                    part.turn = row.tick();
                    emptied.push(part);
                }
                None => {
                    missed.insert(part.name.clone());
                    part.turn = row.tick();
                    back.push_back(part);
                }
            }
        }
        let mut save = tx.prepare_cached(
            "UPDATE rota_job_partitions SET queued = ?3, turn = ?4
             WHERE queue = ?1 AND partition = ?2",
        )?;
        for p in back.iter().chain(&emptied) {
            if p.turn >= first_new_turn {
                save.execute(params![self.queue, p.name, p.queued.max(0), p.turn])?;
            }
        }
        Ok(jobs)
    }

    /// Up to `n` ready partitions after turn `after` and before `until`.
    fn read_ring(&mut self, after: i64, until: i64, n: usize) -> Result<VecDeque<Part>> {
        let parts = self
            .ring
            .query_map(
                params![self.queue, after, until, n.clamp(4, 256) as i64],
                |r| {
                    Ok(Part {
                        name: r.get(0)?,
                        queued: r.get(1)?,
                        turn: r.get(2)?,
                        tenants: None,
                    })
                },
            )?
            .collect::<rusqlite::Result<_>>()?;
        Ok(parts)
    }

    /// The first job of `part` whose tenant is under the cap: its row and
    /// tenant.
    fn pick(&mut self, part: &mut Part) -> Result<Option<(i64, String)>> {
        let tenants = match &mut part.tenants {
            Some(t) => t,
            None => part.tenants.insert(self.list_tenants(&part.name)?),
        };
        let mut best: Option<((i64, i64, i64), usize)> = None;
        let mut i = 0;
        while i < tenants.len() {
            if let Some(cap) = self.cap
                && self.running(&tenants[i])? >= cap
            {
                i += 1;
                continue;
            }
            let found: Option<(i64, i64, i64)> = self
                .head
                .query_row(params![self.queue, part.name, tenants[i]], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()?;
            match found {
                None => {
                    tenants.swap_remove(i);
                }
                Some((priority, due, seq)) => {
                    let key = (-priority, due, seq);
                    if best.is_none_or(|(b, _)| key < b) {
                        best = Some((key, i));
                    }
                    i += 1;
                }
            }
        }
        Ok(best.map(|((_, _, seq), i)| (seq, tenants[i].clone())))
    }

    /// The tenants with queued jobs in `partition`, one index seek each.
    fn list_tenants(&mut self, partition: &str) -> Result<Vec<String>> {
        let mut tenants: Vec<String> = Vec::new();
        loop {
            let after = tenants.last().map_or("", String::as_str);
            let found: Option<String> = self
                .next_tenant
                .query_row(params![self.queue, partition, after], |r| r.get(0))
                .optional()?;
            match found {
                Some(t) => tenants.push(t),
                None => return Ok(tenants),
            }
        }
    }

    /// Running jobs of `tenant` across every consumer of the queue.
    fn running(&mut self, tenant: &str) -> Result<i64> {
        if let Some(n) = self.running.get(tenant) {
            return Ok(*n);
        }
        let n: i64 = self
            .running_of
            .query_row(params![self.queue, tenant], |r| r.get(0))
            .optional()?
            .unwrap_or(0);
        self.running.insert(tenant.to_owned(), n);
        Ok(n)
    }
}
