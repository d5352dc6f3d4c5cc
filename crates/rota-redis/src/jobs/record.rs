//! Reading what the job functions return: job records and claimed jobs.

use std::collections::BTreeMap;

use rota_core::BrokerError;
use rota_core::jobs::{Attempt, Job, JobId, JobRecord, JobState};
use serde_json::value::RawValue;

/// The name a state has in a job's hash.
pub(crate) fn state_name(state: JobState) -> &'static str {
    match state {
        JobState::Scheduled => "scheduled",
        JobState::Queued => "queued",
        JobState::Running => "running",
        JobState::Succeeded => "succeeded",
        JobState::Failed => "failed",
        JobState::Cancelled => "cancelled",
        _ => "dead",
    }
}

pub(crate) fn parse_state(s: &str) -> Option<JobState> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
}

pub(crate) fn protocol(what: impl std::fmt::Display) -> BrokerError {
    BrokerError::Protocol(what.to_string())
}

/// A job as stored (`j` in its hash): its JSON without what the store
/// knows otherwise or what has its default — the id and queue (the key
/// names them), a run id equal to the id, a partition equal to the tenant,
/// attempt 1 (the hash keeps the attempt), nulls, no headers, priority 0,
/// a due time equal to the enqueue time. A third of the bytes, for every
/// copy a job's JSON goes through.
pub(crate) fn pack(job: &Job) -> Result<String, BrokerError> {
    // Field by field as text, so the payload keeps its very bytes.
    let full = serde_json::to_string(job).map_err(protocol)?;
    let mut map: Fields = serde_json::from_str(&full).map_err(protocol)?;
    let text = |map: &Fields, name: &str| map.get(name).map(|v| v.get().to_owned());
    let id = text(&map, "id");
    map.remove("id");
    map.remove("queue");
    if text(&map, "run_id") == id {
        map.remove("run_id");
    }
    if text(&map, "partition") == text(&map, "tenant") {
        map.remove("partition");
    }
    if text(&map, "scheduled_for_ms") == text(&map, "enqueued_at_ms") {
        map.remove("scheduled_for_ms");
    }
    map.retain(|name, value| {
        !matches!(
            (name.as_str(), value.get()),
            (_, "null") | ("attempt", "1") | ("priority", "0") | ("headers", "{}")
        )
    });
    serde_json::to_string(&map).map_err(protocol)
}

/// A job's JSON, field by field as text.
type Fields = BTreeMap<String, Box<RawValue>>;

/// The job `pack` stored, as job `id` of `queue`.
pub(crate) fn unpack(stored: &[u8], id: JobId, queue: &str) -> Result<Job, BrokerError> {
    let mut map: Fields = serde_json::from_slice(stored).map_err(protocol)?;
    let raw = |v: String| RawValue::from_string(v).map_err(protocol);
    let quoted = |s: &str| serde_json::to_string(s).map_err(protocol);
    let id = quoted(&id.to_string())?;
    if !map.contains_key("run_id") {
        map.insert("run_id".into(), raw(id.clone())?);
    }
    map.insert("id".into(), raw(id)?);
    map.insert("queue".into(), raw(quoted(queue)?)?);
    for (name, from) in [
        ("partition", "tenant"),
        ("scheduled_for_ms", "enqueued_at_ms"),
    ] {
        if !map.contains_key(name)
            && let Some(v) = map.get(from)
        {
            let v = raw(v.get().to_owned())?;
            map.insert(name.into(), v);
        }
    }
    for (name, default) in [("attempt", "1"), ("priority", "0"), ("headers", "{}")] {
        if !map.contains_key(name) {
            map.insert(name.into(), raw(default.to_owned())?);
        }
    }
    let full = serde_json::to_string(&map).map_err(protocol)?;
    serde_json::from_str(&full).map_err(protocol)
}

/// One job as `read.lua` returns it: its hash (field, value, …) and
/// whether it runs.
pub(crate) type RawRecord = (Vec<Vec<u8>>, u8);

