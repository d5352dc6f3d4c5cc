//! What the owner of a shard does: take, keep and give back its lease; read
//! what came due, commit, work the outbox and the inbox — each fenced by
//! the lease in the same call as what it reads or writes.

use bytes::Bytes;
use redis::Value;
use rota_core::schedules::{
    Change, MAX_HISTORY, Outbound, Schedule, ScheduleError, ShardLease, ShardOwner, ShardReply,
};

use super::keys::{ShardKeys, all, check_part};
use super::record::{
    due_arg, finished_args, history_entry, outbox_member, parse_outbox, parse_schedule, stored_json,
};
use super::{MAX_TTL_MS, fenced, protocol, token, value};
use crate::broker::RedisBroker;
use crate::call::Call;
use crate::error::map;
use crate::scripts::SCHEDULES;

fn ttl(ms: u64) -> u64 {
    ms.clamp(1, MAX_TTL_MS)
}

/// A limit as the functions take it.
fn limit_arg(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// One change, ready to go into the commit call.
struct Prepared {
    /// The schedule as it is once written.
    next: Schedule,
    /// Its history.
    history: String,
    args: Vec<String>,
}

impl RedisBroker {
    pub(super) async fn acquire(
        &self,
        shard: u32,
        holder: &str,
        ttl_ms: u64,
    ) -> Result<Option<ShardLease>, ScheduleError> {
        let keys = self.shard_keys(shard)?;
        let mut call = keys.call("lease", "acquire");
        call.arg(holder).arg(ttl(ttl_ms));
        let granted: Vec<i64> = call.invoke(&mut self.conn()).await.map_err(map)?;
        match granted[..] {
            [0] => Ok(None),
            [epoch, until] if epoch > 0 => {
                Ok(Some(ShardLease::new(shard, holder, epoch as u64, until)))
            }
            _ => Err(rota_core::BrokerError::Protocol(format!(
                "a shard lease grant answered {granted:?}"
            ))
            .into()),
        }
    }

    pub(super) async fn renew(
        &self,
        lease: &ShardLease,
        ttl_ms: u64,
    ) -> Result<i64, ScheduleError> {
        let keys = self.shard_keys(lease.shard)?;
        let mut call = keys.call("lease", "renew");
        call.arg(token(lease)).arg(ttl(ttl_ms));
        let until: i64 = call.invoke(&mut self.conn()).await.map_err(map)?;
        if until < 0 {
            return Err(rota_core::BrokerError::LeaseLost.into());
        }
        Ok(until)
    }

    pub(super) async fn release(&self, lease: &ShardLease) -> Result<(), ScheduleError> {
        let keys = self.shard_keys(lease.shard)?;
        let mut call = keys.call("lease", "release");
        call.arg(token(lease));
        let _: i64 = call.invoke(&mut self.conn()).await.map_err(map)?;
        Ok(())
    }

    /// Every shard's lease and latest epoch, read in one round trip (one
    /// read per shard: they are in different slots).
    pub(super) async fn owners(&self) -> Result<Vec<ShardOwner>, ScheduleError> {
        let shards = self.options().schedule_shards;
        let mut pipe = redis::pipe();
        for shard in 0..shards {
            let keys = ShardKeys::new(&self.options().prefix, shard);
            pipe.cmd("GET")
                .arg(keys.key("lease"))
                .cmd("HGET")
                .arg(keys.key("meta"))
                .arg("epoch");
        }
        let got: Vec<Option<String>> = pipe.query_async(&mut self.conn()).await.map_err(map)?;
        let mut out = Vec::with_capacity(shards as usize);
        for (shard, pair) in (0..shards).zip(got.chunks(2)) {
            let holder = pair
                .first()
                .cloned()
                .flatten()
                .and_then(|v| v.split_once(' ').map(|(_, h)| h.to_owned()));
            let epoch = match pair.get(1).cloned().flatten() {
                Some(e) => e.parse().map_err(protocol)?,
                None => 0,
            };
            out.push(ShardOwner::new(shard, holder, epoch));
        }
        Ok(out)
    }

    pub(super) async fn beat(
        &self,
        scheduler: &str,
        ttl_ms: u64,
    ) -> Result<Vec<String>, ScheduleError> {
        let mut call = Call::new(&SCHEDULES, "heartbeat");
        call.key(all(&self.options().prefix, "alive"))
            .arg("")
            .arg("beat")
            .arg(scheduler)
            .arg(ttl(ttl_ms));
        let mut alive: Vec<String> = call.invoke(&mut self.conn()).await.map_err(map)?;
        alive.sort_unstable();
        Ok(alive)
    }

    /// Calls operation `op` of the fenced `shard` function with `args`.
    async fn shard_call<A: redis::ToRedisArgs>(
        &self,
        lease: &ShardLease,
        op: &str,
        args: &[A],
    ) -> Result<Vec<Value>, ScheduleError> {
        let keys = self.shard_keys(lease.shard)?;
        let mut call = keys.call("shard", op);
        call.arg(token(lease));
        for a in args {
            call.arg(a);
        }
        fenced(call.invoke(&mut self.conn()).await.map_err(map)?)
    }

    pub(super) async fn due_by(
        &self,
        lease: &ShardLease,
        until_ms: i64,
        limit: usize,
    ) -> Result<Vec<Schedule>, ScheduleError> {
        let answer = self
            .shard_call(lease, "due", &[until_ms, limit_arg(limit)])
            .await?;
        let mut out = Vec::with_capacity(answer.len() / 2);
        let mut parts = answer.into_iter();
        while let (Some(id), Some(stored)) = (parts.next(), parts.next()) {
            out.push(parse_schedule(
                &value::<String>(id)?,
                &value::<Vec<u8>>(stored)?,
            )?);
        }
        Ok(out)
    }

    pub(super) async fn next(&self, lease: &ShardLease) -> Result<Option<i64>, ScheduleError> {
        let answer = self.shard_call::<i64>(lease, "next", &[]).await?;
        match answer.into_iter().next() {
            None => Ok(None),
            Some(score) => {
                let score: f64 = value::<String>(score)?.parse().map_err(protocol)?;
                Ok(Some(score as i64))
            }
        }
    }

    pub(super) async fn outbound(
        &self,
        lease: &ShardLease,
        limit: usize,
    ) -> Result<Vec<Outbound>, ScheduleError> {
        let answer = self
            .shard_call(lease, "outbox", &[limit_arg(limit)])
            .await?;
        answer
            .into_iter()
            .map(|m| Ok(parse_outbox(&value::<String>(m)?)?))
            .collect()
    }

    pub(super) async fn mark_dispatched(
        &self,
        lease: &ShardLease,
        runs: &[Outbound],
    ) -> Result<(), ScheduleError> {
        let members: Vec<String> = runs.iter().map(outbox_member).collect();
        self.shard_call(lease, "dispatched", &members).await?;
        Ok(())
    }

    pub(super) async fn read_replies(
        &self,
        lease: &ShardLease,
        limit: usize,
    ) -> Result<Vec<ShardReply>, ScheduleError> {
        let answer = self
            .shard_call(lease, "replies", &[limit_arg(limit)])
            .await?;
        let mut parts = answer.into_iter();
        let acked: u64 = match parts.next() {
            Some(n) => value(n)?,
            None => return Err(protocol("replies answered no count").into()),
        };
        parts
            .enumerate()
            .map(|(i, body)| {
                Ok(ShardReply::new(
                    acked + i as u64,
                    Bytes::from(value::<Vec<u8>>(body)?),
                ))
            })
            .collect()
    }

    pub(super) async fn ack(&self, lease: &ShardLease, seq: u64) -> Result<(), ScheduleError> {
        self.shard_call(lease, "ack", &[seq]).await?;
        Ok(())
    }

    /// Commits `changes` in one call of the commit function: fenced, each
    /// one compare-and-set. A change that cannot be sent (another shard's
    /// schedule, an id that cannot be a key) answers its error and is left
    /// out; the call is made even with none left, to answer whether the
    /// lease still holds.
    pub(super) async fn commit_changes(
        &self,
        lease: &ShardLease,
        changes: Vec<Change>,
    ) -> Result<Vec<Result<Schedule, ScheduleError>>, ScheduleError> {
        let keys = self.shard_keys(lease.shard)?;
        let mut call = keys.call("commit", "commit");
        call.arg(token(lease)).arg(MAX_HISTORY);
        let mut out: Vec<Option<Result<Schedule, ScheduleError>>> =
            Vec::with_capacity(changes.len());
        let mut sent: Vec<(usize, Schedule)> = Vec::new();
        for (i, change) in changes.into_iter().enumerate() {
            match self.prepare(&keys, lease.shard, change) {
                Ok(p) => {
                    call.key(&p.history);
                    for a in &p.args {
                        call.arg(a);
                    }
                    sent.push((i, p.next));
                    out.push(None);
                }
                Err(e) => out.push(Some(Err(e))),
            }
        }
        let answer = fenced(call.invoke(&mut self.conn()).await.map_err(map)?)?;
        if answer.len() != sent.len() {
            return Err(protocol(format!(
                "a commit of {} changes answered {} results",
                sent.len(),
                answer.len()
            ))
            .into());
        }
        for ((i, next), code) in sent.into_iter().zip(answer) {
            let id = next.id.clone();
            out[i] = Some(match value::<i64>(code)? {
                1 => Ok(next),
                0 => Err(ScheduleError::Conflict(id)),
                _ => Err(ScheduleError::NotFound(id)),
            });
        }
        Ok(out.into_iter().flatten().collect())
    }

    /// The keys and arguments of one change (see `lua/schedules/commit.lua`).
    fn prepare(
        &self,
        keys: &ShardKeys,
        shard: u32,
        change: Change,
    ) -> Result<Prepared, ScheduleError> {
        let id = &change.schedule.id;
        check_part("id", id)?;
        check_part("tenant", &change.schedule.tenant)?;
        if rota_core::schedules::shard_of(id, self.options().schedule_shards) != shard {
            return Err(ScheduleError::Invalid {
                field: "id",
                problem: format!("schedule {id:?} is not in shard {shard}"),
            });
        }
        let read = change.schedule.version;
        let mut next = change.schedule;
        next.version += 1;
        let mut args = vec![
            next.id.clone(),
            read.to_string(),
            due_arg(&next),
            next.tenant.clone(),
            stored_json(&next)?,
            change.dispatch.len().to_string(),
            change.history.len().to_string(),
            change.finished.len().to_string(),
        ];
        for run in change.dispatch {
            args.push(outbox_member(&Outbound::new(next.id.clone(), run)));
        }
        for r in &change.history {
            args.push(history_entry(r)?);
        }
        for r in &change.finished {
            args.extend(finished_args(r)?);
        }
        Ok(Prepared {
            history: keys.history(&next.id),
            next,
            args,
        })
    }
}
