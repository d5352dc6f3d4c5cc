//! Schedules on Redis: [`ScheduleStore`] for [`RedisBroker`].
//!
//! Schedules are spread over [`RedisOptions::schedule_shards`] shards
//! (schedule `id` in shard [`shard_of`]`(id, shards)`), and everything a
//! shard holds shares its hash tag `{s:<n>}`, under `<prefix>:{s:<n>}:`:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `s` | hash | the shard's schedules: id → `<version> <tenant> <stored JSON>` ([`Schedule::to_stored`], which leaves out id, tenant and version) |
//! | `h:<id>` | list | its run history, newest first, at most [`MAX_HISTORY`]: `<occurrence ms> <job id or -> <at ms> <record JSON>` |
//! | `due` | zset | the ids of the shard's schedules that have a due instant ([`Schedule::due_ms`]; none while paused), by it |
//! | `t:<tenant>` | zset, scores 0 | the ids of the tenant's schedules in the shard, for listing by id |
//! | `outbox` | zset | runs committed and not yet marked enqueued, `<schedule> <occurrence ms> <job id>`, in the order committed |
//! | `r` | list | the shard's **inbox**: run outcomes ([`Reply`](rota_core::Reply) envelopes) in the order they came; no TTL |
//! | `lease` | string with a TTL | the live lease: `<epoch> <holder>` |
//! | `meta` | hash | `epoch` (the latest granted; never expires, so no epoch is granted twice), `oseq` (the outbox's order), `acked` (replies removed from the inbox so far) |
//!
//! and two keys for all shards, under `<prefix>:{s:all}:`: `shards` (their
//! number, written at the first use of schedules and compared with the
//! options' at each start, since a schedule's shard depends on it) and
//! `alive` (a zset of schedulers → until when they are alive, by Redis's
//! clock).
//!
//! One hash holds all of a shard's schedules, rather than a key each, to
//! spare Redis a key's overhead per schedule (about 100 bytes), and a
//! stored value leaves out every default: a cron schedule just created
//! costs Redis about 390 bytes in all (its field and value, its due entry,
//! its tenant's index), a third of what a hash per schedule holding its
//! whole JSON did. Ids and tenants hold no space ([`check_part`]), so the
//! functions read a version and a tenant off the front of a value without
//! parsing JSON.
//!
//! Every multi-key operation stays in one shard's slot, so the layout is
//! ready for Redis Cluster, the shards spread over its nodes. Each change
//! is one call of a Lua function of the library `rota_sched_<hash>`
//! (`lua/schedules/`, Redis Functions, loaded whenever Redis says a function
//! is missing, like the job library):
//!
//! * `lease` — acquire (only when the lease key is gone; the next epoch),
//!   renew and release. The key's TTL is the lease, on Redis's clock; its
//!   value names the grant, so a lapsed or superseded holder finds another
//!   value (or none) there.
//! * `write` — changes from anywhere: insert (refused atomically when the
//!   id is taken), replace (compare-and-set on `v`), upsert, delete. Not
//!   fenced.
//! * `commit` — the owner's changes, fenced: each compare-and-set on `v`,
//!   written with its outbox members and history entries, or refused and
//!   not written at all.
//! * `shard` — the owner's reads and acknowledgements, fenced in the same
//!   call: due, next, outbox, dispatched, replies, ack.
//! * `heartbeat` — the schedulers alive, trimmed at each beat.
//!
//! The functions keep the due index right from the due instant the
//! caller computes and never parse JSON: versions, due instants, outbox
//! members and the prefixes of history entries are what they compare. A
//! call that writes many schedules (an upsert, a commit) writes their
//! values, due entries and tenant entries a few commands at a time, not
//! some per schedule.
//!
//! **Listing by tenant** reads each shard's `t:<tenant>` index (one
//! pipeline, one round trip) and merges them: the index is written in the
//! same call as the schedule, so it is never out of step with it, and the
//! owner's commits — the frequent writes — touch it only when a tenant
//! changes. A per-tenant index in a slot of its own would make listing one
//! read but need a second, separate write per insert and delete, which a
//! crash between the two would leave out of step; listing is the API's
//! path, not the scheduler's, so it pays instead.
//!
//! **The shard inboxes** are addresses [`Inboxes::is_inbox`] accepts, in
//! their shard's slot, so a job's `reply_to` may name one. Replies pushed
//! there get no TTL (client inboxes' replies expire after `reply_ttl`):
//! they are run outcomes that must reach whoever owns the shard, however
//! long no scheduler runs. They stay until the owner acknowledges them;
//! `meta`'s `acked` counts those removed, so a reply's `seq` (that count
//! plus its index) stays the same while it waits.
//!
//! **Upserts** go one call per shard, all of them in one pipeline: all or
//! none per shard, not across shards (they may live on different nodes).
//! Everything is checked before anything is sent, and an upsert of the
//! same schedules again completes one that failed part-way; the error says
//! which shards were written. An upsert bumps the version of a schedule it
//! replaces (rather than start over at 1), so that a change read before it
//! is refused.
//!
//! [`Inboxes::is_inbox`]: rota_core::Inboxes::is_inbox
//! [`check_part`]: keys::check_part
//! [`shard_of`]: rota_core::schedules::shard_of
//! [`MAX_HISTORY`]: rota_core::schedules::MAX_HISTORY
//! [`RedisOptions::schedule_shards`]: crate::RedisOptions::schedule_shards

