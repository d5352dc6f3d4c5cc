//! `schedules`: `--schedules` fixed-rate schedules, one fire every
//! `--every-ms` each (their anchors spread evenly over the interval), for
//! `--secs`, with `--schedulers` schedulers and one worker of no-op
//! handlers in this process. Reports what fired, what completed, how late
//! runs started (handler start − occurrence instant), and whether any
//! occurrence started twice.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use jiff::{SignedDuration, Timestamp};
use rota::jobs::{JobContext, JobError, QueueOptions, Worker, WorkerOptions};
use rota::schedules::{JobTemplate, NewSchedule, Scheduler, SchedulerOptions, Schedules, Trigger};
use rota_core::Inboxes;
use rota_core::jobs::JobStore;
use rota_core::schedules::{ScheduleStore, parse_run_id};
use rota_core::time::now_ms;
use serde_json::json;

use crate::jobs::Backend;
use crate::report::{Line, line, percentile_ms};

const MEASURES: &str = "expected: occurrences whose instant fell in the run (the schedules end with it); fired: runs dispatched; completed: runs whose handler finished; lateness_p50_ms, lateness_p99_ms: handler start − occurrence instant; dispatch_p50_ms, dispatch_p99_ms: the scheduler's enqueue − occurrence instant (its share of the lateness); double_fires: occurrences whose handler started more than once; rss_mb: resident memory of this process (schedulers, worker and store client)";

/// The shape of a run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    pub(crate) schedules: usize,
    pub(crate) every_ms: u64,
    pub(crate) secs: u64,
    pub(crate) schedulers: usize,
}

/// What the handlers saw.
#[derive(Default)]
struct Seen {
    /// Run ids started.
    started: HashSet<String>,
    doubles: u64,
    /// Lateness of each start, for occurrences in the window.
    late: Vec<Duration>,
    completed: u64,
}

pub(crate) async fn run<S>(backend: Backend, store: S, shape: Shape) -> Result<Line>
where
    S: ScheduleStore + JobStore + Inboxes + Clone,
{
    let Shape {
        schedules: n,
        every_ms,
        secs,
        schedulers,
    } = shape;
    let queue = format!("bench-schedules-{}", now_ms());
    let api = Schedules::new(store.clone());
    // Anchors spread over one interval, starting after the schedules are in.
    let start = Timestamp::now() + SignedDuration::from_secs(2);
    let end = start + SignedDuration::from_secs(secs as i64);
    let every = SignedDuration::from_millis(every_ms as i64);
    let tag = now_ms();
    let mut batch = Vec::with_capacity(1000);
    for i in 0..n {
        let offset = SignedDuration::from_millis((i as u64 * every_ms / n.max(1) as u64) as i64);
        // Ending with the run: no occurrence after it exists.
        let trigger =
            Trigger::fixed_rate(every, start + offset).ending(end - SignedDuration::from_millis(1));
        batch.push(
            NewSchedule::new(
                format!("t{}", i % 100),
                JobTemplate::new(&queue, "fire", json!({})),
                trigger,
            )
            .id(format!("b{tag}-{i}")),
        );
        if batch.len() == 1000 {
            api.upsert_many(std::mem::take(&mut batch)).await?;
        }
    }
    if !batch.is_empty() {
        api.upsert_many(batch).await?;
    }

    let seen = Arc::new(Mutex::new(Seen::default()));
    let (start_ms, end_ms) = (start.as_millisecond(), end.as_millisecond());
    let s = Arc::clone(&seen);
    let worker = Worker::new(store.clone())
        .queue(
            &queue,
            QueueOptions::default()
                .concurrency(256)
                .claim_wait(Duration::from_millis(100)),
        )
        .options(WorkerOptions::default().concurrency(256))
        .handle("fire", move |ctx: JobContext, _: serde_json::Value| {
            let started = now_ms() as i64;
            let s = Arc::clone(&s);
            let run = ctx.job().run_id.clone();
            {
                let mut seen = s.lock().unwrap();
                if !seen.started.insert(run.clone()) {
                    seen.doubles += 1;
                }
                if let Some((_, at)) = parse_run_id(&run)
                    && (start_ms..end_ms).contains(&at)
                {
                    seen.late.push(Duration::from_millis(
                        u64::try_from(started - at).unwrap_or(0),
                    ));
                }
            }
            async move {
                s.lock().unwrap().completed += 1;
                Ok::<_, JobError>(())
            }
        })
        .spawn();
    let handles: Vec<_> = (0..schedulers.max(1))
        .map(|k| {
            Scheduler::new(store.clone())
                .options(SchedulerOptions::default().name(format!("bench-{tag}-{k}")))
                .spawn()
        })
        .collect();
    let until = end + SignedDuration::from_millis(500);
    tokio::time::sleep((until - Timestamp::now()).unsigned_abs()).await;
    let rss_mb = rss_mb();
    let mut fired = 0;
    let mut dispatch: Vec<Duration> = Vec::new();
    for h in handles {
        fired += h.lateness().dispatched();
        dispatch.extend(
            h.lateness()
                .samples()
                .into_iter()
                .map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or(0))),
        );
        h.shutdown().await;
    }
    dispatch.sort();
    // The last runs finish.
    tokio::time::sleep(Duration::from_millis(500)).await;
    worker.shutdown().await?;

    let expected = n as u64 * (secs * 1000 / every_ms.max(1));
    let mut seen = seen.lock().unwrap();
    seen.late.sort();
    Ok(line(json!({
        "system": "rota",
        "mode": "schedules",
        "backend": backend.name(),
        "measures": MEASURES,
        "schedules": n,
        "every_ms": every_ms,
        "secs": secs,
        "schedulers": schedulers,
        "expected": expected,
        "fired": fired,
        "completed": seen.completed,
        "lateness_p50_ms": percentile_ms(&seen.late, 50.0),
        "lateness_p99_ms": percentile_ms(&seen.late, 99.0),
        "dispatch_p50_ms": percentile_ms(&dispatch, 50.0),
        "dispatch_p99_ms": percentile_ms(&dispatch, 99.0),
        "double_fires": seen.doubles,
        "rss_mb": rss_mb,
    })))
}

