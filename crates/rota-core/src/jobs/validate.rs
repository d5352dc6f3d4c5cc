//! What a job must be to be enqueued: names, sizes, times, reply
//! addresses. Every store runs these checks before any I/O, so a bad job is
//! refused the same way everywhere and nothing of its batch is written.

use std::time::Duration;

use super::model::NewJob;
use crate::error::BrokerError;
use crate::names::validate_service;
use crate::time::now_ms;

/// Longest tenant, kind, partition or idempotency key accepted.
pub const MAX_KEY_LEN: usize = 128;

/// Largest payload accepted by default: 1 MiB of JSON.
pub const DEFAULT_MAX_PAYLOAD: usize = 1024 * 1024;

/// Most bytes of headers (names and values together) a job may carry: room
/// for trace context and a few tags, not for a second payload. (The size of
/// HTTP header sections that servers commonly accept.)
pub const MAX_HEADERS_LEN: usize = 16 * 1024;

/// The furthest in the past a job may be scheduled (it then runs at once):
/// a day, for clocks that disagree; older times are mistakes.
pub const MAX_PAST: Duration = Duration::from_secs(24 * 3600);

/// The furthest in the future a job may be scheduled: 10 years.
pub const MAX_DELAY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

fn check_key(what: &str, value: &str) -> Result<(), BrokerError> {
    if value.is_empty() {
        return Err(BrokerError::Invalid(format!("{what} is empty")));
    }
    if value.len() > MAX_KEY_LEN {
        return Err(BrokerError::Invalid(format!(
            "{what} is {} bytes long; at most {MAX_KEY_LEN} are allowed",
            value.len()
        )));
    }
    if let Some(bad) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@' | '/')))
    {
        return Err(BrokerError::Invalid(format!(
            "{what} {value:?} holds {bad:?}; use ASCII letters, digits, '-', '_', '.', '@' or '/'"
        )));
    }
    Ok(())
}

/// Checks a tenant's name: what a job's tenant may be.
pub fn validate_tenant(tenant: &str) -> Result<(), BrokerError> {
    check_key("tenant", tenant)
}

/// Checks a queue name: the rules of a service name, said of a queue.
pub fn validate_queue(queue: &str) -> Result<(), BrokerError> {
    validate_service(queue).map_err(|e| match e {
        BrokerError::InvalidName(m) => {
            BrokerError::Invalid(m.replace("service name", "queue name"))
        }
        other => other,
    })
}

/// Checks a job before it is accepted: names that fit the key layout, a
/// JSON payload within `max_payload` bytes, headers within
/// [`MAX_HEADERS_LEN`], and a sane schedule.
pub fn validate_job(job: &NewJob, max_payload: usize) -> Result<(), BrokerError> {
    validate_queue(&job.queue)?;
    check_key("tenant", &job.tenant)?;
    check_key("job kind", &job.kind)?;
    if let Some(p) = &job.partition {
        check_key("partition", p)?;
    }
    if let Some(k) = &job.idempotency_key
        && (k.is_empty() || k.len() > 512)
    {
        return Err(BrokerError::Invalid(
            "idempotency key must be 1 to 512 bytes long".into(),
        ));
    }
    let headers_len: usize = job.headers.iter().map(|(k, v)| k.len() + v.len()).sum();
    if headers_len > MAX_HEADERS_LEN {
        return Err(BrokerError::Invalid(format!(
            "headers are {headers_len} bytes long (names and values); at most \
             {MAX_HEADERS_LEN} are allowed: put data in the payload"
        )));
    }
    if job.payload.len() > max_payload {
        return Err(BrokerError::Invalid(format!(
            "payload of {} bytes is over the {max_payload}-byte limit",
            job.payload.len()
        )));
    }
    if serde_json::from_slice::<serde::de::IgnoredAny>(&job.payload).is_err() {
        return Err(BrokerError::Invalid("payload is not valid JSON".into()));
    }
    if let Some(at) = job.scheduled_for {
        let limit = now_ms().saturating_add(MAX_DELAY.as_millis() as u64);
        if at > limit {
            return Err(BrokerError::Invalid(format!(
                "scheduled for {at} ms since the epoch, more than 10 years ahead"
            )));
        }
        // Far in the past is not "now": it is a time in seconds, or a
        // negative delay gone through an unsigned type.
        let floor = now_ms().saturating_sub(MAX_PAST.as_millis() as u64);
        if at < floor {
            return Err(BrokerError::Invalid(format!(
                "scheduled for {at} ms since the epoch, more than a day in the past; \
                 is it in seconds, or a negative delay?"
            )));
        }
    }
    Ok(())
}

