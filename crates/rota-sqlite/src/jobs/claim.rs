//! Registering a consumer, renewing its lease, and the claim transaction.
//!
//! A claim promotes the queue's due scheduled jobs, then serves its ready
//! partitions round-robin. The ring is the queue's partitions with queued
//! jobs in the order of their names, and the queue's cursor
//! (`rota_job_rings`) names the partition served last: each visit seeks the
//! first queued job of a partition after the cursor in `rota_jobs_queued`
//! (wrapping round to the first partition), serves it one job, and moves the
//! cursor there. So a visit costs an index seek whatever the number of
//! partitions, and serving a partition writes nothing but the job; empty
//! partitions are not in the index at all, so there is nothing to skip.
//!
//! A partition that becomes ready (queued jobs after none: by an enqueue or
//! a scheduled job coming due) is noted in `rota_job_fresh`, and a claim
//! serves those first, the latest first, one job each, for up to half of
//! what it takes (all of it for a claim of one), then goes round the ring:
//! a tenant that was idle waits for the next claim, not for the round under
//! way to reach its name (as on Redis, where it joins the ring at the
//! front), and busy partitions keep at least half of every larger claim. A
//! partition that stays ready is served once per round; one that empties
//! and fills again, once more when it does.
//!
//! Within a partition the job taken is the first, by priority (highest
//! first), due time and enqueue order, among its tenants under the cap; the
//! running count of a tenant (for the cap) is read from `rota_jobs_running`,
//! whose size is the number of running jobs. The queued index keeps a
//! partition's jobs per tenant (so a capped tenant is passed over without
//! reading its jobs), which makes the first visit of a claim to a partition
//! read one entry per tenant with queued jobs in it: one, for a partition
//! per tenant; a partition shared by a group of tenants costs one seek per
//! member per claim that visits it.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use rota_core::jobs::Job;
use rusqlite::{CachedStatement, Connection, OptionalExtension, Transaction, params};

use super::books::QueueRow;
use super::rows::{JOB_COLS, Outbox, RUNNING, job_from_row, uint};
use super::settle::{Books, hand_back};
use crate::lease::{Lease, Table};
use crate::tx::{Result, ms, now, write};

