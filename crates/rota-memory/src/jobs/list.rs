//! Listing a queue's jobs (see [`rota_core::jobs::list`]): every job of the
//! state is ordered by a key and the page starts after the cursor's key.
//! Each page walks the queue's records: this backend serves tests and one
//! process, whose queues are small.

use std::collections::BTreeMap;

use rota_core::BrokerError;
use rota_core::jobs::list::bad_cursor;
use rota_core::jobs::{JobPage, JobQuery, JobState};

use super::queue::{Entry, JobQueue};

/// Where a job sorts in its state's listing: two names, then two numbers.
type Key = (String, String, u64, u64);

fn key_of(state: JobState, entry: &Entry) -> Key {
    let job = &entry.record.job;
    let seq = entry.seq;
    match state {
        JobState::Scheduled => (String::new(), String::new(), job.scheduled_for_ms, seq),
        JobState::Queued => (job.partition.clone(), job.tenant.clone(), 0, seq),
        JobState::Running => (String::new(), String::new(), 0, seq),
        JobState::Dead => (String::new(), String::new(), 0, u64::MAX - entry.dead_seq),
        // Succeeded, failed, cancelled: the latest finished first.
        _ => (
            String::new(),
            String::new(),
            u64::MAX - entry.record.finished_at_ms.unwrap_or(0),
            u64::MAX - seq,
        ),
    }
}

fn encode((a, b, c, d): &Key) -> String {
    format!("{a} {b} {c} {d}")
}

fn decode(cursor: &str) -> Result<Key, BrokerError> {
    let parts: Vec<&str> = cursor.split(' ').collect();
    let [a, b, c, d] = parts[..] else {
        return Err(bad_cursor());
    };
    let number = |s: &str| s.parse::<u64>().map_err(|_| bad_cursor());
    Ok((a.to_owned(), b.to_owned(), number(c)?, number(d)?))
}

pub(super) fn list(queue: Option<&JobQueue>, query: &JobQuery) -> Result<JobPage, BrokerError> {
    let after = query.after.as_deref().map(decode).transpose()?;
    let Some(queue) = queue else {
        return Ok(JobPage::default());
    };
    let matching: BTreeMap<Key, &Entry> = queue
        .records
        .values()
        .filter(|e| e.record.state == query.state)
        .filter(|e| {
            query
                .tenant
                .as_ref()
                .is_none_or(|t| *t == e.record.job.tenant)
        })
        .map(|e| (key_of(query.state, e), e))
        .filter(|(k, _)| after.as_ref().is_none_or(|a| k > a))
        .collect();
    let mut jobs = Vec::new();
    let mut last = None;
    for (key, entry) in matching.iter().take(query.limit) {
        jobs.push(entry.record.clone());
        last = Some(key);
    }
    let next = (matching.len() > query.limit)
        .then(|| last.map(encode))
        .flatten();
    Ok(JobPage::new(jobs, next))
}
