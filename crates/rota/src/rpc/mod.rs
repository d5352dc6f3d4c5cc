//! Calls: typed clients and servers of `#[contract]` traits over a broker.
//!
//! * [`client`] — [`Client`] (one reply inbox, shared by every service client
//!   made from it) and the options of a call.
//! * [`server`] — [`serve`] runs a [`Dispatch`] (what the macro generates)
//!   against a broker: bounded concurrency, lease renewal, deadlines, panics
//!   caught, graceful drain.
//! * [`context`] — what a handler may know of the call it serves (attempt,
//!   deadline, headers).

pub mod client;
pub mod context;
pub mod dispatch;
pub mod server;
pub mod service_client;

pub use client::{CallOptions, Client, ClientOptions, ClientStats, ReplyWaiter, WhenFull};
pub use dispatch::{Call, Dispatch};
pub use server::{ServeError, ServeOptions, ServerHandle, serve, spawn_server};
pub use service_client::{IntoClient, ServiceClient};
