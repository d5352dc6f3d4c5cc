//! Schedules in memory: [`ScheduleStore`] for [`MemoryBroker`].
//!
//! Each shard keeps its due index (a sorted set of `(due ms, id)`), its
//! lease (holder, expiry on tokio's clock, epoch) and its dispatch outbox;
//! each schedule its run history, newest first, bounded.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use async_trait::async_trait;
use rota_core::BrokerError;
use rota_core::schedules::{
    Change, MAX_HISTORY, Outbound, Page, RunRecord, Schedule, ScheduleError, ScheduleStore,
    ShardLease, ShardOwner, ShardReply, shard_of,
};
use tokio::time::{Duration, Instant};

use crate::MemoryBroker;
use crate::inbox::shard_address;

/// The shards of a memory store.
pub(crate) const SHARDS: u32 = 8;

/// Everything the schedules of a [`MemoryBroker`] hold.
#[derive(Default)]
pub(crate) struct SchedulesState {
    schedules: HashMap<String, Entry>,
    /// `(tenant, id)` of every schedule, for listing by tenant.
    by_tenant: BTreeSet<(String, String)>,
    shards: HashMap<u32, Shard>,
    /// Schedulers alive, until when.
    alive: HashMap<String, Instant>,
}

struct Entry {
    schedule: Schedule,
    history: VecDeque<RunRecord>,
}

#[derive(Default)]
struct Shard {
    /// `(due ms, id)` of its schedules that have a due instant.
    due: BTreeSet<(i64, String)>,
    holder: Option<(String, Instant)>,
    epoch: u64,
    outbox: BTreeMap<u64, Outbound>,
    outbox_seq: u64,
}

impl SchedulesState {
    fn shard(&mut self, id: &str) -> &mut Shard {
        self.shards.entry(shard_of(id, SHARDS)).or_default()
    }

    /// Stores `schedule` (replacing the entry's), keeping the indexes.
    fn put(&mut self, schedule: Schedule) {
        let id = schedule.id.clone();
        let due = schedule.due_ms();
        if let Some(old) = self.schedules.get(&id) {
            let old_due = old.schedule.due_ms();
            let old_tenant = old.schedule.tenant.clone();
            if let Some(d) = old_due {
                self.shard(&id).due.remove(&(d, id.clone()));
            }
            self.by_tenant.remove(&(old_tenant, id.clone()));
        }
        if let Some(d) = due {
            self.shard(&id).due.insert((d, id.clone()));
        }
        self.by_tenant
            .insert((schedule.tenant.clone(), schedule.id.clone()));
        match self.schedules.get_mut(&id) {
            Some(entry) => entry.schedule = schedule,
            None => {
                self.schedules.insert(
                    id,
                    Entry {
                        schedule,
                        history: VecDeque::new(),
                    },
                );
            }
        }
    }

    fn remove(&mut self, id: &str) -> bool {
        let Some(old) = self.schedules.remove(id) else {
            return false;
        };
        if let Some(d) = old.schedule.due_ms() {
            self.shard(id).due.remove(&(d, id.to_owned()));
        }
        self.by_tenant.remove(&(old.schedule.tenant, id.to_owned()));
        true
    }

    /// Whether `lease` is the live, current grant of its shard.
    fn check(&mut self, lease: &ShardLease) -> Result<&mut Shard, ScheduleError> {
        let shard = self.shards.entry(lease.shard).or_default();
        match &shard.holder {
            Some((holder, until))
                if *holder == lease.holder
                    && shard.epoch == lease.epoch
                    && *until > Instant::now() =>
            {
                Ok(shard)
            }
            _ => Err(BrokerError::LeaseLost.into()),
        }
    }

    fn apply(&mut self, lease: &ShardLease, change: Change) -> Result<Schedule, ScheduleError> {
        let id = change.schedule.id.clone();
        if shard_of(&id, SHARDS) != lease.shard {
            return Err(ScheduleError::Invalid {
                field: "id",
                problem: format!("schedule {id:?} is not in shard {}", lease.shard),
            });
        }
        let stored = self
            .schedules
            .get(&id)
            .ok_or_else(|| ScheduleError::NotFound(id.clone()))?;
        if stored.schedule.version != change.schedule.version {
            return Err(ScheduleError::Conflict(id));
        }
        let mut schedule = change.schedule;
        schedule.version += 1;
        self.put(schedule.clone());
        let shard = self.shards.entry(lease.shard).or_default();
        for run in change.dispatch {
            shard.outbox_seq += 1;
            shard
                .outbox
                .insert(shard.outbox_seq, Outbound::new(id.clone(), run));
        }
        if let Some(entry) = self.schedules.get_mut(&id) {
            for record in change.history {
                entry.history.push_front(record);
            }
            for done in change.finished {
                match entry
                    .history
                    .iter_mut()
                    .find(|r| r.job.is_some() && r.occurrence_ms == done.occurrence_ms)
                {
                    Some(r) => {
                        let at = r.at_ms;
                        *r = done;
                        r.at_ms = at;
                    }
                    None => entry.history.push_front(done),
                }
            }
            entry.history.truncate(MAX_HISTORY);
        }
        Ok(schedule)
    }
}

