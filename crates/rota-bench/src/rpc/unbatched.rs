//! The unbatched floor, kept for reference: the classic reliable list
//! queue, one request per round trip. A caller LPUSHes a request and BLPOPs
//! its reply on a list of its own; a server BLMOVEs the request into its
//! processing list, then LPUSHes the reply and LREMs the request in one
//! pipeline. rota batches claims and acknowledgements, so it outruns this
//! shape: it is no limit of rota's, only a picture of what batching buys
//! (the `streams` floor is the limit).

use std::time::Instant;

use anyhow::{Result, ensure};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client};
use serde_json::json;
use tokio_util_like::Stop;

use crate::report::{Line, line, per_s};

/// The name of this floor in report lines.
pub(crate) const NAME: &str = "unbatched-lists";

const QUEUE: &str = "floor-lists:q";

async fn blocking_conn(client: &Client) -> Result<MultiplexedConnection> {
    let config = AsyncConnectionConfig::new().set_response_timeout(None);
    Ok(client
        .get_multiplexed_async_connection_with_config(&config)
        .await?)
}

/// A floor server: BLMOVE, then reply + LREM in one round trip.
async fn server(client: Client, id: usize, stop: Stop) -> Result<()> {
    let mut blocking = blocking_conn(&client).await?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let processing = format!("floor-lists:processing:{id}");
    while !stop.is_set() {
        let req: Option<Vec<u8>> = redis::cmd("BLMOVE")
            .arg(QUEUE)
            .arg(&processing)
            .arg("RIGHT")
            .arg("LEFT")
            .arg(0.2)
            .query_async(&mut blocking)
            .await?;
        let Some(req) = req else { continue };
        // The request is "reply-key|payload".
        let split = req.iter().position(|b| *b == b'|').unwrap_or(0);
        let (reply_to, body) = (&req[..split], &req[split + 1..]);
        let _: () = redis::pipe()
            .cmd("LPUSH")
            .arg(reply_to)
            .arg(body)
            .ignore()
            .cmd("LREM")
            .arg(&processing)
            .arg(1)
            .arg(&req)
            .ignore()
            .query_async(&mut conn)
            .await?;
    }
    Ok(())
}

/// One call: LPUSH the request, BLPOP the reply.
async fn call(
    conn: &mut MultiplexedConnection,
    blocking: &mut MultiplexedConnection,
    reply_to: &str,
    n: u64,
) -> Result<()> {
    let body = n.to_string();
    let _: () = redis::cmd("LPUSH")
        .arg(QUEUE)
        .arg(format!("{reply_to}|{body}"))
        .query_async(conn)
        .await?;
    let (_, got): (String, String) = redis::cmd("BLPOP")
        .arg(reply_to)
        .arg(5)
        .query_async(blocking)
        .await?;
    ensure!(got == body, "wrong reply");
    Ok(())
}

async fn reset(client: &Client) -> Result<()> {
    let mut conn = client.get_multiplexed_async_connection().await?;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("floor-lists:*")
        .query_async(&mut conn)
        .await?;
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL").arg(keys).query_async(&mut conn).await?;
    }
    Ok(())
}

pub(crate) async fn latency(url: &str, n: usize) -> Result<Line> {
    let client = Client::open(url)?;
    reset(&client).await?;
    let stop = Stop::default();
    let srv = tokio::spawn(server(client.clone(), 0, stop.clone()));
    let mut conn = client.get_multiplexed_async_connection().await?;
    let mut blocking = blocking_conn(&client).await?;
    for i in 0..200 {
        call(&mut conn, &mut blocking, "floor-lists:r:0", i).await?;
    }
    let mut samples = Vec::with_capacity(n);
    for i in 0..n as u64 {
        let started = Instant::now();
        call(&mut conn, &mut blocking, "floor-lists:r:0", i).await?;
        samples.push(started.elapsed());
    }
    stop.set();
    srv.await??;
    Ok(super::latency_line(Some(NAME), n, samples))
}

pub(crate) async fn throughput(
    url: &str,
    n: usize,
    callers: usize,
    servers: usize,
) -> Result<Line> {
    let client = Client::open(url)?;
    reset(&client).await?;
    let stop = Stop::default();
    let srvs: Vec<_> = (0..servers.max(1))
        .map(|id| tokio::spawn(server(client.clone(), id, stop.clone())))
        .collect();
    let per_caller = n / callers.max(1);
    let conn = client.get_multiplexed_async_connection().await?;
    let mut blockings = Vec::new();
    for _ in 0..callers.max(1) {
        blockings.push(blocking_conn(&client).await?);
    }
    let started = Instant::now();
    let tasks: Vec<_> = blockings
        .into_iter()
        .enumerate()
        .map(|(c, mut blocking)| {
            let mut conn = conn.clone();
            tokio::spawn(async move {
                let reply_to = format!("floor-lists:r:{c}");
                for i in 0..per_caller as u64 {
                    call(&mut conn, &mut blocking, &reply_to, i).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    let elapsed = started.elapsed();
    stop.set();
    for s in srvs {
        s.await??;
    }
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

/// A stop flag shared by the floor's servers.
mod tokio_util_like {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[derive(Clone, Default)]
    pub(crate) struct Stop(Arc<AtomicBool>);

    impl Stop {
        pub(crate) fn set(&self) {
            self.0.store(true, Ordering::Relaxed);
        }
        pub(crate) fn is_set(&self) -> bool {
            self.0.load(Ordering::Relaxed)
        }
    }
}
