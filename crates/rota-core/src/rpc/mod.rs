//! Calls: the broker trait family that carries requests and replies.
//!
//! * [`broker`] — [`Broker`] (publish requests, register consumers,
//!   administer dead letters) and [`Consumer`] (one server's leased claim on
//!   a service's requests). Replies go to the [`Inbox`](crate::Inbox)es
//!   every feature shares.

pub mod broker;

pub use broker::{Broker, Completion, Consumer, ConsumerOptions, DeadLetter, Delivery};