#[async_trait]
impl ScheduleStore for MemoryBroker {
    fn shards(&self) -> u32 {
        SHARDS
    }

    fn shard_inbox(&self, shard: u32) -> String {
        shard_address(shard)
    }

    async fn insert(&self, schedule: Schedule) -> Result<(), ScheduleError> {
        let mut state = self.lock();
        let s = &mut state.schedules;
        if s.schedules.contains_key(&schedule.id) {
            return Err(ScheduleError::Exists(schedule.id));
        }
        s.put(schedule);
        Ok(())
    }

    async fn upsert_many(&self, schedules: Vec<Schedule>) -> Result<(), ScheduleError> {
        let mut state = self.lock();
        for mut schedule in schedules {
            // Past any version read before: such a read cannot commit over it.
            if let Some(old) = state.schedules.schedules.get(&schedule.id) {
                schedule.version = old.schedule.version + 1;
            }
            state.schedules.put(schedule);
        }
        Ok(())
    }

    async fn replace(&self, schedule: Schedule) -> Result<Schedule, ScheduleError> {
        let mut state = self.lock();
        let s = &mut state.schedules;
        let stored = s
            .schedules
            .get(&schedule.id)
            .ok_or_else(|| ScheduleError::NotFound(schedule.id.clone()))?;
        if stored.schedule.version != schedule.version {
            return Err(ScheduleError::Conflict(schedule.id));
        }
        let mut schedule = schedule;
        schedule.version += 1;
        s.put(schedule.clone());
        Ok(schedule)
    }

    async fn delete(&self, id: &str) -> Result<bool, ScheduleError> {
        Ok(self.lock().schedules.remove(id))
    }

    async fn get(&self, id: &str) -> Result<Option<Schedule>, ScheduleError> {
        Ok(self
            .lock()
            .schedules
            .schedules
            .get(id)
            .map(|e| e.schedule.clone()))
    }