/// Builds a record from a job's hash, or `None` if it is gone. Fields: `j`
/// (the job as accepted), `a` (attempt, absent for 1), `due` (when due, if
/// it changed since), `s`, `r`, `rs`, `f`, and `h<n>` per attempt, `n`
/// growing with each.
pub(crate) fn record(
    (fields, running): RawRecord,
    id: JobId,
    queue: &str,
) -> Result<Option<JobRecord>, BrokerError> {
    let mut json = None;
    let mut get: BTreeMap<&str, &[u8]> = BTreeMap::new();
    let mut history: Vec<(u64, &[u8])> = Vec::new();
    for pair in fields.chunks_exact(2) {
        let (name, value) = (
            std::str::from_utf8(&pair[0]).map_err(protocol)?,
            &pair[1][..],
        );
        match name {
            "j" => json = Some(value),
            _ if name.starts_with('h') && name.len() > 1 => {
                let n = name[1..].parse().map_err(protocol)?;
                history.push((n, value));
            }
            _ => {
                get.insert(name, value);
            }
        }
    }
    let Some(json) = json else {
        return Ok(None);
    };
    let text = |name: &str| get.get(name).and_then(|v| std::str::from_utf8(v).ok());
    let mut job = unpack(json, id, queue)?;
    job.attempt = text("a").and_then(|a| a.parse().ok()).unwrap_or(1);
    if let Some(due) = text("due").and_then(|d| d.parse().ok()) {
        job.scheduled_for_ms = due;
    }
    history.sort_unstable_by_key(|(n, _)| *n);
    let attempts: Vec<Attempt> = history
        .iter()
        .map(|(_, a)| serde_json::from_slice(a))
        .collect::<Result<_, _>>()
        .map_err(protocol)?;
    let mut state = text("s").and_then(parse_state).unwrap_or(JobState::Queued);
    if running == 1 {
        state = JobState::Running;
    }
    let mut record = JobRecord::new(job, 0);
    record.state = state;
    record.attempts = attempts;
    record.result = get.get("r").and_then(|r| serde_json::from_slice(r).ok());
    record.reason = text("rs").map(str::to_owned);
    record.finished_at_ms = text("f").and_then(|f| f.parse().ok());
    Ok(Some(record))
}

/// A claimed job of `queue` as the functions return it, its lane entry:
/// `<score> <id> <attempt> <due or -> <stored JSON>`.
pub(crate) fn claimed(row: &[u8], queue: &str) -> Result<Job, BrokerError> {
    let mut parts = row.splitn(5, |b| *b == b' ');
    let (Some(_score), Some(id), Some(attempt), Some(due), Some(json)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(protocol("a claimed job came back malformed"));
    };
    let number = |b: &[u8]| {
        std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
    };
    let id = JobId::parse(std::str::from_utf8(id).map_err(protocol)?)?;
    let mut job = unpack(json, id, queue)?;
    job.attempt = number(attempt)
        .and_then(|a| u32::try_from(a).ok())
        .ok_or_else(|| protocol("a claimed job's attempt is not a number"))?;
    if let Some(due) = number(due) {
        job.scheduled_for_ms = due;
    }
    Ok(job)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rota_core::jobs::NewJob;

    #[test]
    fn a_claimed_row_keeps_spaces_in_its_json() {
        let id = JobId::new();
        let new = NewJob::new("q", "t", "k", &serde_json::json!({"a b": 1})).unwrap();
        let job = Job::accept(id, &new, 5);
        let json = pack(&job).unwrap();
        let got = claimed(format!("12 {id} 3 - {json}").as_bytes(), "q").unwrap();
        assert_eq!(got.attempt, 3);
        assert_eq!(got.scheduled_for_ms, 5);
        assert_eq!(got.payload, new.payload);
        let got = claimed(format!("-3000000000012 {id} 1 77 {json}").as_bytes(), "q").unwrap();
        assert_eq!(got.scheduled_for_ms, 77);
    }

    #[test]
    fn a_stored_job_drops_what_the_store_knows_and_comes_back_whole() {
        let id = JobId::new();
        let plain = NewJob::new("mail", "acme", "send", &serde_json::json!({"to": "a"})).unwrap();
        let job = Job::accept(id, &plain, 1_700_000_000_000);
        let stored = pack(&job).unwrap();
        assert_eq!(
            stored,
            r#"{"enqueued_at_ms":1700000000000,"kind":"send","payload":{"to":"a"},"tenant":"acme"}"#
        );
        assert_eq!(unpack(stored.as_bytes(), id, "mail").unwrap(), job);

        let full = plain
            .partition("g")
            .priority(-3)
            .run_id("r1")
            .max_attempts(4)
            .timeout(std::time::Duration::from_secs(2))
            .header("trace", "t")
            .reply_to("inbox")
            .at(1_700_000_009_000);
        let job = Job::accept(id, &full, 1_700_000_000_000);
        let stored = pack(&job).unwrap();
        assert_eq!(unpack(stored.as_bytes(), id, "mail").unwrap(), job);

        let mut exact = NewJob::new("mail", "acme", "send", &0).unwrap();
        exact.payload =
            bytes::Bytes::from_static(b"{ \"n\": 123456789012345678901234567890, \"x\":1.50 }");
        let job = Job::accept(id, &exact, 1_700_000_000_000);
        let back = unpack(pack(&job).unwrap().as_bytes(), id, "mail").unwrap();
        assert_eq!(back.payload, exact.payload, "the payload keeps its bytes");
    }
}
