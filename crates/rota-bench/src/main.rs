//! `rota-bench`: measures rota and, in the same process right before it,
//! the floor of the same work done with bare Redis commands, so each of
//! rota's figures comes as a ratio to a limit measured at the same moment
//! on the same machine. Prints one JSON line per system measured: the
//! floor's, then rota's with the floor's figures and the ratios on it.
//!
//! ```text
//! rota-bench rpc-latency     --redis URL --n 5000 [--floor streams|unbatched-lists|none]
//! rota-bench rpc-throughput  --redis URL --n 200000 --callers 100 --servers 2 [--floor …]
//! rota-bench jobs-throughput --backend redis|embedded --n 50000 --concurrency 100 --tenants 16 [--floor streams|none]
//! rota-bench jobs-latency    --backend redis|embedded --n 2000 --tenants 16
//! rota-bench fairness        --backend redis|embedded --backlog 50000 --tenants 16
//! rota-bench schedules       --backend embedded --schedules 2000 --every-ms 1000 --secs 30 --schedulers 1
//! rota-bench schedules-load  --redis URL --schedules 1000000
//! ```
//!
//! * `report` — lines, ratios, and the checks that fail a run.
//! * `rpc/` — calls: rota, the `streams` floor, the `unbatched-lists` shape.
//! * `jobs/` — jobs: throughput (with its Redis floor), latency, fairness.
//! * `schedules` — schedules firing at a rate: fired, completed, lateness.

mod jobs;
mod report;
mod rpc;
mod schedules;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::report::Report;

#[derive(Parser)]
#[command(
    name = "rota-bench",
    about = "Benchmarks of rota beside their floor; one JSON line per system measured"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Sequential calls through one server: p50 and p99 round trip, the
    /// floor's and rota's.
    RpcLatency {
        /// Redis to run against (its data is left alone but for keys under
        /// the prefixes `bench`, `floor` and `floor-lists`).
        #[arg(long, default_value = "redis://127.0.0.1:6379")]
        redis: String,
        /// Calls to time.
        #[arg(long, default_value_t = 5000)]
        n: usize,
        /// The floor measured first (`--floor` alone: `streams`).
        #[arg(long, value_enum, default_value = "streams", num_args = 0..=1, default_missing_value = "streams")]
        floor: rpc::Floor,
        /// Runtime worker threads (1: a current-thread runtime, so a call's
        /// hops between tasks cost no thread wake-ups; the floor runs on the
        /// same runtime).
        #[arg(long, default_value_t = 1)]
        threads: usize,
    },
    /// Many concurrent callers and several servers: calls per second, the
    /// floor's and rota's.
    RpcThroughput {
        /// Redis to run against.
        #[arg(long, default_value = "redis://127.0.0.1:6379")]
        redis: String,
        /// Calls in all.
        #[arg(long, default_value_t = 200_000)]
        n: usize,
        /// Concurrent callers.
        #[arg(long, default_value_t = 100)]
        callers: usize,
        /// Servers of the service.
        #[arg(long, default_value_t = 2)]
        servers: usize,
        /// The floor measured first (`--floor` alone: `streams`).
        #[arg(long, value_enum, default_value = "streams", num_args = 0..=1, default_missing_value = "streams")]
        floor: rpc::Floor,
        /// Runtime worker threads.
        #[arg(long, default_value_t = 2)]
        threads: usize,
    },
    /// Bulk enqueue, then processing with no-op handlers until every job is
    /// settled: jobs per second, the floor's (on Redis) and rota's.
    JobsThroughput {
        /// The store.
        #[arg(long, value_enum, default_value = "redis")]
        backend: jobs::Backend,
        /// Redis to run against (with `--backend redis`).
        #[arg(long, default_value = "redis://127.0.0.1:6379")]
        redis: String,
        /// Jobs.
        #[arg(long, default_value_t = 50_000)]
        n: usize,
        /// Handlers running at once.
        #[arg(long, default_value_t = 100)]
        concurrency: usize,
        /// Tenants the jobs are spread over (each one a partition).
        #[arg(long, default_value_t = jobs::DEFAULT_TENANTS, value_parser = at_least_one())]
        tenants: usize,
        /// The floor measured first: `streams` on Redis by default, none
        /// on the embedded store (it has no Redis floor).
        #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "streams")]
        floor: Option<jobs::Floor>,
        /// Runtime worker threads.
        #[arg(long, default_value_t = 2)]
        threads: usize,
    },
    /// Enqueue until the enqueuer sees the completion, one job at a time.
    JobsLatency {
        /// The store.
        #[arg(long, value_enum, default_value = "redis")]
        backend: jobs::Backend,
        /// Redis to run against (with `--backend redis`).
        #[arg(long, default_value = "redis://127.0.0.1:6379")]
        redis: String,
        /// Jobs to time.
        #[arg(long, default_value_t = 2000)]
        n: usize,
        /// Tenants the jobs are spread over (each one a partition).
        #[arg(long, default_value_t = jobs::DEFAULT_TENANTS, value_parser = at_least_one())]
        tenants: usize,
        /// Runtime worker threads.
        #[arg(long, default_value_t = 1)]
        threads: usize,
    },
    /// Schedules firing at a rate: what fired and completed, and how late.
    Schedules {
        /// The store.
        #[arg(long, value_enum, default_value = "embedded")]
        backend: jobs::Backend,
        /// Redis to run against (with `--backend redis`).
        #[arg(long, default_value = "redis://127.0.0.1:6379")]
        redis: String,
        /// Schedules, each at a fixed rate.
        #[arg(long, default_value_t = 2_000, value_parser = at_least_one())]
        schedules: usize,
        /// Each schedule's interval, in milliseconds.
        #[arg(long, default_value_t = 1_000)]
        every_ms: u64,
        /// How long the schedules fire, in seconds.
        #[arg(long, default_value_t = 10)]
        secs: u64,
        /// Schedulers sharing the schedules.
        #[arg(long, default_value_t = 1, value_parser = at_least_one())]
        schedulers: usize,
        /// Runtime worker threads.
        #[arg(long, default_value_t = 2)]
        threads: usize,
    },
    /// Schedules created in bulk on Redis: how fast, and Redis memory per
    /// schedule.
    SchedulesLoad {
        /// Redis to run against.
        #[arg(long, default_value = "redis://127.0.0.1:6379")]
        redis: String,
        /// Schedules to create.
        #[arg(long, default_value_t = 100_000, value_parser = at_least_one())]
        schedules: usize,
        /// Runtime worker threads.
        #[arg(long, default_value_t = 2)]
        threads: usize,
    },
    /// A quiet tenant's wait while a backlog spread over other tenants
    /// drains.
    Fairness {
        /// The store.
        #[arg(long, value_enum, default_value = "redis")]
        backend: jobs::Backend,
        /// Redis to run against (with `--backend redis`).
        #[arg(long, default_value = "redis://127.0.0.1:6379")]
        redis: String,
        /// The noisy tenants' backlog.
        #[arg(long, default_value_t = 50_000)]
        backlog: usize,
        /// Noisy tenants the backlog is spread over (each one a
        /// partition); the quiet tenant is one more.
        #[arg(long, default_value_t = jobs::DEFAULT_TENANTS, value_parser = at_least_one())]
        tenants: usize,
        /// Handlers running at once.
        #[arg(long, default_value_t = 100)]
        concurrency: usize,
        /// Each job's work, in milliseconds.
        #[arg(long, default_value_t = 1)]
        work_ms: u64,
        /// Runtime worker threads.
        #[arg(long, default_value_t = 2)]
        threads: usize,
    },
}

