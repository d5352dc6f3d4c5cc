//! Recurring jobs for a few tenants on one machine, no server: the
//! embedded store (a SQLite file), a scheduler deciding *when*, a worker
//! running the jobs, and each run printed as it completes.
//!
//! * `acme/report` — cron, every two seconds (6 fields: seconds first), in
//!   a time zone.
//! * `globex/import` — every 1 s *after completion*; each import takes
//!   1.5 s, so runs start 1 s after the previous one finished, never
//!   overlapping.
//! * `initech/sync` — every 500 ms at a fixed rate, skip on overlap; each
//!   sync takes 1.2 s, so the occurrences that come while one runs are
//!   skipped and counted.
//!
//! ```text
//! cargo run -p rota-examples --bin schedules [-- SECONDS [path/to/rota.db]]
//! ```

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use rota::jobs::{JobContext, JobError, QueueOptions, Worker};
use rota::schedules::{
    JobTemplate, NewSchedule, Overlap, RunRecord, RunState, Scheduler, Schedules, Trigger,
};
use rota_sqlite::SqliteBroker;
use serde_json::{Value, json};

const QUEUE: &str = "recurring";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let secs: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(6);
    let path = args
        .next()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::env::temp_dir().join(format!("rota-schedules-{}.db", std::process::id()))
        });
    let store = SqliteBroker::open(&path).await?;
    println!("embedded store at {}", path.display());

    let schedules = Schedules::new(store.clone());
    let job = |kind: &str, ms: u64| JobTemplate::new(QUEUE, kind, json!({ "work_ms": ms }));
    let created = [
        NewSchedule::new(
            "acme",
            job("report", 50),
            Trigger::cron_in("*/2 * * * * *", "Europe/Lisbon"),
        )
        .id("acme-report")
        .name("daily report, every two seconds for the demo"),
        NewSchedule::new(
            "globex",
            job("import", 1_500),
            Trigger::after_completion(SignedDuration::from_secs(1)),
        )
        .id("globex-import")
        .name("import, 1 s after the last one finished"),
        NewSchedule::new(
            "initech",
            job("sync", 1_200),
            Trigger::fixed_rate(SignedDuration::from_millis(500), Timestamp::now()),
        )
        .id("initech-sync")
        .name("sync every 500 ms, skipped while one runs")
        .overlap(Overlap::Skip),
    ];
    // Upserted by id: running the example again replaces them.
    for new in created {
        let id = new.id.clone().unwrap_or_default();
        schedules.upsert_many(vec![new]).await?;
        let next = schedules
            .get(&id)
            .await?
            .and_then(|s| s.progress.due_at())
            .map(|t| t.to_string())
            .unwrap_or_default();
        println!("schedule {id}: next at {next}");
    }

    let worker = Worker::new(store.clone())
        .queue(
            QUEUE,
            QueueOptions::default().claim_wait(Duration::from_millis(50)),
        )
        .handle("report", work)
        .handle("import", work)
        .handle("sync", work)
        .spawn();
    let scheduler = Scheduler::new(store.clone()).spawn();

    let until = tokio::time::Instant::now() + Duration::from_secs(secs);
    let mut shown = std::collections::HashSet::new();
    while tokio::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(100)).await;
        for id in ["acme-report", "globex-import", "initech-sync"] {
            let mut runs = schedules.runs(id, 20).await?;
            runs.reverse();
            for run in runs {
                if let RunState::Finished(_) = run.state
                    && shown.insert((id, run.occurrence_ms))
                {
                    print_run(id, &run);
                }
            }
        }
    }
    scheduler.shutdown().await;
    worker.shutdown().await?;

    for id in ["acme-report", "globex-import", "initech-sync"] {
        if let Some(s) = schedules.get(id).await? {
            let c = s.progress.counts;
            println!(
                "{id}: {} fired, {} skipped (overlap), {} skipped (missed)",
                c.fired, c.skipped_overlap, c.skipped_missed
            );
        }
    }
    Ok(())
}

/// Each job works as long as its payload says.
async fn work(_ctx: JobContext, payload: Value) -> Result<(), JobError> {
    let ms = payload["work_ms"].as_u64().unwrap_or(10);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Ok(())
}

fn print_run(id: &str, run: &RunRecord) {
    let at = Timestamp::from_millisecond(run.occurrence_ms).unwrap_or(Timestamp::UNIX_EPOCH);
    let took = run.finished_ms.unwrap_or(0) - run.started_ms.unwrap_or(0);
    println!(
        "{id:>14}  occurrence {at}  {:?}  ran {took} ms, late {} ms",
        run.state,
        run.started_ms.unwrap_or(0) - run.occurrence_ms
    );
}
