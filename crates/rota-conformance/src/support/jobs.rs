//! Waiting for jobs to reach a state, as the kill and outage tests do.

use std::time::Duration;

use rota_core::jobs::{JobId, JobRecord, JobState, JobStore};

/// Waits until every job of `ids` in `queue` is in `state`, polling the
/// store; fails the test, naming a job and its state, once `within` passed.
/// Returns their records, in the order of `ids`.
pub async fn await_state(
    store: &dyn JobStore,
    queue: &str,
    ids: &[JobId],
    state: JobState,
    within: Duration,
) -> Vec<JobRecord> {
    let until = tokio::time::Instant::now() + within;
    let mut records = Vec::with_capacity(ids.len());
    for id in ids {
        loop {
            let record = store
                .job(queue, *id)
                .await
                .expect("look the job up")
                .unwrap_or_else(|| panic!("job {id} is gone"));
            if record.state == state {
                records.push(record);
                break;
            }
            assert!(
                tokio::time::Instant::now() < until,
                "job {id} is still {:?} after {within:?}, not {state:?}",
                record.state
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    records
}
