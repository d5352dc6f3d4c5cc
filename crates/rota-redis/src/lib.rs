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
//! Every multi-key operation stays inside one `{…}` hash tag, so the layout
//! is ready for Redis Cluster (connecting to a Cluster is not supported yet:
//! the broker talks to one Redis endpoint); the prefix lets several apps
//! share one Redis.
//!
//! * [`options`] — [`RedisOptions`]: URL (with ACL user/password; `rediss://`
//!   with the `tls` feature), prefix, timeouts.
//! * [`broker`] — [`RedisBroker`], one handle that implements each feature's
//!   store trait side by side.
//! * `rpc/` — calls: the [`Broker`](rota_core::Broker) and its consumers.
//! * `jobs/` — jobs: the [`JobStore`](rota_core::jobs::JobStore) and its
//!   consumers.
//! * `schedules/` — schedules: the
//!   [`ScheduleStore`](rota_core::schedules::ScheduleStore), its shards
//!   and their inboxes.
//! * `inbox`, `lease`, `keys`, `conn` — what the features share: reply
//!   inboxes, fenced lease renewal, the key layout, connections.
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
