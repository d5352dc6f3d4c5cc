//! The floor of a call: the Redis commands rota's client and servers send
//! for it, batched as they batch them, without the lease and the Lua that
//! fences acknowledgements. Nothing rota does on Redis is left out but
//! those, so rota's throughput divided by this one's is the share of the
//! physical limit it reaches.
//!
//! | step | rota (`rota` + `rota-redis`) | this floor |
//! |---|---|---|
//! | publish | `XADD P:{S}:q * m <envelope>` on the shared connection | the same, with a message of the envelope's size |
//! | claim | `XREADGROUP GROUP g <c> COUNT <free slots, ≤ 256> BLOCK 1000 …` on a connection per server | the same |
//! | answer | finished handlers flat-combined into one pipeline: `RPUSH` + `PEXPIRE` per inbox, then `EVALSHA ack.lua` (`EXISTS` lease, `XACK`, `XDEL`) | flat-combined the same way: `RPUSH` + `PEXPIRE` per inbox, `XACK`, `XDEL` |
//! | receive | one inbox per client: `BLMPOP 0.5 1 <inbox> LEFT COUNT 512` on a connection of its own, replies matched to calls by id | the same |
//! | lease | `SET PX` at registration, renewed every 10 s; a reap every ~15 s | none |

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, Value};
use rota_core::{Codec, CorrelationId, Deadline, Outcome, Reply, Request};
use serde_json::json;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use super::{CALL_TIMEOUT, CLAIM_BATCH, CLAIM_WAIT, CONCURRENCY, INBOX_BATCH, INBOX_WAIT, WARMUP};
use crate::report::{Line, line, per_s};

/// The name of this floor in report lines.
pub(crate) const NAME: &str = "streams";

const GROUP: &str = "g";
/// rota-redis's default `reply_ttl`, set on an inbox with each push.
const REPLY_TTL_MS: u64 = 300_000;

/// The sizes of rota's request and reply envelopes for an echo call, so
/// the floor moves as many bytes.
fn envelope_sizes(service: &str, inbox: &str) -> Result<(usize, usize)> {
    let echoed = b"4294967296123".to_vec();
    let request = Request {
        id: CorrelationId::new(),
        service: service.to_owned(),
        method: "echo".to_owned(),
        reply_to: Some(inbox.to_owned()),
        deadline: Some(Deadline::after(CALL_TIMEOUT)),
        attempt: 1,
        headers: Default::default(),
        codec: Codec::Json,
        body: br#"{"n":4294967296123}"#.to_vec().into(),
    };
    let reply = Reply {
        id: request.id,
        codec: Codec::Json,
        outcome: Outcome::Ok(echoed.into()),
    };
    Ok((request.encode()?.len(), reply.encode()?.len()))
}

/// `text` padded with dots to `size` bytes.
fn padded(mut text: Vec<u8>, size: usize) -> Vec<u8> {
    if text.len() < size {
        text.resize(size, b'.');
    }
    text
}

async fn blocking_conn(client: &Client) -> Result<MultiplexedConnection> {
    // A blocked command waits by design: no response timeout.
    let config = AsyncConnectionConfig::new().set_response_timeout(None);
    Ok(client
        .get_multiplexed_async_connection_with_config(&config)
        .await?)
}

async fn shared_conn(client: &Client) -> Result<MultiplexedConnection> {
    let config = AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(10)));
    Ok(client
        .get_multiplexed_async_connection_with_config(&config)
        .await?)
}

/// The calling side: one inbox shared by every caller, as one rota
/// `Client` shares its inbox.
struct Caller {
    conn: MultiplexedConnection,
    stream: String,
    inbox: String,
    request_size: usize,
    next_id: AtomicU64,
    pending: Mutex<HashMap<u64, oneshot::Sender<Vec<u8>>>>,
}

impl Caller {
    /// One call: XADD the request, wait for the reader to hand over the
    /// reply.
    async fn call(&self, n: u64) -> Result<()> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().expect("not poisoned").insert(id, tx);
        let request = padded(
            format!("{}\n{id} {n}\n", self.inbox).into_bytes(),
            self.request_size,
        );
        let _: String = redis::cmd("XADD")
            .arg(&self.stream)
            .arg("*")
            .arg("m")
            .arg(request)
            .query_async(&mut self.conn.clone())
            .await?;
        let reply = tokio::time::timeout(CALL_TIMEOUT, rx)
            .await
            .context("no reply within the call timeout")?
            .context("the inbox reader stopped")?;
        ensure!(
            reply.starts_with(format!("{id} {n}\n").as_bytes()),
            "wrong reply"
        );
        Ok(())
    }
}