/// Checks every job of a batch before any is accepted; an error names the
/// job's place in the batch and says that nothing was enqueued.
pub fn validate_batch(jobs: &[NewJob], max_payload: usize) -> Result<(), BrokerError> {
    let several = jobs.len() > 1;
    for (i, job) in jobs.iter().enumerate() {
        validate_job(job, max_payload).map_err(|e| match e {
            BrokerError::Invalid(m) if several => BrokerError::Invalid(format!(
                "job {} of the batch: {m}; nothing was enqueued",
                i + 1
            )),
            other => other,
        })?;
    }
    Ok(())
}

/// Refuses a batch, with [`BrokerError::LeaseLost`] and nothing written,
/// once the store's clock (`now_ms`) passed the fence of any of its jobs
/// ([`NewJob::fenced_until`]). A store checks it with its clock in the
/// same step that writes the batch.
pub fn check_fence(jobs: &[NewJob], now_ms: u64) -> Result<(), BrokerError> {
    match fence_of(jobs) {
        Some(until) if now_ms > until => Err(BrokerError::LeaseLost),
        _ => Ok(()),
    }
}

/// The earliest fence of a batch's jobs, if any has one.
pub fn fence_of(jobs: &[NewJob]) -> Option<u64> {
    jobs.iter().filter_map(|j| j.fenced_until).min()
}

/// Checks that every job's `reply_to` is an inbox address of the store
/// (`is_inbox`, from [`Inboxes::is_inbox`](crate::Inboxes::is_inbox)): an
/// outcome is written to that address, which must never name another key.
pub fn validate_reply_to(
    jobs: &[NewJob],
    is_inbox: impl Fn(&str) -> bool,
) -> Result<(), BrokerError> {
    for (i, job) in jobs.iter().enumerate() {
        if let Some(to) = &job.reply_to
            && !is_inbox(to)
        {
            let which = if jobs.len() > 1 {
                format!("job {} of the batch", i + 1)
            } else {
                "the job".to_owned()
            };
            return Err(BrokerError::Invalid(format!(
                "{which}: reply_to {to:?} is no inbox address of this store (open one with \
                 Inboxes::open_inbox); nothing was enqueued"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::jobs::model::*;

    fn job() -> NewJob {
        NewJob::new("mail", "acme", "send", &serde_json::json!({"to": "a@b"})).unwrap()
    }

    #[test]
    fn bad_names_payloads_and_delays_are_refused_with_the_reason() {
        let cases: Vec<(NewJob, &str)> = vec![
            (
                NewJob {
                    tenant: String::new(),
                    ..job()
                },
                "tenant is empty",
            ),
            (
                NewJob {
                    tenant: "x".repeat(200),
                    ..job()
                },
                "at most 128",
            ),
            (
                NewJob {
                    tenant: "a b".into(),
                    ..job()
                },
                "holds ' '",
            ),
            (
                NewJob {
                    queue: "q{x}".into(),
                    ..job()
                },
                "queue name",
            ),
            (
                NewJob {
                    kind: String::new(),
                    ..job()
                },
                "job kind is empty",
            ),
            (
                NewJob {
                    payload: Bytes::from_static(b"{nope"),
                    ..job()
                },
                "not valid JSON",
            ),
            (
                NewJob {
                    payload: Bytes::from(vec![b' '; 2000]),
                    ..job()
                },
                "over the 1000-byte limit",
            ),
            (
                job().header("note", "x".repeat(1024 * 1024)),
                "headers are 1048580 bytes long",
            ),
            (
                NewJob {
                    headers: (0..200)
                        .map(|i| (format!("h{i}"), "v".repeat(100)))
                        .collect(),
                    ..job()
                },
                "at most 16384",
            ),
            (job().at(u64::MAX), "more than 10 years"),
            (job().at(1_767_225_600), "is it in seconds"),
            (job().at(0), "more than a day in the past"),
        ];
        for (bad, expect) in cases {
            let err = validate_job(&bad, 1000).unwrap_err().to_string();
            assert!(err.contains(expect), "{err:?} does not say {expect:?}");
        }
        assert!(validate_job(&job(), 1000).is_ok());
        let traced = job().header("traceparent", "00-".to_owned() + &"a".repeat(51));
        assert!(validate_job(&traced, 1000).is_ok());
    }

    #[test]
    fn tenant_groups_are_stable_and_spread() {
        let a = job().tenant_group(8);
        assert_eq!(a.partition_key(), job().tenant_group(8).partition_key());
        let groups: std::collections::BTreeSet<_> = (0..100)
            .map(|i| {
                NewJob {
                    tenant: format!("t{i}"),
                    ..job()
                }
                .tenant_group(8)
                .partition_key()
                .to_owned()
            })
            .collect();
        assert_eq!(groups.len(), 8);
    }

    #[test]
    fn new_jobs_round_trip_through_json_with_the_payload_inline() {
        let j = job().priority(3).after(Duration::from_secs(5));
        let text = serde_json::to_string(&j).unwrap();
        assert!(text.contains(r#""payload":{"to":"a@b"}"#), "{text}");
        let back: NewJob = serde_json::from_str(&text).unwrap();
        assert_eq!(back, j);
    }
}
