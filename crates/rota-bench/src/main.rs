//! `rota-bench`: measures rota against the physical floor of the same shape
//! done with bare Redis commands, on the same machine in the same run.
//! Prints one JSON line per run.
//!
//! ```text
//! rota-bench rpc-latency    --redis URL --n 5000 [--floor]
//! rota-bench rpc-throughput --redis URL --n 200000 --callers 100 --servers 2 [--floor]
//! rota-bench jobs-throughput --backend redis|embedded --n 50000 --concurrency 100
//! rota-bench jobs-latency   --backend redis|embedded --n 2000
//! rota-bench fairness       --backend redis|embedded [--backlog 50000]
//! ```

mod floor;
mod jobs;
mod rpc;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "rota-bench",
    about = "Benchmarks of rota; one JSON line per run"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Sequential calls through one server: p50 and p99 round-trip latency.
    RpcLatency {
        /// Redis to run against (its data is left alone but for rota's keys
        /// under the prefix `bench`).
        #[arg(long, default_value = "redis://127.0.0.1:6379")]
        redis: String,
        /// Calls to time.
        #[arg(long, default_value_t = 5000)]
        n: usize,
        /// Run the same shape with bare Redis commands instead.
        #[arg(long)]
        floor: bool,
        /// Runtime worker threads (1: a current-thread runtime, so a call's
        /// hops between tasks cost no thread wake-ups; the floor runs on the
        /// same runtime).
        #[arg(long, default_value_t = 1)]
        threads: usize,
    },
    /// Many concurrent callers and several servers: calls per second.
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
        /// Run the same shape with bare Redis commands instead.
        #[arg(long)]
        floor: bool,
        /// Runtime worker threads.
        #[arg(long, default_value_t = 2)]
        threads: usize,
    },
    /// Bulk enqueue, then processing with no-op handlers: jobs per second.
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
        /// Runtime worker threads.
        #[arg(long, default_value_t = 1)]
        threads: usize,
    },
    /// A quiet tenant's wait while another tenant's backlog drains.
    Fairness {
        /// The store.
        #[arg(long, value_enum, default_value = "redis")]
        backend: jobs::Backend,
        /// Redis to run against (with `--backend redis`).
        #[arg(long, default_value = "redis://127.0.0.1:6379")]
        redis: String,
        /// The noisy tenant's backlog.
        #[arg(long, default_value_t = 50_000)]
        backlog: usize,
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

fn main() -> Result<()> {
    let cli = Cli::parse();
    let threads = match cli.command {
        Command::RpcLatency { threads, .. }
        | Command::RpcThroughput { threads, .. }
        | Command::JobsThroughput { threads, .. }
        | Command::JobsLatency { threads, .. }
        | Command::Fairness { threads, .. } => threads,
    };
    let rt = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()?
    };
    let line = rt.block_on(async {
        match cli.command {
            Command::RpcLatency {
                redis, n, floor, ..
            } => {
                if floor {
                    floor::latency(&redis, n).await
                } else {
                    rpc::latency(&redis, n).await
                }
            }
            Command::RpcThroughput {
                redis,
                n,
                callers,
                servers,
                floor,
                ..
            } => {
                if floor {
                    floor::throughput(&redis, n, callers, servers).await
                } else {
                    rpc::throughput(&redis, n, callers, servers).await
                }
            }
            Command::JobsThroughput {
                backend,
                redis,
                n,
                concurrency,
                ..
            } => match backend {
                jobs::Backend::Redis => {
                    let s = jobs::redis_store(&redis).await?;
                    jobs::throughput(backend, s.store.clone(), n, concurrency).await
                }
                jobs::Backend::Embedded => {
                    let s = jobs::embedded_store().await?;
                    jobs::throughput(backend, s.store.clone(), n, concurrency).await
                }
            },
            Command::JobsLatency {
                backend, redis, n, ..
            } => match backend {
                jobs::Backend::Redis => {
                    let s = jobs::redis_store(&redis).await?;
                    jobs::latency(backend, s.store.clone(), n).await
                }
                jobs::Backend::Embedded => {
                    let s = jobs::embedded_store().await?;
                    jobs::latency(backend, s.store.clone(), n).await
                }
            },
            Command::Fairness {
                backend,
                redis,
                backlog,
                concurrency,
                work_ms,
                ..
            } => {
                let work = std::time::Duration::from_millis(work_ms);
                match backend {
                    jobs::Backend::Redis => {
                        let s = jobs::redis_store(&redis).await?;
                        jobs::fairness(backend, s.store.clone(), backlog, concurrency, work).await
                    }
                    jobs::Backend::Embedded => {
                        let s = jobs::embedded_store().await?;
                        jobs::fairness(backend, s.store.clone(), backlog, concurrency, work).await
                    }
                }
            }
        }
    })?;
    let mut line: serde_json::Value = serde_json::from_str(&line)?;
    line["threads"] = threads.max(1).into();
    println!("{line}");
    Ok(())
}

/// Percentile (0–100) of sorted durations, in milliseconds.
pub(crate) fn percentile_ms(sorted: &[std::time::Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    let ms = sorted[rank.min(sorted.len() - 1)].as_secs_f64() * 1000.0;
    (ms * 1000.0).round() / 1000.0
}
