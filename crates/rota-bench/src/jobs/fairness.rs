//! `fairness`: a backlog spread over `tenants` noisy tenants drains while
//! one more tenant, the quiet one, enqueues a job every 100 ms; reports the
//! quiet tenant's wait (enqueue to handler start).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use rota::jobs::{JobContext, JobError, Jobs, QueueOptions, Worker, WorkerOptions};
use rota_core::Inboxes;
use rota_core::jobs::{JobStore, NewJob};
use rota_core::time::now_ms;
use serde_json::json;

use super::{Backend, ENQUEUE_BATCH, Payload, queue};
use crate::report::{Line, line, percentile_ms};

const MEASURES: &str = "p50_ms, p99_ms: a quiet tenant's wait from enqueue to its handler's start, one quiet job every 100 ms while a backlog spread over `tenants` other tenants drains; drain_s: the backlog's drain time";

/// The size of a fairness run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    /// Jobs in the noisy tenants' backlog.
    pub(crate) backlog: usize,
    /// Noisy tenants the backlog is spread over.
    pub(crate) tenants: usize,
    /// Handler slots.
    pub(crate) concurrency: usize,
    /// Each job's work.
    pub(crate) work: Duration,
}

pub(crate) async fn run<S: JobStore + Inboxes + Clone>(
    backend: Backend,
    store: S,
    shape: Shape,
) -> Result<Line> {
    let Shape {
        backlog,
        tenants,
        concurrency,
        work,
    } = shape;
    let q = queue("fairness");
    let jobs = Jobs::new(store.clone());
    for chunk in (0..backlog as u64)
        .collect::<Vec<_>>()
        .chunks(ENQUEUE_BATCH)
    {
        let batch = chunk
            .iter()
            .map(|i| {
                let noisy = format!("noisy{}", i % tenants.max(1) as u64);
                NewJob::new(&q, noisy, "work", &Payload { i: *i })
            })
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
        "measures": MEASURES,
        "backlog": backlog,
        "tenants": tenants,
        "concurrency": concurrency,
        "work_ms": work.as_millis() as u64,
        "drain_s": (drained.as_secs_f64() * 10.0).round() / 10.0,
        "quiet_jobs": samples.len(),
        "p50_ms": percentile_ms(&samples, 50.0),
        "p99_ms": percentile_ms(&samples, 99.0),
    })))
}
