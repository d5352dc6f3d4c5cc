//! Schedules in the embedded store: [`ScheduleStore`] for [`SqliteBroker`].
//!
//! * `rota_schedules` — one row per schedule: its version and due instant
//!   in columns (the due index is a partial index on `(shard, due_ms)`),
//!   the rest as JSON.
//! * `rota_schedule_runs` — the run history, a row per entry, newest by
//!   `seq`, at most [`MAX_HISTORY`] per schedule.
//! * `rota_schedule_shards` — each shard's lease: holder, until when, and
//!   the latest epoch (never reused).
//! * `rota_schedule_outbox` — runs committed and not yet marked enqueued.
//! * `rota_schedulers` — schedulers alive, until when.
//!
//! A shard's inbox is an inbox like the others (rows of `rota_replies`),
//! whose replies never expire; its address is `sqlite:shard:<n>`.

use async_trait::async_trait;
use rota_core::BrokerError;
use rota_core::schedules::{
    Change, MAX_HISTORY, Outbound, Page, RunRecord, RunRef, Schedule, ScheduleError, ScheduleStore,
    ShardLease, ShardOwner, ShardReply, shard_of,
};
use rusqlite::{OptionalExtension, Transaction, params};

use crate::SqliteBroker;
use crate::tx::{Error, Result, now, write};

/// The shards of an embedded store: one machine needs few (each shard's
/// round is a few transactions on the one file, whatever it handles).
pub(crate) const SHARDS: u32 = 4;

/// What every shard inbox's address starts with.
const SHARD_PREFIX: &str = "sqlite:shard:";

/// The tables of the schedule store, applied on every open.
pub(crate) const SCHEDULES_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS rota_schedules (
    id      TEXT    PRIMARY KEY,
    tenant  TEXT    NOT NULL,
    shard   INTEGER NOT NULL,
    version INTEGER NOT NULL,
    -- When the shard's owner must look at it (Unix ms); NULL for never.
    due_ms  INTEGER,
    body    TEXT    NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS rota_schedules_tenant ON rota_schedules (tenant, id);
CREATE INDEX IF NOT EXISTS rota_schedules_due
    ON rota_schedules (shard, due_ms) WHERE due_ms IS NOT NULL;
CREATE TABLE IF NOT EXISTS rota_schedule_runs (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    schedule      TEXT    NOT NULL,
    occurrence_ms INTEGER NOT NULL,
    has_job       INTEGER NOT NULL,
    body          TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS rota_schedule_runs_of ON rota_schedule_runs (schedule, seq);
CREATE TABLE IF NOT EXISTS rota_schedule_shards (
    shard    INTEGER PRIMARY KEY,
    holder   TEXT,
    until_ms INTEGER NOT NULL DEFAULT 0,
    epoch    INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS rota_schedule_outbox (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    shard    INTEGER NOT NULL,
    schedule TEXT    NOT NULL,
    body     TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS rota_schedule_outbox_shard ON rota_schedule_outbox (shard, seq);
CREATE TABLE IF NOT EXISTS rota_schedulers (
    name     TEXT    PRIMARY KEY,
    until_ms INTEGER NOT NULL
) WITHOUT ROWID;
";

/// The address of shard `shard`'s inbox.
pub(crate) fn shard_address(shard: u32) -> String {
    format!("{SHARD_PREFIX}{shard}")
}

/// Whether `address` is a shard's inbox (whose replies never expire).
pub(crate) fn is_shard_address(address: &str) -> bool {
    address
        .strip_prefix(SHARD_PREFIX)
        .and_then(|n| n.parse::<u32>().ok().filter(|s| s.to_string() == n))
        .is_some_and(|s| s < SHARDS)
}

fn json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value)
        .map_err(|e| Error::Broker(BrokerError::Protocol(format!("cannot encode: {e}"))))
}

fn parse<T: serde::de::DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| {
        Error::Broker(BrokerError::Protocol(format!(
            "a stored schedule does not decode: {e}"
        )))
    })
}

fn load(tx: &Transaction<'_>, id: &str) -> Result<Option<Schedule>> {
    let body: Option<String> = tx
        .prepare_cached("SELECT body FROM rota_schedules WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    body.map(|b| parse(&b)).transpose()
}

/// Writes `s` whole (insert or replace).
fn store(tx: &Transaction<'_>, s: &Schedule) -> Result<()> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO rota_schedules (id, tenant, shard, version, due_ms, body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        s.id,
        s.tenant,
        shard_of(&s.id, SHARDS),
        i64::try_from(s.version).unwrap_or(i64::MAX),
        s.due_ms(),
        json(s)?
    ])?;
    Ok(())
}

