//! A worker's fenced claim on one queue's jobs.

use std::collections::HashMap;
use std::sync::Mutex as SyncMutex;
use std::time::Duration;

use async_trait::async_trait;
use redis::Value;
use rota_core::jobs::{Job, JobConsumerOptions, JobId, JobState, Next, QueuePolicy, Settle};
use rota_core::{BrokerError, Leased, ReapStats};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::keys::QueueKeys;
use super::record::{claimed, protocol, state_name};
use crate::call::{Call, is_missing};

/// Most jobs one call claims, settles or gives back.
const CHUNK: usize = 1000;
use crate::broker::RedisBroker;
use crate::conn::Blocking;
use crate::error::map;
use crate::lease::{Grant, fenced, ms, renew};

/// Whole milliseconds of `d`, rounded down (0 for less than one).
fn ms_of(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A consumer registered as waiting: jobs made claimable are handed to it
/// on its hand-off list, up to `want`, until `until`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Waiting {
    want: usize,
    until: Instant,
    /// When the next scheduled job was due, as the registering claim saw
    /// it: due jobs are queued by claims, so the wait ends then.
    next_due: Option<u64>,
}

/// A worker's claim on one queue's jobs.
pub(super) struct RedisJobConsumer {
    pub(super) broker: RedisBroker,
    pub(super) queue: String,
    pub(super) keys: QueueKeys,
    /// The lease grant; its holder name is the consumer the scripts know.
    pub(super) grant: Grant,
    pub(super) options: JobConsumerOptions,
    pub(super) blocking: Mutex<Blocking>,
    /// This consumer's registration as waiting for work, made by a claim
    /// that found none (the next claim call takes it back).
    pub(super) waiting: SyncMutex<Option<Waiting>>,
    /// The tenant of each job held, from its claim: a settle passes it, so
    /// the call need not read it to count the tenant's running jobs down.
    pub(super) tenants: SyncMutex<HashMap<JobId, String>>,
}

impl RedisJobConsumer {
    /// Now, by the store's clock.
    fn now_ms(&self) -> u64 {
        self.broker.options().clock.now_ms()
    }

    /// A call of job function `function` with this consumer's keys after the
    /// queue's fixed ones.
    fn call(&self, function: &str) -> Call {
        let mut call = self.keys.call(function);
        call.key(self.keys.held(&self.grant.holder))
            .key(self.keys.lease(&self.grant.holder))
            .key(self.keys.handoff(&self.grant.holder))
            .arg(&self.grant.holder);
        call
    }

    fn remember(&self, jobs: &[Job]) {
        let mut tenants = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
        for job in jobs {
            tenants.insert(job.id, job.tenant.clone());
        }
    }

    fn forget(&self, id: &JobId) -> Option<String> {
        let mut tenants = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
        tenants.remove(id)
    }

