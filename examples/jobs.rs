//! rota's main job, on one machine with no server: background jobs for a
//! few tenants on the embedded durable store (a SQLite file). Jobs are
//! enqueued in bulk, one is scheduled for later, one fails and is retried,
//! one has a payload its handler cannot read; a worker processes them
//! fairly across tenants and the outcomes are printed.
//!
//! ```text
//! cargo run -p rota-examples --bin jobs [-- path/to/rota.db]
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rota::jobs::{
    JobContext, JobError, JobState, Jobs, KindOptions, NewJob, QueueOptions, RetryPolicy, Worker,
};
use rota_core::jobs::JobStore;
use rota_sqlite::SqliteBroker;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Sync {
    source: String,
    records: u32,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::env::temp_dir().join(format!("rota-jobs-{}.db", std::process::id()))
        });
    let store = SqliteBroker::open(&path).await?;
    println!("embedded store at {}", path.display());

    // A flaky upstream: the first call of each tenant's import fails.
    let flaky = Arc::new(AtomicU32::new(0));
    let seen = Arc::clone(&flaky);
    let worker = Worker::new(store.clone())
        .queue(
            "tenant-syncs",
            QueueOptions::default()
                .concurrency(8)
                .tenant_cap(2)
                .claim_wait(Duration::from_millis(100)),
        )
        .handle("sync", |ctx: JobContext, job: Sync| async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            Ok::<_, JobError>(format!(
                "{} synced {} records from {}",
                ctx.tenant(),
                job.records,
                job.source
            ))
        })
        .handle_with(
            "import",
            KindOptions::default().retry(
                RetryPolicy::default()
                    .max_attempts(3)
                    .backoff(Duration::from_millis(100), Duration::from_secs(1)),
            ),
            move |ctx: JobContext, job: Sync| {
                let seen = Arc::clone(&seen);
                async move {
                    if ctx.attempt() == 1 {
                        seen.fetch_add(1, Ordering::SeqCst);
                        return Err(JobError::retry(format!("{} is not answering", job.source)));
                    }
                    Ok(format!(
                        "imported {} on attempt {}",
                        job.records,
                        ctx.attempt()
                    ))
                }
            },
        )
        .spawn();

    let jobs = Jobs::new(store.clone());
    // One bulk enqueue: three tenants, a noisy one with many jobs.
    let mut batch = Vec::new();
    for (tenant, count) in [("acme", 12), ("globex", 2), ("initech", 2)] {
        for n in 0..count {
            let sync = Sync {
                source: format!("crm-{n}"),
                records: 10 * (n + 1),
            };
            batch.push(NewJob::new("tenant-syncs", tenant, "sync", &sync)?);
        }
    }
    let enqueued = jobs.enqueue_many(batch).await?;
    println!("enqueued {} sync jobs in one round trip", enqueued.len());

    // Await a few outcomes directly.
    let import = NewJob::new(
        "tenant-syncs",
        "globex",
        "import",
        &Sync {
            source: "erp".into(),
            records: 500,
        },
    )?;
    let outcome = jobs.run(import, Duration::from_secs(10)).await?;
    println!(
        "import: {:?} after {} attempts: {}",
        outcome.state,
        outcome.attempts,
        outcome.result.unwrap_or_default()
    );

    let later = NewJob::new(
        "tenant-syncs",
        "initech",
        "sync",
        &Sync {
            source: "nightly".into(),
            records: 1,
        },
    )?
    .after(Duration::from_millis(300));
    let outcome = jobs.run(later, Duration::from_secs(10)).await?;
    println!(
        "scheduled: {:?}, waited {} ms",
        outcome.state,
        outcome.started_at_ms - outcome.enqueued_at_ms
    );

    let broken = NewJob::new(
        "tenant-syncs",
        "acme",
        "sync",
        &serde_json::json!({"source": 7}),
    )?;
    let outcome = jobs.run(broken, Duration::from_secs(10)).await?;
    println!(
        "bad payload: {:?}: {}",
        outcome.state,
        outcome.error.unwrap_or_default()
    );

    // Wait for the bulk jobs, then show what happened.
    loop {
        let counts = store.counts("tenant-syncs").await?;
        if counts.total.get(JobState::Queued)
            + counts.total.get(JobState::Running)
            + counts.total.get(JobState::Scheduled)
            == 0
        {
            println!(
                "done: {} succeeded, {} failed, {} dead",
                counts.total.succeeded, counts.total.failed, counts.total.dead
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for e in enqueued.iter().take(3) {
        if let Some(record) = jobs.job("tenant-syncs", e.id).await? {
            println!(
                "  {} {:?}: {}",
                record.job.tenant,
                record.state,
                record.result.unwrap_or_default()
            );
        }
    }
    worker.shutdown().await?;
    Ok(())
}
