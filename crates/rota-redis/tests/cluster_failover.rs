//! A planned fail-over of a Redis Cluster primary under load: jobs are
//! enqueued on six queues (spread over the three primaries), claimed and
//! settled by two workers, and a schedule fires every second, while the
//! replica of the primary that holds the first queue takes over with
//! `CLUSTER FAILOVER`. Afterwards:
//!
//! * **no acknowledged enqueue is lost**: every job whose enqueue was
//!   answered is found, succeeded;
//! * **nothing ran twice at once**, and nothing ran twice at all: each job
//!   ran exactly once (a planned fail-over lets the replica catch up
//!   first, and no worker's lease lapsed), and only jobs that were
//!   enqueued ran;
//! * **the schedule kept firing**: each occurrence is in its history once,
//!   and occurrences after the fail-over ran to success.
//!
//! What an unplanned fail-over may lose is in the crate docs.

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rota::jobs::{JobContext, JobError, QueueOptions, Worker, WorkerOptions};
use rota::schedules::{
    JobTemplate, NewSchedule, RunState, Scheduler, SchedulerOptions, Schedules, Trigger,
};
use rota_core::jobs::{JobId, JobState, JobStore, NewJob, QueuePolicy, Retention};
use rota_redis::{RedisBroker, RedisOptions};
use support::RedisCluster;

const PREFIX: &str = "fo";
const QUEUES: [&str; 6] = ["fo-a", "fo-b", "fo-c", "fo-d", "fo-e", "fo-f"];
const SCHEDULED: &str = "fo-sched";

/// What the handlers saw.
#[derive(Default)]
struct Seen {
    running: HashSet<JobId>,
    runs: HashMap<JobId, u32>,
    /// Jobs a handler started while another ran them.
    overlaps: Vec<JobId>,
}