/// Grants the lease `key` on `queue` (the next epoch, taking over from an
/// earlier holder of the key, whose jobs are handed back as if its lease had
/// lapsed). Returns the lease and
/// the inboxes written to (outcomes of jobs the takeover dead-lettered).
pub(crate) fn register(
    conn: &mut Connection,
    queue: &str,
    key: &str,
    lease: Duration,
    reply_ttl: Duration,
) -> Result<(Lease, Vec<String>)> {
    write(conn, |tx| {
        let mut woken = Vec::new();
        let mut row = QueueRow::load(tx, queue)?;
        if Lease::held(tx, Table::Jobs, key)? {
            let mut outbox = Outbox::new(reply_ttl);
            let books = Books {
                q: &mut row,
                outbox: &mut outbox,
            };
            hand_back(tx, books, key, now())?;
            woken = outbox.woken;
        }
        let epoch = Lease::next_epoch(tx, Table::Jobs, key)?;
        tx.execute(
            "INSERT INTO rota_job_consumers (id, queue, lease_until, epoch) VALUES (?1, ?2, ?3, ?4)",
            params![key, queue, now().saturating_add(ms(lease)), epoch],
        )?;
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
        promote(tx, queue, now)?;
        let jobs = if max == 0 {
            Vec::new()
        } else {
            Claim::new(tx, queue, cap)?.run(consumer, max, now)?
        };
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

/// Queues the scheduled jobs of the queue that are due: each joins its
/// partition's queued jobs, which puts the partition in the ring; one that
/// had none is noted as fresh.
fn promote(tx: &Transaction<'_>, queue: &str, now: i64) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO rota_job_fresh (queue, n, partition)
         SELECT ?1, min(d.seq), d.partition FROM rota_jobs d INDEXED BY rota_jobs_scheduled
         WHERE d.queue = ?1 AND d.state = 0 AND d.due_ms <= ?2
           AND NOT EXISTS (SELECT 1 FROM rota_jobs r
                           WHERE r.queue = ?1 AND r.state = 1 AND r.partition = d.partition)
         GROUP BY d.partition",
    )?
    .execute(params![queue, now])?;
    tx.prepare_cached(
        "UPDATE rota_jobs SET state = 1 WHERE queue = ?1 AND state = 0 AND due_ms <= ?2",
    )?
    .execute(params![queue, now])?;
    Ok(())
}

// The statements a claim runs per job, each one seek in an index (a test
// checks their plans): the ring, a partition's tenants, a tenant's head and
// running jobs; and the cursor, once per claim.

/// The first queued job (the head of its first tenant) of the first
/// partition after a name.
pub(super) const NEXT_PARTITION: &str = "SELECT partition, tenant, -priority, due_ms, seq
     FROM rota_jobs WHERE queue = ?1 AND state = 1 AND partition > ?2
     ORDER BY partition, tenant, priority DESC, due_ms, seq LIMIT 1";

/// The first job of the first tenant with queued jobs in a partition after
/// a name.
pub(super) const NEXT_TENANT: &str = "SELECT tenant, -priority, due_ms, seq FROM rota_jobs
     WHERE queue = ?1 AND state = 1 AND partition = ?2 AND tenant > ?3
     ORDER BY tenant, priority DESC, due_ms, seq LIMIT 1";

/// A tenant's first queued job in a partition.
pub(super) const TENANT_HEAD: &str = "SELECT -priority, due_ms, seq FROM rota_jobs
     WHERE queue = ?1 AND state = 1 AND partition = ?2 AND tenant = ?3
     ORDER BY priority DESC, due_ms, seq LIMIT 1";

/// A tenant's running jobs, across every consumer of the queue.
pub(super) const RUNNING_OF: &str = "SELECT count(*) FROM rota_jobs INDEXED BY rota_jobs_running
     WHERE queue = ?1 AND tenant = ?2 AND consumer IS NOT NULL";

/// Whether a partition has queued jobs.
pub(super) const HAS_QUEUED: &str = "SELECT 1 FROM rota_jobs
     WHERE queue = ?1 AND state = 1 AND partition = ?2 LIMIT 1";

/// Notes a partition as having become ready.
pub(super) const FRESHEN: &str =
    "INSERT INTO rota_job_fresh (queue, n, partition) VALUES (?1, ?2, ?3)";

/// The partitions that became ready, latest first.
pub(super) const FRESH: &str =
    "SELECT n, partition FROM rota_job_fresh WHERE queue = ?1 ORDER BY n DESC LIMIT ?2";

/// The partition the queue's claims served last.
pub(super) const CURSOR: &str = "SELECT cursor FROM rota_job_rings WHERE queue = ?1";

/// Where a queued job stands within its partition: priority (highest
/// first), due time, enqueue order.
type Rank = (i64, i64, i64);

/// A partition visited in this claim: the head of each of its tenants with
/// queued jobs, best first. Read once per claim, and kept up to date with
/// the claim's own takes (nothing else writes while the claim runs).
struct Part {
    heads: BTreeSet<(Rank, String)>,
    /// The tenant a job was last taken from, whose head is to be read
    /// again at the next visit.
    taken: Option<String>,
}

/// One claim transaction: what it read, and its statements, taken from
/// the connection's cache once for the whole claim. (A statement with an
/// `ORDER BY` or a bound `LIMIT` is prepared again each time it goes back to
/// the cache, which clears its bindings; so none goes back per job.)
struct Claim<'a> {
    queue: &'a str,
    cap: Option<i64>,
    /// Running jobs per tenant, as read in this claim (with its takes).
    running: HashMap<String, i64>,
    /// The partitions visited so far.
    parts: HashMap<String, Part>,
    after: CachedStatement<'a>,
    next_tenant: CachedStatement<'a>,
    head: CachedStatement<'a>,
    running_of: CachedStatement<'a>,
    take: CachedStatement<'a>,
    cursor_of: CachedStatement<'a>,
    move_cursor: CachedStatement<'a>,
    fresh: CachedStatement<'a>,
    unfresh: CachedStatement<'a>,
}

impl<'a> Claim<'a> {
    fn new(tx: &'a Transaction<'_>, queue: &'a str, cap: Option<u32>) -> Result<Self> {
        Ok(Self {
            queue,
            cap: cap.map(i64::from),
            running: HashMap::new(),
            parts: HashMap::new(),
            after: tx.prepare_cached(NEXT_PARTITION)?,
            next_tenant: tx.prepare_cached(NEXT_TENANT)?,
            head: tx.prepare_cached(TENANT_HEAD)?,
            running_of: tx.prepare_cached(RUNNING_OF)?,
            take: tx.prepare_cached(&format!(
                "UPDATE rota_jobs SET state = ?1, consumer = ?2, claimed_at_ms = ?3 WHERE seq = ?4
                 RETURNING {JOB_COLS}"
            ))?,
            cursor_of: tx.prepare_cached(CURSOR)?,
            fresh: tx.prepare_cached(FRESH)?,
            unfresh: tx.prepare_cached("DELETE FROM rota_job_fresh WHERE queue = ?1 AND n = ?2")?,
            move_cursor: tx.prepare_cached(
                "INSERT INTO rota_job_rings (queue, cursor) VALUES (?1, ?2)
                 ON CONFLICT (queue) DO UPDATE SET cursor = excluded.cursor",
            )?,
        })
    }

    /// Takes up to `max` (> 0) jobs for `consumer`: one from each partition
    /// that became ready, for up to half of them, then going round the ring
    /// from the cursor, as many times as it takes.
    fn run(&mut self, consumer: &str, max: usize, now: i64) -> Result<Vec<Job>> {
        let mut jobs = Vec::new();
        self.serve_fresh(consumer, max - max / 2, now, &mut jobs)?;
        let start: String = self
            .cursor_of
            .query_row([self.queue], |r| r.get(0))
            .optional()?
            .unwrap_or_default();
        let mut cursor = start.clone();
        // Partitions passed over (all their tenants capped) since the last
        // take: meeting one again means a whole round gave nothing.
        let mut missed: HashSet<String> = HashSet::new();
        while jobs.len() < max {
            let Some((name, first)) = self.next_partition(&cursor)? else {
                break;
            };
            if missed.contains(&name) {
                break;
            }
            match self.pick(&name, first)? {
                Some((seq, tenant)) => {
                    missed.clear();
                    jobs.push(self.take(consumer, now, seq, &tenant)?);
                }
                None => {
                    missed.insert(name.clone());
                }
            }
            cursor = name;
        }
        if cursor != start {
            self.move_cursor.execute(params![self.queue, cursor])?;
        }
        Ok(jobs)
    }

    /// Serves the partitions that became ready, latest first, one job each
    /// (those whose tenants are all capped are left to the ring), while
    /// fewer than `max` are taken.
    fn serve_fresh(
        &mut self,
        consumer: &str,
        max: usize,
        now: i64,
        jobs: &mut Vec<Job>,
    ) -> Result<()> {
        while jobs.len() < max {
            let want = i64::try_from(max - jobs.len()).unwrap_or(i64::MAX);
            let fresh: Vec<(i64, String)> = self
                .fresh
                .query_map(params![self.queue, want], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            if fresh.is_empty() {
                return Ok(());
            }
            for (n, name) in fresh {
                self.unfresh.execute(params![self.queue, n])?;
                // Its first tenant's head; none if it emptied since.
                let first: Option<(Rank, String)> = self
                    .next_tenant
                    .query_row(params![self.queue, name, ""], |r| {
                        Ok(((r.get(1)?, r.get(2)?, r.get(3)?), r.get(0)?))
                    })
                    .optional()?;
                let Some(first) = first else { continue };
                if let Some((seq, tenant)) = self.pick(&name, first)? {
                    jobs.push(self.take(consumer, now, seq, &tenant)?);
                }
            }
        }
        Ok(())
    }

    /// Takes the queued job in row `seq`, of `tenant`, for `consumer`.
    fn take(&mut self, consumer: &str, now: i64, seq: i64, tenant: &str) -> Result<Job> {
        let job = self
            .take
            .query_row(params![RUNNING, consumer, now, seq], job_from_row)?;
        if let Some(n) = self.running.get_mut(tenant) {
            *n += 1;
        }
        Ok(job)
    }

    /// The first partition with queued jobs after `cursor`, or else the
    /// first of all (the ring wraps round), with the head of its first
    /// tenant; `None` when nothing is queued.
    fn next_partition(&mut self, cursor: &str) -> Result<Option<(String, (Rank, String))>> {
        let mut read = |after: &str| {
            self.after
                .query_row(params![self.queue, after], |r| {
                    let name: String = r.get(0)?;
                    let tenant: String = r.get(1)?;
                    Ok((name, ((r.get(2)?, r.get(3)?, r.get(4)?), tenant)))
                })
                .optional()
        };
        Ok(match read(cursor)? {
            Some(found) => Some(found),
            // Partition names are never empty: "" comes before them all.
            None if !cursor.is_empty() => read("")?,
            None => None,
        })
    }

    /// The first job of partition `name` whose tenant is under the cap: its
    /// row and tenant, no longer among the partition's heads (the caller
    /// takes it). `first` is the head of its first tenant, as the ring read
    /// it.
    fn pick(&mut self, name: &str, first: (Rank, String)) -> Result<Option<(i64, String)>> {
        let mut part = match self.parts.remove(name) {
            Some(part) => part,
            None => self.read_part(name, first.clone())?,
        };
        if let Some(tenant) = part.taken.take() {
            // Only the claim's own take changed the partition since it was
            // read: its tenant's head moved on, or it has nothing left.
            let head = if tenant == first.1 {
                Some(first.0)
            } else {
                self.head
                    .query_row(params![self.queue, name, tenant], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })
                    .optional()?
            };
            if let Some(rank) = head {
                part.heads.insert((rank, tenant));
            }
        }
        // Tenants at the cap are passed over: there are no more of them
        // than running jobs, whatever the number of tenants.
        let mut chosen = None;
        for (rank, tenant) in &part.heads {
            if let Some(cap) = self.cap
                && self.running(tenant)? >= cap
            {
                continue;
            }
            chosen = Some((*rank, tenant.clone()));
            break;
        }
        let picked = chosen.map(|(rank, tenant)| {
            part.heads.remove(&(rank, tenant.clone()));
            part.taken = Some(tenant.clone());
            (rank.2, tenant)
        });
        self.parts.insert(name.to_owned(), part);
        Ok(picked)
    }

    /// The heads of the tenants of partition `name`, one seek each: one
    /// seek to learn it has no other tenant, in the common case of a
    /// partition per tenant.
    fn read_part(&mut self, name: &str, first: (Rank, String)) -> Result<Part> {
        let mut tenant = first.1.clone();
        let mut heads = BTreeSet::from([first]);
        loop {
            let next: Option<(Rank, String)> = self
                .next_tenant
                .query_row(params![self.queue, name, tenant], |r| {
                    Ok(((r.get(1)?, r.get(2)?, r.get(3)?), r.get(0)?))
                })
                .optional()?;
            let Some(next) = next else {
                return Ok(Part { heads, taken: None });
            };
            tenant = next.1.clone();
            heads.insert(next);
        }
    }

    /// Running jobs of `tenant` across every consumer of the queue.
    fn running(&mut self, tenant: &str) -> Result<i64> {
        if let Some(n) = self.running.get(tenant) {
            return Ok(*n);
        }
        let n: i64 = self
            .running_of
            .query_row(params![self.queue, tenant], |r| r.get(0))?;
        self.running.insert(tenant.to_owned(), n);
        Ok(n)
    }
}