/// Pops replies in batches and hands each to its call.
async fn read_inbox(client: Client, caller: Arc<Caller>, stop: Arc<AtomicBool>) -> Result<()> {
    let mut conn = blocking_conn(&client).await?;
    while !stop.load(Ordering::Relaxed) {
        let value: Value = redis::cmd("BLMPOP")
            .arg(INBOX_WAIT.as_secs_f64())
            .arg(1)
            .arg(&caller.inbox)
            .arg("LEFT")
            .arg("COUNT")
            .arg(INBOX_BATCH)
            .query_async(&mut conn)
            .await?;
        // [key, [reply, …]] or nil.
        let Value::Array(mut parts) = value else {
            continue;
        };
        let Some(Value::Array(replies)) = parts.pop() else {
            continue;
        };
        for reply in replies {
            let Value::BulkString(reply) = reply else {
                continue;
            };
            let id = reply
                .split(|b| *b == b' ')
                .next()
                .and_then(|id| std::str::from_utf8(id).ok()?.parse::<u64>().ok());
            let waiter = id.and_then(|id| caller.pending.lock().expect("not poisoned").remove(&id));
            if let Some(tx) = waiter {
                let _ = tx.send(reply);
            }
        }
    }
    Ok(())
}

/// A finished request: its entry id, and the reply for its inbox.
struct Answer {
    tag: String,
    inbox: String,
    reply: Vec<u8>,
}

/// Writes answers flat-combined, as rota's `Finisher` does: the first task
/// with answers writes, and whatever comes in meanwhile goes into the next
/// pipeline.
struct Writer {
    conn: MultiplexedConnection,
    stream: String,
    queue: Mutex<Vec<Answer>>,
    writing: tokio::sync::Mutex<()>,
}

impl Writer {
    async fn push(&self, answers: Vec<Answer>) -> Result<()> {
        self.queue.lock().expect("not poisoned").extend(answers);
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

    /// One pipeline: RPUSH + PEXPIRE per inbox, then XACK and XDEL.
    async fn write(&self, batch: Vec<Answer>) -> Result<()> {
        let mut inboxes: Vec<(&str, Vec<&[u8]>)> = Vec::new();
        for a in &batch {
            match inboxes.iter_mut().find(|(k, _)| *k == a.inbox) {
                Some((_, replies)) => replies.push(&a.reply),
                None => inboxes.push((&a.inbox, vec![&a.reply])),
            }
        }
        let mut pipe = redis::pipe();
        for (inbox, replies) in &inboxes {
            pipe.cmd("RPUSH").arg(*inbox).arg(replies).ignore();
            pipe.cmd("PEXPIRE").arg(*inbox).arg(REPLY_TTL_MS).ignore();
        }
        let tags: Vec<&str> = batch.iter().map(|a| a.tag.as_str()).collect();
        pipe.cmd("XACK").arg(&self.stream).arg(GROUP).arg(&tags);
        pipe.cmd("XDEL").arg(&self.stream).arg(&tags).ignore();
        let (acked,): (usize,) = pipe.query_async(&mut self.conn.clone()).await?;
        ensure!(
            acked == batch.len(),
            "acknowledged {acked} of {}",
            batch.len()
        );
        Ok(())
    }
}

/// Parses XREADGROUP's `[[stream, [[id, [field, value, …]], …]]]` into
/// (entry id, field `m`).
fn entries(value: Value) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let Value::Array(streams) = value else {
        return out;
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
            let (Some(Value::Array(fields)), Some(Value::BulkString(id))) = (e.pop(), e.pop())
            else {
                continue;
            };
            let mut it = fields.into_iter();
            while let (Some(Value::BulkString(k)), Some(Value::BulkString(v))) =
                (it.next(), it.next())
            {
                if k == b"m" {
                    out.push((String::from_utf8_lossy(&id).into_owned(), v));
                    break;
                }
            }
        }
    }
    out
}

/// The echo "handler": the reply to `request` (`<inbox>\n<id> <n>\n…`).
fn answer(tag: String, request: &[u8], reply_size: usize) -> Result<Answer> {
    let mut lines = request.splitn(3, |b| *b == b'\n');
    let inbox = lines.next().context("no inbox in a request")?;
    let call = lines.next().context("no call in a request")?;
    let mut reply = call.to_vec();
    reply.push(b'\n');
    Ok(Answer {
        tag,
        inbox: String::from_utf8_lossy(inbox).into_owned(),
        reply: padded(reply, reply_size),
    })
}

