//! The embedded job store survives killed processes: every job an enqueue
//! accepted is still there, and the jobs a killed worker held come back
//! once its lease lapses — attempt 2, a `Lost` attempt in the history — and
//! are then settled exactly once.
//!
//! The processes to kill are this same test binary, re-run with only one of
//! the ignored `child_*` tests selected.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rota::jobs::{
    AttemptOutcome, JobContext, JobError, JobId, JobState, NewJob, QueueOptions, Worker,
};
use rota_conformance::support::{Child, child_env};
use rota_core::jobs::{JobConsumerOptions, JobStore};
use rota_sqlite::SqliteBroker;

const LEASE: Duration = Duration::from_secs(1);

fn job(n: u64) -> NewJob {
    NewJob::new(
        "work",
        format!("t{}", n % 3),
        "slow",
        &serde_json::json!({ "n": n }),
    )
    .unwrap()
}

/// Child: enqueues jobs as fast as it can, one at a time and in batches,
/// printing the id of each one the store accepted.
#[test]
#[ignore = "the child process of another test"]
fn child_enqueuer() {
    let Some(db) = child_env("DB") else {
        return;
    };
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = SqliteBroker::open(&db).await.unwrap();
        for i in 0u64.. {
            let batch: Vec<NewJob> = if i % 2 == 0 {
                vec![job(i)]
            } else {
                (0..10).map(|k| job(i * 100 + k)).collect()
            };
            for e in store.enqueue(batch).await.unwrap() {
                println!("accepted {}", e.id);
            }
        }
    });
}

/// Child: a worker whose handlers never finish, printing each job started.
#[test]
#[ignore = "the child process of another test"]
fn child_worker() {
    let Some(db) = child_env("DB") else {
        return;
    };
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = SqliteBroker::open(&db).await.unwrap();
        Worker::new(store)
            .queue("work", QueueOptions::default().lease(LEASE))
            .handle("slow", |ctx: JobContext, _: serde_json::Value| async move {
                println!("started {} {}", ctx.id(), ctx.attempt());
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok::<_, JobError>("the killed worker finished")
            })
            .run()
            .await
            .unwrap();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enqueuer_killed_mid_stream_loses_no_job_it_was_told_was_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("rota.db");
    let mut enqueuer = Child::spawn("child_enqueuer", &[("DB", db.to_str().unwrap())]);
    let accepted: Vec<JobId> = enqueuer
        .collect(Duration::from_secs(60), 1000, |l| {
            l.starts_with("accepted ")
        })
        .await
        .iter()
        .map(|l| JobId::parse(&l["accepted ".len()..]).unwrap())
        .collect();
    enqueuer.kill(); // SIGKILL, while it goes on enqueueing
    assert!(accepted.len() >= 1000, "the enqueuer accepted too little");

    let store = SqliteBroker::open(&db).await.unwrap();
    for id in &accepted {
        let record = store.job("work", *id).await.unwrap();
        let record = record.unwrap_or_else(|| panic!("accepted job {id} is gone"));
        assert_eq!(record.state, JobState::Queued);
    }
    // Whatever committed after the last line read is there too, claimable
    // once each.
    let queued = store.counts("work").await.unwrap().total.queued;
    assert!(queued >= accepted.len() as u64, "{queued} queued");
    let c = store
        .job_consumer("work", JobConsumerOptions::default())
        .await
        .unwrap();
    let mut seen = std::collections::HashSet::new();
    loop {
        let got = c.claim(1000, Duration::ZERO).await.unwrap();
        if got.is_empty() {
            break;
        }
        for j in got {
            assert!(seen.insert(j.id), "{} delivered twice", j.id);
        }
    }
    assert_eq!(seen.len() as u64, queued);
    assert!(accepted.iter().all(|id| seen.contains(id)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_holding_jobs_gets_them_reaped_and_settled_once() {
    const JOBS: usize = 4;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("rota.db");
    let store = SqliteBroker::open(&db).await.unwrap();
    let ids: Vec<JobId> = store
        .enqueue((0..JOBS as u64).map(job).collect())
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();

    let mut worker = Child::spawn("child_worker", &[("DB", db.to_str().unwrap())]);
    let started = worker
        .collect(Duration::from_secs(30), JOBS, |l| l.starts_with("started "))
        .await;
    assert_eq!(started.len(), JOBS, "the child never started the jobs");
    assert!(started.iter().all(|l| l.ends_with(" 1")), "{started:?}");
    worker.kill(); // SIGKILL, with every job held
    for id in &ids {
        let record = store.job("work", *id).await.unwrap().unwrap();
        assert_eq!(record.state, JobState::Running, "held by the dead worker");
    }

    // Once the lease lapsed, a reap hands the jobs back with attempt 2.
    let reaper = store
        .job_consumer("work", JobConsumerOptions::default())
        .await
        .unwrap();
    assert_eq!(reaper.reap().await.unwrap().requeued, 0, "the lease holds");
    tokio::time::sleep(LEASE + Duration::from_millis(500)).await;
    let stats = reaper.reap().await.unwrap();
    assert_eq!((stats.requeued, stats.dead_lettered), (JOBS, 0));
    let mut dead_worker = None;
    for id in &ids {
        let record = store.job("work", *id).await.unwrap().unwrap();
        assert_eq!(record.state, JobState::Queued);
        assert_eq!(record.job.attempt, 2);
        assert_eq!(record.attempts.len(), 1);
        let lost = &record.attempts[0];
        assert_eq!((lost.attempt, &lost.outcome), (1, &AttemptOutcome::Lost));
        let w = dead_worker.get_or_insert_with(|| lost.worker.clone());
        assert_eq!(&lost.worker, w, "one worker held them all");
    }
    reaper.close().await.unwrap();

    // A surviving worker runs each exactly once.
    let runs: Arc<Mutex<HashMap<JobId, Vec<u32>>>> = Arc::default();
    let handle = Worker::new(store.clone())
        .queue("work", QueueOptions::default().lease(LEASE))
        .handle("slow", {
            let runs = Arc::clone(&runs);
            move |ctx: JobContext, _: serde_json::Value| {
                let runs = Arc::clone(&runs);
                async move {
                    runs.lock()
                        .unwrap()
                        .entry(ctx.id())
                        .or_default()
                        .push(ctx.attempt());
                    Ok::<_, JobError>(ctx.attempt())
                }
            }
        })
        .spawn();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let counts = store.counts("work").await.unwrap().total;
        if counts.succeeded == JOBS as u64 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not settled: {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    handle.shutdown().await.unwrap();
    let runs = runs.lock().unwrap().clone();
    assert_eq!(runs.len(), JOBS);
    for id in &ids {
        assert_eq!(
            runs[id],
            vec![2],
            "job {id} ran other than once, as attempt 2"
        );
        let record = store.job("work", *id).await.unwrap().unwrap();
        assert_eq!(record.state, JobState::Succeeded);
        let outcomes: Vec<_> = record
            .attempts
            .iter()
            .map(|a| (a.attempt, a.outcome.clone()))
            .collect();
        assert_eq!(
            outcomes,
            vec![(1, AttemptOutcome::Lost), (2, AttemptOutcome::Succeeded)]
        );
        assert_eq!(record.result, Some(serde_json::json!(2)));
    }
    let counts = store.counts("work").await.unwrap().total;
    assert_eq!((counts.queued, counts.running, counts.dead), (0, 0, 0));
}