use std::sync::atomic::Ordering;

use async_trait::async_trait;
use redis::Value;
use rota_core::BrokerError;
use rota_core::schedules::{
    Change, Outbound, Page, RunRecord, Schedule, ScheduleError, ScheduleStore, ShardLease,
    ShardOwner, ShardReply,
};

use crate::broker::RedisBroker;
use crate::error::map;

mod admin;
mod keys;
mod owner;
mod record;

use keys::{ShardKeys, all};

/// The longest lease or heartbeat asked for is cut to this (100 years):
/// Redis refuses an expiry past its own range.
const MAX_TTL_MS: u64 = 100 * 365 * 24 * 3_600 * 1_000;

impl RedisBroker {
    /// Checks, once per handle, that the store's schedules are spread over
    /// as many shards as the options say, recording the number at the
    /// first use of a store.
    async fn schedules_ready(&self) -> Result<(), ScheduleError> {
        if self.shards_checked.load(Ordering::Acquire) {
            return Ok(());
        }
        let shards = self.options().schedule_shards;
        let key = all(&self.options().prefix, "shards");
        let (stored,): (u32,) = redis::pipe()
            .cmd("SET")
            .arg(&key)
            .arg(shards)
            .arg("NX")
            .ignore()
            .cmd("GET")
            .arg(&key)
            .query_async(&mut self.conn())
            .await
            .map_err(map)?;
        if stored != shards {
            return Err(BrokerError::Config(format!(
                "the schedules under prefix {:?} are spread over {stored} shards, but \
                 schedule_shards is {shards}: set it to {stored} (a store's number of shards \
                 cannot change, since it decides where each schedule is)",
                self.options().prefix
            ))
            .into());
        }
        self.shards_checked.store(true, Ordering::Release);
        Ok(())
    }

    /// The keys of `shard`, if there is such a shard.
    fn shard_keys(&self, shard: u32) -> Result<ShardKeys, ScheduleError> {
        let shards = self.options().schedule_shards;
        if shard >= shards {
            return Err(ScheduleError::Invalid {
                field: "shard",
                problem: format!("{shard} is not below {shards}"),
            });
        }
        Ok(ShardKeys::new(&self.options().prefix, shard))
    }

    /// The keys of schedule `id`'s shard.
    fn keys_of(&self, id: &str) -> ShardKeys {
        let shard = rota_core::schedules::shard_of(id, self.options().schedule_shards);
        ShardKeys::new(&self.options().prefix, shard)
    }
}

/// The answer of a fenced function, `{-1}` when the lease lapsed, else
/// `{1, ...}`: the rest.
fn fenced(answer: Vec<Value>) -> Result<Vec<Value>, ScheduleError> {
    let mut parts = answer.into_iter();
    match parts.next() {
        Some(Value::Int(1)) => Ok(parts.collect()),
        Some(Value::Int(-1)) => Err(BrokerError::LeaseLost.into()),
        other => Err(protocol(format!("a fenced call answered {other:?}")).into()),
    }
}

fn protocol(what: impl std::fmt::Display) -> BrokerError {
    BrokerError::Protocol(format!("schedules: {what}"))
}

/// A value of an answer, as `T`.
fn value<T: redis::FromRedisValue>(v: Value) -> Result<T, BrokerError> {
    redis::from_redis_value(v).map_err(protocol)
}

