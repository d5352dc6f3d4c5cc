//! The floor of a job on Redis: the fewest bare commands a *reliable* job
//! queue needs per job — record it, make it claimable, claim it under a
//! lease, record its result, acknowledge it — pipelined and batched the way
//! rota's Redis store and worker batch, without Lua.
//!
//! | step | rota (`rota-redis/src/jobs.rs`, `lua/jobs/`) | this floor |
//! |---|---|---|
//! | enqueue | per batch of 1000 (4 in flight) one `EVALSHA enqueue.lua`: per job `HSET` of the record (9 fields) + `ZADD` to its partition's ready set; per partition `SADD`, `ZCARD`, `LPOS` + `RPUSH` on the ring; order numbers, wake-up tokens | per batch of 1000 (4 in flight) one pipeline: per job `HSET job:<id> j <json> s queued` + `XADD ready * id <id> n <i> j <json>` |
//! | claim | `EVALSHA claim.lua`, up to min(free slots, 256) jobs: per job `LMOVE` on the ring, `ZPOPMIN`, `ZCARD`, `HMGET`, `HSET` running, 2 × `HINCRBY`, `SADD` to the consumer's held set | `XREADGROUP … COUNT <min(free slots, 256)> BLOCK 1000`: the pending-entries list is the held set, each entry with its delivery time (a reaper would `XAUTOCLAIM` entries idle past the lease) |
//! | settle | handlers' results flat-combined into one `EVALSHA settle.lua`: per job `SREM` held, `HMGET` + 2 `HINCRBY`, `RPUSH` of the attempt, `HSET` state, `ZADD` finished, `HINCRBY` counts; retention trimming | flat-combined into one pipeline: per job `HSET job:<id> s succeeded f <ms> r null`, then one `XACK` and one `XDEL` for the batch |
//! | lease | `SET PX` at registration, renewed every 10 s; a reap every 15 s | none |
//!
//! It claims first-in first-out from one stream: it keeps no partitions and
//! no turn between tenants, so its figure does not depend on `--tenants`
//! and the gap to rota's is also the price of rota's fairness.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, Value};
use rota_core::jobs::{Job, JobId};
use rota_core::time::now_ms;
use serde_json::json;
use tokio::task::JoinSet;

use super::settled::Tally;
use super::throughput::{MEASURES, STALL};
use super::{CLAIM_BATCH, ENQUEUE_IN_FLIGHT, batches, queue};
use crate::report::{Line, line, per_s};

/// The name of this floor in report lines.
pub(crate) const NAME: &str = "streams";

const GROUP: &str = "g";
const CLAIM_WAIT: Duration = Duration::from_secs(1);

async fn blocking_conn(client: &Client) -> Result<MultiplexedConnection> {
    // A blocked command waits by design: no response timeout.
    let config = AsyncConnectionConfig::new().set_response_timeout(None);
    Ok(client
        .get_multiplexed_async_connection_with_config(&config)
        .await?)
}

/// The keys of one run's queue, in one hash tag as rota's are.
struct Keys {
    base: String,
    ready: String,
}

impl Keys {
    fn job(&self, id: &str) -> String {
        format!("{}job:{id}", self.base)
    }
}

/// A job the "handler" ran: its id and its stream entry.
struct Done {
    id: String,
    tag: String,
}

/// Writes settlements flat-combined, as rota's worker does: the first task
/// with results writes, and whatever comes in meanwhile goes into the next
/// pipeline.
struct Settler {
    conn: MultiplexedConnection,
    keys: Arc<Keys>,
    tally: Arc<Tally>,
    queue: Mutex<Vec<Done>>,
    writing: tokio::sync::Mutex<()>,
}

impl Settler {
    async fn push(&self, done: Vec<Done>) -> Result<()> {
        self.queue.lock().expect("not poisoned").extend(done);
        loop {
            {
                let Ok(_writing) = self.writing.try_lock() else {
                    // The writer looks at the queue again when it is done.
                    return Ok(());
                };
                let batch = std::mem::take(&mut *self.queue.lock().expect("not poisoned"));
                if !batch.is_empty() {
                    self.write(batch).await?;
                }
            }
            if self.queue.lock().expect("not poisoned").is_empty() {
                return Ok(());
            }
        }
    }

