//! Jobs on Redis: [`JobStore`] for [`RedisBroker`].
//!
//! All keys of a queue share one hash tag, `{j:<queue>}` (so a queue lives
//! on one Cluster node, as in BullMQ), under `<prefix>:{j:<queue>}:`:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `job:<id>` | hash | the job: `j` (its JSON as accepted, without what the keys and fields say or what has its default), partition `p`, tenant `t` (absent when it is the partition), score `sc` (priority, then order), max attempts `m` (if its own); state `s` (absent while queued or running); attempt `a` and due time `due` once they change; finished at `f`, result `r`, reason `rs`; each finished attempt as `h<n>` (JSON, `n` growing) |
//! | `ready:<lane>` | list | a **lane**: `<score> <id> <attempt> <due or -> <j>` of queued jobs of one tenant at one priority in one partition, oldest first (all a claim answers with, so it reads no hash); the lane of a partition's own tenant at priority 0 is named after the partition, any other is `<p>:<t>:<priority>` |
//! | `ring` | zset | the partitions with claimable jobs, by turn: one that becomes ready joins at the front, a served one goes to the back |
//! | `grp` | set | partitions with other lanes than their own (grouped tenants, priorities) |
//! | `lanes:<p>` | zset | such a partition's claimable lanes, scored by (about) their first job |
//! | `tomb` | hash | per lane, jobs cancelled while queued and not yet met by a claim (they stay in their list) |
//! | `sched` | zset | scheduled job ids by due time |
//! | `psched` | hash | scheduled jobs per partition |
//! | `run`, `capped` | hash, string | running jobs per tenant, plus 2⁴⁰ while the tenant is **parked**; counted once a consumer with a tenant cap registered (`capped` set), a write per job spared before |
//! | `parked:<t>` | set | lanes of tenant `t` parked: it reached the cap, and they left the claims' way until one of its jobs stops |
//! | `held:<c>` | hash | job id → claim time (ms) of the jobs consumer `c` holds, the running jobs (`+` after the time when `run` counted the job) |
//! | `lease:<c>` | string with TTL | the consumer's fenced lease |
//! | `waiting`, `wants` | zset, hash | consumers blocked in a claim that found nothing (until when; how many jobs, under which cap) |
//! | `handoff:<c>` | list | jobs claimed for waiting consumer `c` by the function that made them claimable; its blocked claim reads them |
//! | `policy` | hash | the queue's policy: `keep` (finished records kept), `age` (their longest age, ms), `max` (attempts); a field never set is [`QueuePolicy::default`]'s |
//! | `finished` | list | `<finished at> <state> <id>` of finished jobs in the order they finished, for retention |
//! | `fin` | hash | finished jobs per state |
//! | `dead` | zset | dead job ids, oldest first |
//! | `keys`, `kof` | hash | idempotency key → job id, and back |
//! | `consumers`, `seq`, `tidy` | set, string, hash | registered consumers; the counter of orders, turns and attempts; the cursor of the running counts' tidying |
//!
//! A claim moves a job from its lane into its consumer's `held` hash and
//! leaves the job's hash as it is (a write per job spared): a job without a
//! state is running while a consumer holds it, queued otherwise.
//!
//! Every state change is one call of a Lua function (`lua/jobs/`, loaded
//! as one library of Redis Functions, so its helpers are defined once per
//! server rather than with every call), whose cost per job does not grow
//! with the number of partitions: the ring is a sorted set, a
//! lane a list, a capped tenant is skipped once (parked) rather than
//! scanned, and work on a whole queue (purge, reap, close, retention,
//! counts) goes in chunks of 1 000 looped from Rust. Outcome replies go to
//! the client's inbox (another hash tag) just before the settling call, in
//! the same pipeline, like call replies (on a Cluster, the replies are
//! answered before the settling call is sent).
//!
//! An enqueue is all or nothing per queue: each queue's part is one call,
//! all of them sent in one round trip. A single job due now, with nothing
//! else claimable, goes straight to a waiting consumer.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use rota_core::clock::SharedClock;
use rota_core::jobs::validate::DEFAULT_MAX_PAYLOAD;
use rota_core::jobs::{
    CancelOutcome, Enqueued, Job, JobConsumer, JobConsumerOptions, JobId, JobPage, JobQuery,
    JobRecord, JobStore, NewJob, QueueCounts, QueuePolicy, fence_of, validate_batch,
    validate_queue, validate_reply_to,
};
use rota_core::names::validate_lease_name;
use rota_core::{BrokerError, Inboxes, Leased};
use tokio::sync::Mutex;

