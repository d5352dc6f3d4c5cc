//! Embedded durable backend of rota: everything in one SQLite file (WAL
//! mode), for a single machine with no server to run.
//!
//! ```no_run
//! # async fn run() -> Result<(), rota_core::BrokerError> {
//! let broker = rota_sqlite::SqliteBroker::open("rota.db").await?;
//! // Use it wherever a `rota::Broker` goes.
//! # Ok(()) }
//! ```
//!
//! **Why SQLite** (through `rusqlite`, built in): a queue wants a claim that
//! selects the oldest unclaimed rows of one service and marks them held, in
//! one transaction — an indexed `UPDATE … RETURNING`. SQLite in WAL mode does
//! that with durable commits that survive a killed process, lets other
//! processes on the machine open the same file (for a CLI or a second
//! worker), and is inspectable with the `sqlite3` shell. A key-value store
//! such as redb would need the secondary indexes written by hand.
//!
//! The semantics are those of every rota broker (and its conformance suite):
//! a consumer holds what it claimed under a lease it renews; a reap hands the
//! messages of lapsed leases back with attempt + 1, or dead-letters them at
//! the maximum; acknowledgements under a lapsed lease are refused. Leases run
//! on the system clock, so they hold across restarts of the process.
//!
//! The same file holds jobs: [`SqliteBroker`] is also a
//! [`JobStore`](rota_core::jobs::JobStore) — enqueue in bulk, claims fair
//! across partitions with a tenant cap, fenced settlements, reaping and
//! retention, each one transaction.
//!
//! * [`SqliteBroker`] — one handle that implements each feature's store
//!   trait side by side; [`SqliteOptions`] — path and durability.
//! * `rpc/` — calls: the broker and its consumers (transactions in
//!   `rpc::store`).
//! * `jobs/` — the job store (its transactions in `jobs::*`).
//! * `inbox`, `tx`, `schema` — what the features share: reply inboxes, the
//!   transaction helper and error type, the tables.

mod broker;
mod inbox;
mod jobs;
mod lease;
mod rpc;
mod schedules;
mod schema;
mod tx;

pub use broker::{Durability, SqliteBroker, SqliteOptions};
