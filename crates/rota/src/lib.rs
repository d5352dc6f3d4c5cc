//! # rota — service contracts over messaging
//!
//! A trait marked [`#[contract]`](contract) becomes a typed async client and a
//! server dispatcher. Calls travel as messages through a [`Broker`] — in
//! memory for tests and single processes, Redis (`rota-redis`) for many
//! machines — with correlation ids, reply inboxes, absolute deadlines and
//! redelivery when a server dies mid-call.
//!
//! ```
//! use rota_memory::MemoryBroker;
//!
//! #[rota::contract]
//! pub trait Greeter {
//!     async fn greet(&self, name: String) -> String;
//! }
//!
//! struct English;
//! impl Greeter for English {
//!     async fn greet(&self, name: String) -> String {
//!         format!("hello, {name}")
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let broker = MemoryBroker::new();
//! let server = GreeterServer::new(English).spawn(broker.clone(), "greeter", Default::default());
//!
//! // One client per process: its reply inbox serves every typed client.
//! let client = rota::Client::new(broker.clone());
//! let greeter = GreeterClient::new(&client, "greeter");
//! assert_eq!(greeter.greet("ada".into()).await?, "hello, ada");
//!
//! server.shutdown().await?;
//! # Ok(())
//! # }
//! ```
//!
//! ## Layout
//!
//! One folder per feature, the same in every rota crate:
//!
//! * [`rpc`] — calls: [`Client`] (one reply inbox, shared by every service
//!   client made from it), [`serve`] (runs a [`Dispatch`], what the macro
//!   generates: bounded concurrency, lease renewal, deadlines, panics caught,
//!   graceful drain) and [`rpc::context`], what a handler may know of the
//!   call it serves.
//! * [`jobs`] — background jobs: enqueue per tenant, workers with retries,
//!   timeouts, dead-letters and fairness.
//! * [`schedules`] — recurring jobs: [`schedules::Schedules`] to manage
//!   them, [`schedules::Scheduler`] to dispatch their runs.
//! * [`runtime`] — what servers and workers share: holding a lease, writing
//!   finished work in batches, [`Backoff`].
//! * The envelope, codec, errors and store traits come from `rota-core` and
//!   are re-exported here. Backends live in crates of their own:
//!   `rota-memory` (in process), `rota-redis`, `rota-sqlite` (embedded).

pub mod jobs;
pub mod rpc;
pub mod runtime;
pub mod schedules;

#[doc(hidden)]
pub mod __private;

pub use rota_core::rpc::{Broker, Completion, Consumer, ConsumerOptions, DeadLetter, Delivery};
pub use rota_core::{
    BrokerError, CallError, Codec, CorrelationId, Deadline, Fault, FaultKind, Headers, Outcome,
    Reply, Request, RpcError, codec, envelope, names,
};
pub use rota_core::{Inbox, Inboxes, Leased, ReapStats};
pub use rota_macros::contract;
pub use rpc::context;
pub use rpc::{Call, Dispatch, ServeError, ServeOptions, ServerHandle, serve, spawn_server};
pub use rpc::{CallOptions, Client, ClientOptions, ClientStats, IntoClient, ReplyWaiter, WhenFull};
pub use runtime::Backoff;
