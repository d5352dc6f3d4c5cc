//! A database that refuses writes for a while — a full disk, a file system
//! gone read-only — is an outage: a worker logs each failure, retries with
//! backoff, and processes its queued and running jobs once writes pass.
//!
//! Regression: the refusal was taken for an error retrying won't fix; the
//! worker's queue loop ended, and the process stayed up serving nothing.

use std::time::Duration;

use rota::jobs::{JobContext, JobError, JobState, NewJob, QueueOptions, Worker};
use rota_conformance::support::await_state;
use rota_core::jobs::JobStore;
use rota_sqlite::SqliteBroker;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_resumes_when_writes_pass_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteBroker::open(dir.path().join("rota.db"))
        .await
        .unwrap();
    let first: Vec<_> = store
        .enqueue(
            (0..20)
                .map(|i| NewJob::new("q", format!("t{}", i % 3), "slow", &i).unwrap())
                .collect(),
        )
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    let worker = Worker::new(store.clone())
        .queue(
            "q",
            QueueOptions::default()
                .lease(Duration::from_secs(1))
                .claim_wait(Duration::from_millis(100)),
        )
        .handle("slow", |_: JobContext, n: u32| async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok::<_, JobError>(n)
        })
        .spawn();
    tokio::time::sleep(Duration::from_millis(150)).await;
    // Jobs are running: the file refuses every write (settles, renewals,
    // claims) for long enough that the worker loses its lease.
    store.refuse_writes_for_tests(true).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    store.refuse_writes_for_tests(false).await.unwrap();

    let later = store
        .enqueue(vec![NewJob::new("q", "t9", "slow", &99).unwrap()])
        .await
        .unwrap()[0]
        .id;
    let all: Vec<_> = first.iter().copied().chain([later]).collect();
    await_state(
        &store,
        "q",
        &all,
        JobState::Succeeded,
        Duration::from_secs(30),
    )
    .await;
    tokio::time::timeout(Duration::from_secs(10), worker.shutdown())
        .await
        .expect("shutdown hung")
        .unwrap();
}