use crate::broker::RedisBroker;
use crate::conn::Blocking;
use crate::error::map;
use crate::inbox::push_replies;
use crate::lease::grant;

mod consumer;
mod counts;
mod keys;
mod list;
mod record;

use crate::call::{self, Call, is_missing};
use crate::scripts::JOBS;
use consumer::RedisJobConsumer;
use keys::QueueKeys;
use record::{RawRecord, pack, protocol, record};

/// The set of every queue's name, for listing queues.
fn queues_key(prefix: &str) -> String {
    format!("{prefix}:queues")
}

/// Records read per call.
const READ_PAGE: usize = 1000;

impl RedisBroker {
    fn queue_keys(&self, queue: &str) -> Result<QueueKeys, BrokerError> {
        validate_queue(queue)?;
        Ok(QueueKeys::new(&self.options().prefix, queue))
    }

    /// The records of `ids` in `queue`, in order (`None` for those gone).
    pub(super) async fn load(
        &self,
        queue: &str,
        ids: &[JobId],
    ) -> Result<Vec<Option<JobRecord>>, BrokerError> {
        let keys = self.queue_keys(queue)?;
        let mut out = Vec::with_capacity(ids.len());
        for page in ids.chunks(READ_PAGE) {
            let mut invocation = keys.call("read");
            for id in page {
                invocation.key(keys.job(id)).arg(id.to_string());
            }
            let raw: Vec<RawRecord> = invocation.invoke(&mut self.conn()).await.map_err(map)?;
            for (r, id) in raw.into_iter().zip(page) {
                out.push(record(r, *id, queue)?);
            }
        }
        Ok(out)
    }

    /// Sends the outcome replies of jobs the store made final itself.
    async fn reply_outcomes(&self, queue: &str, ids: &[JobId]) -> Result<(), BrokerError> {
        if ids.is_empty() {
            return Ok(());
        }
        let owed: Vec<_> = self
            .load(queue, ids)
            .await?
            .into_iter()
            .flatten()
            .filter_map(|r| r.outcome_reply())
            .collect();
        let mut pipe = redis::pipe();
        let replies = owed.iter().map(|(to, r)| (to.as_str(), r.as_ref()));
        if push_replies(&mut pipe, replies, self.options().reply_ttl) {
            let _: () = pipe.query_async(&mut self.conn()).await.map_err(map)?;
        }
        Ok(())
    }

    /// Runs an operation of the admin function on one job of `queue`.
    async fn admin(&self, queue: &str, op: &str, id: JobId) -> Result<i64, BrokerError> {
        let keys = self.queue_keys(queue)?;
        keys.call("admin")
            .key(keys.job(id))
            .arg(op)
            .arg(id.to_string())
            .arg(self.options().clock.now_ms())
            .invoke(&mut self.conn())
            .await
            .map_err(map)
    }
}

/// One queue's part of an enqueue: the batch positions of its jobs.
struct Part<'a> {
    queue: &'a str,
    at: Vec<usize>,
    invocation: Call,
}

