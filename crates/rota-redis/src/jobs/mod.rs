//! Jobs on Redis: [`JobStore`] for [`RedisBroker`].
//!
//! All keys of a queue share one hash tag, `{j:<queue>}` (so a queue lives
//! on one Cluster node, as in BullMQ), under `<prefix>:{j:<queue>}:`:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `job:<id>` | hash | the job (`j`: JSON), attempt `a`, state `s`, partition `p`, tenant `t`, priority `pr`, due `due`, order `q`, result `r`, reason `rs`, finished `f`, claimed at `ca` |
//! | `job:<id>:h` | list | the job's attempts, as JSON |
//! | `ready:<partition>` | zset | queued job ids by priority, then order |
//! | `ring` | list | partitions with queued jobs, rotated by each claim |
//! | `sched` | zset | scheduled job ids by due time |
//! | `running` / `prun` / `psched` | hash | running per tenant, running and scheduled per partition |
//! | `held:<consumer>` | set | what a worker holds |
//! | `lease:<consumer>` | string with TTL | the worker's fenced lease |
//! | `consumers`, `parts`, `keys`, `finished`, `fin`, `dead`, `seq`, `wake` | | registry, partitions, idempotency keys, retention, counts, dead set, order, wake-up tokens |
//!
//! Every state change is one Lua script (`lua/jobs/`); outcome replies go
//! to the client's inbox (another hash tag) just before the settling
//! script, like call replies.

use std::collections::BTreeMap;

use async_trait::async_trait;
use rota_core::BrokerError;
use rota_core::jobs::validate::DEFAULT_MAX_PAYLOAD;
use rota_core::jobs::{
    Attempt, Enqueued, Job, JobConsumer, JobConsumerOptions, JobId, JobRecord, JobState, JobStore,
    NewJob, QueueCounts, StateCounts, validate_batch, validate_queue, validate_reply_to,
};
use rota_core::names::validate_lease_name;
use rota_core::{Inboxes, Leased};
use tokio::sync::Mutex;

use crate::broker::RedisBroker;
use crate::conn::Blocking;
use crate::error::map;
use crate::inbox::push_replies;
use crate::lease::grant;
use crate::scripts;

mod consumer;
use consumer::RedisJobConsumer;

fn base(prefix: &str, queue: &str) -> String {
    format!("{prefix}:{{j:{queue}}}:")
}

/// The set of every queue's name, for listing queues.
fn queues_key(prefix: &str) -> String {
    format!("{prefix}:queues")
}

fn state_name(state: JobState) -> &'static str {
    match state {
        JobState::Scheduled => "scheduled",
        JobState::Queued => "queued",
        JobState::Running => "running",
        JobState::Succeeded => "succeeded",
        JobState::Failed => "failed",
        JobState::Cancelled => "cancelled",
        _ => "dead",
    }
}

fn parse_state(s: &str) -> Option<JobState> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
}

fn protocol(what: impl std::fmt::Display) -> BrokerError {
    BrokerError::Protocol(what.to_string())
}

/// Builds a record from a job hash (HGETALL) and its history (LRANGE), or
/// `None` if it is gone.
fn record(fields: HashMapBytes, history: Vec<String>) -> Result<Option<JobRecord>, BrokerError> {
    let get = |name: &str| fields.get(name).map(|v| v.as_slice());
    let Some(json) = get("j") else {
        return Ok(None);
    };
    let text = |name: &str| get(name).and_then(|v| std::str::from_utf8(v).ok());
    let mut job: Job = serde_json::from_slice(json).map_err(protocol)?;
    job.attempt = text("a").and_then(|a| a.parse().ok()).unwrap_or(1);
    if let Some(due) = text("due").and_then(|d| d.parse().ok()) {
        job.scheduled_for_ms = due;
    }
    let state = text("s").and_then(parse_state).unwrap_or(JobState::Queued);
    let attempts: Vec<Attempt> = history
        .iter()
        .map(|a| serde_json::from_str(a))
        .collect::<Result<_, _>>()
        .map_err(protocol)?;
    let mut record = JobRecord::new(job, 0);
    record.state = state;
    record.attempts = attempts;
    record.result = get("r").and_then(|r| serde_json::from_slice(r).ok());
    record.reason = text("rs").map(str::to_owned);
    record.finished_at_ms = text("f").and_then(|f| f.parse().ok());
    Ok(Some(record))
}

