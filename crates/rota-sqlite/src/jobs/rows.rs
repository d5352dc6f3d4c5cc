//! What the job transactions share: state codes, rows to jobs and records,
//! attempts, the lease check and the reply inbox.

use std::sync::LazyLock;

use rota_core::BrokerError;
use rota_core::jobs::{Attempt, Job, JobId, JobRecord, JobState, NewJob};
use rota_core::time::Deadline;
use rusqlite::{OptionalExtension, Row, Transaction, params};
use uuid::Uuid;

use crate::tx::{Error, Result, now};

// The state codes. Queries that should use a partial index (`WHERE state =
// 0` for scheduled, `= 1` for queued) write the code as a literal, so the
// planner can match the index's condition without the bound values.
pub(crate) const SCHEDULED: i64 = 0;
pub(crate) const QUEUED: i64 = 1;
pub(crate) const RUNNING: i64 = 2;
pub(crate) const CANCELLED: i64 = 5;
pub(crate) const DEAD: i64 = 6;

/// The code of a state in the `state` column.
pub(crate) fn state_code(state: JobState) -> i64 {
    match state {
        JobState::Scheduled => SCHEDULED,
        JobState::Queued => QUEUED,
        JobState::Running => RUNNING,
        JobState::Succeeded => 3,
        JobState::Failed => 4,
        JobState::Cancelled => CANCELLED,
        // Dead, and any state a later model adds: kept, never dropped.
        _ => DEAD,
    }
}

/// The state of a `state` column's code.
pub(crate) fn state_of(code: i64) -> JobState {
    match code {
        SCHEDULED => JobState::Scheduled,
        QUEUED => JobState::Queued,
        RUNNING => JobState::Running,
        3 => JobState::Succeeded,
        4 => JobState::Failed,
        CANCELLED => JobState::Cancelled,
        _ => JobState::Dead,
    }
}