#[async_trait]
impl JobStore for RedisBroker {
    async fn enqueue(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>, BrokerError> {
        validate_batch(&jobs, DEFAULT_MAX_PAYLOAD)?;
        validate_reply_to(&jobs, |to| self.is_inbox(to))?;
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let now = self.options().clock.now_ms();
        let ids: Vec<JobId> = jobs.iter().map(|j| j.id.unwrap_or_default()).collect();
        let mut by_queue: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, new) in jobs.iter().enumerate() {
            by_queue.entry(new.queue.as_str()).or_default().push(i);
        }
        let mut parts = Vec::with_capacity(by_queue.len());
        for (queue, at) in by_queue {
            let keys = self.queue_keys(queue)?;
            let mut invocation = keys.call("enqueue");
            let chosen = at.iter().any(|i| jobs[*i].id.is_some());
            let fence = fence_of(&jobs).map(|f| f.to_string()).unwrap_or_default();
            invocation
                .arg(now)
                .arg(if chosen { "1" } else { "0" })
                .arg(fence);
            for i in &at {
                let (new, id) = (&jobs[*i], ids[*i]);
                let job = Job::accept(id, new, now);
                let json = pack(&job)?;
                invocation
                    .key(keys.job(id))
                    .arg(id.to_string())
                    .arg(&job.partition)
                    .arg(&job.tenant)
                    .arg(job.priority)
                    .arg(job.scheduled_for_ms)
                    .arg(new.idempotency_key.as_deref().unwrap_or(""))
                    .arg(new.max_attempts.map(|m| m.to_string()).unwrap_or_default())
                    .arg(json);
            }
            parts.push(Part {
                queue,
                at,
                invocation,
            });
        }
        // One round trip: the queue registry, and each queue's call.
        let mut conn = self.conn();
        let mut pipe = redis::pipe();
        pipe.cmd("SADD")
            .arg(queues_key(&self.options().prefix))
            .arg(parts.iter().map(|p| p.queue).collect::<Vec<_>>());
        for part in &parts {
            pipe.add_command(part.invocation.cmd());
        }
        let mut results: Vec<redis::RedisResult<redis::Value>> = pipe
            .ignore_errors()
            .query_async(&mut conn)
            .await
            .map_err(map)?;
        let registry = results.remove(0);
        // Functions not loaded (Redis restarted) ran nothing: load, run again.
        if results.iter().any(|r| r.as_ref().is_err_and(is_missing)) {
            call::load(&mut conn, &JOBS).await.map_err(map)?;
            let mut again = redis::pipe();
            let retried: Vec<usize> = (0..parts.len())
                .filter(|i| results[*i].as_ref().is_err_and(is_missing))
                .collect();
            for i in &retried {
                again.add_command(parts[*i].invocation.cmd());
            }
            let answers: Vec<redis::RedisResult<redis::Value>> = again
                .ignore_errors()
                .query_async(&mut conn)
                .await
                .map_err(map)?;
            for (i, answer) in retried.into_iter().zip(answers) {
                results[i] = answer;
            }
        }
        let mut out: Vec<Enqueued> = ids
            .iter()
            .map(|id| Enqueued {
                id: *id,
                duplicate: false,
            })
            .collect();
        let mut failed = Vec::new();
        let mut written = Vec::new();
        for (part, result) in parts.iter().zip(results) {
            // (position in the part, from 1; the earlier job's id) per duplicate.
            let dups: Vec<(usize, String)> =
                match result.and_then(|v| redis::from_redis_value(v).map_err(Into::into)) {
                    Ok(dups) => dups,
                    Err(e) => {
                        failed.push((part.queue, map(e)));
                        continue;
                    }
                };
            written.push(part.queue);
            for (at, earlier) in dups {
                let i = *part
                    .at
                    .get(at.wrapping_sub(1))
                    .ok_or_else(|| protocol("enqueue named a job it was not given"))?;
                out[i] = Enqueued {
                    id: JobId::parse(&earlier)?,
                    duplicate: true,
                };
            }
        }
        if let Some((queue, first)) = failed.first() {
            let failed_queues: Vec<&str> = failed.iter().map(|(q, _)| *q).collect();
            let what = format!(
                "none of the batch's jobs for queue(s) {failed_queues:?} was enqueued ({queue}: {first}); \
                 those for {written:?} were (a batch is all or nothing per queue), so enqueueing \
                 the batch again repeats them unless they carry ids or idempotency keys"
            );
            return Err(match first {
                // Refused for good: whatever was written went before the
                // lease ended, and the rest must not be written by anyone
                // but the lease's next holder.
                BrokerError::LeaseLost => BrokerError::LeaseLost,
                BrokerError::Unavailable(_) => BrokerError::Unavailable(what),
                BrokerError::Config(_) => BrokerError::Config(what),
                _ => BrokerError::Protocol(what),
            });
        }
        registry.map_err(map)?;
        Ok(out)
    }

