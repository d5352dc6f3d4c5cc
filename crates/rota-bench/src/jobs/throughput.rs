//! rota's `jobs-throughput`: bulk enqueue, then one worker with no-op
//! handlers, timed until the n-th job is settled in the store.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use rota::jobs::{JobContext, JobError, Jobs, QueueOptions, Worker, WorkerOptions};
use rota_core::Inboxes;
use rota_core::jobs::{JobState, JobStore};
use serde_json::json;
use tokio::task::JoinSet;

use super::settled::{Counted, Tally};
use super::{Backend, CLAIM_BATCH, ENQUEUE_IN_FLIGHT, Payload, batches, queue};
use crate::report::{Line, line, per_s};

/// How long processing may go without a single settlement before the run
/// gives up (and reports what was left unsettled).
pub(crate) const STALL: Duration = Duration::from_secs(60);

pub(crate) const MEASURES: &str = "enqueue_per_s: jobs accepted per second, in bulk batches of 1000 with 4 batches in flight; process_per_s: jobs made final in the store per second, from the worker's start until the write that settled the n-th job returned (no-op handlers, one worker with `concurrency` handler slots claiming up to 256 jobs at a time); unsettled: jobs left scheduled, queued or running after the run (non-zero fails the run)";

/// Enqueues `n` jobs over `tenants` tenants, then processes them; each job
/// must run exactly once and end settled.
pub(crate) async fn run<S: JobStore + Inboxes + Clone>(
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
    let duplicate = Arc::new(AtomicBool::new(false));
    let (s, dup) = (Arc::clone(&seen), Arc::clone(&duplicate));
    let tally = Tally::new(n);
    let started = Instant::now();
    let worker = Worker::new(Counted::new(store.clone(), Arc::clone(&tally)))
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
            async { Ok::<_, JobError>(()) }
        })
        .spawn();
    let reached = tally.reached(STALL).await;
    worker.shutdown().await?;
    ensure!(!duplicate.load(Ordering::SeqCst), "a job ran twice");
    let counts = store.counts(&q).await?;
    let unsettled = [JobState::Scheduled, JobState::Queued, JobState::Running]
        .into_iter()
        .map(|s| counts.total.get(s))
        .sum::<u64>();
    if reached.is_some() {
        ensure!(
            seen.iter().all(|s| s.load(Ordering::SeqCst)),
            "a job settled without its handler running"
        );
    } else if unsettled == 0 {
        bail!(
            "processing stalled at {} of {n} settled jobs, yet the store shows none unsettled",
            tally.settled()
        );
    }
    Ok(line(json!({
        "system": "rota",
        "mode": "jobs-throughput",
        "backend": backend.name(),
        "measures": MEASURES,
        "n": n,
        "tenants": tenants,
        "concurrency": concurrency,
        "enqueue_per_s": per_s(n, enqueue_time),
        "process_per_s": reached.map(|at| per_s(n, at - started)),
        "unsettled": unsettled,
    })))
}
