//! Job benchmarks: throughput (bulk enqueue, then processing with no-op
//! handlers), enqueue-to-completion latency, and fairness (a quiet tenant's
//! wait while another tenant's backlog drains).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use rota::jobs::{JobContext, JobError, Jobs, NewJob, QueueOptions, Worker, WorkerOptions};
use rota_core::jobs::{JobState, JobStore};
use rota_core::time::now_ms;
use serde_json::json;

use crate::report::{Line, line, per_s, percentile_ms};

/// Which store to run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Backend {
    /// Redis.
    Redis,
    /// The embedded SQLite file.
    Embedded,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Redis => "redis",
            Backend::Embedded => "embedded",
        }
    }
}

/// A store, with whatever must live as long as it.
pub(crate) struct Store<S> {
    pub(crate) store: S,
    _dir: Option<tempfile::TempDir>,
}

pub(crate) async fn redis_store(url: &str) -> Result<Store<rota_redis::RedisBroker>> {
    let store =
        rota_redis::RedisBroker::connect_with(rota_redis::RedisOptions::new(url).prefix("bench"))
            .await
            .with_context(|| format!("connecting to {url}"))?;
    Ok(Store { store, _dir: None })
}

pub(crate) async fn embedded_store() -> Result<Store<rota_sqlite::SqliteBroker>> {
    let dir = tempfile::tempdir()?;
    let store = rota_sqlite::SqliteBroker::open(dir.path().join("bench.db")).await?;
    Ok(Store {
        store,
        _dir: Some(dir),
    })
}

