//! Tenant caps on Redis: running jobs are counted per tenant from the
//! moment a consumer with a cap registers (a queue without caps spares a
//! write per job); jobs already running then are not counted, and their
//! settling does not count anything down.

#![allow(missing_docs)]

mod support;

use std::time::Duration;

use rota_core::jobs::{
    Attempt, AttemptOutcome, Job, JobConsumer, JobConsumerOptions, JobState, JobStore, NewJob,
    Next, Settle,
};
use rota_core::time::now_ms;

const FOUND: Duration = Duration::from_secs(2);
const NOTHING: Duration = Duration::from_millis(50);

fn done(job: &Job, c: &dyn JobConsumer) -> Settle {
    let now = now_ms();
    let attempt = Attempt {
        attempt: job.attempt,
        worker: c.id().to_owned(),
        started_at_ms: now,
        finished_at_ms: now,
        outcome: AttemptOutcome::Succeeded,
    };
    Settle::new(job.id, attempt, Next::Finish(JobState::Succeeded))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_jobs_count_from_the_first_capped_consumer() {
    let server = support::RedisServer::start();
    let store = support::broker(&server).await;
    let q = "caps";
    let batch = (0..6)
        .map(|i| NewJob::new(q, "a", "k", &i).unwrap())
        .collect();
    store.enqueue(batch).await.unwrap();
    let free = store
        .job_consumer(q, JobConsumerOptions::default())
        .await
        .unwrap();
    let uncounted = free.claim(3, FOUND).await.unwrap();
    assert_eq!(uncounted.len(), 3);

    let capped = store
        .job_consumer(q, JobConsumerOptions::default().tenant_cap(1))
        .await
        .unwrap();
    let first = capped.claim(10, FOUND).await.unwrap();
    assert_eq!(first.len(), 1, "the jobs running before are not counted");
    let settled = uncounted.iter().map(|j| done(j, &*free)).collect();
    assert_eq!(free.settle(settled).await.unwrap(), 3);
    assert!(
        capped.claim(10, NOTHING).await.unwrap().is_empty(),
        "settling jobs never counted freed a slot"
    );
    assert_eq!(
        capped
            .settle(vec![done(&first[0], &*capped)])
            .await
            .unwrap(),
        1
    );
    assert_eq!(capped.claim(10, FOUND).await.unwrap().len(), 1);
}