/// A floor server: claims like a rota server, answers at once, and writes
/// the answers while it claims again.
async fn serve(
    client: Client,
    writer: Arc<Writer>,
    consumer: String,
    reply_size: usize,
    stop: Arc<AtomicBool>,
) -> Result<()> {
    let mut blocking = blocking_conn(&client).await?;
    // rota claims as many as it has free handler slots, at most a claim
    // batch; the floor's handlers are done before it claims again, so all
    // its slots are free.
    let want = CONCURRENCY.min(CLAIM_BATCH);
    // Bounded: one write per claim at most, and each ends as soon as it
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
            .arg(&writer.stream)
            .arg(">")
            .query_async(&mut blocking)
            .await?;
        let claimed = entries(value);
        if claimed.is_empty() {
            continue;
        }
        let answers = claimed
            .into_iter()
            .map(|(tag, m)| answer(tag, &m, reply_size))
            .collect::<Result<Vec<_>>>()?;
        let writer = Arc::clone(&writer);
        writes.spawn(async move { writer.push(answers).await });
        while let Some(done) = writes.try_join_next() {
            done??;
        }
    }
    while let Some(done) = writes.join_next().await {
        done??;
    }
    Ok(())
}

/// Servers and a caller, running.
struct Rig {
    caller: Arc<Caller>,
    stop: Arc<AtomicBool>,
    tasks: JoinSet<Result<()>>,
    cleanup: MultiplexedConnection,
}

impl Rig {
    async fn start(url: &str, service: &str, servers: usize) -> Result<Self> {
        let client = Client::open(url)?;
        let mut conn = shared_conn(&client).await?;
        let stream = format!("floor:{{{service}}}:q");
        let id = || CorrelationId::new().to_string().replace('-', "");
        let inbox = format!("floor:{{c:{}}}:r", id());
        let (request_size, reply_size) = envelope_sizes(service, &inbox)?;
        let _: () = redis::cmd("DEL")
            .arg(&stream)
            .query_async(&mut conn)
            .await?;
        let _: () = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&stream)
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await?;
        let stop = Arc::new(AtomicBool::new(false));
        let caller = Arc::new(Caller {
            conn: conn.clone(),
            stream: stream.clone(),
            inbox,
            request_size,
            next_id: AtomicU64::new(0),
            pending: Mutex::default(),
        });
        let mut tasks = JoinSet::new();
        for _ in 0..servers.max(1) {
            // A writer per server, as each rota server has its own; all
            // share the one connection, as rota's servers share their
            // broker's.
            let writer = Arc::new(Writer {
                conn: conn.clone(),
                stream: stream.clone(),
                queue: Mutex::default(),
                writing: tokio::sync::Mutex::new(()),
            });
            tasks.spawn(serve(
                client.clone(),
                writer,
                id(),
                reply_size,
                Arc::clone(&stop),
            ));
        }
        tasks.spawn(read_inbox(client, Arc::clone(&caller), Arc::clone(&stop)));
        let rig = Self {
            caller,
            stop,
            tasks,
            cleanup: conn,
        };
        for i in 0..WARMUP {
            rig.caller.call(i).await?;
        }
        Ok(rig)
    }

    async fn stop(mut self) -> Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        while let Some(done) = self.tasks.join_next().await {
            done??;
        }
        let _: () = redis::cmd("DEL")
            .arg(&self.caller.stream)
            .query_async(&mut self.cleanup)
            .await?;
        Ok(())
    }
}

/// Sequential calls through one server: p50 and p99 round trip.
pub(crate) async fn latency(url: &str, n: usize) -> Result<Line> {
    let rig = Rig::start(url, "bench-latency", 1).await?;
    let mut samples = Vec::with_capacity(n);
    for i in 0..n as u64 {
        let started = Instant::now();
        rig.caller.call(i).await?;
        samples.push(started.elapsed());
    }
    rig.stop().await?;
    Ok(super::latency_line(Some(NAME), n, samples))
}

/// `callers` concurrent callers, `servers` servers: calls per second.
pub(crate) async fn throughput(
    url: &str,
    n: usize,
    callers: usize,
    servers: usize,
) -> Result<Line> {
    let rig = Rig::start(url, "bench-throughput", servers).await?;
    let per_caller = n / callers.max(1);
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for c in 0..callers.max(1) as u64 {
        let caller = Arc::clone(&rig.caller);
        tasks.spawn(async move {
            for i in 0..per_caller as u64 {
                caller.call(c << 32 | i).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let elapsed = started.elapsed();
    rig.stop().await?;
    let done = per_caller * callers.max(1);
    Ok(line(json!({
        "system": "floor",
        "floor": NAME,
        "mode": "rpc-throughput",
        "measures": super::THROUGHPUT_MEASURES,
        "n": done,
        "callers": callers,
        "servers": servers,
        "calls_per_s": per_s(done, elapsed),
    })))
}
