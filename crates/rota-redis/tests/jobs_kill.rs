//! Jobs on Redis when things die: a worker process SIGKILLed mid-run, and
//! Redis restarted during a run. Afterwards every job succeeded exactly
//! once — none lost, none running twice at the same time.

#![allow(missing_docs)]

mod support;

use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use rota::jobs::{
    AttemptOutcome, JobContext, JobError, JobState, Jobs, NewJob, QueueOptions, Worker,
};
use rota_core::jobs::JobStore;
use rota_core::time::now_ms;
use rota_redis::{RedisBroker, RedisOptions};

const N: u64 = 2000;

#[derive(serde::Serialize, serde::Deserialize)]
struct Item {
    i: u64,
}

/// A worker whose handler works a little and records each execution's
/// interval in Redis, to check afterwards that no two runs of a job
/// overlapped.
fn worker(store: RedisBroker, marks: ConnectionManager) -> Worker {
    Worker::new(store)
        .queue(
            "kill",
            QueueOptions::default()
                .lease(Duration::from_secs(1))
                .claim_wait(Duration::from_millis(200))
                .concurrency(16),
        )
        .handle("item", move |_: JobContext, item: Item| {
            let mut marks = marks.clone();
            async move {
                let start = now_ms();
                tokio::time::sleep(Duration::from_millis(2)).await;
                let run = format!("{}:{start}:{}", item.i, now_ms());
                let _: () = marks
                    .rpush("mark:runs", run)
                    .await
                    .map_err(JobError::retry)?;
                println!("done {}", item.i);
                Ok::<_, JobError>(())
            }
        })
}

async fn connect(url: &str) -> (RedisBroker, ConnectionManager) {
    let store = RedisBroker::connect_with(RedisOptions::new(url).prefix("test"))
        .await
        .unwrap();
    let marks = redis::Client::open(url)
        .unwrap()
        .get_connection_manager()
        .await
        .unwrap();
    (store, marks)
}

/// No two recorded runs of one job overlap in time.
async fn assert_no_overlapping_runs(marks: &mut ConnectionManager) {
    let runs: Vec<String> = marks.lrange("mark:runs", 0, -1).await.unwrap();
    let mut by_job: std::collections::HashMap<u64, Vec<(u64, u64)>> = Default::default();
    for run in &runs {
        let parts: Vec<u64> = run.split(':').map(|p| p.parse().unwrap()).collect();
        by_job
            .entry(parts[0])
            .or_default()
            .push((parts[1], parts[2]));
    }
    assert_eq!(by_job.len() as u64, N, "some job never completed a run");
    for (job, mut spans) in by_job {
        spans.sort();
        for pair in spans.windows(2) {
            assert!(
                pair[1].0 >= pair[0].1,
                "job {job} ran twice at once: {spans:?}"
            );
        }
    }
}

async fn enqueue_all(store: &RedisBroker) -> Vec<rota_core::jobs::JobId> {
    let jobs = Jobs::new(store.clone());
    let mut ids = Vec::new();
    for chunk in (0..N).collect::<Vec<_>>().chunks(500) {
        let batch = chunk
            .iter()
            .map(|i| NewJob::new("kill", format!("t{}", i % 7), "item", &Item { i: *i }).unwrap())
            .collect();
        ids.extend(jobs.enqueue_many(batch).await.unwrap().iter().map(|e| e.id));
    }
    ids
}

/// Waits until every job is final, then checks each succeeded exactly once.
async fn assert_each_succeeded_once(store: &RedisBroker, ids: &[rota_core::jobs::JobId]) {
    let until = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let counts = store.counts("kill").await.unwrap();
        if counts.total.get(JobState::Succeeded) + counts.total.get(JobState::Dead) == N {
            break;
        }
        assert!(tokio::time::Instant::now() < until, "stuck at {counts:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for id in ids {
        let record = store.job("kill", *id).await.unwrap().expect("retained");
        assert_eq!(record.state, JobState::Succeeded, "{record:?}");
        let successes = record
            .attempts
            .iter()
            .filter(|a| a.outcome == AttemptOutcome::Succeeded)
            .count();
        assert_eq!(successes, 1, "{record:?}");
    }
}

#[test]
#[ignore = "the child process of another test"]
fn child_worker() {
    let Some(url) = support::child_env("REDIS") else {
        return;
    };
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let (store, marks) = connect(&url).await;
        worker(store, marks).run().await.unwrap();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_run_loses_nothing_and_runs_nothing_twice_at_once() {
    let redis = support::RedisServer::start_durable();
    let (store, mut marks) = connect(&redis.url()).await;
    let ids = enqueue_all(&store).await;

    let mut child = support::Child::spawn("child_worker", &[("REDIS", &redis.url())]);
    let done = child
        .collect(Duration::from_secs(60), 300, |l| l.starts_with("done "))
        .await;
    assert_eq!(done.len(), 300, "the child made too little progress");
    child.kill(); // SIGKILL, with jobs in flight

    let survivor = worker(store.clone(), marks.clone()).spawn();
    assert_each_succeeded_once(&store, &ids).await;
    survivor.shutdown().await.unwrap();
    assert_no_overlapping_runs(&mut marks).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_mid_run_loses_nothing() {
    let mut redis = support::RedisServer::start_durable();
    let (store, marks) = connect(&redis.url()).await;
    let ids = enqueue_all(&store).await;
    let running = worker(store.clone(), marks.clone()).spawn();

    let mut probe = marks.clone();
    let until = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let n: u64 = probe.llen("mark:runs").await.unwrap();
        if n >= 300 {
            break;
        }
        assert!(tokio::time::Instant::now() < until, "no progress");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    redis.restart();

    // The worker and the marks connection reconnect by themselves.
    assert_each_succeeded_once(&store, &ids).await;
    running.shutdown().await.unwrap();
    let mut marks = marks;
    assert_no_overlapping_runs(&mut marks).await;
}