    async fn job_consumer(
        &self,
        queue: &str,
        options: JobConsumerOptions,
    ) -> Result<Box<dyn JobConsumer>, BrokerError> {
        let keys = self.queue_keys(queue)?;
        if let Some(name) = &options.name {
            validate_lease_name(name)?;
        }
        let mut conn = self.conn();
        let grant = grant(
            &mut conn,
            &keys.key("epochs"),
            &keys.key("lease:"),
            options.name.as_deref(),
            options.lease,
        )
        .await?;
        let mut pipe = redis::pipe();
        if options.tenant_cap.is_some() {
            // From now on every claim counts running jobs per tenant.
            pipe.cmd("SET").arg(keys.key("capped")).arg(1).ignore();
        }
        let _: () = pipe
            .cmd("SADD")
            .arg(keys.key("consumers"))
            .arg(&grant.holder)
            .ignore()
            .cmd("SADD")
            .arg(queues_key(&self.options().prefix))
            .arg(queue)
            .ignore()
            .query_async(&mut conn)
            .await
            .map_err(map)?;
        let consumer = RedisJobConsumer {
            broker: self.clone(),
            queue: queue.to_owned(),
            keys,
            grant,
            options,
            blocking: Mutex::new(Blocking::new(self.client().clone(), self.options())),
            waiting: Default::default(),
            tenants: Default::default(),
        };
        if consumer.grant.epoch > 1 {
            // The name's earlier holder lost its lease: hand back what it
            // held now rather than at the next periodic reap.
            consumer.reap().await?;
        }
        Ok(Box::new(consumer))
    }

    async fn job(&self, queue: &str, id: JobId) -> Result<Option<JobRecord>, BrokerError> {
        Ok(self.load(queue, &[id]).await?.pop().flatten())
    }

    async fn counts(&self, queue: &str) -> Result<QueueCounts, BrokerError> {
        let keys = self.queue_keys(queue)?;
        counts::counts(self, &keys).await
    }

    async fn list_jobs(&self, queue: &str, query: &JobQuery) -> Result<JobPage, BrokerError> {
        let keys = self.queue_keys(queue)?;
        query.validate()?;
        list::list(self, &keys, queue, query).await
    }

    async fn queues(&self) -> Result<Vec<String>, BrokerError> {
        let mut names: Vec<String> = redis::cmd("SMEMBERS")
            .arg(queues_key(&self.options().prefix))
            .query_async(&mut self.conn())
            .await
            .map_err(map)?;
        names.sort();
        Ok(names)
    }

    async fn requeue_dead_job(&self, queue: &str, id: JobId) -> Result<bool, BrokerError> {
        Ok(self.admin(queue, "requeue", id).await? == 1)
    }

    async fn purge_dead_jobs(&self, queue: &str) -> Result<usize, BrokerError> {
        let keys = self.queue_keys(queue)?;
        let mut purged = 0;
        loop {
            let n: usize = keys
                .call("admin")
                .arg("purge")
                .invoke(&mut self.conn())
                .await
                .map_err(map)?;
            if n == 0 {
                return Ok(purged);
            }
            purged += n;
        }
    }