    fn parse(&self, rows: &[Vec<u8>]) -> Result<Vec<Job>, BrokerError> {
        let jobs = rows
            .iter()
            .map(|r| claimed(r, &self.queue))
            .collect::<Result<Vec<_>, _>>()?;
        self.remember(&jobs);
        Ok(jobs)
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, Option<Waiting>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One claim call: the jobs; finding none, the consumer stays
    /// registered as waiting for `wait`.
    async fn try_claim(&self, max: usize, wait: Duration) -> Result<Vec<Job>, BrokerError> {
        let now = self.now_ms();
        let started = Instant::now();
        let registered = self.waiting().is_some();
        let value: Value = self
            .call("claim")
            .arg(max.max(1))
            .arg(now)
            .arg(self.options.tenant_cap.unwrap_or(0))
            .arg(if registered { "1" } else { "0" })
            .arg(ms_of(wait))
            .invoke(&mut self.broker.conn())
            .await
            .map_err(map)?;
        if let Value::Int(n) = value {
            *self.waiting() = None;
            fenced(n)?;
            return Ok(Vec::new());
        }
        let (next_due, waits, rows): (i64, u8, Vec<Vec<u8>>) =
            redis::from_redis_value(value).map_err(protocol)?;
        *self.waiting() = (waits == 1).then(|| Waiting {
            want: max.max(1),
            until: started + wait,
            next_due: u64::try_from(next_due).ok(),
        });
        self.parse(&rows)
    }

    /// Waits up to `nap` on the hand-off list for jobs handed to this
    /// (waiting) consumer.
    async fn handed(&self, max: usize, nap: Duration) -> Result<Vec<Job>, BrokerError> {
        let mut cmd = redis::cmd("BLMPOP");
        cmd.arg(nap.as_secs_f64().max(0.001))
            .arg(1)
            .arg(self.keys.handoff(&self.grant.holder))
            .arg("LEFT")
            .arg("COUNT")
            .arg(max.max(1));
        let value = self
            .blocking
            .lock()
            .await
            .query(&cmd, nap)
            .await
            .map_err(map)?;
        // [key, [job, …]] or nil.
        let Value::Array(mut parts) = value else {
            return Ok(Vec::new());
        };
        let rows: Vec<Vec<u8>> = match parts.pop() {
            Some(v) => redis::from_redis_value(v).map_err(protocol)?,
            None => Vec::new(),
        };
        if !rows.is_empty() {
            // The call that handed them counted them off the registration.
            let mut waiting = self.waiting();
            if let Some(w) = waiting.as_mut() {
                w.want = w.want.saturating_sub(rows.len());
                if w.want == 0 {
                    *waiting = None;
                }
            }
        }
        self.parse(&rows)
    }
    /// Settles up to a chunk of jobs in one round trip.
    async fn settle_chunk(&self, done: &[Settle]) -> Result<usize, BrokerError> {
        if done.is_empty() {
            return Ok(0);
        }
        let mut conn = self.broker.conn();
        let retention = QueuePolicy::default().retention;
        let mut invocation = self.keys.call("settle");
        invocation
            .key(self.keys.held(&self.grant.holder))
            .key(self.keys.lease(&self.grant.holder))
            .arg(&self.grant.holder)
            .arg(self.now_ms())
            .arg(retention.max_finished)
            .arg(ms(retention.max_age));
        for s in done {
            let (kind, value) = match &s.next {
                Next::Finish(state) if state.is_final() && *state != JobState::Dead => {
                    ("finish", state_name(*state).to_owned())
                }
                Next::Finish(JobState::Dead) => ("dead", "dead-lettered by the worker".to_owned()),
                Next::Finish(other) => {
                    return Err(BrokerError::Invalid(format!(
                        "cannot finish a job as {other:?}: not a final state"
                    )));
                }
                Next::RetryAt(at) => ("retry", at.to_string()),
                Next::Dead(reason) => ("dead", reason.clone()),
                _ => return Err(BrokerError::Invalid("unknown next step".into())),
            };
            let attempt = serde_json::to_string(&s.attempt).map_err(protocol)?;
            let result = s.result.as_ref().map(|r| r.to_string()).unwrap_or_default();
            let tenant = self.forget(&s.id).unwrap_or_default();
            invocation
                .key(self.keys.job(s.id))
                .arg(s.id.to_string())
                .arg(tenant)
                .arg(attempt)
                .arg(kind)
                .arg(value)
                .arg(result);
        }
        // One round trip: the outcome replies first (they live in the
        // clients' hash tags), then the settling call.
        let mut pipe = redis::pipe();
        let mut inboxes: Vec<(&str, Vec<&[u8]>)> = Vec::new();
        for (to, reply) in done.iter().filter_map(|s| s.reply.as_ref()) {
            match inboxes.iter_mut().find(|(k, _)| *k == to) {
                Some((_, batch)) => batch.push(reply),
                None => inboxes.push((to, vec![reply])),
            }
        }
        for (to, batch) in &inboxes {
            pipe.cmd("RPUSH").arg(*to).arg(batch);
            // A schedule shard's inbox keeps its replies until its owner
            // acknowledges them.
            if crate::keys::inbox_expires(to) {
                pipe.cmd("PEXPIRE")
                    .arg(*to)
                    .arg(ms(self.broker.options().reply_ttl));
            }
        }
        pipe.add_command(invocation.cmd());
        let mut results: Vec<redis::RedisResult<Value>> = pipe
            .ignore_errors()
            .query_async(&mut conn)
            .await
            .map_err(map)?;
        let settled = match results.pop() {
            Some(Err(e)) if is_missing(&e) => invocation.invoke(&mut conn).await,
            Some(answer) => answer.and_then(|v| redis::from_redis_value(v).map_err(Into::into)),
            None => return Err(protocol("settle got no answer")),
        };
        let n: i64 = settled.map_err(map)?;
        let n = fenced(n)?;
        // A reply not written fails the settle: the worker writes it all
        // again, the replies once more (duplicates are dropped by id) and the
        // jobs, no longer held, not again.
        if let Some(Err(e)) = results.into_iter().find(Result::is_err) {
            return Err(map(e));
        }
        Ok(n as usize)
    }

    /// Gives back up to a chunk of jobs.
    async fn release_chunk(&self, ids: &[JobId], attempted: bool) -> Result<(), BrokerError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut invocation = self.call("release");
        invocation.arg(self.now_ms()).arg(if attempted {
            "attempted"
        } else {
            "unattempted"
        });
        for id in ids {
            self.forget(id);
            invocation.key(self.keys.job(id)).arg(id.to_string());
        }
        let (n, cancelled): (i64, Vec<String>) = invocation
            .invoke(&mut self.broker.conn())
            .await
            .map_err(map)?;
        fenced(n)?;
        self.reply_cancelled(&cancelled).await
    }

