//! Listing a queue's jobs (see [`rota_core::jobs::list`]) with keyset
//! pages: each state is ordered by columns an index of `rota_jobs` keeps,
//! and a cursor holds the last row's values of those columns.

use rota_core::jobs::list::bad_cursor;
use rota_core::jobs::{JobPage, JobQuery, JobState};
use rusqlite::types::Value;
use rusqlite::{Connection, params_from_iter};

use super::rows::{RECORD_COLS, record_from_row, state_code};
use crate::tx::{Error, Result};

/// A column of a listing's order.
#[derive(Clone, Copy)]
enum Col {
    Text(&'static str),
    Int(&'static str),
}

impl Col {
    fn name(self) -> &'static str {
        match self {
            Col::Text(name) | Col::Int(name) => name,
        }
    }
}

/// The columns a state's listing is ordered by, and whether descending.
fn order(state: JobState) -> (&'static [Col], bool) {
    match state {
        JobState::Scheduled => (&[Col::Int("due_ms"), Col::Int("seq")], false),
        JobState::Queued => (
            &[Col::Text("partition"), Col::Text("tenant"), Col::Int("seq")],
            false,
        ),
        JobState::Running => (&[Col::Int("seq")], false),
        JobState::Dead => (&[Col::Int("dead_seq")], true),
        // Succeeded, failed, cancelled: the latest finished first.
        _ => (&[Col::Int("done_seq")], true),
    }
}

/// The values a cursor holds, one per column, as SQL values.
fn decode(cursor: &str, cols: &[Col]) -> Result<Vec<Value>> {
    let parts: Vec<&str> = cursor.split(' ').collect();
    if parts.len() != cols.len() {
        return Err(Error::Broker(bad_cursor()));
    }
    cols.iter()
        .zip(parts)
        .map(|(col, part)| match col {
            Col::Text(_) => Ok(Value::Text(part.to_owned())),
            Col::Int(_) => part
                .parse::<u64>()
                .ok()
                .and_then(|n| i64::try_from(n).ok())
                .map(Value::Integer)
                .ok_or_else(|| Error::Broker(bad_cursor())),
        })
        .collect()
}

fn encode(values: &[Value]) -> String {
    values
        .iter()
        .map(|v| match v {
            Value::Integer(n) => n.to_string(),
            Value::Text(s) => s.clone(),
            _ => String::new(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) fn list(conn: &mut Connection, queue: &str, query: &JobQuery) -> Result<JobPage> {
    let (cols, desc) = order(query.state);
    let names: Vec<&str> = cols.iter().map(|c| c.name()).collect();
    let mut args = vec![
        Value::Text(queue.to_owned()),
        Value::Integer(state_code(query.state)),
    ];
    let mut sql = format!(
        "SELECT {RECORD_COLS}, {} FROM rota_jobs WHERE queue = ?1 AND state = ?2",
        names.join(", ")
    );
    if let Some(tenant) = &query.tenant {
        args.push(Value::Text(tenant.clone()));
        sql.push_str(&format!(" AND tenant = ?{}", args.len()));
    }
    if let Some(cursor) = &query.after {
        let values = decode(cursor, cols)?;
        let first = args.len() + 1;
        args.extend(values);
        let marks: Vec<String> = (first..=args.len()).map(|i| format!("?{i}")).collect();
        sql.push_str(&format!(
            " AND ({}) {} ({})",
            names.join(", "),
            if desc { "<" } else { ">" },
            marks.join(", ")
        ));
    }
    let dir = if desc { " DESC" } else { "" };
    let by: Vec<String> = names.iter().map(|n| format!("{n}{dir}")).collect();
    // One row more than the page: whether a next page exists.
    args.push(Value::Integer(
        i64::try_from(query.limit + 1).unwrap_or(i64::MAX),
    ));
    sql.push_str(&format!(
        " ORDER BY {} LIMIT ?{}",
        by.join(", "),
        args.len()
    ));

    let first_key = RECORD_COLS.split(',').count();
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params_from_iter(args))?;
    let mut jobs = Vec::new();
    let mut last = None;
    let mut more = false;
    while let Some(row) = rows.next()? {
        if jobs.len() == query.limit {
            more = true;
            break;
        }
        jobs.push(record_from_row(row)?);
        last = Some(
            (first_key..first_key + cols.len())
                .map(|i| row.get::<_, Value>(i))
                .collect::<rusqlite::Result<Vec<_>>>()?,
        );
    }
    let next = if more { last.map(|v| encode(&v)) } else { None };
    Ok(JobPage::new(jobs, next))
}

/// The queues with a row of books: every queue a job was enqueued to, a
/// consumer opened on or a policy set for.
pub(crate) fn queues(conn: &mut Connection) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached("SELECT queue FROM rota_job_queues ORDER BY queue")?;
    let names = stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(names)
}
