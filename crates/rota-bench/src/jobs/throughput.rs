//! rota's `jobs-throughput`: bulk enqueue, then one worker with no-op
//! handlers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use rota::jobs::{JobContext, JobError, Jobs, QueueOptions, Worker, WorkerOptions};
use rota_core::jobs::{JobState, JobStore};
use serde_json::json;
use tokio::task::JoinSet;

use super::{Backend, CLAIM_BATCH, ENQUEUE_IN_FLIGHT, Payload, batches, queue};
use crate::report::{Line, line, per_s};

const MEASURES: &str = "enqueue_per_s: jobs accepted per second, in bulk batches of 1000 with 4 batches in flight; process_per_s: jobs whose handler started per second, from the worker's start until the n-th handler started (no-op handlers, one worker with `concurrency` handler slots claiming up to 256 jobs at a time)";

/// Enqueues `n` jobs over `tenants` tenants, then processes them; each job
/// is counted exactly once (a second run of any job fails the run).
pub(crate) async fn run<S: JobStore + Clone>(
    backend: Backend,
    store: S,
    n: usize,
    concurrency: usize,
    tenants: usize,
) -> Result<Line> {
    let q = queue("throughput");
    let jobs = Jobs::new(store.clone());
    let batches = batches(&q, n, tenants)?;
    let started = Instant::now();
    // Bounded: at most ENQUEUE_IN_FLIGHT batches at once.
    let mut in_flight = JoinSet::new();
    for batch in batches {
        if in_flight.len() >= ENQUEUE_IN_FLIGHT {
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
                .claim_batch(CLAIM_BATCH),
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
        "measures": MEASURES,
        "n": n,
        "tenants": tenants,
        "concurrency": concurrency,
        "enqueue_per_s": per_s(n, enqueue_time),
        "process_per_s": per_s(n, process_time),
    })))
}