/// A count of at least 1.
fn at_least_one() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::new().range(1..)
}

impl Command {
    fn threads(&self) -> usize {
        match self {
            Command::RpcLatency { threads, .. }
            | Command::RpcThroughput { threads, .. }
            | Command::JobsThroughput { threads, .. }
            | Command::JobsLatency { threads, .. }
            | Command::Fairness { threads, .. }
            | Command::Schedules { threads, .. }
            | Command::SchedulesLoad { threads, .. } => (*threads).max(1),
        }
    }

    async fn run(self) -> Result<Report> {
        match self {
            Command::RpcLatency {
                redis, n, floor, ..
            } => rpc::latency(&redis, n, floor).await,
            Command::RpcThroughput {
                redis,
                n,
                callers,
                servers,
                floor,
                ..
            } => rpc::throughput(&redis, n, callers, servers, floor).await,
            Command::JobsThroughput {
                backend,
                redis,
                n,
                concurrency,
                tenants,
                floor,
                ..
            } => jobs::throughput_report(backend, &redis, n, concurrency, tenants, floor).await,
            Command::JobsLatency {
                backend,
                redis,
                n,
                tenants,
                ..
            } => jobs::latency_report(backend, &redis, n, tenants).await,
            Command::Fairness {
                backend,
                redis,
                backlog,
                tenants,
                concurrency,
                work_ms,
                ..
            } => {
                let shape = jobs::fairness::Shape {
                    backlog,
                    tenants,
                    concurrency,
                    work: std::time::Duration::from_millis(work_ms),
                };
                jobs::fairness_report(backend, &redis, shape).await
            }
            Command::SchedulesLoad {
                redis, schedules, ..
            } => Ok(report::Report::one(
                schedules::load(&redis, schedules).await?,
            )),
            Command::Schedules {
                backend,
                redis,
                schedules,
                every_ms,
                secs,
                schedulers,
                ..
            } => {
                let shape = schedules::Shape {
                    schedules,
                    every_ms: every_ms.max(1),
                    secs: secs.max(1),
                    schedulers,
                };
                let line = match backend {
                    jobs::Backend::Embedded => {
                        let s = jobs::embedded_store().await?;
                        schedules::run(backend, s.store.clone(), shape).await?
                    }
                    jobs::Backend::Redis => {
                        let s = jobs::redis_store(&redis).await?;
                        schedules::run(backend, s.store.clone(), shape).await?
                    }
                };
                Ok(report::Report::one(line))
            }
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rota-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the benchmark, prints its lines, and fails when a check did.
fn run(cli: Cli) -> Result<ExitCode> {
    let threads = cli.command.threads();
    let rt = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()?
    };
    let report = rt.block_on(cli.command.run())?;
    for mut line in report.lines {
        line.insert("threads".into(), threads.into());
        println!("{}", serde_json::Value::Object(line));
    }
    if report.failures.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    for failure in &report.failures {
        eprintln!("rota-bench: {failure}");
    }
    Ok(ExitCode::FAILURE)
}
