//! Job benchmarks, on Redis or the embedded store.
//!
//! * [`throughput`] — bulk enqueue, then processing with no-op handlers,
//!   timed until the last job is settled; beside it on Redis, [`floor`]:
//!   the fewest bare Redis commands a reliable queue needs per job, batched
//!   as rota batches.
//! * [`latency`] — enqueue until the enqueuer holds the outcome, one job at
//!   a time.
//! * [`fairness`] — a quiet tenant's wait while a backlog spread over other
//!   tenants drains.
//! * `settled` — the store wrapper that counts settlements, so the
//!   throughput clock stops at the n-th settled job.
//!
//! Jobs are spread over `--tenants` tenants (job `i` belongs to tenant
//! `i % tenants`); each tenant is a partition of the queue, which rota
//! claims from in turn.

use anyhow::{Context, Result, bail};
use rota_core::jobs::NewJob;
use rota_core::time::now_ms;

use crate::report::Report;

pub(crate) mod fairness;
pub(crate) mod floor;
pub(crate) mod latency;
mod settled;
pub(crate) mod throughput;

/// The default `--tenants`: the 16 tenants `jobs-throughput` always spread
/// its jobs over.
pub(crate) const DEFAULT_TENANTS: usize = 16;
/// Jobs per bulk enqueue, and bulk enqueues in flight at once.
const ENQUEUE_BATCH: usize = 1000;
const ENQUEUE_IN_FLIGHT: usize = 4;
/// Most jobs one claim takes (the worker's `QueueOptions::claim_batch`).
const CLAIM_BATCH: usize = 256;

/// Which store to run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Backend {
    /// Redis.
    Redis,
    /// The embedded SQLite file.
    Embedded,
}

impl Backend {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Backend::Redis => "redis",
            Backend::Embedded => "embedded",
        }
    }
}

/// Which floor runs beside rota's `jobs-throughput`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Floor {
    /// Bare, pipelined Redis commands (a stream and a hash per job), batched
    /// as rota batches: the limit rota's Redis store is a share of.
    Streams,
    /// rota alone.
    None,
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
            .with_context(|| format!("connecting to {}", rota_redis::options::redact(url)))?;
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

/// A fresh queue name, so runs never see each other's jobs.
fn queue(name: &str) -> String {
    format!("bench-{name}-{}", now_ms())
}

/// The tenant of job `i` out of `tenants`.
fn tenant(i: u64, tenants: usize) -> String {
    format!("t{}", i % tenants.max(1) as u64)
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Payload {
    i: u64,
}

/// The jobs of a throughput run, in bulk-enqueue batches.
fn batches(q: &str, n: usize, tenants: usize) -> Result<Vec<Vec<NewJob>>> {
    (0..n as u64)
        .collect::<Vec<_>>()
        .chunks(ENQUEUE_BATCH)
        .map(|chunk| {
            chunk
                .iter()
                .map(|i| NewJob::new(q, tenant(*i, tenants), "noop", &Payload { i: *i }))
                .collect::<Result<Vec<_>, _>>()
                .map_err(Into::into)
        })
        .collect()
}

/// `jobs-throughput`: on Redis the floor's line, then rota's with the
/// floor's figures and `enqueue_ratio`/`process_ratio` = rota / floor; on
/// the embedded store rota's line alone.
pub(crate) async fn throughput_report(
    backend: Backend,
    url: &str,
    n: usize,
    concurrency: usize,
    tenants: usize,
    floor: Option<Floor>,
) -> Result<Report> {
    let keys = [
        ("enqueue_per_s", "enqueue_ratio"),
        ("process_per_s", "process_ratio"),
    ];
    match backend {
        Backend::Redis => {
            let floor_line = match floor.unwrap_or(Floor::Streams) {
                Floor::Streams => Some(floor::throughput(url, n, concurrency, tenants).await?),
                Floor::None => None,
            };
            let s = redis_store(url).await?;
            let rota = throughput::run(backend, s.store.clone(), n, concurrency, tenants).await?;
            Ok(Report::side_by_side(floor_line, rota, &keys))
        }
        Backend::Embedded => {
            if floor == Some(Floor::Streams) {
                bail!("the floor runs on Redis; use --backend redis, or --floor none");
            }
            let s = embedded_store().await?;
            let rota = throughput::run(backend, s.store.clone(), n, concurrency, tenants).await?;
            Ok(Report::side_by_side(None, rota, &keys))
        }
    }
}

/// `jobs-latency` on the chosen store.
pub(crate) async fn latency_report(
    backend: Backend,
    url: &str,
    n: usize,
    tenants: usize,
) -> Result<Report> {
    let line = match backend {
        Backend::Redis => {
            let s = redis_store(url).await?;
            latency::run(backend, s.store.clone(), n, tenants).await?
        }
        Backend::Embedded => {
            let s = embedded_store().await?;
            latency::run(backend, s.store.clone(), n, tenants).await?
        }
    };
    Ok(Report::one(line))
}

/// `fairness` on the chosen store.
pub(crate) async fn fairness_report(
    backend: Backend,
    url: &str,
    shape: fairness::Shape,
) -> Result<Report> {
    let line = match backend {
        Backend::Redis => {
            let s = redis_store(url).await?;
            fairness::run(backend, s.store.clone(), shape).await?
        }
        Backend::Embedded => {
            let s = embedded_store().await?;
            fairness::run(backend, s.store.clone(), shape).await?
        }
    };
    Ok(Report::one(line))
}