fn worker(store: RedisBroker, seen: Arc<Mutex<Seen>>) -> rota::jobs::WorkerHandle {
    let queue = QueueOptions::default()
        .concurrency(16)
        .claim_wait(Duration::from_millis(50))
        .lease(Duration::from_secs(10));
    let mut worker = Worker::new(store).options(WorkerOptions::default().concurrency(128));
    for q in QUEUES.iter().chain([&SCHEDULED]) {
        worker = worker.queue(*q, queue.clone());
    }
    worker
        .handle("work", move |ctx: JobContext, _: serde_json::Value| {
            let seen = Arc::clone(&seen);
            async move {
                {
                    let mut s = seen.lock().unwrap();
                    if !s.running.insert(ctx.id()) {
                        s.overlaps.push(ctx.id());
                    }
                    *s.runs.entry(ctx.id()).or_default() += 1;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
                seen.lock().unwrap().running.remove(&ctx.id());
                Ok::<_, JobError>(())
            }
        })
        .spawn()
}

/// The port of the primary that serves `key`, as the node at `port` sees
/// it.
fn primary_of(port: u16, key: &str) -> Option<u16> {
    let slot: u16 = RedisCluster::cli(port, &["cluster", "keyslot", key])?
        .trim()
        .parse()
        .ok()?;
    let nodes = RedisCluster::cli(port, &["cluster", "nodes"])?;
    let serves = |range: &&str| {
        let (a, b) = range.split_once('-').unwrap_or((range, range));
        matches!((a.parse::<u16>(), b.parse::<u16>()), (Ok(a), Ok(b)) if (a..=b).contains(&slot))
    };
    let primary = nodes
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|r| r.len() > 8 && r[2].contains("master") && r[8..].iter().any(serves))?;
    primary[1]
        .split('@')
        .next()
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planned_failover_under_load_loses_no_job_and_runs_none_twice() {
    let cluster = tokio::task::spawn_blocking(RedisCluster::start)
        .await
        .unwrap();
    let store = RedisBroker::connect_with(RedisOptions::new(cluster.url()).prefix(PREFIX))
        .await
        .expect("connect");
    for q in QUEUES.iter().chain([&SCHEDULED]) {
        let keep = Retention::default().max_finished(1_000_000);
        store
            .set_policy(q, QueuePolicy::default().retention(keep))
            .await
            .unwrap();
    }
    let seen = Arc::new(Mutex::new(Seen::default()));
    let workers = [
        worker(store.clone(), Arc::clone(&seen)),
        worker(store.clone(), Arc::clone(&seen)),
    ];
    let scheduler = Scheduler::new(store.clone())
        .options(
            SchedulerOptions::default()
                .lease(Duration::from_secs(2))
                .poll(Duration::from_millis(50)),
        )
        .spawn();
    let schedules = Schedules::new(store.clone());
    schedules
        .create(
            NewSchedule::new(
                "acme",
                JobTemplate::new(SCHEDULED, "work", serde_json::json!({})),
                Trigger::cron("* * * * * *"),
            )
            .id("every-second"),
        )
        .await
        .unwrap();

    // The enqueuer: batches of one job per queue, each with its id chosen,
    // so that a batch whose answer was lost is enqueued again safely.
    let stop = Arc::new(AtomicBool::new(false));
    let enqueuer = tokio::spawn({
        let (store, stop) = (store.clone(), Arc::clone(&stop));
        async move {
            let mut acked: Vec<(String, JobId)> = Vec::new();
            let mut errors = 0;
            while !stop.load(Ordering::Relaxed) {
                let batch: Vec<NewJob> = QUEUES
                    .iter()
                    .map(|q| {
                        NewJob::new(*q, "acme", "work", &serde_json::json!({}))
                            .unwrap()
                            .with_id(JobId::new())
                    })
                    .collect();
                loop {
                    match store.enqueue(batch.clone()).await {
                        Ok(done) => {
                            acked.extend(
                                QUEUES
                                    .iter()
                                    .map(|q| (*q).to_owned())
                                    .zip(done.iter().map(|e| e.id)),
                            );
                            break;
                        }
                        Err(e) => {
                            assert!(e.is_retryable(), "{e}");
                            errors += 1;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (acked, errors)
        }
    });

    tokio::time::sleep(Duration::from_secs(3)).await;
    let seed = cluster.nodes()[0].port();
    let first_queue_key = format!("{PREFIX}:{{j:{}}}:ring", QUEUES[0]);
    let primary = primary_of(seed, &first_queue_key).expect("a primary serves the queue");
    let replica = RedisCluster::pairs_seen_by(seed)
        .into_iter()
        .find_map(|(p, r)| (p == primary).then_some(r))
        .expect("the primary has a replica");
    let failed_over_at = jiff::Timestamp::now().as_millisecond();
    let said =
        tokio::task::spawn_blocking(move || RedisCluster::cli(replica, &["cluster", "failover"]))
            .await
            .unwrap();
    assert_eq!(said.as_deref().map(str::trim), Some("OK"));
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let role = RedisCluster::cli(replica, &["role"]).unwrap_or_default();
        if role.starts_with("master") && primary_of(seed, &first_queue_key) == Some(replica) {
            break;
        }
        assert!(
            Instant::now() < until,
            "the replica {replica} never took over from {primary}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let (acked, errors) = enqueuer.await.unwrap();
    assert!(acked.len() > 100, "only {} jobs were enqueued", acked.len());

    // Every acknowledged job succeeds.
    let until = Instant::now() + Duration::from_secs(60);
    let mut waiting: Vec<(String, JobId)> = acked.clone();
    while !waiting.is_empty() {
        let mut left = Vec::new();
        for (q, id) in waiting {
            let record = store.job(&q, id).await.unwrap();
            match record.map(|r| r.state) {
                Some(JobState::Succeeded) => {}
                Some(s) if !s.is_final() => left.push((q, id)),
                other => panic!("job {id} of {q} ended as {other:?}"),
            }
        }
        waiting = left;
        assert!(
            Instant::now() < until || waiting.is_empty(),
            "{} acknowledged jobs never succeeded, such as {:?}",
            waiting.len(),
            waiting.first()
        );
        if !waiting.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    // The schedule kept firing across the fail-over, each occurrence once.
    let until = Instant::now() + Duration::from_secs(20);
    let runs = loop {
        let runs = schedules.runs("every-second", 1_000).await.unwrap();
        let after = runs.iter().any(|r| {
            r.occurrence_ms > failed_over_at + 1_000
                && r.state == RunState::Finished(JobState::Succeeded)
        });
        if after {
            break runs;
        }
        assert!(
            Instant::now() < until,
            "no occurrence ran after the fail-over: {runs:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let occurrences: HashSet<i64> = runs.iter().map(|r| r.occurrence_ms).collect();
    assert_eq!(
        occurrences.len(),
        runs.len(),
        "an occurrence fired twice: {runs:?}"
    );
    let scheduled: HashSet<JobId> = runs.iter().filter_map(|r| r.job).collect();

    scheduler.shutdown().await;
    for w in workers {
        w.shutdown().await.unwrap();
    }

    let seen = seen.lock().unwrap();
    assert!(
        seen.overlaps.is_empty(),
        "ran twice at once: {:?}",
        seen.overlaps
    );
    let acked_ids: HashSet<JobId> = acked.iter().map(|(_, id)| *id).collect();
    for (id, n) in &seen.runs {
        assert!(
            acked_ids.contains(id) || scheduled.contains(id),
            "job {id} ran but was never enqueued"
        );
        assert_eq!(*n, 1, "job {id} ran {n} times");
    }
    for id in &acked_ids {
        assert!(
            seen.runs.contains_key(id),
            "job {id} succeeded without running"
        );
    }
    println!(
        "{} jobs enqueued ({errors} enqueue errors during the fail-over), {} occurrences",
        acked.len(),
        runs.len()
    );
}