    async fn list(
        &self,
        tenant: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page, ScheduleError> {
        let state = self.lock();
        let s = &state.schedules;
        let from = (tenant.to_owned(), after.unwrap_or("").to_owned());
        let schedules: Vec<Schedule> = s
            .by_tenant
            .range(from..)
            .filter(|(t, id)| t == tenant && Some(id.as_str()) != after)
            .take(limit.saturating_add(1))
            .filter_map(|(_, id)| s.schedules.get(id).map(|e| e.schedule.clone()))
            .collect();
        Ok(Page::of_read(schedules, limit))
    }

    async fn runs(&self, id: &str, limit: usize) -> Result<Vec<RunRecord>, ScheduleError> {
        let state = self.lock();
        let entry = state
            .schedules
            .schedules
            .get(id)
            .ok_or_else(|| ScheduleError::NotFound(id.to_owned()))?;
        Ok(entry.history.iter().take(limit).cloned().collect())
    }

    async fn acquire_shard(
        &self,
        shard: u32,
        holder: &str,
        ttl_ms: u64,
    ) -> Result<Option<ShardLease>, ScheduleError> {
        if shard >= SHARDS {
            return Err(ScheduleError::Invalid {
                field: "shard",
                problem: format!("{shard} is not below {SHARDS}"),
            });
        }
        let mut state = self.lock();
        let s = state.schedules.shards.entry(shard).or_default();
        if s.holder
            .as_ref()
            .is_some_and(|(_, until)| *until > Instant::now())
        {
            return Ok(None);
        }
        s.epoch += 1;
        s.holder = Some((
            holder.to_owned(),
            Instant::now() + Duration::from_millis(ttl_ms),
        ));
        let until = self.lease_end(ttl_ms);
        Ok(Some(ShardLease::new(shard, holder, s.epoch, until)))
    }

    async fn renew_shard(&self, lease: &ShardLease, ttl_ms: u64) -> Result<i64, ScheduleError> {
        let until = self.lease_end(ttl_ms);
        let mut state = self.lock();
        let shard = state.schedules.check(lease)?;
        shard.holder = Some((
            lease.holder.clone(),
            Instant::now() + Duration::from_millis(ttl_ms),
        ));
        Ok(until)
    }

    async fn release_shard(&self, lease: &ShardLease) -> Result<(), ScheduleError> {
        let mut state = self.lock();
        if let Ok(shard) = state.schedules.check(lease) {
            shard.holder = None;
        }
        Ok(())
    }

    async fn shard_owners(&self) -> Result<Vec<ShardOwner>, ScheduleError> {
        let state = self.lock();
        let now = Instant::now();
        Ok((0..SHARDS)
            .map(|n| {
                let s = state.schedules.shards.get(&n);
                let holder = s
                    .and_then(|s| s.holder.as_ref())
                    .filter(|(_, until)| *until > now)
                    .map(|(h, _)| h.clone());
                ShardOwner::new(n, holder, s.map_or(0, |s| s.epoch))
            })
            .collect())
    }

    async fn heartbeat(&self, scheduler: &str, ttl_ms: u64) -> Result<Vec<String>, ScheduleError> {
        let mut state = self.lock();
        let now = Instant::now();
        let alive = &mut state.schedules.alive;
        alive.insert(scheduler.to_owned(), now + Duration::from_millis(ttl_ms));
        alive.retain(|_, until| *until > now);
        let mut names: Vec<String> = alive.keys().cloned().collect();
        names.sort();
        Ok(names)
    }

    async fn due(
        &self,
        lease: &ShardLease,
        until_ms: i64,
        limit: usize,
    ) -> Result<Vec<Schedule>, ScheduleError> {
        let mut state = self.lock();
        let shard = state.schedules.check(lease)?;
        let ids: Vec<String> = shard
            .due
            .iter()
            .take_while(|(d, _)| *d <= until_ms)
            .take(limit)
            .map(|(_, id)| id.clone())
            .collect();
        let s = &state.schedules;
        Ok(ids
            .iter()
            .filter_map(|id| s.schedules.get(id).map(|e| e.schedule.clone()))
            .collect())
    }

    async fn next_due(&self, lease: &ShardLease) -> Result<Option<i64>, ScheduleError> {
        let mut state = self.lock();
        let shard = state.schedules.check(lease)?;
        Ok(shard.due.first().map(|(d, _)| *d))
    }

    async fn commit(
        &self,
        lease: &ShardLease,
        changes: Vec<Change>,
    ) -> Result<Vec<Result<Schedule, ScheduleError>>, ScheduleError> {
        let mut state = self.lock();
        state.schedules.check(lease)?;
        Ok(changes
            .into_iter()
            .map(|change| state.schedules.apply(lease, change))
            .collect())
    }

    async fn outbox(
        &self,
        lease: &ShardLease,
        limit: usize,
    ) -> Result<Vec<Outbound>, ScheduleError> {
        let mut state = self.lock();
        let shard = state.schedules.check(lease)?;
        Ok(shard.outbox.values().take(limit).cloned().collect())
    }

    async fn dispatched(&self, lease: &ShardLease, runs: &[Outbound]) -> Result<(), ScheduleError> {
        let mut state = self.lock();
        let shard = state.schedules.check(lease)?;
        shard.outbox.retain(|_, o| !runs.contains(o));
        Ok(())
    }

    async fn replies(
        &self,
        lease: &ShardLease,
        limit: usize,
    ) -> Result<Vec<ShardReply>, ScheduleError> {
        let mut state = self.lock();
        state.schedules.check(lease)?;
        let inbox = state.inboxes.shard(lease.shard);
        Ok(inbox
            .replies
            .iter()
            .take(limit)
            .enumerate()
            .map(|(n, body)| ShardReply::new(inbox.first + n as u64, body.clone()))
            .collect())
    }

    async fn ack_replies(&self, lease: &ShardLease, seq: u64) -> Result<(), ScheduleError> {
        let mut state = self.lock();
        state.schedules.check(lease)?;
        let inbox = state.inboxes.shard(lease.shard);
        while inbox.first <= seq && inbox.replies.pop_front().is_some() {
            inbox.first += 1;
        }
        Ok(())
    }
}