/// The lease's token, as the lease key holds it.
fn token(lease: &ShardLease) -> String {
    format!("{} {}", lease.epoch, lease.holder)
}

#[async_trait]
impl ScheduleStore for RedisBroker {
    fn shards(&self) -> u32 {
        self.options().schedule_shards
    }

    fn shard_inbox(&self, shard: u32) -> String {
        crate::keys::shard_inbox(&self.options().prefix, shard)
    }

    async fn insert(&self, schedule: Schedule) -> Result<(), ScheduleError> {
        self.schedules_ready().await?;
        self.insert_one(schedule).await
    }

    async fn upsert_many(&self, schedules: Vec<Schedule>) -> Result<(), ScheduleError> {
        self.schedules_ready().await?;
        self.upsert(schedules).await
    }

    async fn replace(&self, schedule: Schedule) -> Result<Schedule, ScheduleError> {
        self.schedules_ready().await?;
        self.replace_one(schedule).await
    }

    async fn delete(&self, id: &str) -> Result<bool, ScheduleError> {
        self.schedules_ready().await?;
        self.delete_one(id).await
    }

    async fn get(&self, id: &str) -> Result<Option<Schedule>, ScheduleError> {
        self.schedules_ready().await?;
        self.get_one(id).await
    }

    async fn get_many(&self, ids: &[&str]) -> Result<Vec<Option<Schedule>>, ScheduleError> {
        self.schedules_ready().await?;
        self.get_each(ids).await
    }

    async fn list(
        &self,
        tenant: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page, ScheduleError> {
        self.schedules_ready().await?;
        self.list_page(tenant, after, limit).await
    }

    async fn runs(&self, id: &str, limit: usize) -> Result<Vec<RunRecord>, ScheduleError> {
        self.schedules_ready().await?;
        self.history(id, limit).await
    }

    async fn acquire_shard(
        &self,
        shard: u32,
        holder: &str,
        ttl_ms: u64,
    ) -> Result<Option<ShardLease>, ScheduleError> {
        self.schedules_ready().await?;
        self.acquire(shard, holder, ttl_ms).await
    }

    async fn renew_shard(&self, lease: &ShardLease, ttl_ms: u64) -> Result<i64, ScheduleError> {
        self.schedules_ready().await?;
        self.renew(lease, ttl_ms).await
    }

    async fn release_shard(&self, lease: &ShardLease) -> Result<(), ScheduleError> {
        self.schedules_ready().await?;
        self.release(lease).await
    }

    async fn shard_owners(&self) -> Result<Vec<ShardOwner>, ScheduleError> {
        self.schedules_ready().await?;
        self.owners().await
    }

    async fn heartbeat(&self, scheduler: &str, ttl_ms: u64) -> Result<Vec<String>, ScheduleError> {
        self.schedules_ready().await?;
        self.beat(scheduler, ttl_ms).await
    }

    async fn due(
        &self,
        lease: &ShardLease,
        until_ms: i64,
        limit: usize,
    ) -> Result<Vec<Schedule>, ScheduleError> {
        self.schedules_ready().await?;
        self.due_by(lease, until_ms, limit).await
    }

    async fn next_due(&self, lease: &ShardLease) -> Result<Option<i64>, ScheduleError> {
        self.schedules_ready().await?;
        self.next(lease).await
    }

    async fn commit(
        &self,
        lease: &ShardLease,
        changes: Vec<Change>,
    ) -> Result<Vec<Result<Schedule, ScheduleError>>, ScheduleError> {
        self.schedules_ready().await?;
        self.commit_changes(lease, changes).await
    }

    async fn outbox(
        &self,
        lease: &ShardLease,
        limit: usize,
    ) -> Result<Vec<Outbound>, ScheduleError> {
        self.schedules_ready().await?;
        self.outbound(lease, limit).await
    }

    async fn dispatched(&self, lease: &ShardLease, runs: &[Outbound]) -> Result<(), ScheduleError> {
        self.schedules_ready().await?;
        self.mark_dispatched(lease, runs).await
    }

    async fn replies(
        &self,
        lease: &ShardLease,
        limit: usize,
    ) -> Result<Vec<ShardReply>, ScheduleError> {
        self.schedules_ready().await?;
        self.read_replies(lease, limit).await
    }

    async fn ack_replies(&self, lease: &ShardLease, seq: u64) -> Result<(), ScheduleError> {
        self.schedules_ready().await?;
        self.ack(lease, seq).await
    }
}
