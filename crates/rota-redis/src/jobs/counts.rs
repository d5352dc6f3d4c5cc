//! Counting a queue's jobs: read-only, a page of at most [`PAGE`] entries
//! per round trip, so a queue with many partitions or running jobs never
//! makes Redis answer one long command.
//!
//! The totals of finished, dead and scheduled jobs are kept as they change;
//! the per-partition figures are summed here: queued jobs from the lanes
//! registry, scheduled ones from `psched`, running ones from the consumers'
//! held sets. A page is read at one instant, not the whole count: a job
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

    // Queued, per lane: a lane is "<partition>" or "<partition>:<tenant>".
    let mut seen = HashSet::new();
    let mut cursor = 0u64;
    loop {
        let (next, lanes): (u64, Vec<String>) = redis::cmd("SSCAN")
            .arg(keys.key("lanes"))
            .arg(cursor)
            .arg("COUNT")
            .arg(PAGE)
            .query_async(&mut conn)
            .await
            .map_err(map)?;
        let lanes: Vec<String> = lanes.into_iter().filter(|l| seen.insert(l.clone())).collect();
        if !lanes.is_empty() {
            let mut pipe = redis::pipe();
            for lane in &lanes {
                pipe.cmd("ZCARD").arg(keys.lane(lane));
            }
            let sizes: Vec<u64> = pipe.query_async(&mut conn).await.map_err(map)?;
            for (lane, n) in lanes.iter().zip(sizes) {
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
        cursor = next;
        if cursor == 0 {
            break;
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
            let (next, flat): (u64, Vec<String>) = redis::cmd("ZSCAN")
                .arg(keys.held(&consumer))
                .arg(cursor)
                .arg("COUNT")
                .arg(PAGE)
                .query_async(&mut conn)
                .await
                .map_err(map)?;
            // Members and scores alternate.
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
