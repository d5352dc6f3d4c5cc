//! What the store keeps, as text: schedules in their stored form
//! ([`Schedule::to_stored`]) behind their version and tenant, history
//! entries and outbox members with the prefix the functions match on, so
//! that they never parse JSON.

use rota_core::BrokerError;
use rota_core::jobs::JobId;
use rota_core::schedules::{Outbound, RunRecord, RunRef, Schedule};

fn protocol(what: impl std::fmt::Display) -> BrokerError {
    BrokerError::Protocol(format!("a stored schedule record is unreadable: {what}"))
}

/// `s`'s stored form, which the functions store behind its version and
/// tenant.
pub(crate) fn stored_json(s: &Schedule) -> Result<String, BrokerError> {
    s.to_stored()
        .map_err(|e| BrokerError::Invalid(format!("schedule {:?}: {e}", s.id)))
}

/// Schedule `id` read back from its value in the shard's hash,
/// `<version> <tenant> <stored JSON>`.
pub(crate) fn parse_schedule(id: &str, value: &[u8]) -> Result<Schedule, BrokerError> {
    let unreadable = |what: &dyn std::fmt::Display| protocol(format!("schedule {id:?}: {what}"));
    let mut parts = value.splitn(3, |&b| b == b' ');
    let (Some(version), Some(tenant), Some(json)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(unreadable(&"not \"<version> <tenant> <JSON>\""));
    };
    let version = std::str::from_utf8(version)
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            unreadable(&format!(
                "version {:?} is not a number",
                String::from_utf8_lossy(version)
            ))
        })?;
    let tenant = std::str::from_utf8(tenant).map_err(|e| unreadable(&e))?;
    Schedule::from_stored(id, tenant, version, json).map_err(|e| unreadable(&e))
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
    use rota_core::schedules::{JobTemplate, NewSchedule, RunState, Skip, Trigger};

    use super::*;

    fn schedule() -> Schedule {
        let new = NewSchedule::new(
            "t@1",
            JobTemplate::new("q", "k", serde_json::json!({"n": 1})),
            Trigger::cron_in("5 * * * *", "Europe/Lisbon"),
        );
        let mut s = Schedule::from_new(new, "a/b:c".into(), 1_000);
        s.version = 12;
        s
    }

    #[test]
    fn a_schedule_reads_back_as_stored() {
        let s = schedule();
        let value = format!("12 t@1 {}", stored_json(&s).unwrap());
        assert_eq!(parse_schedule("a/b:c", value.as_bytes()).unwrap(), s);
    }

    #[test]
    fn a_corrupt_stored_schedule_is_a_protocol_error_that_names_it() {
        let json = stored_json(&schedule()).unwrap();
        for (value, says) in [
            (String::new(), "not \"<version> <tenant> <JSON>\""),
            ("12 t@1".to_owned(), "not \"<version> <tenant> <JSON>\""),
            (format!("x t@1 {json}"), "version \"x\" is not a number"),
            (format!("-1 t@1 {json}"), "version \"-1\" is not a number"),
            ("12 t@1 {\"f\":1".to_owned(), "EOF"),
            ("12 t@1 {\"f\":9}".to_owned(), "format 9"),
            (format!("12 t@1 {}", &json[..json.len() / 2]), "EOF"),
        ] {
            let e = parse_schedule("a/b:c", value.as_bytes()).unwrap_err();
            assert!(
                matches!(&e, BrokerError::Protocol(m)
                    if m.contains("schedule \"a/b:c\"") && m.contains(says)),
                "{value:?}: {e}"
            );
        }
        let e = parse_schedule("x", b"1 \xff {}").unwrap_err();
        assert!(matches!(e, BrokerError::Protocol(_)), "{e}");
    }

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
