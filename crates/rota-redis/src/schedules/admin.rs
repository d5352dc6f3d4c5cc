//! Changes and reads from anywhere (the API, the CLI): not fenced; each
//! change compare-and-set or refused atomically.

use std::collections::BTreeMap;

use redis::Value;
use rota_core::BrokerError;
use rota_core::schedules::{Page, RunRecord, Schedule, ScheduleError, shard_of};

use super::keys::check_part;
use super::record::{due_arg, parse_history, parse_schedule, stored_json};
use super::{protocol, value};
use crate::broker::RedisBroker;
use crate::call::{Call, invoke_all};
use crate::error::map;

/// Checks what of `s` goes into keys.
fn check(s: &Schedule) -> Result<(), ScheduleError> {
    check_part("id", &s.id)?;
    check_part("tenant", &s.tenant)
}

impl RedisBroker {
    /// Adds to `call` the arguments of `s`: id, version, due, tenant,
    /// stored JSON.
    fn schedule_args(call: &mut Call, s: &Schedule) -> Result<(), ScheduleError> {
        let json = stored_json(s)?;
        call.arg(&s.id)
            .arg(s.version)
            .arg(due_arg(s))
            .arg(&s.tenant)
            .arg(json);
        Ok(())
    }

    pub(super) async fn insert_one(&self, schedule: Schedule) -> Result<(), ScheduleError> {
        check(&schedule)?;
        let mut call = self.keys_of(&schedule.id).call("write", "insert");
        Self::schedule_args(&mut call, &schedule)?;
        let n: i64 = call.invoke(&mut self.conn()).await.map_err(map)?;
        match n {
            1 => Ok(()),
            _ => Err(ScheduleError::Exists(schedule.id)),
        }
    }

    pub(super) async fn upsert(&self, schedules: Vec<Schedule>) -> Result<(), ScheduleError> {
        let shards = self.options().schedule_shards;
        let mut by_shard: BTreeMap<u32, Call> = BTreeMap::new();
        for s in &schedules {
            check(s)?;
            let shard = shard_of(&s.id, shards);
            let call = by_shard
                .entry(shard)
                .or_insert_with(|| self.keys_of(&s.id).call("write", "upsert"));
            Self::schedule_args(call, s)?;
        }
        if by_shard.is_empty() {
            return Ok(());
        }
        let (shards, calls): (Vec<u32>, Vec<Call>) = by_shard.into_iter().unzip();
        let results = invoke_all(&mut self.conn(), &calls).await.map_err(map)?;
        let mut written = Vec::new();
        let mut failed = Vec::new();
        for (shard, result) in shards.into_iter().zip(results) {
            match result {
                Ok(_) => written.push(shard),
                Err(e) => failed.push((shard, map(e))),
            }
        }
        let Some((_, first)) = failed.first() else {
            return Ok(());
        };
        let failed_shards: Vec<u32> = failed.iter().map(|(s, _)| *s).collect();
        let what = format!(
            "none of the schedules of shard(s) {failed_shards:?} was stored ({first}); those of \
             shard(s) {written:?} were (an upsert is all or none per shard): upsert the same \
             schedules again to complete it"
        );
        Err(match first {
            BrokerError::Unavailable(_) => BrokerError::Unavailable(what),
            BrokerError::Config(_) => BrokerError::Config(what),
            _ => BrokerError::Protocol(what),
        }
        .into())
    }

    pub(super) async fn replace_one(&self, schedule: Schedule) -> Result<Schedule, ScheduleError> {
        check(&schedule)?;
        let read = schedule.version;
        let mut next = schedule;
        next.version += 1;
        let keys = self.keys_of(&next.id);
        let mut call = keys.call("write", "replace");
        // The version read, and the next one's JSON.
        call.arg(&next.id)
            .arg(read)
            .arg(due_arg(&next))
            .arg(&next.tenant)
            .arg(stored_json(&next)?);
        let n: i64 = call.invoke(&mut self.conn()).await.map_err(map)?;
        match n {
            -1 => Err(ScheduleError::NotFound(next.id)),
            0 => Err(ScheduleError::Conflict(next.id)),
            v => {
                next.version = u64::try_from(v).map_err(protocol)?;
                Ok(next)
            }
        }
    }

    pub(super) async fn delete_one(&self, id: &str) -> Result<bool, ScheduleError> {
        check_part("id", id)?;
        let keys = self.keys_of(id);
        let mut call = keys.call("write", "delete");
        call.key(keys.history(id)).arg(id);
        let n: i64 = call.invoke(&mut self.conn()).await.map_err(map)?;
        Ok(n == 1)
    }

