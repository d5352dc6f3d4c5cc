//! Counting a queue's jobs: read-only, a page of at most [`PAGE`] entries
//! per round trip, so a queue with many partitions or running jobs never
//! makes Redis answer one long command.
//!
//! The totals of finished, dead and scheduled jobs are kept as they change;
//! the per-partition figures are summed here: queued jobs from the lanes of
//! the partitions in the ring and of the parked tenants, scheduled ones
//! from `psched`, running ones from the consumers' held hashes. A page is read at one instant, not the whole count: a job
//! that moves while the pages are read may be counted in both places or in
//! neither.

use std::collections::{BTreeMap, HashSet};

use rota_core::BrokerError;
use rota_core::jobs::{JobState, QueueCounts, StateCounts};

use super::keys::QueueKeys;
use super::record::parse_state;
use crate::broker::RedisBroker;
use crate::error::map;

/// Entries read per round trip.
const PAGE: usize = 1000;

/// The mark on a parked tenant's running count.
const PARKED: i64 = 1 << 40;

/// The members of a set (`SSCAN`) or sorted set (`ZSCAN`), a page per
/// round trip.
async fn members(
    conn: &mut crate::conn::Conn,
    scan: &str,
    key: &str,
) -> Result<Vec<String>, BrokerError> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut cursor = 0u64;
    loop {
        let (next, flat): (u64, Vec<String>) = redis::cmd(scan)
            .arg(key)
            .arg(cursor)
            .arg("COUNT")
            .arg(PAGE)
            .query_async(conn)
            .await
            .map_err(map)?;
        // A sorted set's scores come between its members.
        let step = if scan == "ZSCAN" { 2 } else { 1 };
        out.extend(
            flat.into_iter()
                .step_by(step)
                .filter(|m| seen.insert(m.clone())),
        );
        cursor = next;
        if cursor == 0 {
            return Ok(out);
        }
    }
}