type HashMapBytes = std::collections::HashMap<String, Vec<u8>>;

/// A claimed job as the claim script returns it: id, attempt, due, JSON.
type ClaimedRow = (String, u32, u64, Vec<u8>);

/// The counts script's answer: (partition, scheduled, queued, running)
/// rows, finished counts per state, and the dead count.
type CountsReply = (Vec<(String, u64, u64, u64)>, Vec<(String, u64)>, u64);

impl RedisBroker {
    fn job_base(&self, queue: &str) -> Result<String, BrokerError> {
        validate_queue(queue)?;
        Ok(base(&self.options().prefix, queue))
    }

    async fn load(&self, queue: &str, id: JobId) -> Result<Option<JobRecord>, BrokerError> {
        let key = format!("{}job:{id}", self.job_base(queue)?);
        let (fields, history): (HashMapBytes, Vec<String>) = redis::pipe()
            .cmd("HGETALL")
            .arg(&key)
            .cmd("LRANGE")
            .arg(format!("{key}:h"))
            .arg(0)
            .arg(-1)
            .query_async(&mut self.conn())
            .await
            .map_err(map)?;
        record(fields, history)
    }

    /// Sends the outcome replies of jobs the store made final itself.
    async fn reply_outcomes(&self, queue: &str, ids: &[JobId]) -> Result<(), BrokerError> {
        let mut owed = Vec::new();
        for id in ids {
            if let Some(reply) = self.load(queue, *id).await?.and_then(|r| r.outcome_reply()) {
                owed.push(reply);
            }
        }
        let mut pipe = redis::pipe();
        let replies = owed.iter().map(|(to, r)| (to.as_str(), r.as_ref()));
        if push_replies(&mut pipe, replies, self.options().reply_ttl) {
            let _: () = pipe.query_async(&mut self.conn()).await.map_err(map)?;
        }
        Ok(())
    }
}

#[async_trait]
impl JobStore for RedisBroker {
    async fn enqueue(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>, BrokerError> {
        validate_batch(&jobs, DEFAULT_MAX_PAYLOAD)?;
        validate_reply_to(&jobs, |to| self.is_inbox(to))?;
        let now = self.options().clock.now_ms();
        // One script per queue; results come back in the batch's order.
        let mut by_queue: BTreeMap<&str, Vec<(usize, JobId, Job, &NewJob)>> = BTreeMap::new();
        for (i, new) in jobs.iter().enumerate() {
            let id = new.id.unwrap_or_default();
            by_queue.entry(new.queue.as_str()).or_default().push((
                i,
                id,
                Job::accept(id, new, now),
                new,
            ));
        }
        let mut out = vec![None; jobs.len()];
        let mut conn = self.conn();
        let _: () = redis::cmd("SADD")
            .arg(queues_key(&self.options().prefix))
            .arg(by_queue.keys().collect::<Vec<_>>())
            .query_async(&mut conn)
            .await
            .map_err(map)?;
        for (queue, batch) in by_queue {
            let mut invocation = scripts::JOB_ENQUEUE.key(self.job_base(queue)?);
            let chosen = batch.iter().any(|(_, _, _, new)| new.id.is_some());
            invocation.arg(now).arg(if chosen { "1" } else { "0" });
            for (_, id, job, new) in &batch {
                let json = serde_json::to_string(job).map_err(protocol)?;
                invocation
                    .arg(id.to_string())
                    .arg(&job.partition)
                    .arg(&job.tenant)
                    .arg(job.priority)
                    .arg(job.scheduled_for_ms)
                    .arg(new.idempotency_key.as_deref().unwrap_or(""))
                    .arg(new.max_attempts.map(|m| m.to_string()).unwrap_or_default())
                    .arg(json);
            }
            let results: Vec<(String, u8)> =
                invocation.invoke_async(&mut conn).await.map_err(map)?;
            for ((i, ..), (id, dup)) in batch.iter().zip(results) {
                out[*i] = Some(Enqueued {
                    id: JobId::parse(&id)?,
                    duplicate: dup == 1,
                });
            }
        }
        out.into_iter()
            .map(|e| e.ok_or_else(|| protocol("enqueue returned too few results")))
            .collect()
    }

    async fn job_consumer(
        &self,
        queue: &str,
        options: JobConsumerOptions,
    ) -> Result<Box<dyn JobConsumer>, BrokerError> {
        let base = self.job_base(queue)?;
        if let Some(name) = &options.name {
            validate_lease_name(name)?;
        }
        let mut conn = self.conn();
        let grant = grant(
            &mut conn,
            &format!("{base}epochs"),
            &format!("{base}lease:"),
            options.name.as_deref(),
            options.lease,
        )
        .await?;
        let _: () = redis::pipe()
            .cmd("SADD")
            .arg(format!("{base}consumers"))
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
            lease_key: format!("{base}lease:{}", grant.holder),
            base,
            grant,
            options,
            blocking: Mutex::new(Blocking::new(self.client().clone(), self.options())),
        };
        if consumer.grant.epoch > 1 {
            // The name's earlier holder lost its lease: hand back what it
            // held now rather than at the next periodic reap.
            consumer.reap().await?;
        }
        Ok(Box::new(consumer))
    }

