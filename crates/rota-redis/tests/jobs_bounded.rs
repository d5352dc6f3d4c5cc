//! Work on a whole queue goes in chunks of 1 000 jobs per call on Redis,
//! so no call blocks Redis for long on a big queue; rota calls again until
//! done, and the results are whole.

#![allow(missing_docs)]

mod support;

use std::time::Duration;

use rota_core::jobs::{
    Attempt, AttemptOutcome, Job, JobConsumer, JobConsumerOptions, JobState, JobStore, NewJob,
    Next, QueuePolicy, Retention, Settle,
};
use rota_core::time::now_ms;

const MANY: usize = 2500;
const WAIT: Duration = Duration::from_secs(5);

fn batch(queue: &str, tenants: usize) -> Vec<NewJob> {
    (0..MANY)
        .map(|i| NewJob::new(queue, format!("t{}", i % tenants), "k", &i).unwrap())
        .collect()
}

fn settle(job: &Job, c: &dyn JobConsumer, next: Next) -> Settle {
    let now = now_ms();
    let attempt = Attempt {
        attempt: job.attempt,
        worker: c.id().to_owned(),
        started_at_ms: now,
        finished_at_ms: now,
        outcome: AttemptOutcome::Succeeded,
    };
    Settle::new(job.id, attempt, next)
}

async fn claim_all(c: &dyn JobConsumer, n: usize) -> Vec<Job> {
    let mut got = Vec::new();
    while got.len() < n {
        let jobs = c.claim(n - got.len(), WAIT).await.unwrap();
        assert!(!jobs.is_empty(), "claimed {} of {n}", got.len());
        got.extend(jobs);
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_reap_close_purge_and_retention_work_in_chunks() {
    let server = support::RedisServer::start();
    let store = support::broker(&server).await;

    // Counts over more partitions than one page.
    let q = "bounded";
    store.enqueue(batch(q, MANY)).await.unwrap();
    let counts = store.counts(q).await.unwrap();
    assert_eq!(counts.total.queued, MANY as u64);
    assert_eq!(counts.partitions.len(), MANY);

    // Reaping a consumer that held more than one chunk.
    let short = JobConsumerOptions::default().lease(Duration::from_millis(300));
    let lost = store.job_consumer(q, short.clone()).await.unwrap();
    assert_eq!(claim_all(&*lost, 1500).await.len(), 1500);
    assert_eq!(store.counts(q).await.unwrap().total.running, 1500);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let reaper = store.job_consumer(q, short).await.unwrap();
    let stats = reaper.reap().await.unwrap();
    assert_eq!((stats.requeued, stats.dead_lettered), (1500, 0));
    assert_eq!(store.counts(q).await.unwrap().total.queued, MANY as u64);

    // Closing a consumer that holds more than one chunk.
    let closing = store
        .job_consumer(q, JobConsumerOptions::default())
        .await
        .unwrap();
    claim_all(&*closing, 1500).await;
    closing.close().await.unwrap();
    let counts = store.counts(q).await.unwrap();
    assert_eq!(
        (counts.total.queued, counts.total.running),
        (MANY as u64, 0)
    );

    // Purging more dead jobs than one chunk.
    let c = store
        .job_consumer(q, JobConsumerOptions::default())
        .await
        .unwrap();
    let jobs = claim_all(&*c, MANY).await;
    let dead = jobs
        .iter()
        .map(|j| settle(j, &*c, Next::Dead("test".into())))
        .collect();
    assert_eq!(c.settle(dead).await.unwrap(), MANY);
    assert_eq!(store.counts(q).await.unwrap().total.dead, MANY as u64);
    assert_eq!(store.purge_dead_jobs(q).await.unwrap(), MANY);
    assert_eq!(store.counts(q).await.unwrap().total, Default::default());

    // Retention trims at most one chunk per settle: a surplus (here left by
    // a policy that kept more) shrinks over settles, not in one long call.
    let q = "bounded-retention";
    let keeper = store
        .job_consumer(q, JobConsumerOptions::default())
        .await
        .unwrap();
    store.enqueue(batch(q, 16)).await.unwrap();
    let jobs = claim_all(&*keeper, MANY).await;
    let done = |js: &[Job], c: &dyn JobConsumer| -> Vec<Settle> {
        js.iter()
            .map(|j| settle(j, c, Next::Finish(JobState::Succeeded)))
            .collect()
    };
    let (first, rest) = jobs.split_at(MANY - 3);
    keeper.settle(done(first, &*keeper)).await.unwrap();
    let succeeded = async || store.counts(q).await.unwrap().total.succeeded;
    assert_eq!(succeeded().await, (MANY - 3) as u64);
    let policy = QueuePolicy::default().retention(Retention::default().max_finished(10));
    store.set_policy(q, policy).await.unwrap();
    let trimmer = store
        .job_consumer(q, JobConsumerOptions::default())
        .await
        .unwrap();
    // The last three jobs, settled one at a time under the new policy
    // (by another consumer: the keeper releases them).
    keeper
        .release(rest.iter().map(|j| j.id).collect(), false)
        .await
        .unwrap();
    let rest = claim_all(&*trimmer, 3).await;
    trimmer.settle(done(&rest[..1], &*trimmer)).await.unwrap();
    assert_eq!(succeeded().await, (MANY - 2 - 1000) as u64);
    trimmer.settle(done(&rest[1..2], &*trimmer)).await.unwrap();
    assert_eq!(succeeded().await, (MANY - 1 - 2000) as u64);
    trimmer.settle(done(&rest[2..], &*trimmer)).await.unwrap();
    assert_eq!(succeeded().await, 10);
}
