//! The long-running commands: `rota worker`, `rota scheduler` and `rota up`
//! (both in one process on the embedded store). Each stops gracefully on
//! SIGTERM or Ctrl-C: the scheduler gives its shards back, workers finish
//! (drain) what they run, then give the rest back.

use std::io::IsTerminal;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use rota::jobs::{JobContext, JobError, KindOptions, QueueOptions, Worker, WorkerHandle};
use rota::schedules::{
    JobTemplate, NewSchedule, Overlap, Schedule, Scheduler, SchedulerHandle, Schedules, Trigger,
};
use rota_sqlite::SqliteBroker;

use crate::cli::{RunArgs, UpArgs};
use crate::config::{Config, StoreConfig};
use crate::error::{Code, Failure, Result};
use crate::exec::Exec;
use crate::http::Http;
use crate::output::{Table, ms_time, state_name};
use crate::parse::positive_duration;
use crate::serve;
use crate::store::{Reach, Store};

/// Resolves when the process is asked to stop (SIGTERM, SIGINT) or, with
/// `secs`, after that long.
async fn stopped(secs: Option<u64>) {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    let limit = async {
        match secs {
            Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted; stopping"),
        () = term => tracing::info!("terminated; stopping"),
        () = limit => {}
    }
}

/// A worker on `queues` running every job with `run`'s command or
/// service; `None` when `run` names neither.
async fn exec_worker(
    store: &Store,
    queues: &[String],
    run: &RunArgs,
) -> Result<Option<WorkerHandle>> {
    if run.exec.is_none() && run.http.is_none() {
        return Ok(None);
    }
    if queues.is_empty() {
        return Err(Failure::new(
            Code::Usage,
            "a worker needs the queues it serves: --queue QUEUE (repeat for more)",
        ));
    }
    let timeout = positive_duration("--timeout", &run.timeout)?;
    let mut worker = match store {
        Store::Embedded(s) => Worker::new(s.clone()),
        Store::Redis(s) => Worker::new(s.as_ref().clone()),
    };
    for q in queues {
        worker = worker.queue(q, QueueOptions::default().concurrency(run.concurrency));
    }
    let options = KindOptions::default().timeout(timeout);
    let worker = if let Some(command) = &run.exec {
        let exec = Exec::new(command, run.max_output, timeout)?;
        worker.handle_any(options, move |ctx: JobContext, _: serde::de::IgnoredAny| {
            let exec = exec.clone();
            async move { exec.run(ctx).await }
        })
    } else {
        let http = Http::new(
            run.http.as_deref().unwrap_or_default(),
            run.max_output,
            timeout,
        )?;
        http.probe().await;
        worker.handle_any(options, move |ctx: JobContext, _: serde::de::IgnoredAny| {
            let http = http.clone();
            async move { http.run(ctx).await }
        })
    };
    Ok(Some(worker.spawn()))
}

fn scheduler(store: &Store) -> SchedulerHandle {
    match store {
        Store::Embedded(s) => Scheduler::new(s.clone()).spawn(),
        Store::Redis(s) => Scheduler::new(s.as_ref().clone()).spawn(),
    }
}

/// `rota worker`.
pub(crate) async fn worker(
    config: Config,
    queues: Vec<String>,
    run: RunArgs,
    secs: Option<u64>,
) -> Result<()> {
    let store = Store::open(&config.store, Reach::Waiting).await?;
    let Some(worker) = exec_worker(&store, &queues, &run).await? else {
        return Err(Failure::new(
            Code::Usage,
            "say how jobs run: --exec COMMAND or --http URL",
        ));
    };
    let with = run
        .exec
        .as_deref()
        .or(run.http.as_deref())
        .unwrap_or_default();
    eprintln!("rota worker: serving {} with {with}", queues.join(", "));
    stopped(secs).await;
    worker
        .shutdown()
        .await
        .map_err(|e| Failure::new(Code::Failure, e.to_string()))
}

/// `rota scheduler`.
pub(crate) async fn run_scheduler(config: Config, secs: Option<u64>) -> Result<()> {
    let store = Store::open(&config.store, Reach::Waiting).await?;
    let scheduler = scheduler(&store);
    eprintln!("rota scheduler: running");
    stopped(secs).await;
    scheduler.shutdown().await;
    Ok(())
}

/// The demo's schedules: a few tenants, each with another trigger.
fn demo_schedules() -> Vec<NewSchedule> {
    let job =
        |ms: u64| JobTemplate::new(DEMO_QUEUE, DEMO_KIND, serde_json::json!({ "work_ms": ms }));
    vec![
        NewSchedule::new(
            "acme",
            job(100),
            Trigger::cron_in("*/2 * * * * *", "Europe/Lisbon"),
        )
        .id("demo-acme-report")
        .name("report: cron, every 2 s in Lisbon"),
        NewSchedule::new(
            "globex",
            job(1_500),
            Trigger::after_completion(SignedDuration::from_secs(1)),
        )
        .id("demo-globex-import")
        .name("import: 1 s after the last finished (each takes 1.5 s)"),
        NewSchedule::new(
            "initech",
            job(1_200),
            Trigger::fixed_rate(SignedDuration::from_millis(500), Timestamp::now()),
        )
        .id("demo-initech-sync")
        .name("sync: every 500 ms, skipped while one runs (each takes 1.2 s)")
        .overlap(Overlap::Skip),
    ]
}

const DEMO_QUEUE: &str = "demo";
const DEMO_KIND: &str = "demo.work";

#[derive(serde::Deserialize)]
struct DemoWork {
    work_ms: u64,
}

/// `rota up`: the scheduler and workers in one process, on the embedded
/// store; with `--demo`, a few tenants' schedules shown live.
pub(crate) async fn up(config: Config, args: UpArgs) -> Result<()> {
    let on_redis = || {
        Failure::new(
            Code::Usage,
            "rota up runs on the embedded store; on Redis run `rota scheduler` and \
             `rota worker` (as many of each as needed)",
        )
    };
    let StoreConfig::Embedded { db } = &config.store else {
        return Err(on_redis());
    };
    let store = Store::open(&config.store, Reach::Waiting).await?;
    let Store::Embedded(sqlite) = &store else {
        return Err(on_redis());
    };
    let workers = exec_worker(&store, &args.queues, &args.run).await?;
    let api = if args.no_api {
        None
    } else {
        Some(serve::start(&store, &config, args.listen.listen).await?)
    };
    let demo = if args.demo {
        Some(start_demo(sqlite).await?)
    } else {
        None
    };
    if workers.is_none() && demo.is_none() {
        return Err(Failure::new(
            Code::Usage,
            "nothing to run: give --exec COMMAND or --http URL with --queue QUEUE, or --demo",
        ));
    }
    let scheduler = scheduler(&store);
    eprintln!("rota up: embedded store at {} (Ctrl-C stops)", db.display());
    if args.demo {
        let view = live_view(Schedules::new(sqlite.clone()));
        tokio::select! {
            () = stopped(args.secs) => {}
            r = view => r?,
        }
        // Where the table was not redrawn live, it ends the output.
        if !std::io::stdout().is_terminal() {
            demo_table(&Schedules::new(sqlite.clone())).await?.print();
        }
    } else {
        stopped(args.secs).await;
    }
    if let Some(api) = api {
        api.shutdown().await?;
    }
    scheduler.shutdown().await;
    if let Some(w) = workers {
        w.shutdown()
            .await
            .map_err(|e| Failure::new(Code::Failure, e.to_string()))?;
    }
    if let Some(w) = demo {
        w.shutdown()
            .await
            .map_err(|e| Failure::new(Code::Failure, e.to_string()))?;
    }
    eprintln!("rota up: stopped");
    Ok(())
}

/// `rota api`: the HTTP API over the store, until stopped.
pub(crate) async fn api(
    config: Config,
    listen: Option<std::net::SocketAddr>,
    secs: Option<u64>,
) -> Result<()> {
    let store = Store::open(&config.store, Reach::Waiting).await?;
    let server = serve::start(&store, &config, listen).await?;
    stopped(secs).await;
    server.shutdown().await?;
    eprintln!("rota api: stopped");
    Ok(())
}

async fn start_demo(store: &SqliteBroker) -> Result<WorkerHandle> {
    let schedules = Schedules::new(store.clone());
    // Upserted by id: running the demo again starts it afresh.
    schedules.upsert_many(demo_schedules()).await?;
    Ok(Worker::new(store.clone())
        .queue(
            DEMO_QUEUE,
            QueueOptions::default()
                .concurrency(8)
                .claim_wait(Duration::from_millis(50)),
        )
        .handle(DEMO_KIND, |_ctx: JobContext, w: DemoWork| async move {
            tokio::time::sleep(Duration::from_millis(w.work_ms.min(60_000))).await;
            Ok::<_, JobError>(serde_json::json!({ "worked_ms": w.work_ms }))
        })
        .spawn())
}

/// The demo's schedules as they stand.
async fn demo_table(schedules: &Schedules) -> Result<Table> {
    let mut table = Table::new([
        "SCHEDULE",
        "TENANT",
        "LAST RUN",
        "STATE",
        "NEXT FIRE",
        "FIRED",
        "SKIPPED",
    ]);
    for new in demo_schedules() {
        let Some(id) = new.id else { continue };
        if let Some(s) = schedules.get(&id).await? {
            table.row(row(&s));
        }
    }
    Ok(table)
}

/// The demo's schedules, redrawn in place on a terminal; elsewhere, a line
/// per finished run and the table every few seconds.
async fn live_view(schedules: Schedules) -> Result<()> {
    let ids: Vec<String> = demo_schedules().into_iter().filter_map(|s| s.id).collect();
    let terminal = std::io::stdout().is_terminal();
    let mut seen: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
    let mut drawn = 0usize;
    let mut tick = 0u64;
    loop {
        tokio::time::sleep(Duration::from_millis(if terminal { 250 } else { 200 })).await;
        tick += 1;
        if terminal {
            // Up to where the table began, then the table anew.
            let table = demo_table(&schedules).await?;
            if drawn > 0 {
                print!("\x1b[{drawn}A\x1b[J");
            }
            drawn = table.print_counted();
            continue;
        }
        for id in &ids {
            if let Some(s) = schedules.get(id).await?
                && let Some(last) = s.progress.last
                && seen.get(id) != Some(&last.occurrence_ms)
            {
                seen.insert(id.clone(), last.occurrence_ms);
                println!(
                    "{}  {:<20} {:<8} run of {} {}",
                    ms_time(last.finished_ms),
                    s.id,
                    s.tenant,
                    ms_time(last.occurrence_ms),
                    state_name(last.state)
                );
            }
        }
        if tick.is_multiple_of(25) {
            demo_table(&schedules).await?.print();
        }
    }
}

fn row(s: &Schedule) -> [String; 7] {
    let state = if s.paused {
        "paused"
    } else if !s.progress.running.is_empty() {
        "running"
    } else {
        "idle"
    };
    let last = s.progress.last.map_or_else(String::new, |l| {
        format!("{} {}", short_time(l.finished_ms), state_name(l.state))
    });
    let c = s.progress.counts;
    [
        s.id.clone(),
        s.tenant.clone(),
        last,
        state.to_owned(),
        s.progress
            .due_at()
            .map(|t| short_time(t.as_millisecond()))
            .unwrap_or_default(),
        c.fired.to_string(),
        (c.skipped_overlap + c.skipped_missed).to_string(),
    ]
}

/// `HH:MM:SS.mmm` in UTC: what a live view needs.
fn short_time(ms: i64) -> String {
    let full = ms_time(ms);
    full.get(11..)
        .unwrap_or(&full)
        .trim_end_matches('Z')
        .to_owned()
}