/// Whether `lease` is its shard's live, current grant.
fn check(tx: &Transaction<'_>, lease: &ShardLease) -> Result<()> {
    let row: Option<(Option<String>, i64, i64)> = tx
        .prepare_cached(
            "SELECT holder, until_ms, epoch FROM rota_schedule_shards WHERE shard = ?1",
        )?
        .query_row([lease.shard], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    match row {
        Some((Some(holder), until, epoch))
            if holder == lease.holder
                && u64::try_from(epoch).ok() == Some(lease.epoch)
                && until > now() =>
        {
            Ok(())
        }
        _ => Err(Error::LeaseLost),
    }
}

fn apply(
    tx: &Transaction<'_>,
    lease: &ShardLease,
    change: Change,
) -> Result<std::result::Result<Schedule, ScheduleError>> {
    let id = change.schedule.id.clone();
    if shard_of(&id, SHARDS) != lease.shard {
        return Ok(Err(ScheduleError::Invalid {
            field: "id",
            problem: format!("schedule {id:?} is not in shard {}", lease.shard),
        }));
    }
    let version: Option<i64> = tx
        .prepare_cached("SELECT version FROM rota_schedules WHERE id = ?1")?
        .query_row([&id], |r| r.get(0))
        .optional()?;
    match version {
        None => return Ok(Err(ScheduleError::NotFound(id))),
        Some(v) if u64::try_from(v).ok() != Some(change.schedule.version) => {
            return Ok(Err(ScheduleError::Conflict(id)));
        }
        Some(_) => {}
    }
    let mut schedule = change.schedule;
    schedule.version += 1;
    store(tx, &schedule)?;
    for run in &change.dispatch {
        tx.prepare_cached(
            "INSERT INTO rota_schedule_outbox (shard, schedule, body) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![lease.shard, id, json(run)?])?;
    }
    for record in change.history.iter().chain(&change.finished) {
        let updated = if record.job.is_some() && change.finished.contains(record) {
            let old: Option<(i64, String)> = tx
                .prepare_cached(
                    "SELECT seq, body FROM rota_schedule_runs
                     WHERE schedule = ?1 AND occurrence_ms = ?2 AND has_job = 1
                     ORDER BY seq DESC LIMIT 1",
                )?
                .query_row(params![id, record.occurrence_ms], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()?;
            match old {
                Some((seq, body)) => {
                    let old: RunRecord = parse(&body)?;
                    let mut new = record.clone();
                    new.at_ms = old.at_ms;
                    tx.prepare_cached("UPDATE rota_schedule_runs SET body = ?1 WHERE seq = ?2")?
                        .execute(params![json(&new)?, seq])?;
                    true
                }
                None => false,
            }
        } else {
            false
        };
        if !updated {
            tx.prepare_cached(
                "INSERT INTO rota_schedule_runs (schedule, occurrence_ms, has_job, body)
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                id,
                record.occurrence_ms,
                record.job.is_some(),
                json(record)?
            ])?;
        }
    }
    if !change.history.is_empty() || !change.finished.is_empty() {
        // Bounded: the oldest beyond the last MAX_HISTORY go.
        tx.prepare_cached(
            "DELETE FROM rota_schedule_runs WHERE schedule = ?1 AND seq <= (
                 SELECT seq FROM rota_schedule_runs WHERE schedule = ?1
                 ORDER BY seq DESC LIMIT 1 OFFSET ?2)",
        )?
        .execute(params![id, MAX_HISTORY as i64])?;
    }
    Ok(Ok(schedule))
}

#[async_trait]
impl ScheduleStore for SqliteBroker {
    fn shards(&self) -> u32 {
        SHARDS
    }

    fn shard_inbox(&self, shard: u32) -> String {
        shard_address(shard)
    }

    async fn insert(&self, schedule: Schedule) -> std::result::Result<(), ScheduleError> {
        self.with(move |c| {
            write(c, |tx| {
                if load(tx, &schedule.id)?.is_some() {
                    return Ok(Err(ScheduleError::Exists(schedule.id.clone())));
                }
                store(tx, &schedule)?;
                Ok(Ok(()))
            })
        })
        .await?
    }

    async fn upsert_many(
        &self,
        schedules: Vec<Schedule>,
    ) -> std::result::Result<(), ScheduleError> {
        self.with(move |c| {
            write(c, |tx| {
                for s in &schedules {
                    let mut s = s.clone();
                    // Past any version read before: such a read cannot
                    // commit over it.
                    if let Some(old) = load(tx, &s.id)? {
                        s.version = old.version + 1;
                    }
                    store(tx, &s)?;
                }
                Ok(())
            })
        })
        .await?;
        Ok(())
    }

    async fn replace(&self, schedule: Schedule) -> std::result::Result<Schedule, ScheduleError> {
        self.with(move |c| {
            write(c, |tx| {
                let Some(stored) = load(tx, &schedule.id)? else {
                    return Ok(Err(ScheduleError::NotFound(schedule.id.clone())));
                };
                if stored.version != schedule.version {
                    return Ok(Err(ScheduleError::Conflict(schedule.id.clone())));
                }
                let mut s = schedule;
                s.version += 1;
                store(tx, &s)?;
                Ok(Ok(s))
            })
        })
        .await?
    }

    async fn delete(&self, id: &str) -> std::result::Result<bool, ScheduleError> {
        let id = id.to_owned();
        Ok(self
            .with(move |c| {
                write(c, |tx| {
                    let n = tx
                        .prepare_cached("DELETE FROM rota_schedules WHERE id = ?1")?
                        .execute([&id])?;
                    tx.prepare_cached("DELETE FROM rota_schedule_runs WHERE schedule = ?1")?
                        .execute([&id])?;
                    Ok(n > 0)
                })
            })
            .await?)
    }

    async fn get(&self, id: &str) -> std::result::Result<Option<Schedule>, ScheduleError> {
        let id = id.to_owned();
        // A read: a deferred transaction, no write lock.
        Ok(self
            .with(move |c| {
                let tx = c.transaction()?;
                load(&tx, &id)
            })
            .await?)
    }

    async fn list(
        &self,
        tenant: &str,
        after: Option<&str>,
        limit: usize,
    ) -> std::result::Result<Page, ScheduleError> {
        let (tenant, after) = (tenant.to_owned(), after.unwrap_or("").to_owned());
        let limit = limit.min(10_000);
        let schedules: Vec<Schedule> = self
            .with(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT body FROM rota_schedules WHERE tenant = ?1 AND id > ?2
                     ORDER BY id LIMIT ?3",
                )?;
                let bodies: Vec<String> = stmt
                    .query_map(params![tenant, after, limit as i64 + 1], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                bodies
                    .iter()
                    .map(|b| parse(b))
                    .collect::<Result<Vec<Schedule>>>()
            })
            .await?;
        Ok(Page::of_read(schedules, limit))
    }

    async fn runs(
        &self,
        id: &str,
        limit: usize,
    ) -> std::result::Result<Vec<RunRecord>, ScheduleError> {
        let (id, wanted) = (id.to_owned(), id.to_owned());
        let limit = limit.min(MAX_HISTORY) as i64;
        let got: Option<Vec<RunRecord>> = self
            .with(move |c| {
                write(c, |tx| {
                    if load(tx, &id)?.is_none() {
                        return Ok(None);
                    }
                    let mut stmt = tx.prepare_cached(
                        "SELECT body FROM rota_schedule_runs WHERE schedule = ?1
                         ORDER BY seq DESC LIMIT ?2",
                    )?;
                    let bodies: Vec<String> = stmt
                        .query_map(params![id, limit], |r| r.get(0))?
                        .collect::<rusqlite::Result<_>>()?;
                    Ok(Some(
                        bodies
                            .iter()
                            .map(|b| parse(b))
                            .collect::<Result<Vec<_>>>()?,
                    ))
                })
            })
            .await?;
        got.ok_or(ScheduleError::NotFound(wanted))
    }

    async fn acquire_shard(
        &self,
        shard: u32,
        holder: &str,
        ttl_ms: u64,
    ) -> std::result::Result<Option<ShardLease>, ScheduleError> {
        if shard >= SHARDS {
            return Err(ScheduleError::Invalid {
                field: "shard",
                problem: format!("{shard} is not below {SHARDS}"),
            });
        }
        let holder = holder.to_owned();
        Ok(self
            .with(move |c| {
                write(c, |tx| {
                    let row: Option<(Option<String>, i64, i64)> = tx
                        .prepare_cached(
                            "SELECT holder, until_ms, epoch FROM rota_schedule_shards WHERE shard = ?1",
                        )?
                        .query_row([shard], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                        .optional()?;
                    let now = now();
                    let epoch = match row {
                        Some((Some(_), until, _)) if until > now => return Ok(None),
                        Some((_, _, epoch)) => epoch + 1,
                        None => 1,
                    };
                    let until = now.saturating_add(ttl_ms as i64);
                    tx.prepare_cached(
                        "INSERT OR REPLACE INTO rota_schedule_shards (shard, holder, until_ms, epoch)
                         VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(params![shard, holder, until, epoch])?;
                    Ok(Some(ShardLease::new(shard, holder.clone(), epoch as u64, until)))
                })
            })
            .await?)
    }

    async fn renew_shard(
        &self,
        lease: &ShardLease,
        ttl_ms: u64,
    ) -> std::result::Result<i64, ScheduleError> {
        let lease = lease.clone();
        Ok(self
            .with(move |c| {
                write(c, |tx| {
                    check(tx, &lease)?;
                    let until = now().saturating_add(ttl_ms as i64);
                    tx.prepare_cached(
                        "UPDATE rota_schedule_shards SET until_ms = ?1 WHERE shard = ?2",
                    )?
                    .execute(params![until, lease.shard])?;
                    Ok(until)
                })
            })
            .await?)
    }

    async fn release_shard(&self, lease: &ShardLease) -> std::result::Result<(), ScheduleError> {
        let lease = lease.clone();
        Ok(self
            .with(move |c| {
                write(c, |tx| {
                    if check(tx, &lease).is_ok() {
                        tx.prepare_cached(
                            "UPDATE rota_schedule_shards SET holder = NULL, until_ms = 0 WHERE shard = ?1",
                        )?
                        .execute([lease.shard])?;
                    }
                    Ok(())
                })
            })
            .await?)
    }

    async fn shard_owners(&self) -> std::result::Result<Vec<ShardOwner>, ScheduleError> {
        Ok(self
            .with(|c| {
                let now = now();
                let mut stmt = c.prepare_cached(
                    "SELECT shard, holder, until_ms, epoch FROM rota_schedule_shards",
                )?;
                let rows: Vec<(u32, Option<String>, i64, i64)> = stmt
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                    .collect::<rusqlite::Result<_>>()?;
                Ok((0..SHARDS)
                    .map(|n| match rows.iter().find(|r| r.0 == n) {
                        Some((_, holder, until, epoch)) => ShardOwner::new(
                            n,
                            holder.clone().filter(|_| *until > now),
                            *epoch as u64,
                        ),
                        None => ShardOwner::new(n, None, 0),
                    })
                    .collect())
            })
            .await?)
    }

    async fn heartbeat(
        &self,
        scheduler: &str,
        ttl_ms: u64,
    ) -> std::result::Result<Vec<String>, ScheduleError> {
        let name = scheduler.to_owned();
        Ok(self
            .with(move |c| {
                write(c, |tx| {
                    let now = now();
                    tx.prepare_cached("DELETE FROM rota_schedulers WHERE until_ms <= ?1")?
                        .execute([now])?;
                    tx.prepare_cached(
                        "INSERT OR REPLACE INTO rota_schedulers (name, until_ms) VALUES (?1, ?2)",
                    )?
                    .execute(params![name, now.saturating_add(ttl_ms as i64)])?;
                    let mut stmt =
                        tx.prepare_cached("SELECT name FROM rota_schedulers ORDER BY name")?;
                    let names = stmt
                        .query_map([], |r| r.get(0))?
                        .collect::<rusqlite::Result<Vec<String>>>()?;
                    Ok(names)
                })
            })
            .await?)
    }

    async fn due(
        &self,
        lease: &ShardLease,
        until_ms: i64,
        limit: usize,
    ) -> std::result::Result<Vec<Schedule>, ScheduleError> {
        let lease = lease.clone();
        Ok(self
            .with(move |c| {
                write(c, |tx| {
                    check(tx, &lease)?;
                    let mut stmt = tx.prepare_cached(
                        "SELECT body FROM rota_schedules INDEXED BY rota_schedules_due
                         WHERE shard = ?1 AND due_ms IS NOT NULL AND due_ms <= ?2
                         ORDER BY due_ms LIMIT ?3",
                    )?;
                    let bodies: Vec<String> = stmt
                        .query_map(params![lease.shard, until_ms, limit as i64], |r| r.get(0))?
                        .collect::<rusqlite::Result<_>>()?;
                    bodies.iter().map(|b| parse(b)).collect()
                })
            })
            .await?)
    }

    async fn next_due(
        &self,
        lease: &ShardLease,
    ) -> std::result::Result<Option<i64>, ScheduleError> {
        let lease = lease.clone();
        Ok(self
            .with(move |c| {
                write(c, |tx| {
                    check(tx, &lease)?;
                    Ok(tx
                        .prepare_cached(
                            "SELECT min(due_ms) FROM rota_schedules INDEXED BY rota_schedules_due
                             WHERE shard = ?1 AND due_ms IS NOT NULL",
                        )?
                        .query_row([lease.shard], |r| r.get(0))?)
                })
            })
            .await?)
    }

    async fn commit(
        &self,
        lease: &ShardLease,
        changes: Vec<Change>,
    ) -> std::result::Result<Vec<std::result::Result<Schedule, ScheduleError>>, ScheduleError> {
        let lease = lease.clone();
        Ok(self
            .with(move |c| {
                write(c, |tx| {
                    check(tx, &lease)?;
                    changes
                        .into_iter()
                        .map(|change| apply(tx, &lease, change))
                        .collect()
                })
            })
            .await?)
    }

    async fn outbox(
        &self,
        lease: &ShardLease,
        limit: usize,
    ) -> std::result::Result<Vec<Outbound>, ScheduleError> {
        let lease = lease.clone();
        Ok(self
            .with(move |c| {
                write(c, |tx| {
                    check(tx, &lease)?;
                    let mut stmt = tx.prepare_cached(
                        "SELECT schedule, body FROM rota_schedule_outbox WHERE shard = ?1
                         ORDER BY seq LIMIT ?2",
                    )?;
                    let rows: Vec<(String, String)> = stmt
                        .query_map(params![lease.shard, limit as i64], |r| {
                            Ok((r.get(0)?, r.get(1)?))
                        })?
                        .collect::<rusqlite::Result<_>>()?;
                    rows.into_iter()
                        .map(|(s, b)| Ok(Outbound::new(s, parse::<RunRef>(&b)?)))
                        .collect()
                })
            })
            .await?)
    }

    async fn dispatched(
        &self,
        lease: &ShardLease,
        runs: &[Outbound],
    ) -> std::result::Result<(), ScheduleError> {
        let lease = lease.clone();
        let runs: Vec<(String, String)> = runs
            .iter()
            .map(|o| Ok((o.schedule.clone(), json(&o.run)?)))
            .collect::<Result<_>>()
            .map_err(|_| {
                ScheduleError::Store(BrokerError::Protocol("cannot encode a run".into()))
            })?;
        Ok(self
            .with(move |c| {
                write(c, |tx| {
                    check(tx, &lease)?;
                    let mut stmt = tx.prepare_cached(
                        "DELETE FROM rota_schedule_outbox WHERE shard = ?1 AND schedule = ?2 AND body = ?3",
                    )?;
                    for (s, b) in &runs {
                        stmt.execute(params![lease.shard, s, b])?;
                    }
                    Ok(())
                })
            })
            .await?)
    }

    async fn replies(
        &self,
        lease: &ShardLease,
        limit: usize,
    ) -> std::result::Result<Vec<ShardReply>, ScheduleError> {
        let lease = lease.clone();
        Ok(self
            .with(move |c| {
                write(c, |tx| {
                    check(tx, &lease)?;
                    let mut stmt = tx.prepare_cached(
                        "SELECT id, payload FROM rota_replies WHERE inbox = ?1 ORDER BY id LIMIT ?2",
                    )?;
                    let rows = stmt
                        .query_map(params![shard_address(lease.shard), limit as i64], |r| {
                            let id: i64 = r.get(0)?;
                            let body: Vec<u8> = r.get(1)?;
                            Ok(ShardReply::new(id as u64, body.into()))
                        })?
                        .collect::<rusqlite::Result<_>>()?;
                    Ok(rows)
                })
            })
            .await?)
    }

    async fn ack_replies(
        &self,
        lease: &ShardLease,
        seq: u64,
    ) -> std::result::Result<(), ScheduleError> {
        let lease = lease.clone();
        Ok(self
            .with(move |c| {
                write(c, |tx| {
                    check(tx, &lease)?;
                    tx.prepare_cached("DELETE FROM rota_replies WHERE inbox = ?1 AND id <= ?2")?
                        .execute(params![shard_address(lease.shard), seq as i64])?;
                    Ok(())
                })
            })
            .await?)
    }
}