    /// Replies the outcomes of jobs the store made cancelled (their
    /// cancellation was asked for while they ran).
    async fn reply_cancelled(&self, ids: &[String]) -> Result<(), BrokerError> {
        if ids.is_empty() {
            return Ok(());
        }
        let ids: Vec<JobId> = ids.iter().filter_map(|d| JobId::parse(d).ok()).collect();
        self.broker.reply_outcomes(&self.queue, &ids).await
    }
}

#[async_trait]
impl Leased for RedisJobConsumer {
    type Work = Job;
    type Done = Settle;
    type Tag = JobId;

    fn id(&self) -> &str {
        &self.grant.name
    }

    fn epoch(&self) -> u64 {
        self.grant.epoch
    }

    async fn give_up(&self, done: Settle, reason: &str) -> Result<(), BrokerError> {
        self.settle(vec![done.given_up(reason)]).await.map(|_| ())
    }

    async fn claim(&self, max: usize, wait: Duration) -> Result<Vec<Job>, BrokerError> {
        // At most a chunk per call, so that no claim makes Redis work long.
        let max = max.clamp(1, CHUNK);
        let until = Instant::now() + wait;
        let mut call = false;
        loop {
            let now = Instant::now();
            let waiting = *self.waiting();
            match waiting.filter(|w| !call && w.want <= max && w.until > now) {
                // Registered as waiting (by this claim or an earlier one):
                // sleep on the hand-off list until work is handed over, the
                // registration or this wait ends, or a scheduled job is due.
                Some(w) => {
                    let mut nap = until.min(w.until) - now;
                    if let Some(due) = w.next_due {
                        let ms = due.saturating_sub(self.now_ms()).max(1);
                        nap = nap.min(Duration::from_millis(ms));
                    }
                    let jobs = self.handed(max, nap).await?;
                    if !jobs.is_empty() || Instant::now() >= until {
                        return Ok(jobs);
                    }
                    call = true;
                }
                None => {
                    call = false;
                    let jobs = self
                        .try_claim(max, until.saturating_duration_since(now))
                        .await?;
                    if !jobs.is_empty() || Instant::now() >= until {
                        return Ok(jobs);
                    }
                }
            }
        }
    }

    async fn renew(&self) -> Result<(), BrokerError> {
        let lease = self.keys.lease(&self.grant.holder);
        renew(&mut self.broker.conn(), &lease, self.options.lease).await
    }

    async fn settle(&self, done: Vec<Settle>) -> Result<usize, BrokerError> {
        let mut settled = 0;
        for chunk in done.chunks(CHUNK) {
            settled += self.settle_chunk(chunk).await?;
        }
        Ok(settled)
    }

    async fn release(&self, ids: Vec<JobId>, attempted: bool) -> Result<(), BrokerError> {
        for chunk in ids.chunks(CHUNK) {
            self.release_chunk(chunk, attempted).await?;
        }
        Ok(())
    }

    async fn reap(&self) -> Result<ReapStats, BrokerError> {
        let mut stats = ReapStats::default();
        loop {
            let (requeued, dead, more, cancelled): (usize, Vec<String>, u8, Vec<String>) = self
                .keys
                .call("reap")
                .arg(self.now_ms())
                .arg(QueuePolicy::default().max_attempts)
                .invoke(&mut self.broker.conn())
                .await
                .map_err(map)?;
            let dead: Vec<JobId> = dead.iter().filter_map(|d| JobId::parse(d).ok()).collect();
            self.broker.reply_outcomes(&self.queue, &dead).await?;
            self.reply_cancelled(&cancelled).await?;
            stats.requeued += requeued;
            stats.dead_lettered += dead.len();
            stats.cancelled += cancelled.len();
            if more == 0 {
                return Ok(stats);
            }
        }
    }

    async fn close(&self) -> Result<(), BrokerError> {
        *self.waiting() = None;
        self.tenants
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        loop {
            let (left, cancelled): (i64, Vec<String>) = self
                .call("release")
                .arg(self.now_ms())
                .arg("close")
                .invoke(&mut self.broker.conn())
                .await
                .map_err(map)?;
            self.reply_cancelled(&cancelled).await?;
            if left <= 0 {
                return Ok(());
            }
        }
    }
}
