//! Calls: the broker trait family that carries requests and replies.
//!
//! * [`broker`] — [`Broker`] (publish requests, register consumers,
//!   administer dead letters), [`Consumer`] (one server's leased claim on a
//!   service's requests) and [`Inbox`] (a client's reply queue).

pub mod broker;

pub use broker::{
    Broker, Completion, Consumer, ConsumerOptions, DeadLetter, Delivery, Inbox, ReapStats,
};
