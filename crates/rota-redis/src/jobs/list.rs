//! Listing a queue's jobs (see [`rota_core::jobs::list`]): the `list`
//! function reads a page of ids from the state's index (`lua/jobs/list.lua`
//! says how each state is ordered and what its cursor holds), then the
//! records are read as [`JobStore::job`](rota_core::jobs::JobStore::job)
//! reads them, and those that left the state meanwhile are dropped.

use rota_core::BrokerError;
use rota_core::jobs::list::bad_cursor;
use rota_core::jobs::{JobId, JobPage, JobQuery, JobState};

use super::keys::QueueKeys;
use super::record::{parse_state, state_name};
use crate::broker::RedisBroker;
use crate::error::map;

/// Index entries one call reads at most.
const BUDGET: usize = 1000;

fn number(word: &str) -> bool {
    !word.is_empty() && word.len() <= 20 && word.bytes().all(|b| b.is_ascii_digit())
}

fn name(word: &str) -> bool {
    !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@/:".contains(&b))
}

fn id(word: &str) -> bool {
    JobId::parse(word).is_ok()
}

/// Whether `cursor` has the form the `list` function hands out for
/// `state`, so the function may trust it.
fn well_formed(state: JobState, cursor: &str) -> bool {
    let words: Vec<&str> = cursor.split(' ').collect();
    match (state, &words[..]) {
        (JobState::Scheduled, [due, job]) => number(due) && id(job),
        (JobState::Dead, [order]) => number(order),
        (JobState::Running, [holder, job]) => name(holder) && id(job),
        (JobState::Queued, [lane, offset]) => name(lane) && number(offset),
        (JobState::Succeeded | JobState::Failed | JobState::Cancelled, [at, s, job]) => {
            number(at) && parse_state(s).is_some() && id(job)
        }
        _ => false,
    }
}

pub(super) async fn list(
    broker: &RedisBroker,
    keys: &QueueKeys,
    queue: &str,
    query: &JobQuery,
) -> Result<JobPage, BrokerError> {
    let cursor = query.after.as_deref().unwrap_or("");
    if !cursor.is_empty() && !well_formed(query.state, cursor) {
        return Err(bad_cursor());
    }
    let mut reply: Vec<String> = keys
        .call("list")
        .arg(state_name(query.state))
        .arg(query.tenant.as_deref().unwrap_or(""))
        .arg(cursor)
        .arg(query.limit)
        .arg(BUDGET)
        .invoke(&mut broker.conn())
        .await
        .map_err(map)?;
    if reply.is_empty() {
        return Err(BrokerError::Protocol("list returned nothing".into()));
    }
    let next = reply.remove(0);
    let ids = reply
        .iter()
        .map(|id| JobId::parse(id))
        .collect::<Result<Vec<_>, _>>()?;
    let jobs = broker
        .load(queue, &ids)
        .await?
        .into_iter()
        .flatten()
        .filter(|r| r.state == query.state)
        .collect();
    Ok(JobPage::new(jobs, (!next.is_empty()).then_some(next)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_cursors_of_the_listed_state_form_reach_the_function() {
        let id = JobId::new().to_string();
        assert!(well_formed(JobState::Scheduled, &format!("17 {id}")));
        assert!(well_formed(JobState::Dead, "42"));
        assert!(well_formed(JobState::Queued, "acme:t1:5 3"));
        assert!(well_formed(
            JobState::Failed,
            &format!("1700000000000 failed {id}")
        ));
        for (state, bad) in [
            (JobState::Scheduled, format!("-1 {id}")),
            (JobState::Scheduled, "17 x".to_owned()),
            (JobState::Dead, "1e9".to_owned()),
            (JobState::Dead, "42 43".to_owned()),
            (JobState::Queued, "a b 1".to_owned()),
            (JobState::Queued, "lane\u{0} 1".to_owned()),
            (JobState::Running, format!("c {id} x")),
            (JobState::Succeeded, format!("1 nope {id}")),
            (JobState::Succeeded, "".to_owned()),
        ] {
            assert!(!well_formed(state, &bad), "{state:?} {bad:?}");
        }
    }
}
