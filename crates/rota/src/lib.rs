//! # rota — service contracts over messaging
//!
//! A trait marked [`#[contract]`](contract) becomes a typed async client and a
//! server dispatcher. Calls travel as messages through a [`Broker`] — in
//! memory for tests and single processes, Redis (`rota-redis`) for many
//! machines — with correlation ids, reply inboxes, absolute deadlines and
//! redelivery when a server dies mid-call.
//!
//! ```
//! use rota::memory::MemoryBroker;
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
//! let greeter = GreeterClient::new(broker.clone(), "greeter");
//! assert_eq!(greeter.greet("ada".into()).await?, "hello, ada");
//!
//! server.shutdown().await?;
//! # Ok(())
//! # }
//! ```
//!
//! ## Layout
//!
//! * [`client`] — [`Client`] (one reply inbox, shared by every service client
//!   made from it) and the options of a call.
//! * [`server`] — [`serve`] runs a [`Dispatch`] (what the macro generates)
//!   against a broker: bounded concurrency, lease renewal, deadlines, panics
//!   caught, graceful drain.
//! * [`context`] — what a handler may know of the call it serves (attempt,
//!   deadline, headers).
//! * [`jobs`] — background jobs: enqueue per tenant, workers with retries,
//!   timeouts, dead-letters and fairness.
//! * [`memory`] — [`MemoryBroker`](memory::MemoryBroker), the in-process
//!   backend.
//! * `conformance` (feature `conformance`) — the suite every backend passes.
//! * The envelope, codec, errors and broker traits come from `rota-core` and
//!   are re-exported here.

pub mod client;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod context;
pub mod jobs;
pub mod memory;
pub mod server;

mod backoff;
mod lease;
mod memory_jobs;

#[doc(hidden)]
pub mod __private;

pub use backoff::Backoff;
pub use client::{
    CallOptions, Client, ClientOptions, ClientStats, IntoClient, ReplyWaiter, WhenFull,
};
pub use rota_core::broker::{
    Broker, Completion, Consumer, ConsumerOptions, DeadLetter, Delivery, Inbox, ReapStats,
};
pub use rota_core::{
    BrokerError, CallError, Codec, CorrelationId, Deadline, Fault, FaultKind, Headers, Outcome,
    Reply, Request, RpcError, codec, envelope, names,
};
pub use rota_macros::contract;
pub use server::{Call, Dispatch, ServeError, ServeOptions, ServerHandle, serve, spawn_server};
