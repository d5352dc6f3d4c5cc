//! Redis backend of rota: reliable request queues on Redis Streams.
//!
//! ```no_run
//! # async fn run() -> Result<(), rota::BrokerError> {
//! let broker = rota_redis::RedisBroker::connect("redis://127.0.0.1:6379").await?;
//! // Use it wherever a `rota::Broker` goes:
//! let client = rota::Client::new(broker.clone());
//! # Ok(()) }
//! ```
//!
//! Layout and reasoning are in `docs/PROTOCOL.md`; in short, for a service
//! `S` under the key prefix `P`:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `P:{S}:q` | stream, group `g` | requests: fields `m` (envelope), `a` (attempt, default 1) |
//! | `P:{S}:lease:<consumer>` | string with a TTL | a server's lease; it fences the server's acks |
//! | `P:{S}:dead` | stream | dead letters: `m`, `reason`, `attempts`, `at_ms`, `source` |
//! | `P:{c:<client>}:r` | list with a TTL | one client's replies |
//!
//! Every multi-key operation stays inside one `{…}` hash tag (a queue's,
//! a service's, a schedule shard's, a client inbox's), and so do the keys a
//! function derives from the base it is given; the prefix lets several apps
//! share one Redis.
//!
//! **Redis Cluster.** A `redis+cluster://host:port[,host:port…]` URL
//! (`rediss+cluster://` with TLS) reaches a Cluster through any of its
//! nodes: each command goes to the primary of its key's slot, so queues,
//! services and schedule shards spread over the primaries. The libraries of
//! Redis Functions are loaded on every primary whenever one says a function
//! is missing (a new primary, a node that lost its data), and the call is
//! made again. A pipeline that names keys of several slots (a job's outcome
//! reply and the call that settles it; the queue registry next to a queue's
//! call) goes as runs of one slot each, in order, each answered before the
//! next is sent: a reply is written before the settle that makes its job
//! final, as on one Redis. Blocking reads keep a Cluster connection of
//! their own.
//!
//! **What a fail-over keeps.** Redis replicates asynchronously. A planned
//! fail-over (`CLUSTER FAILOVER` on a replica) first lets the replica catch
//! up with its primary, so nothing acknowledged is lost (tested under load,
//! with jobs enqueued, claimed and settled and a schedule firing, in
//! `tests/cluster_failover.rs`). An unplanned one (a primary dies, its
//! replica takes over after `cluster-node-timeout`) loses the writes the
//! primary acknowledged but had not yet sent to the replica — typically
//! the last milliseconds: an enqueue acknowledged then may be gone, a settle
//! undone (the job runs again once its lease lapses: at least once still
//! holds for what survived), a lease grant forgotten. rota does not `WAIT`
//! for replicas: `WAIT` narrows that window but does not close it (a
//! replica that got a write may still lose the election), and it would cost
//! every write a round trip to a replica. The Cluster client also sends a
//! command again after its connection broke, so a call whose answer was
//! lost with a dying node may run twice if the node had passed it on: a
//! request published twice is served twice (its caller keeps the first
//! reply); an enqueue of jobs without chosen ids or idempotency keys may
//! queue them twice (give jobs ids or idempotency keys where that
//! matters); a claim made twice leaves the first one's jobs held by a
//! worker that never saw them, until that worker stops. A
//! settle, release, ack or lease renewal made twice changes nothing more.
//!//!
//! * [`options`] — [`RedisOptions`]: URL (with ACL user/password; `rediss://`
//!   with the `tls` feature; `redis+cluster://` for a Cluster), prefix,
//!   timeouts.
//! * [`broker`] — [`RedisBroker`], one handle that implements each feature's
//!   store trait side by side.
//! * `rpc/` — calls: the [`Broker`](rota_core::Broker) and its consumers.
//! * `jobs/` — jobs: the [`JobStore`](rota_core::jobs::JobStore) and its
//!   consumers.
//! * `schedules/` — schedules: the
//!   [`ScheduleStore`](rota_core::schedules::ScheduleStore), its shards
//!   and their inboxes.
//! * `inbox`, `lease`, `keys`, `conn` — what the features share: reply
//!   inboxes, fenced lease renewal, the key layout, connections (to one
//!   Redis or a Cluster, pipelines split by slot on a Cluster).
//! * `lua/rpc/`, `lua/jobs/`, `lua/schedules/` — the scripts that make
//!   each state change atomic, next to the feature they serve.

pub mod broker;
mod call;
mod conn;
mod error;
mod inbox;
mod jobs;
mod keys;
mod lease;
pub mod options;
mod rpc;
mod schedules;
mod scripts;

pub use broker::RedisBroker;
pub use options::RedisOptions;
