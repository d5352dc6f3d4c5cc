//! What the store keeps, as text: schedules as JSON (their version kept
//! beside, authoritative), history entries and outbox members with the
//! prefix the functions match on, so that they never parse JSON.

use rota_core::BrokerError;
use rota_core::jobs::JobId;
use rota_core::schedules::{Outbound, RunRecord, RunRef, Schedule};

fn protocol(what: impl std::fmt::Display) -> BrokerError {
    BrokerError::Protocol(format!("a stored schedule record is unreadable: {what}"))
}

/// `s` as its hash's `json` field.
pub(crate) fn schedule_json(s: &Schedule) -> Result<String, BrokerError> {
    serde_json::to_string(s).map_err(|e| BrokerError::Invalid(format!("schedule {:?}: {e}", s.id)))
}

/// A schedule read back: its JSON, at version `v` (the hash's `v` field,
/// which an upsert bumps without rewriting the JSON).
pub(crate) fn parse_schedule(v: &str, json: &[u8]) -> Result<Schedule, BrokerError> {
    let mut s: Schedule = serde_json::from_slice(json).map_err(protocol)?;
    s.version = v.parse().map_err(protocol)?;
    Ok(s)
}

/// `s`'s due instant as a function argument: ms, or `''` for none.
pub(crate) fn due_arg(s: &Schedule) -> String {
    s.due_ms().map(|d| d.to_string()).unwrap_or_default()
}

fn job_arg(job: Option<JobId>) -> String {
    job.map_or_else(|| "-".to_owned(), |j| j.to_string())
}

/// A history entry: `<occurrence> <job or -> <at ms> <JSON>`.
pub(crate) fn history_entry(r: &RunRecord) -> Result<String, BrokerError> {
    Ok(format!(
        "{} {} {} {}",
        r.occurrence_ms,
        job_arg(r.job),
        r.at_ms,
        record_json(r)?
    ))
}

/// A finished run as the commit function takes it: occurrence, job, at
/// ms (kept from the entry it updates, if any), JSON.
pub(crate) fn finished_args(r: &RunRecord) -> Result<[String; 4], BrokerError> {
    Ok([
        r.occurrence_ms.to_string(),
        job_arg(r.job),
        r.at_ms.to_string(),
        record_json(r)?,
    ])
}

fn record_json(r: &RunRecord) -> Result<String, BrokerError> {
    serde_json::to_string(r).map_err(|e| BrokerError::Invalid(format!("run record: {e}")))
}

/// A history entry read back; its dispatch instant is the prefix's.
pub(crate) fn parse_history(entry: &[u8]) -> Result<RunRecord, BrokerError> {
    let text = std::str::from_utf8(entry).map_err(protocol)?;
    let mut parts = text.splitn(4, ' ');
    let (Some(_), Some(_), Some(at), Some(json)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(protocol(format!("history entry {text:?}")));
    };
    let mut r: RunRecord = serde_json::from_str(json).map_err(protocol)?;
    r.at_ms = at.parse().map_err(protocol)?;
    Ok(r)
}

/// An outbox member: `<schedule> <occurrence> <job>` (ids hold no space).
pub(crate) fn outbox_member(o: &Outbound) -> String {
    format!("{} {} {}", o.schedule, o.run.occurrence_ms, o.run.job)
}

/// An outbox member read back.
pub(crate) fn parse_outbox(member: &str) -> Result<Outbound, BrokerError> {
    let mut parts = member.split(' ');
    let (Some(schedule), Some(at), Some(job), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(protocol(format!("outbox member {member:?}")));
    };
    let mut run = RunRef::of(schedule, at.parse().map_err(protocol)?);
    run.job = JobId::parse(job)?;
    Ok(Outbound::new(schedule, run))
}

#[cfg(test)]
mod tests {
    use rota_core::jobs::JobState;
    use rota_core::schedules::{RunState, Skip};

    use super::*;

    #[test]
    fn entries_and_members_read_back_as_written() {
        let run = RunRef::of("a/b:c", 1_000);
        let dispatched = RunRecord::dispatched(&run, 1_005);
        let entry = history_entry(&dispatched).unwrap();
        assert!(
            entry.starts_with(&format!("1000 {} 1005 {{", run.job)),
            "{entry}"
        );
        assert_eq!(parse_history(entry.as_bytes()).unwrap(), dispatched);
        let skipped = RunRecord::skipped(-5, 7, 3, Skip::Missed, 9);
        let entry = history_entry(&skipped).unwrap();
        assert!(entry.starts_with("-5 - 9 {"), "{entry}");
        assert_eq!(parse_history(entry.as_bytes()).unwrap(), skipped);
        let done = RunRecord::finished(
            1_000,
            run.job,
            RunState::Finished(JobState::Failed),
            1,
            2,
            3,
            Some("a reason with spaces".into()),
        );
        let [occ, job, at, json] = finished_args(&done).unwrap();
        assert_eq!((occ.as_str(), at.as_str()), ("1000", "0"));
        let entry = format!("{occ} {job} 1005 {json}");
        let back = parse_history(entry.as_bytes()).unwrap();
        assert_eq!(
            (back.at_ms, back.error.as_deref()),
            (1_005, Some("a reason with spaces"))
        );
        let o = Outbound::new("a/b:c", run);
        assert_eq!(parse_outbox(&outbox_member(&o)).unwrap(), o);
        assert!(parse_outbox("a 1").is_err());
        assert!(parse_outbox("a 1 x").is_err());
    }
}