    pub(super) async fn get_one(&self, id: &str) -> Result<Option<Schedule>, ScheduleError> {
        check_part("id", id)?;
        let value: Option<Vec<u8>> = redis::cmd("HGET")
            .arg(self.keys_of(id).schedules())
            .arg(id)
            .query_async(&mut self.conn())
            .await
            .map_err(map)?;
        match value {
            Some(value) => Ok(Some(parse_schedule(id, &value)?)),
            None => Ok(None),
        }
    }

    /// Schedules `ids`, in one round trip: one read per shard they are
    /// in, pipelined.
    pub(super) async fn get_each(
        &self,
        ids: &[&str],
    ) -> Result<Vec<Option<Schedule>>, ScheduleError> {
        let mut by_shard: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        let shards = self.options().schedule_shards;
        for (i, id) in ids.iter().enumerate() {
            check_part("id", id)?;
            by_shard.entry(shard_of(id, shards)).or_default().push(i);
        }
        let mut out = vec![None; ids.len()];
        if by_shard.is_empty() {
            return Ok(out);
        }
        let mut pipe = redis::pipe();
        for (shard, at) in &by_shard {
            let cmd = pipe
                .cmd("HMGET")
                .arg(super::ShardKeys::new(&self.options().prefix, *shard).schedules());
            for &i in at {
                cmd.arg(ids[i]);
            }
        }
        let got: Vec<Vec<Option<Vec<u8>>>> =
            pipe.query_async(&mut self.conn()).await.map_err(map)?;
        for (at, values) in by_shard.values().zip(got) {
            if values.len() != at.len() {
                return Err(protocol(format!(
                    "a read of {} schedules answered {}",
                    at.len(),
                    values.len()
                ))
                .into());
            }
            for (&i, value) in at.iter().zip(values) {
                if let Some(value) = value {
                    out[i] = Some(parse_schedule(ids[i], &value)?);
                }
            }
        }
        Ok(out)
    }

    /// A page of `tenant`'s schedules: each shard's index read in one
    /// round trip, merged by id, then the schedules read in another.
    pub(super) async fn list_page(
        &self,
        tenant: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page, ScheduleError> {
        check_part("tenant", tenant)?;
        let want = limit.saturating_add(1);
        let count = i64::try_from(want).unwrap_or(i64::MAX);
        let min = after.map_or_else(|| "-".to_owned(), |a| format!("({a}"));
        let prefix = &self.options().prefix;
        let mut pipe = redis::pipe();
        for shard in 0..self.options().schedule_shards {
            pipe.cmd("ZRANGEBYLEX")
                .arg(super::ShardKeys::new(prefix, shard).tenant(tenant))
                .arg(&min)
                .arg("+")
                .arg("LIMIT")
                .arg(0)
                .arg(count);
        }
        let mut conn = self.conn();
        let per_shard: Vec<Vec<String>> = pipe.query_async(&mut conn).await.map_err(map)?;
        let mut ids: Vec<String> = per_shard.into_iter().flatten().collect();
        ids.sort_unstable();
        ids.truncate(want);
        let mut schedules = Vec::with_capacity(ids.len());
        if !ids.is_empty() {
            let mut pipe = redis::pipe();
            for id in &ids {
                pipe.cmd("HGET").arg(self.keys_of(id).schedules()).arg(id);
            }
            let got: Vec<Option<Vec<u8>>> = pipe.query_async(&mut conn).await.map_err(map)?;
            for (id, value) in ids.iter().zip(got) {
                // Deleted between the two reads: left out.
                if let Some(value) = value {
                    schedules.push(parse_schedule(id, &value)?);
                }
            }
        }
        Ok(Page::of_read(schedules, limit))
    }

    pub(super) async fn history(
        &self,
        id: &str,
        limit: usize,
    ) -> Result<Vec<RunRecord>, ScheduleError> {
        check_part("id", id)?;
        let keys = self.keys_of(id);
        let last = i64::try_from(limit).unwrap_or(i64::MAX) - 1;
        let (exists, entries): (bool, Vec<Value>) = redis::pipe()
            .cmd("HEXISTS")
            .arg(keys.schedules())
            .arg(id)
            .cmd("LRANGE")
            .arg(keys.history(id))
            .arg(0)
            .arg(last)
            .query_async(&mut self.conn())
            .await
            .map_err(map)?;
        if !exists {
            return Err(ScheduleError::NotFound(id.to_owned()));
        }
        if limit == 0 {
            return Ok(Vec::new());
        }
        entries
            .into_iter()
            .map(|e| Ok(parse_history(&value::<Vec<u8>>(e)?)?))
            .collect()
    }
}
