//! The broker trait family: what a backend must do so that rota's clients and
//! servers can run on it.
//!
//! * [`Broker`] — a cheap, cloneable handle: publishes requests, registers
//!   [`Consumer`]s, and administers dead letters. Replies travel through the
//!   backend's [`Inboxes`](crate::Inboxes), which every feature shares.
//! * [`Consumer`] — one server's claim on a service's requests: a
//!   [`Leased`] consumer (see [`crate::lease`]). If its lease lapses (the
//!   process died, or lost the broker), any consumer's
//!   [`reap`](Leased::reap) hands its messages back to the queue with their
//!   attempt raised by one, or dead-letters them once they reached the
//!   maximum number of deliveries. Acknowledgements under a lapsed or
//!   taken-over lease are refused with [`BrokerError::LeaseLost`].
//!
//! Every backend passes the same conformance suite (`rota_conformance::rpc`).
//!
//! # Cancel safety
//!
//! None of the async methods here is cancel safe in the sense of tokio's
//! `select!` (see [`crate::lease`]). Call them with a `wait` bound and check
//! for shutdown between calls instead of racing them.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::BrokerError;
use crate::lease::Leased;

/// A message handed to a consumer under its lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Identifies the delivery to [`Leased::settle`], [`Leased::release`]
    /// and [`Consumer::dead_letter`]. Opaque; unique within the service.
    pub tag: String,
    /// Which delivery of this message this is, from 1.
    pub attempt: u32,
    /// The message as published.
    pub payload: Bytes,
}

/// A finished delivery: acknowledge it, after writing its reply, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// The delivery's tag.
    pub tag: String,
    /// The reply and the inbox address to send it to.
    pub reply: Option<(String, Bytes)>,
}

/// How a consumer holds its messages.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsumerOptions {
    /// How long claims stay valid without a renewal. Renew well within it
    /// (rota's server renews every third of it).
    pub lease: Duration,
    /// Deliveries after which a message whose consumer died goes to the
    /// dead-letter list instead of back to the queue.
    pub max_deliveries: u32,
    /// The lease's name; `None` (the default) for a name of its own. A
    /// consumer opened with the name of a live one takes the lease over:
    /// it gets the next epoch, the earlier holder's messages go back to the
    /// queue, and its writes are refused from then on.
    pub name: Option<String>,
}

impl Default for ConsumerOptions {
    /// A 10 s lease (as rota's servers hold by default) and 5 deliveries.
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(10),
            max_deliveries: 5,
            name: None,
        }
    }
}

impl ConsumerOptions {
    /// Sets the lease length.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Sets the maximum number of deliveries.
    pub fn max_deliveries(mut self, n: u32) -> Self {
        self.max_deliveries = n.max(1);
        self
    }

    /// Names the lease (see [`ConsumerOptions::name`]): ASCII letters,
    /// digits, `-`, `_` and `.`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// A message that will not be delivered again until it is re-queued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Identifies the entry for [`Broker::requeue_dead`].
    pub id: String,
    /// Why it was dead-lettered.
    pub reason: String,
    /// How many times it was delivered.
    pub attempts: u32,
    /// When it was dead-lettered, in Unix milliseconds.
    pub at_ms: u64,
    /// The message as published.
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
}

/// One server's leased claim on a service's requests: the shape of every
/// leased consumer ([`Leased`]), with [`Delivery`]s as its work and
/// [`Completion`]s (a reply, then the acknowledgement) as finished work,
/// plus a dead-letter list for messages that cannot be served.
#[async_trait]
pub trait Consumer: Leased<Work = Delivery, Done = Completion, Tag = String> {
    /// Moves a delivery to the dead-letter list with the reason. Fenced.
    async fn dead_letter(&self, tag: &str, reason: &str) -> Result<(), BrokerError>;
}

/// A handle on a broker. Cheap to clone, shared by all tasks.
#[async_trait]
pub trait Broker: Send + Sync + 'static {
    /// Enqueues an encoded request for `service`.
    async fn publish(&self, service: &str, message: Bytes) -> Result<(), BrokerError>;

    /// Registers a consumer of `service`'s requests, under a new lease.
    async fn consumer(
        &self,
        service: &str,
        options: ConsumerOptions,
    ) -> Result<Box<dyn Consumer>, BrokerError>;

    /// How many requests wait for `service`, not yet claimed.
    async fn queued(&self, service: &str) -> Result<usize, BrokerError>;

    /// Up to `limit` dead letters of `service`, oldest first.
    async fn dead_letters(
        &self,
        service: &str,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, BrokerError>;

    /// Puts the dead letter `id` (or, with `None`, all of them) back on the
    /// queue with a fresh attempt count. Returns how many were re-queued.
    async fn requeue_dead(&self, service: &str, id: Option<&str>) -> Result<usize, BrokerError>;

    /// Deletes all dead letters of `service`. Returns how many there were.
    async fn purge_dead(&self, service: &str) -> Result<usize, BrokerError>;
}

#[async_trait]
impl<B: Broker + ?Sized> Broker for Arc<B> {
    async fn publish(&self, service: &str, message: Bytes) -> Result<(), BrokerError> {
        (**self).publish(service, message).await
    }
    async fn consumer(
        &self,
        service: &str,
        options: ConsumerOptions,
    ) -> Result<Box<dyn Consumer>, BrokerError> {
        (**self).consumer(service, options).await
    }
    async fn queued(&self, service: &str) -> Result<usize, BrokerError> {
        (**self).queued(service).await
    }
    async fn dead_letters(
        &self,
        service: &str,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, BrokerError> {
        (**self).dead_letters(service, limit).await
    }
    async fn requeue_dead(&self, service: &str, id: Option<&str>) -> Result<usize, BrokerError> {
        (**self).requeue_dead(service, id).await
    }
    async fn purge_dead(&self, service: &str) -> Result<usize, BrokerError> {
        (**self).purge_dead(service).await
    }
}