/// A `u64` as SQLite stores it (saturating).
pub(crate) fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A stored integer as a `u64` (negatives as 0).
pub(crate) fn uint(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// The id column's bytes.
pub(crate) fn id_bytes(id: &JobId) -> &[u8; 16] {
    id.as_uuid().as_bytes()
}

fn bad(column: usize, e: impl std::error::Error + Send + Sync + 'static) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Blob, Box::new(e))
}

/// The job id in an id column.
pub(crate) fn job_id(row: &Row<'_>, column: usize) -> rusqlite::Result<JobId> {
    let bytes: [u8; 16] = row.get(column)?;
    let mut text = Uuid::encode_buffer();
    let text = Uuid::from_bytes(bytes).hyphenated().encode_lower(&mut text);
    JobId::parse(text).map_err(|e| bad(column, e))
}

/// The columns [`job_from_row`] reads, in its order.
pub(crate) const JOB_COLS: &str = "id, run_id, queue, tenant, partition, kind, payload, attempt, \
     max_attempts, timeout_ms, deadline_ms, enqueued_ms, due_ms, priority, headers, reply_to";

/// The columns [`record_from_row`] reads: [`JOB_COLS`], then these.
pub(crate) const RECORD_COLS: &str = "id, run_id, queue, tenant, partition, kind, payload, \
     attempt, max_attempts, timeout_ms, deadline_ms, enqueued_ms, due_ms, priority, headers, \
     reply_to, state, attempts, result, reason, finished_at_ms";

/// A job whose every field is overwritten: `Job` cannot be built field by
/// field outside its crate, so rows are written into clones of this one.
static TEMPLATE: LazyLock<Job> = LazyLock::new(|| {
    let new = NewJob::new("q", "t", "k", &()).expect("a unit payload encodes");
    Job::accept(JobId::new(), &new, 0)
});

fn opt_u32(row: &Row<'_>, column: usize) -> rusqlite::Result<Option<u32>> {
    Ok(row
        .get::<_, Option<i64>>(column)?
        .map(|n| u32::try_from(n).unwrap_or(u32::MAX)))
}

/// The job in a row selected with [`JOB_COLS`].
pub(crate) fn job_from_row(row: &Row<'_>) -> rusqlite::Result<Job> {
    let mut job = TEMPLATE.clone();
    job.id = job_id(row, 0)?;
    job.run_id = match row.get::<_, Option<String>>(1)? {
        Some(run) => run,
        None => job.id.to_string(),
    };
    job.queue = row.get(2)?;
    job.tenant = row.get(3)?;
    job.partition = row.get(4)?;
    job.kind = row.get(5)?;
    job.payload = row.get::<_, Vec<u8>>(6)?.into();
    job.attempt = opt_u32(row, 7)?.unwrap_or(1);
    job.max_attempts = opt_u32(row, 8)?;
    job.timeout_ms = row.get::<_, Option<i64>>(9)?.map(uint);
    job.deadline = row
        .get::<_, Option<i64>>(10)?
        .map(|ms| Deadline::from_unix_ms(uint(ms)));
    job.enqueued_at_ms = uint(row.get(11)?);
    job.scheduled_for_ms = uint(row.get(12)?);
    job.priority = i32::try_from(row.get::<_, i64>(13)?).unwrap_or(0);
    job.headers = match row.get::<_, Option<String>>(14)? {
        Some(text) => serde_json::from_str(&text).map_err(|e| bad(14, e))?,
        None => Default::default(),
    };
    job.reply_to = row.get(15)?;
    Ok(job)
}

/// The record in a row selected with [`RECORD_COLS`].
pub(crate) fn record_from_row(row: &Row<'_>) -> rusqlite::Result<JobRecord> {
    let job = job_from_row(row)?;
    let mut record = JobRecord::new(job, 0);
    record.state = state_of(row.get(16)?);
    let attempts: String = row.get(17)?;
    record.attempts = serde_json::from_str(&attempts).map_err(|e| bad(17, e))?;
    record.result = match row.get::<_, Option<String>>(18)? {
        Some(text) => Some(serde_json::from_str(&text).map_err(|e| bad(18, e))?),
        None => None,
    };
    record.reason = row.get(19)?;
    record.finished_at_ms = row.get::<_, Option<i64>>(20)?.map(uint);
    Ok(record)
}

/// The record of the job in row `seq`.
pub(crate) fn load_record(tx: &Transaction<'_>, seq: i64) -> Result<Option<JobRecord>> {
    let sql = format!("SELECT {RECORD_COLS} FROM rota_jobs WHERE seq = ?1");
    Ok(tx
        .prepare_cached(&sql)?
        .query_row([seq], record_from_row)
        .optional()?)
}

/// SQL that appends the JSON attempt bound as `?1` to the `attempts` array
/// (without parsing what is there: the store writes it in this form).
pub(crate) const APPEND_ATTEMPT: &str = "attempts = CASE attempts WHEN '[]' THEN '[' || ?1 || ']' \
     ELSE substr(attempts, 1, length(attempts) - 1) || ',' || ?1 || ']' END";

/// An attempt as stored in the `attempts` array.
pub(crate) fn attempt_json(attempt: &Attempt) -> Result<String> {
    serde_json::to_string(attempt)
        .map_err(|e| Error::Broker(BrokerError::Protocol(format!("cannot encode: {e}"))))
}

/// The reply inbox: what is written to it, and the inboxes to wake.
pub(crate) struct Outbox {
    expires_at: i64,
    /// Inbox addresses written to.
    pub(crate) woken: Vec<String>,
}

impl Outbox {
    /// Replies kept until `reply_ttl` from now.
    pub(crate) fn new(reply_ttl: std::time::Duration) -> Self {
        Self {
            expires_at: now().saturating_add(crate::tx::ms(reply_ttl)),
            woken: Vec::new(),
        }
    }

    /// Writes `payload` into `inbox`.
    pub(crate) fn push(&mut self, tx: &Transaction<'_>, inbox: &str, payload: &[u8]) -> Result<()> {
        tx.prepare_cached(
            "INSERT INTO rota_replies (inbox, payload, expires_at) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![inbox, payload, expiry(inbox, self.expires_at)])?;
        if !self.woken.iter().any(|w| w == inbox) {
            self.woken.push(inbox.to_owned());
        }
        Ok(())
    }

    /// Sends the outcome of the job in row `seq` to its `reply_to`, if it
    /// has one: for final states the store decided itself.
    pub(crate) fn outcome(&mut self, tx: &Transaction<'_>, seq: i64) -> Result<()> {
        if let Some((to, reply)) = load_record(tx, seq)?.and_then(|r| r.outcome_reply()) {
            self.push(tx, &to, &reply)?;
        }
        Ok(())
    }
}

/// When a reply to `inbox` expires: at `expires_at`, or never for a
/// schedule shard's inbox (its outcomes wait for the shard's next owner).
pub(crate) fn expiry(inbox: &str, expires_at: i64) -> i64 {
    if crate::schedules::is_shard_address(inbox) {
        i64::MAX
    } else {
        expires_at
    }
}
