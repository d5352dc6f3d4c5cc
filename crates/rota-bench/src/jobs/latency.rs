//! `jobs-latency`: enqueue a job and wait for its outcome, one at a time.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use rota::jobs::{JobContext, JobError, Jobs, QueueOptions, Worker};
use rota_core::Inboxes;
use rota_core::jobs::{JobState, JobStore, NewJob};
use serde_json::json;

use super::{Backend, Payload, queue, tenant};
use crate::report::{Line, line, percentile_ms};

const MEASURES: &str = "p50_ms, p99_ms: one job from enqueue until the enqueuer holds its outcome (the worker's reply), n jobs one after another over `tenants` tenants, no-op handler";

/// Enqueues a job and waits for its completion, `n` times in a row; job
/// `i` belongs to tenant `i % tenants`.
pub(crate) async fn run<S: JobStore + Inboxes + Clone>(
    backend: Backend,
    store: S,
    n: usize,
    tenants: usize,
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
        jobs.run(NewJob::new(&q, "warmup", "noop", &Payload { i })?, timeout)
            .await?;
    }
    let mut samples = Vec::with_capacity(n);
    for i in 0..n as u64 {
        let job = NewJob::new(&q, tenant(i, tenants), "noop", &Payload { i })?;
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
        "measures": MEASURES,
        "n": n,
        "tenants": tenants,
        "p50_ms": percentile_ms(&samples, 50.0),
        "p99_ms": percentile_ms(&samples, 99.0),
    })))
}