    fn clock(&self) -> SharedClock {
        std::sync::Arc::clone(&self.options().clock)
    }

    async fn set_policy(&self, queue: &str, policy: QueuePolicy) -> Result<(), BrokerError> {
        let keys = self.queue_keys(queue)?;
        let retention = policy.retention;
        let age = u64::try_from(retention.max_age.as_millis()).unwrap_or(u64::MAX);
        redis::pipe()
            .cmd("HSET")
            .arg(keys.key("policy"))
            .arg("keep")
            .arg(retention.max_finished)
            .arg("age")
            .arg(age.min(i64::MAX as u64))
            .arg("max")
            .arg(policy.max_attempts.max(1))
            .ignore()
            .cmd("SADD")
            .arg(queues_key(&self.options().prefix))
            .arg(queue)
            .ignore()
            .query_async::<()>(&mut self.conn())
            .await
            .map_err(map)
    }

    async fn policy(&self, queue: &str) -> Result<QueuePolicy, BrokerError> {
        let keys = self.queue_keys(queue)?;
        let (keep, age, max): (Option<u64>, Option<u64>, Option<u32>) = redis::cmd("HMGET")
            .arg(keys.key("policy"))
            .arg("keep")
            .arg("age")
            .arg("max")
            .query_async(&mut self.conn())
            .await
            .map_err(map)?;
        let mut policy = QueuePolicy::default();
        if let Some(max) = max {
            policy = policy.max_attempts(max);
        }
        let mut retention = policy.retention;
        if let Some(keep) = keep {
            retention = retention.max_finished(usize::try_from(keep).unwrap_or(usize::MAX));
        }
        if let Some(age) = age {
            retention = retention.max_age(Duration::from_millis(age));
        }
        Ok(policy.retention(retention))
    }

    async fn cancel(&self, queue: &str, id: JobId) -> Result<CancelOutcome, BrokerError> {
        Ok(match self.admin(queue, "cancel", id).await? {
            1 => {
                self.reply_outcomes(queue, &[id]).await?;
                CancelOutcome::Cancelled
            }
            2 => CancelOutcome::Requested,
            _ => CancelOutcome::Unchanged,
        })
    }

    async fn cancel_requests(&self, queue: &str, holder: &str) -> Result<Vec<JobId>, BrokerError> {
        let keys = self.queue_keys(queue)?;
        let mut conn = self.conn();
        // The grants of the lease named `holder`: `<name>#<epoch>` for a
        // stable name, the name itself for a fresh one.
        let consumers: Vec<String> = redis::cmd("SMEMBERS")
            .arg(keys.key("consumers"))
            .query_async(&mut conn)
            .await
            .map_err(map)?;
        let stable = format!("{holder}#");
        let mut out = Vec::new();
        for c in consumers
            .iter()
            .filter(|c| *c == holder || c.starts_with(&stable))
        {
            let asked: Vec<String> = redis::cmd("SMEMBERS")
                .arg(keys.cancels(c))
                .query_async(&mut conn)
                .await
                .map_err(map)?;
            if asked.is_empty() {
                continue;
            }
            let held: Vec<Option<String>> = redis::cmd("HMGET")
                .arg(keys.held(c))
                .arg(&asked)
                .query_async(&mut conn)
                .await
                .map_err(map)?;
            let (live, gone): (Vec<_>, Vec<_>) =
                asked.into_iter().zip(held).partition(|(_, h)| h.is_some());
            if !gone.is_empty() {
                // Settled since: forgotten here.
                let gone: Vec<String> = gone.into_iter().map(|(id, _)| id).collect();
                redis::cmd("SREM")
                    .arg(keys.cancels(c))
                    .arg(gone)
                    .query_async::<()>(&mut conn)
                    .await
                    .map_err(map)?;
            }
            out.extend(
                live.into_iter()
                    .filter_map(|(id, _)| JobId::parse(&id).ok()),
            );
        }
        out.sort_unstable();
        Ok(out)
    }
}
