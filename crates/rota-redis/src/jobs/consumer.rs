//! A worker's fenced claim on one queue's jobs.

use std::collections::HashMap;
use std::sync::Mutex as SyncMutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use redis::Value;
use rota_core::jobs::{Job, JobConsumerOptions, JobId, JobState, Next, Settle};
use rota_core::{BrokerError, Leased, ReapStats};
use tokio::sync::Mutex;

use super::keys::QueueKeys;
use super::record::{claimed, protocol, state_name};
use crate::broker::RedisBroker;
use crate::conn::Blocking;
use crate::error::map;
use crate::inbox::push_replies;
use crate::lease::{Grant, fenced, ms, renew};
use crate::scripts;

/// Whole milliseconds of `d`, rounded down (0 for less than one).
fn ms_of(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
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
    /// Whether the last claim found nothing and registered this consumer as
    /// waiting (the next claim takes the registration back).
    pub(super) waiting: AtomicBool,
    /// The tenant of each job held, from its claim: a settle passes it, so
    /// the script need not read it to count the tenant's running jobs down.
    pub(super) tenants: SyncMutex<HashMap<JobId, String>>,
}

impl RedisJobConsumer {
    /// An invocation of `script` with this consumer's keys after the
    /// queue's fixed ones.
    fn invoke<'a>(&self, script: &'a redis::Script) -> redis::ScriptInvocation<'a> {
        let mut invocation = self.keys.invoke(script);
        invocation
            .key(self.keys.held(&self.grant.holder))
            .key(self.keys.lease(&self.grant.holder))
            .key(self.keys.handoff(&self.grant.holder))
            .arg(&self.grant.holder);
        invocation
    }

    /// Now, by the store's clock.
    fn now_ms(&self) -> u64 {
        self.broker.options().clock.now_ms()
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

    /// One claim attempt: the jobs, and when the next scheduled one is due.
    /// Finding none, the consumer stays registered as waiting for `wait`.
    async fn try_claim(
        &self,
        max: usize,
        wait: Duration,
    ) -> Result<(Vec<Job>, Option<u64>), BrokerError> {
        let now = self.now_ms();
        let registered = self.waiting.load(Ordering::SeqCst);
        let value: Value = self
            .invoke(&scripts::JOB_CLAIM)
            .arg(max.max(1))
            .arg(now)
            .arg(self.options.tenant_cap.unwrap_or(0))
            .arg(if registered { "1" } else { "0" })
            .arg(now.saturating_add(ms_of(wait)))
            .invoke_async(&mut self.broker.conn())
            .await
            .map_err(map)?;
        if let Value::Int(n) = value {
            fenced(n)?;
            return Ok((Vec::new(), None));
        }
        let (next_due, waits, rows): (i64, u8, Vec<Vec<u8>>) =
            redis::from_redis_value(value).map_err(protocol)?;
        self.waiting.store(waits == 1, Ordering::SeqCst);
        Ok((self.parse(&rows)?, u64::try_from(next_due).ok()))
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
            // The script that handed them took the registration back.
            self.waiting.store(false, Ordering::SeqCst);
        }
        self.parse(&rows)
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
        let until = tokio::time::Instant::now() + wait;
        loop {
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            let (jobs, next_due) = self.try_claim(max, left).await?;
            let now = tokio::time::Instant::now();
            if !jobs.is_empty() || now >= until {
                return Ok(jobs);
            }
            // Registered as waiting: sleep on the hand-off list until work
            // is handed over, the next scheduled job is due, or the wait
            // ends.
            let mut nap = until - now;
            if let Some(due) = next_due {
                nap = nap.min(Duration::from_millis(
                    due.saturating_sub(self.now_ms()).max(1),
                ));
            }
            let jobs = self.handed(max, nap).await?;
            if !jobs.is_empty() {
                return Ok(jobs);
            }
        }
    }

    async fn renew(&self) -> Result<(), BrokerError> {
        let lease = self.keys.lease(&self.grant.holder);
        renew(&mut self.broker.conn(), &lease, self.options.lease).await
    }

    async fn settle(&self, done: Vec<Settle>) -> Result<usize, BrokerError> {
        if done.is_empty() {
            return Ok(0);
        }
        let mut conn = self.broker.conn();
        // Outcome replies first (they live in the clients' hash tags).
        let mut pipe = redis::pipe();
        let replies = done
            .iter()
            .filter_map(|s| s.reply.as_ref().map(|(to, r)| (to.as_str(), r.as_ref())));
        if push_replies(&mut pipe, replies, self.broker.options().reply_ttl) {
            let _: () = pipe.query_async(&mut conn).await.map_err(map)?;
        }
        let retention = self.options.retention;
        let mut invocation = self.keys.invoke(&scripts::JOB_SETTLE);
        invocation
            .key(self.keys.held(&self.grant.holder))
            .key(self.keys.lease(&self.grant.holder))
            .arg(&self.grant.holder)
            .arg(self.now_ms())
            .arg(retention.max_finished)
            .arg(ms(retention.max_age));
        for s in &done {
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
        let n: i64 = invocation.invoke_async(&mut conn).await.map_err(map)?;
        fenced(n).map(|n| n as usize)
    }

    async fn release(&self, ids: Vec<JobId>, attempted: bool) -> Result<(), BrokerError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut invocation = self.invoke(&scripts::JOB_RELEASE);
        invocation.arg(self.now_ms()).arg(if attempted {
            "attempted"
        } else {
            "unattempted"
        });
        for id in &ids {
            self.forget(id);
            invocation.key(self.keys.job(id)).arg(id.to_string());
        }
        let n: i64 = invocation
            .invoke_async(&mut self.broker.conn())
            .await
            .map_err(map)?;
        fenced(n).map(|_| ())
    }

    async fn reap(&self) -> Result<ReapStats, BrokerError> {
        let mut stats = ReapStats::default();
        loop {
            let (requeued, dead, more): (usize, Vec<String>, u8) = self
                .keys
                .invoke(&scripts::JOB_REAP)
                .arg(self.now_ms())
                .arg(self.options.max_attempts)
                .invoke_async(&mut self.broker.conn())
                .await
                .map_err(map)?;
            let dead: Vec<JobId> = dead.iter().filter_map(|d| JobId::parse(d).ok()).collect();
            self.broker.reply_outcomes(&self.queue, &dead).await?;
            stats.requeued += requeued;
            stats.dead_lettered += dead.len();
            if more == 0 {
                return Ok(stats);
            }
        }
    }

    async fn close(&self) -> Result<(), BrokerError> {
        self.tenants
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        loop {
            let left: i64 = self
                .invoke(&scripts::JOB_RELEASE)
                .arg(self.now_ms())
                .arg("close")
                .invoke_async(&mut self.broker.conn())
                .await
                .map_err(map)?;
            if left <= 0 {
                return Ok(());
            }
        }
    }
}