/// This process's resident memory, in MB (0 where /proc is missing).
fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    (kb / 1024.0 * 10.0).round() / 10.0
}

const LOAD_MEASURES: &str = "load_per_s: schedules created per second through Schedules::upsert_many (checked as any schedule is), in batches of 1000 with 4 in flight; redis_bytes_per_schedule: growth of Redis's used_memory over the load, per schedule";

/// `schedules-load`: `--schedules` cron schedules created in bulk on
/// Redis; how fast, and what each costs Redis's memory.
pub(crate) async fn load(url: &str, n: usize) -> Result<Line> {
    use futures_util::StreamExt;
    let store = crate::jobs::redis_store(url).await?.store;
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let used = async |conn: &mut redis::aio::MultiplexedConnection| -> Result<u64> {
        let info: String = redis::cmd("INFO").arg("memory").query_async(conn).await?;
        Ok(info
            .lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0))
    };
    let before = used(&mut conn).await?;
    let api = Schedules::new(store);
    let tag = now_ms();
    let batches: Vec<Vec<NewSchedule>> = (0..n)
        .collect::<Vec<_>>()
        .chunks(1000)
        .map(|chunk| {
            chunk
                .iter()
                .map(|i| {
                    NewSchedule::new(
                        format!("t{}", i % 1000),
                        JobTemplate::new("bench-load", "sync", json!({ "n": i })),
                        Trigger::cron_in(format!("{} * * * *", i % 60), "Europe/Lisbon"),
                    )
                    .id(format!("l{tag}-{i}"))
                })
                .collect()
        })
        .collect();
    let started = std::time::Instant::now();
    let mut results = futures_util::stream::iter(batches.into_iter().map(|b| api.upsert_many(b)))
        .buffer_unordered(4);
    while let Some(r) = results.next().await {
        r?;
    }
    let secs = started.elapsed().as_secs_f64();
    let after = used(&mut conn).await?;
    Ok(line(json!({
        "system": "rota",
        "mode": "schedules-load",
        "backend": "redis",
        "measures": LOAD_MEASURES,
        "schedules": n,
        "load_per_s": (n as f64 / secs).round(),
        "redis_bytes_per_schedule": (after.saturating_sub(before) as f64 / n.max(1) as f64).round(),
    })))
}
