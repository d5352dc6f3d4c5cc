//! Reading what the scripts return: job records and claimed jobs.

use std::collections::BTreeMap;

use rota_core::BrokerError;
use rota_core::jobs::{Attempt, Job, JobRecord, JobState};

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

/// One job as `read.lua` returns it: its hash (field, value, …) and
/// whether it runs.
pub(crate) type RawRecord = (Vec<Vec<u8>>, u8);

/// Builds a record from a job's hash, or `None` if it is gone. Fields: `j`
/// (the job as accepted), `a` (attempt, absent for 1), `due` (when due, if
/// it changed since), `s`, `r`, `rs`, `f`, and `h<n>` per attempt, `n`
/// growing with each.
pub(crate) fn record((fields, running): RawRecord) -> Result<Option<JobRecord>, BrokerError> {
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
    let mut job: Job = serde_json::from_slice(json).map_err(protocol)?;
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

/// A claimed job as the scripts pack it: `<id> <attempt> <due or -> <JSON>`.
pub(crate) fn claimed(row: &[u8]) -> Result<Job, BrokerError> {
    let mut parts = row.splitn(4, |b| *b == b' ');
    let (Some(_id), Some(attempt), Some(due), Some(json)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(protocol("a claimed job came back malformed"));
    };
    let number = |b: &[u8]| {
        std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
    };
    let mut job: Job = serde_json::from_slice(json).map_err(protocol)?;
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

    #[test]
    fn a_claimed_row_keeps_spaces_in_its_json() {
        let id = rota_core::jobs::JobId::new();
        let new =
            rota_core::jobs::NewJob::new("q", "t", "k", &serde_json::json!({"a b": 1})).unwrap();
        let job = Job::accept(id, &new, 5);
        let json = serde_json::to_string(&job).unwrap();
        let got = claimed(format!("{id} 3 - {json}").as_bytes()).unwrap();
        assert_eq!(got.attempt, 3);
        assert_eq!(got.scheduled_for_ms, 5);
        assert_eq!(got.payload, new.payload);
        let got = claimed(format!("{id} 1 77 {json}").as_bytes()).unwrap();
        assert_eq!(got.scheduled_for_ms, 77);
    }
}
