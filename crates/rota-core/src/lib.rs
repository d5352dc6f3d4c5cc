//! The shared foundation of rota: what travels, how it is encoded, and the
//! traits every broker backend implements. It does no I/O of its own.
//!
//! * [`envelope`] — [`Request`] and [`Reply`], the two messages of a call, and
//!   their wire format (documented in `docs/PROTOCOL.md`).
//! * [`codec`] — [`Codec`]: JSON by default, MessagePack as an option.
//! * [`lease`] — [`Leased`], the shape of every leased consumer (a server's
//!   claim on calls, a worker's on jobs): claim, renew, settle, release,
//!   reap, close, all fenced by the lease's epoch.
//! * [`inbox`] — [`Inbox`] and [`Inboxes`], the reply queues every feature
//!   shares.
//! * [`rpc`] — calls: the [`Broker`] / [`Consumer`] traits that the
//!   in-memory, Redis and embedded backends implement, and that one
//!   conformance suite checks.
//! * [`error`] — [`RpcError`] (framework failures of a call), [`CallError`]
//!   (a call's own typed error or a framework failure) and [`BrokerError`].
//! * [`jobs`] — the job model ([`jobs::NewJob`], [`jobs::Job`],
//!   [`jobs::JobRecord`]) and the [`jobs::JobStore`] trait family.
//! * [`schedules`] — when recurring jobs fire: [`schedules::Trigger`] (cron
//!   in a time zone, every D after completion, every D at a fixed rate,
//!   once), checked into a [`schedules::Plan`] that computes fire times from
//!   instants it is given (no clock, no I/O).
//! * [`names`] — validation of service names and key prefixes.
//! * [`time`] — absolute deadlines as Unix milliseconds; [`clock`] — the
//!   wall clock behind a trait, so tests can move it.

pub mod clock;
pub mod codec;
pub mod envelope;
pub mod error;
pub mod inbox;
pub mod jobs;
pub mod lease;
pub mod names;
pub mod rpc;
pub mod schedules;
pub mod time;

pub use codec::Codec;
pub use envelope::{CorrelationId, Fault, FaultKind, Headers, Outcome, Reply, Request};
pub use error::{BrokerError, CallError, RpcError};
pub use inbox::{Inbox, Inboxes};
pub use lease::{Leased, ReapStats};
pub use rpc::{Broker, Completion, Consumer, ConsumerOptions, DeadLetter, Delivery};
pub use time::Deadline;
