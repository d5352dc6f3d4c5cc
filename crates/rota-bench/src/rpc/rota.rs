//! rota's side: a `#[contract]` service on the Redis backend.

use std::time::Instant;

use anyhow::{Context, Result, ensure};
use rota::{Client, ClientOptions, ServeOptions};
use rota_redis::{RedisBroker, RedisOptions};
use serde_json::json;

use super::{CALL_TIMEOUT, CLAIM_BATCH, CLAIM_WAIT, CONCURRENCY, WARMUP};
use crate::report::{Line, line, per_s};

/// The benchmarked contract: a small request and reply, as in the floor.
#[rota::contract]
pub(crate) trait Bench {
    async fn echo(&self, n: u64) -> u64;
}

struct Echo;

impl Bench for Echo {
    async fn echo(&self, n: u64) -> u64 {
        n
    }
}

async fn broker(url: &str, service: &str) -> Result<RedisBroker> {
    let broker = RedisBroker::connect_with(RedisOptions::new(url).prefix("bench"))
        .await
        .with_context(|| format!("connecting to {}", rota_redis::options::redact(url)))?;
    // Start from an empty queue and no leftover consumers.
    let mut raw = redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?;
    let _: () = redis::cmd("DEL")
        .arg(format!("bench:{{{service}}}:q"))
        .arg(format!("bench:{{{service}}}:dead"))
        .query_async(&mut raw)
        .await?;
    Ok(broker)
}

fn serve_options() -> ServeOptions {
    ServeOptions::default()
        .concurrency(CONCURRENCY)
        .claim_batch(CLAIM_BATCH)
        .claim_wait(CLAIM_WAIT)
}

pub(crate) async fn latency(url: &str, n: usize) -> Result<Line> {
    let service = "bench-latency";
    let broker = broker(url, service).await?;
    let server = BenchServer::new(Echo).spawn(broker.clone(), service, serve_options());
    let client = Client::with_options(
        broker.clone(),
        ClientOptions::default().default_timeout(CALL_TIMEOUT),
    );
    let bench = BenchClient::new(&client, service);
    for i in 0..WARMUP {
        ensure!(bench.echo(i).await? == i, "wrong echo");
    }
    let mut samples = Vec::with_capacity(n);
    for i in 0..n as u64 {
        let started = Instant::now();
        let got = bench.echo(i).await?;
        samples.push(started.elapsed());
        ensure!(got == i, "wrong echo");
    }
    server.shutdown().await?;
    Ok(super::latency_line(None, n, samples))
}

pub(crate) async fn throughput(
    url: &str,
    n: usize,
    callers: usize,
    servers: usize,
) -> Result<Line> {
    let service = "bench-throughput";
    let broker = broker(url, service).await?;
    let handles: Vec<_> = (0..servers.max(1))
        .map(|_| BenchServer::new(Echo).spawn(broker.clone(), service, serve_options()))
        .collect();
    let client = Client::with_options(
        broker.clone(),
        ClientOptions::default().default_timeout(CALL_TIMEOUT),
    );
    let bench = BenchClient::new(&client, service);
    for i in 0..WARMUP {
        ensure!(bench.echo(i).await? == i, "wrong echo");
    }
    let per_caller = n / callers.max(1);
    let started = Instant::now();
    let tasks: Vec<_> = (0..callers.max(1))
        .map(|c| {
            let bench = bench.clone();
            tokio::spawn(async move {
                for i in 0..per_caller as u64 {
                    let v = (c as u64) << 32 | i;
                    ensure!(bench.echo(v).await? == v, "wrong echo");
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    let elapsed = started.elapsed();
    for h in handles {
        h.shutdown().await?;
    }
    let done = per_caller * callers.max(1);
    Ok(line(json!({
        "system": "rota",
        "mode": "rpc-throughput",
        "measures": super::THROUGHPUT_MEASURES,
        "n": done,
        "callers": callers,
        "servers": servers,
        "calls_per_s": per_s(done, elapsed),
    })))
}
