//! A worker's fenced claim on one queue's jobs.

use std::time::Duration;

use async_trait::async_trait;
use redis::Value;
use rota_core::BrokerError;
use rota_core::jobs::{Job, JobConsumerOptions, JobId, JobState, Next, Settle};
use rota_core::{Leased, ReapStats};
use tokio::sync::Mutex;

use super::{ClaimedRow, protocol, state_name};
use crate::broker::RedisBroker;
use crate::conn::Blocking;
use crate::error::map;
use crate::inbox::push_replies;
use crate::lease::{Grant, fenced, ms, renew};
use crate::scripts;

/// A worker's claim on one queue's jobs.
pub(super) struct RedisJobConsumer {
    pub(super) broker: RedisBroker,
    pub(super) queue: String,
    pub(super) base: String,
    /// The lease grant; its holder name is the consumer the scripts know.
    pub(super) grant: Grant,
    pub(super) lease_key: String,
    pub(super) options: JobConsumerOptions,
    pub(super) blocking: Mutex<Blocking>,
}

impl RedisJobConsumer {
    /// One claim attempt: the jobs, and when the next scheduled one is due.
    async fn try_claim(&self, max: usize) -> Result<(Vec<Job>, Option<u64>), BrokerError> {
        let value: Value = scripts::JOB_CLAIM
            .key(&self.base)
            .arg(&self.grant.holder)
            .arg(max.max(1))
            .arg(self.broker.options().clock.now_ms())
            .arg(self.options.tenant_cap.unwrap_or(0))
            .invoke_async(&mut self.broker.conn())
            .await
            .map_err(map)?;
        if let Value::Int(n) = value {
            fenced(n)?;
            return Ok((Vec::new(), None));
        }
        let (next_due, rows): (i64, Vec<ClaimedRow>) =
            redis::from_redis_value(value).map_err(protocol)?;
        let mut jobs = Vec::with_capacity(rows.len());
        for (_, attempt, due, json) in rows {
            let mut job: Job = serde_json::from_slice(&json).map_err(protocol)?;
            job.attempt = attempt;
            job.scheduled_for_ms = due;
            jobs.push(job);
        }
        Ok((jobs, u64::try_from(next_due).ok()))
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
            let (jobs, next_due) = self.try_claim(max).await?;
            let now = tokio::time::Instant::now();
            if !jobs.is_empty() || now >= until {
                return Ok(jobs);
            }
            // Sleep on the wake-up list until work is enqueued, the next
            // scheduled job is due, or the wait ends.
            let mut nap = until - now;
            if let Some(due) = next_due {
                nap = nap.min(Duration::from_millis(
                    due.saturating_sub(self.broker.options().clock.now_ms())
                        .max(1),
                ));
            }
            let mut cmd = redis::cmd("BLPOP");
            cmd.arg(format!("{}wake", self.base))
                .arg(nap.as_secs_f64().max(0.001));
            self.blocking
                .lock()
                .await
                .query(&cmd, nap)
                .await
                .map_err(map)?;
        }
    }

    async fn renew(&self) -> Result<(), BrokerError> {
        renew(&mut self.broker.conn(), &self.lease_key, self.options.lease).await
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
        let mut invocation = scripts::JOB_SETTLE.key(&self.base);
        invocation
            .arg(&self.grant.holder)
            .arg(self.broker.options().clock.now_ms())
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
            invocation
                .arg(s.id.to_string())
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
        let mut invocation = scripts::JOB_RELEASE.key(&self.base);
        invocation
            .arg(&self.grant.holder)
            .arg(self.broker.options().clock.now_ms())
            .arg(if attempted {
                "attempted"
            } else {
                "unattempted"
            });
        for id in ids {
            invocation.arg(id.to_string());
        }
        let n: i64 = invocation
            .invoke_async(&mut self.broker.conn())
            .await
            .map_err(map)?;
        fenced(n).map(|_| ())
    }

    async fn reap(&self) -> Result<ReapStats, BrokerError> {
        let (requeued, dead): (usize, Vec<String>) = scripts::JOB_REAP
            .key(&self.base)
            .arg(self.broker.options().clock.now_ms())
            .arg(self.options.max_attempts)
            .invoke_async(&mut self.broker.conn())
            .await
            .map_err(map)?;
        let dead: Vec<JobId> = dead.iter().filter_map(|d| JobId::parse(d).ok()).collect();
        self.broker.reply_outcomes(&self.queue, &dead).await?;
        Ok(ReapStats {
            requeued,
            dead_lettered: dead.len(),
        })
    }

    async fn close(&self) -> Result<(), BrokerError> {
        let _: i64 = scripts::JOB_RELEASE
            .key(&self.base)
            .arg(&self.grant.holder)
            .arg(self.broker.options().clock.now_ms())
            .arg("close")
            .invoke_async(&mut self.broker.conn())
            .await
            .map_err(map)?;
        Ok(())
    }
}