    async fn job(&self, queue: &str, id: JobId) -> Result<Option<JobRecord>, BrokerError> {
        self.job_base(queue)?;
        self.load(queue, id).await
    }

    async fn counts(&self, queue: &str) -> Result<QueueCounts, BrokerError> {
        let base = self.job_base(queue)?;
        let mut conn = self.conn();
        let (rows, fin, dead): CountsReply = scripts::JOB_ADMIN
            .key(&base)
            .arg("counts")
            .invoke_async(&mut conn)
            .await
            .map_err(map)?;
        let mut counts = QueueCounts::default();
        for (part, scheduled, queued, running) in rows {
            let mut c = StateCounts::default();
            c.add(JobState::Scheduled, scheduled);
            c.add(JobState::Queued, queued);
            c.add(JobState::Running, running);
            counts.total.add(JobState::Scheduled, scheduled);
            counts.total.add(JobState::Queued, queued);
            counts.total.add(JobState::Running, running);
            counts.partitions.insert(part, c);
        }
        for (state, n) in fin {
            if let Some(state) = parse_state(&state) {
                counts.total.add(state, n);
            }
        }
        counts.total.add(JobState::Dead, dead);
        Ok(counts)
    }

    async fn dead_jobs(&self, queue: &str, limit: usize) -> Result<Vec<JobRecord>, BrokerError> {
        let base = self.job_base(queue)?;
        let ids: Vec<String> = redis::cmd("ZRANGE")
            .arg(format!("{base}dead"))
            .arg(0)
            .arg(limit.max(1) as i64 - 1)
            .query_async(&mut self.conn())
            .await
            .map_err(map)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(r) = self.load(queue, JobId::parse(&id)?).await? {
                out.push(r);
            }
        }
        Ok(out)
    }

    async fn requeue_dead_job(&self, queue: &str, id: JobId) -> Result<bool, BrokerError> {
        let n: i64 = scripts::JOB_ADMIN
            .key(self.job_base(queue)?)
            .arg("requeue")
            .arg(id.to_string())
            .arg(self.options().clock.now_ms())
            .invoke_async(&mut self.conn())
            .await
            .map_err(map)?;
        Ok(n == 1)
    }

    async fn purge_dead_jobs(&self, queue: &str) -> Result<usize, BrokerError> {
        let n: usize = scripts::JOB_ADMIN
            .key(self.job_base(queue)?)
            .arg("purge")
            .invoke_async(&mut self.conn())
            .await
            .map_err(map)?;
        Ok(n)
    }

    fn clock(&self) -> rota_core::clock::SharedClock {
        std::sync::Arc::clone(&self.options().clock)
    }

    async fn cancel(&self, queue: &str, id: JobId) -> Result<bool, BrokerError> {
        let n: i64 = scripts::JOB_ADMIN
            .key(self.job_base(queue)?)
            .arg("cancel")
            .arg(id.to_string())
            .arg(self.options().clock.now_ms())
            .invoke_async(&mut self.conn())
            .await
            .map_err(map)?;
        if n == 1 {
            self.reply_outcomes(queue, &[id]).await?;
        }
        Ok(n == 1)
    }
}
