//! Call benchmarks: rota against the floor of the same calls on Redis,
//! both measured in the same process, one after the other.
//!
//! * [`rota`] — a `#[contract]` echo service on the Redis backend.
//! * [`floor`] — the `streams` floor: the Redis commands rota sends for a
//!   call, batched as rota batches them, without the lease's fencing.
//! * [`unbatched`] — the `unbatched-lists` shape, one request per round trip
//!   (a reference, not a limit).

use std::time::Duration;

use anyhow::Result;

use crate::report::{Line, Report, line, percentile_ms};

pub(crate) mod floor;
pub(crate) mod rota;
pub(crate) mod unbatched;

/// Handler slots of each server (rota's `ServeOptions::concurrency`).
const CONCURRENCY: usize = 512;
/// Most requests one claim takes (rota's `ServeOptions::claim_batch`).
const CLAIM_BATCH: usize = 256;
/// How long one claim blocks.
const CLAIM_WAIT: Duration = Duration::from_secs(1);
/// Replies one inbox read takes, and how long it blocks: the constants of
/// rota's client (`client.rs`, `read_replies`).
const INBOX_BATCH: usize = 512;
const INBOX_WAIT: Duration = Duration::from_millis(500);
/// Deadline of a call.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Calls made before measuring.
const WARMUP: u64 = 200;

const LATENCY_MEASURES: &str = "p50_ms, p99_ms: round trip of one echo call (request sent until the caller holds the reply), n calls one after another through one server";
const THROUGHPUT_MEASURES: &str = "calls_per_s: echo calls completed (request sent until the caller holds the reply) per second of wall time, n calls by `callers` concurrent callers sharing one client, `servers` servers";

/// The line of a latency run: rota's (`floor` `None`) or a floor's, from
/// its round trips.
fn latency_line(floor: Option<&str>, n: usize, mut samples: Vec<Duration>) -> Line {
    samples.sort();
    let mut v = serde_json::Map::new();
    v.insert(
        "system".into(),
        (if floor.is_some() { "floor" } else { "rota" }).into(),
    );
    if let Some(floor) = floor {
        v.insert("floor".into(), floor.into());
    }
    v.insert("mode".into(), "rpc-latency".into());
    v.insert("measures".into(), LATENCY_MEASURES.into());
    v.insert("n".into(), n.into());
    v.insert("p50_ms".into(), percentile_ms(&samples, 50.0).into());
    v.insert("p99_ms".into(), percentile_ms(&samples, 99.0).into());
    line(v.into())
}

/// Which floor runs beside rota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Floor {
    /// The Redis commands rota sends, batched as rota batches them, minus
    /// the lease's fencing: the limit rota's figure is a share of.
    Streams,
    /// One request per BLMOVE on lists: what batching buys, not a limit.
    UnbatchedLists,
    /// rota alone.
    None,
}

/// Sequential calls: the floor's p50/p99, then rota's with
/// `p50_ratio`/`p99_ratio` = rota / floor.
pub(crate) async fn latency(url: &str, n: usize, floor: Floor) -> Result<Report> {
    let floor_line = match floor {
        Floor::Streams => Some(floor::latency(url, n).await?),
        Floor::UnbatchedLists => Some(unbatched::latency(url, n).await?),
        Floor::None => None,
    };
    let rota = rota::latency(url, n).await?;
    Ok(Report::side_by_side(
        floor_line,
        rota,
        &[("p50_ms", "p50_ratio"), ("p99_ms", "p99_ratio")],
    ))
}

/// Concurrent calls: the floor's calls per second, then rota's with
/// `ratio` = rota / floor.
pub(crate) async fn throughput(
    url: &str,
    n: usize,
    callers: usize,
    servers: usize,
    floor: Floor,
) -> Result<Report> {
    let floor_line = match floor {
        Floor::Streams => Some(floor::throughput(url, n, callers, servers).await?),
        Floor::UnbatchedLists => Some(unbatched::throughput(url, n, callers, servers).await?),
        Floor::None => None,
    };
    let rota = rota::throughput(url, n, callers, servers).await?;
    Ok(Report::side_by_side(
        floor_line,
        rota,
        &[("calls_per_s", "ratio")],
    ))
}