    /// One pipeline: the result of each job, then XACK and XDEL.
    async fn write(&self, batch: Vec<Done>) -> Result<()> {
        let now = now_ms();
        let mut pipe = redis::pipe();
        for d in &batch {
            pipe.cmd("HSET")
                .arg(self.keys.job(&d.id))
                .arg("s")
                .arg("succeeded")
                .arg("f")
                .arg(now)
                .arg("r")
                .arg("null")
                .ignore();
        }
        let tags: Vec<&str> = batch.iter().map(|d| d.tag.as_str()).collect();
        pipe.cmd("XACK").arg(&self.keys.ready).arg(GROUP).arg(&tags);
        pipe.cmd("XDEL").arg(&self.keys.ready).arg(&tags).ignore();
        let (acked,): (usize,) = pipe.query_async(&mut self.conn.clone()).await?;
        ensure!(
            acked == batch.len(),
            "acknowledged {acked} of {}",
            batch.len()
        );
        self.tally.add(acked);
        Ok(())
    }
}

/// Parses XREADGROUP's answer into (entry id, job id, job index).
fn claimed(value: Value) -> Result<Vec<(String, String, usize)>> {
    let mut out = Vec::new();
    let Value::Array(streams) = value else {
        return Ok(out);
    };
    for stream in streams {
        let Value::Array(mut parts) = stream else {
            continue;
        };
        let Some(Value::Array(entries)) = parts.pop() else {
            continue;
        };
        for entry in entries {
            let Value::Array(mut e) = entry else { continue };
            let (Some(Value::Array(fields)), Some(Value::BulkString(tag))) = (e.pop(), e.pop())
            else {
                continue;
            };
            let (mut id, mut index) = (None, None);
            let mut it = fields.into_iter();
            while let (Some(Value::BulkString(k)), Some(Value::BulkString(v))) =
                (it.next(), it.next())
            {
                match k.as_slice() {
                    b"id" => id = Some(String::from_utf8(v)?),
                    b"n" => index = Some(std::str::from_utf8(&v)?.parse()?),
                    _ => {}
                }
            }
            out.push((
                String::from_utf8(tag)?,
                id.context("an entry without a job id")?,
                index.context("an entry without an index")?,
            ));
        }
    }
    Ok(out)
}

/// The floor's worker: claims like rota's, runs no-op "handlers", and
/// settles while it claims again.
async fn work(
    client: Client,
    settler: Arc<Settler>,
    concurrency: usize,
    seen: Arc<Vec<AtomicBool>>,
    stop: Arc<AtomicBool>,
) -> Result<()> {
    let mut blocking = blocking_conn(&client).await?;
    let consumer = JobId::default().to_string();
    // rota claims as many as it has free handler slots, at most a claim
    // batch; the floor's handlers are done before it claims again, so all
    // its slots are free.
    let want = concurrency.clamp(1, CLAIM_BATCH);
    // Bounded: one settle per claim at most, and each ends as soon as it
    // finds another writing.
    let mut writes = JoinSet::new();
    while !stop.load(Ordering::Relaxed) {
        let value: Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(&consumer)
            .arg("COUNT")
            .arg(want)
            .arg("BLOCK")
            .arg(CLAIM_WAIT.as_millis() as u64)
            .arg("STREAMS")
            .arg(&settler.keys.ready)
            .arg(">")
            .query_async(&mut blocking)
            .await?;
        let jobs = claimed(value)?;
        if jobs.is_empty() {
            continue;
        }
        let mut done = Vec::with_capacity(jobs.len());
        for (tag, id, index) in jobs {
            let first = seen
                .get(index)
                .is_some_and(|s| !s.swap(true, Ordering::SeqCst));
            ensure!(first, "job {index} was delivered twice");
            done.push(Done { id, tag });
        }
        let settler = Arc::clone(&settler);
        writes.spawn(async move { settler.push(done).await });
        while let Some(finished) = writes.try_join_next() {
            finished??;
        }
    }
    while let Some(finished) = writes.join_next().await {
        finished??;
    }
    Ok(())
}