fn queue(name: &str) -> String {
    format!("bench-{name}-{}", now_ms())
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Payload {
    i: u64,
}

/// Bulk-enqueues `n` jobs, then processes them with no-op handlers; each
/// job is counted exactly once (a second run of any job fails the run).
pub(crate) async fn throughput<S: JobStore + Clone>(
    backend: Backend,
    store: S,
    n: usize,
    concurrency: usize,
) -> Result<Line> {
    let q = queue("throughput");
    let jobs = Jobs::new(store.clone());
    // Batches of 1000, four in flight: bulk enqueue as a producer would.
    let started = Instant::now();
    let batches = (0..n as u64)
        .collect::<Vec<_>>()
        .chunks(1000)
        .map(|chunk| {
            chunk
                .iter()
                .map(|i| NewJob::new(&q, format!("t{}", i % 16), "noop", &Payload { i: *i }))
                .collect::<Result<Vec<_>, _>>()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut in_flight = tokio::task::JoinSet::new();
    for batch in batches {
        if in_flight.len() >= 4 {
            in_flight.join_next().await.expect("non-empty")??;
        }
        let jobs = jobs.clone();
        in_flight.spawn(async move { jobs.enqueue_many(batch).await });
    }
    while let Some(done) = in_flight.join_next().await {
        done??;
    }
    let enqueue_time = started.elapsed();

    let seen: Arc<Vec<AtomicBool>> = Arc::new((0..n).map(|_| AtomicBool::new(false)).collect());
    let done = Arc::new(AtomicUsize::new(0));
    let duplicate = Arc::new(AtomicBool::new(false));
    let (s, d, dup) = (Arc::clone(&seen), Arc::clone(&done), Arc::clone(&duplicate));
    let started = Instant::now();
    let worker = Worker::new(store.clone())
        .queue(
            &q,
            QueueOptions::default()
                .concurrency(concurrency)
                .claim_batch(256),
        )
        .options(WorkerOptions::default().concurrency(concurrency))
        .handle("noop", move |_: JobContext, p: Payload| {
            if s[p.i as usize].swap(true, Ordering::SeqCst) {
                dup.store(true, Ordering::SeqCst);
            }
            d.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, JobError>(()) }
        })
        .spawn();
    while done.load(Ordering::SeqCst) < n {
        tokio::time::sleep(Duration::from_millis(2)).await;
        ensure!(
            started.elapsed() < Duration::from_secs(600),
            "processing stalled"
        );
    }
    let process_time = started.elapsed();
    worker.shutdown().await?;
    ensure!(!duplicate.load(Ordering::SeqCst), "a job ran twice");
    ensure!(
        seen.iter().all(|s| s.load(Ordering::SeqCst)),
        "a job never ran"
    );
    let counts = store.counts(&q).await?;
    ensure!(
        counts.total.get(JobState::Queued) + counts.total.get(JobState::Running) == 0,
        "jobs left over: {counts:?}"
    );
    Ok(line(json!({
        "system": "rota",
        "mode": "jobs-throughput",
        "backend": backend.name(),
        "n": n,
        "concurrency": concurrency,
        "enqueue_per_s": per_s(n, enqueue_time),
        "process_per_s": per_s(n, process_time),
    })))
}

/// Enqueue a job and wait for its completion, `n` times in a row.
pub(crate) async fn latency<S: JobStore + Clone>(
    backend: Backend,
    store: S,
    n: usize,
) -> Result<Line> {
    let q = queue("latency");
    let worker = Worker::new(store.clone())
        .queue(
            &q,
            QueueOptions::default().claim_wait(Duration::from_secs(1)),
        )
        .handle("noop", |_: JobContext, _p: Payload| async {
            Ok::<_, JobError>(())
        })
        .spawn();
    let jobs = Jobs::new(store.clone());
    let timeout = Duration::from_secs(10);
    for i in 0..100 {
        jobs.run(NewJob::new(&q, "t", "noop", &Payload { i })?, timeout)
            .await?;
    }
    let mut samples = Vec::with_capacity(n);
    for i in 0..n as u64 {
        let job = NewJob::new(&q, "t", "noop", &Payload { i })?;
        let started = Instant::now();
        let outcome = jobs.run(job, timeout).await?;
        samples.push(started.elapsed());
        ensure!(outcome.state == JobState::Succeeded, "{outcome:?}");
    }
    worker.shutdown().await?;
    samples.sort();
    Ok(line(json!({
        "system": "rota",
        "mode": "jobs-latency",
        "backend": backend.name(),
        "n": n,
        "p50_ms": percentile_ms(&samples, 50.0),
        "p99_ms": percentile_ms(&samples, 99.0),
    })))
}

/// A noisy tenant's backlog of `backlog` jobs drains while a quiet tenant
/// enqueues one job every 100 ms; reports the quiet tenant's wait (enqueue
/// to handler start).
pub(crate) async fn fairness<S: JobStore + Clone>(
    backend: Backend,
    store: S,
    backlog: usize,
    concurrency: usize,
    work: Duration,
) -> Result<Line> {
    let q = queue("fairness");
    let jobs = Jobs::new(store.clone());
    for chunk in (0..backlog as u64).collect::<Vec<_>>().chunks(1000) {
        let batch = chunk
            .iter()
            .map(|i| NewJob::new(&q, "noisy", "work", &Payload { i: *i }))
            .collect::<Result<Vec<_>, _>>()?;
        jobs.enqueue_many(batch).await?;
    }
    let noisy_left = Arc::new(AtomicUsize::new(backlog));
    let waits = Arc::new(std::sync::Mutex::new(Vec::new()));
    let quiet_sent = Arc::new(AtomicU64::new(0));
    let (left, w) = (Arc::clone(&noisy_left), Arc::clone(&waits));
    let worker = Worker::new(store.clone())
        .queue(&q, QueueOptions::default().concurrency(concurrency))
        .options(WorkerOptions::default().concurrency(concurrency))
        .handle("work", move |ctx: JobContext, _p: Payload| {
            if ctx.tenant() == "quiet" {
                let wait = now_ms().saturating_sub(ctx.job().enqueued_at_ms);
                w.lock().unwrap().push(Duration::from_millis(wait));
            } else {
                left.fetch_sub(1, Ordering::SeqCst);
            }
            async move {
                tokio::time::sleep(work).await;
                Ok::<_, JobError>(())
            }
        })
        .spawn();
    let started = Instant::now();
    let mut i = 0;
    while noisy_left.load(Ordering::SeqCst) > 0 {
        jobs.enqueue(NewJob::new(&q, "quiet", "work", &Payload { i })?)
            .await?;
        quiet_sent.fetch_add(1, Ordering::SeqCst);
        i += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
        ensure!(
            started.elapsed() < Duration::from_secs(600),
            "the backlog never drained"
        );
    }
    let drained = started.elapsed();
    // Let the last quiet jobs run.
    let sent = quiet_sent.load(Ordering::SeqCst) as usize;
    let until = Instant::now() + Duration::from_secs(10);
    while waits.lock().unwrap().len() < sent && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    worker.shutdown().await?;
    let mut samples = waits.lock().unwrap().clone();
    ensure!(
        samples.len() == sent,
        "quiet jobs ran {} of {sent}",
        samples.len()
    );
    samples.sort();
    Ok(line(json!({
        "system": "rota",
        "mode": "fairness",
        "backend": backend.name(),
        "backlog": backlog,
        "concurrency": concurrency,
        "work_ms": work.as_millis() as u64,
        "drain_s": (drained.as_secs_f64() * 10.0).round() / 10.0,
        "quiet_jobs": samples.len(),
        "p50_ms": percentile_ms(&samples, 50.0),
        "p99_ms": percentile_ms(&samples, 99.0),
    })))
}