pub(super) async fn counts(
    broker: &RedisBroker,
    keys: &QueueKeys,
) -> Result<QueueCounts, BrokerError> {
    let mut conn = broker.conn();
    let (fin, dead, scheduled, consumers): (Vec<(String, u64)>, u64, u64, Vec<String>) =
        redis::pipe()
            .cmd("HGETALL")
            .arg(keys.key("fin"))
            .cmd("ZCARD")
            .arg(keys.key("dead"))
            .cmd("ZCARD")
            .arg(keys.key("sched"))
            .cmd("SMEMBERS")
            .arg(keys.key("consumers"))
            .query_async(&mut conn)
            .await
            .map_err(map)?;
    let mut counts = QueueCounts::default();
    for (state, n) in fin {
        if let Some(state) = parse_state(&state) {
            counts.total.add(state, n);
        }
    }
    counts.total.add(JobState::Dead, dead);
    counts.total.add(JobState::Scheduled, scheduled);
    let mut parts: BTreeMap<String, StateCounts> = BTreeMap::new();

    // Queued, per lane (a list; jobs cancelled while queued stay in it,
    // counted in `tomb`, until a claim meets them). Each lane holding jobs
    // is a candidate of a partition in the ring (the partition's own lane,
    // named after it, or those in `lanes:<p>` of a grouped partition), or
    // parked (in `parked:<t>` of a tenant whose running count carries the
    // 2^40 mark). A lane of partition p is "p" or "p:<tenant>:<priority>".
    let mut lanes: Vec<String> = Vec::new();
    let mut seen = HashSet::new();
    let mut cursor = 0u64;
    loop {
        let (next, flat): (u64, Vec<String>) = redis::cmd("ZSCAN")
            .arg(keys.key("ring"))
            .arg(cursor)
            .arg("COUNT")
            .arg(PAGE)
            .query_async(&mut conn)
            .await
            .map_err(map)?;
        let parts: Vec<String> = flat
            .into_iter()
            .step_by(2)
            .filter(|p| seen.insert(p.clone()))
            .collect();
        if !parts.is_empty() {
            let grouped: Vec<bool> = redis::cmd("SMISMEMBER")
                .arg(keys.key("grp"))
                .arg(&parts)
                .query_async(&mut conn)
                .await
                .map_err(map)?;
            for (part, grouped) in parts.into_iter().zip(grouped) {
                if grouped {
                    lanes.extend(members(&mut conn, "ZSCAN", &keys.lanes_of(&part)).await?);
                } else {
                    lanes.push(part);
                }
            }
        }
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    let mut seen = HashSet::new();
    loop {
        let (next, flat): (u64, Vec<(String, i64)>) = redis::cmd("HSCAN")
            .arg(keys.key("run"))
            .arg(cursor)
            .arg("COUNT")
            .arg(PAGE)
            .query_async(&mut conn)
            .await
            .map_err(map)?;
        for (tenant, running) in flat {
            if running >= PARKED && seen.insert(tenant.clone()) {
                lanes.extend(members(&mut conn, "SSCAN", &keys.parked(&tenant)).await?);
            }
        }
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    let lanes: Vec<String> = {
        let mut seen = HashSet::new();
        lanes
            .into_iter()
            .filter(|l| seen.insert(l.clone()))
            .collect()
    };
    let tomb = keys.key("tomb");
    for page in lanes.chunks(PAGE) {
        let mut pipe = redis::pipe();
        for lane in page {
            pipe.cmd("LLEN").arg(keys.lane(lane));
            pipe.cmd("HGET").arg(&tomb).arg(lane);
        }
        let sizes: Vec<(u64, Option<u64>)> = pipe.query_async(&mut conn).await.map_err(map)?;
        for (lane, (len, ghosts)) in page.iter().zip(sizes) {
            let n = len.saturating_sub(ghosts.unwrap_or(0));
            if n > 0 {
                let part = lane.split(':').next().unwrap_or(lane);
                parts
                    .entry(part.to_owned())
                    .or_default()
                    .add(JobState::Queued, n);
                counts.total.add(JobState::Queued, n);
            }
        }
    }

    // Scheduled, per partition.
    let mut seen = HashSet::new();
    loop {
        let (next, pairs): (u64, Vec<(String, u64)>) = redis::cmd("HSCAN")
            .arg(keys.key("psched"))
            .arg(cursor)
            .arg("COUNT")
            .arg(PAGE)
            .query_async(&mut conn)
            .await
            .map_err(map)?;
        for (part, n) in pairs {
            if n > 0 && seen.insert(part.clone()) {
                parts.entry(part).or_default().add(JobState::Scheduled, n);
            }
        }
        cursor = next;
        if cursor == 0 {
            break;
        }
    }

    // Running, per partition: the jobs each consumer holds.
    for consumer in consumers {
        let mut seen = HashSet::new();
        loop {
            let (next, flat): (u64, Vec<String>) = redis::cmd("HSCAN")
                .arg(keys.held(&consumer))
                .arg(cursor)
                .arg("COUNT")
                .arg(PAGE)
                .query_async(&mut conn)
                .await
                .map_err(map)?;
            // Job ids and claim times alternate.
            let ids: Vec<&String> = flat
                .iter()
                .step_by(2)
                .filter(|id| seen.insert((*id).clone()))
                .collect();
            if !ids.is_empty() {
                let mut pipe = redis::pipe();
                for id in &ids {
                    pipe.cmd("HGET").arg(keys.job(id)).arg("p");
                }
                let found: Vec<Option<String>> = pipe.query_async(&mut conn).await.map_err(map)?;
                for part in found.into_iter().flatten() {
                    parts.entry(part).or_default().add(JobState::Running, 1);
                    counts.total.add(JobState::Running, 1);
                }
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
    }
    counts.partitions = parts;
    Ok(counts)
}