/// Enqueues `n` jobs as rota's bulk enqueue does, then processes them;
/// every job must be claimed once and acknowledged.
pub(crate) async fn throughput(
    url: &str,
    n: usize,
    concurrency: usize,
    tenants: usize,
) -> Result<Line> {
    let client = Client::open(url)?;
    let config = AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(30)));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    let q = queue("floor");
    let base = format!("floor:{{j:{q}}}:");
    let keys = Arc::new(Keys {
        ready: format!("{base}ready"),
        base,
    });
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&keys.ready)
        .arg(GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut conn)
        .await?;

    // The same jobs as rota's run, accepted as its store accepts them.
    let batches = batches(&q, n, tenants)?;
    let started = Instant::now();
    let mut in_flight = JoinSet::new();
    let mut ids = Vec::with_capacity(n);
    let mut index = 0usize;
    for batch in batches {
        if in_flight.len() >= ENQUEUE_IN_FLIGHT {
            in_flight.join_next().await.expect("non-empty")??;
        }
        let now = now_ms();
        let mut pipe = redis::pipe();
        for new in &batch {
            let id = new.id.unwrap_or_default();
            let json = serde_json::to_string(&Job::accept(id, new, now))?;
            let id = id.to_string();
            pipe.cmd("HSET")
                .arg(keys.job(&id))
                .arg("j")
                .arg(&json)
                .arg("s")
                .arg("queued")
                .ignore();
            pipe.cmd("XADD")
                .arg(&keys.ready)
                .arg("*")
                .arg("id")
                .arg(&id)
                .arg("n")
                .arg(index)
                .arg("j")
                .arg(&json)
                .ignore();
            ids.push(id);
            index += 1;
        }
        let mut conn = conn.clone();
        in_flight.spawn(async move { pipe.query_async::<()>(&mut conn).await });
    }
    while let Some(done) = in_flight.join_next().await {
        done??;
    }
    let enqueue_time = started.elapsed();

    let tally = Tally::new(n);
    let seen: Arc<Vec<AtomicBool>> = Arc::new((0..n).map(|_| AtomicBool::new(false)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let settler = Arc::new(Settler {
        conn: conn.clone(),
        keys: Arc::clone(&keys),
        tally: Arc::clone(&tally),
        queue: Mutex::default(),
        writing: tokio::sync::Mutex::new(()),
    });
    let started = Instant::now();
    let mut worker = tokio::spawn(work(
        client,
        settler,
        concurrency,
        Arc::clone(&seen),
        Arc::clone(&stop),
    ));
    let reached = tokio::select! {
        reached = tally.reached(STALL) => reached,
        ended = &mut worker => {
            ended??;
            bail!("the floor's worker stopped before the jobs were settled");
        }
    };
    stop.store(true, Ordering::Relaxed);
    worker.await??;

    // Whatever is still in the stream (waiting or claimed) is unsettled.
    let waiting: usize = redis::cmd("XLEN")
        .arg(&keys.ready)
        .query_async(&mut conn)
        .await?;
    if reached.is_some() {
        ensure!(
            seen.iter().all(|s| s.load(Ordering::SeqCst)),
            "a job was acknowledged without being claimed"
        );
    }
    let mut pipe = redis::pipe();
    pipe.cmd("DEL").arg(&keys.ready).ignore();
    for chunk in ids.chunks(1000) {
        let keys: Vec<String> = chunk.iter().map(|id| keys.job(id)).collect();
        pipe.cmd("UNLINK").arg(keys).ignore();
    }
    let _: () = pipe.query_async(&mut conn).await?;
    Ok(line(json!({
        "system": "floor",
        "floor": NAME,
        "mode": "jobs-throughput",
        "backend": "redis",
        "measures": MEASURES,
        "n": n,
        "tenants": tenants,
        "concurrency": concurrency,
        "enqueue_per_s": per_s(n, enqueue_time),
        "process_per_s": reached.map(|at| per_s(n, at - started)),
        "unsettled": waiting,
    })))
}
