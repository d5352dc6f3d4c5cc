//! The broker trait family: what a backend must do so that rota's clients and
//! servers can run on it.
//!
//! * [`Broker`] — a cheap, cloneable handle: publishes requests, opens reply
//!   [`Inbox`]es, registers [`Consumer`]s, and administers dead letters.
//! * [`Consumer`] — one server's claim on a service's requests. It holds a
//!   **lease** that it must [`renew`](Consumer::renew); the messages it claims
//!   are its own while the lease lives. If the lease lapses (the process died,
//!   or lost the broker), any consumer's [`reap`](Consumer::reap) hands them
//!   back to the queue with their attempt raised by one, or dead-letters them
//!   once they reached the maximum number of deliveries. Acknowledgements under
//!   a lapsed lease are refused with [`BrokerError::LeaseLost`].
//!
//! Every backend passes the same conformance suite (`rota_conformance::rpc`).
//!
//! # Cancel safety
//!
//! None of the async methods here is cancel safe in the sense of tokio's
//! `select!`: a dropped [`Consumer::claim`] may have claimed messages that are
//! then only recovered when the lease lapses, and a dropped [`Inbox::recv`] may
//! lose the replies it popped. Call them with a `wait` bound and check for
//! shutdown between calls instead of racing them.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::BrokerError;

/// A message handed to a consumer under its lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Identifies the delivery to [`Consumer::complete`], [`Consumer::release`]
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
}

impl Default for ConsumerOptions {
    /// A 10 s lease (as rota's servers hold by default) and 5 deliveries.
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(10),
            max_deliveries: 5,
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
}

/// What a [`Consumer::reap`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReapStats {
    /// Messages of lapsed leases put back on the queue.
    pub requeued: usize,
    /// Messages that reached the maximum deliveries and were dead-lettered.
    pub dead_lettered: usize,
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

/// A reply queue owned by one client. Replies to its [`address`](Inbox::address)
/// land here; a backend expires an inbox nobody reads.
#[async_trait]
pub trait Inbox: Send + Sync {
    /// The address to put in a request's `reply_to`.
    fn address(&self) -> &str;

    /// Waits up to `wait` for replies and returns up to `max` of them, or none
    /// when `wait` passed. Not cancel safe (see the module docs).
    async fn recv(&mut self, max: usize, wait: Duration) -> Result<Vec<Bytes>, BrokerError>;
}

/// One server's claim on a service's requests. See the module docs.
#[async_trait]
pub trait Consumer: Send + Sync {
    /// This consumer's id, unique among the service's consumers.
    fn id(&self) -> &str;

    /// Claims up to `max` messages, waiting up to `wait` for the first.
    /// Returns none when `wait` passed. Not cancel safe.
    async fn claim(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, BrokerError>;

    /// Extends the lease by its full length from now. Fails with
    /// [`BrokerError::LeaseLost`] if it had already lapsed: the caller must
    /// stop the work it holds, and open a new consumer.
    async fn renew(&self) -> Result<(), BrokerError>;

    /// Writes each completion's reply, then acknowledges the deliveries, so
    /// that a crash in between leads to a redelivery, never to a lost reply.
    /// Refused with [`BrokerError::LeaseLost`] if the lease lapsed. Returns how
    /// many deliveries were still held and are now acknowledged.
    async fn complete(&self, done: Vec<Completion>) -> Result<usize, BrokerError>;

    /// Gives deliveries back to the queue at once, for another consumer.
    /// `attempted` says whether they count as an attempt (the handler started).
    async fn release(&self, tags: Vec<String>, attempted: bool) -> Result<(), BrokerError>;

    /// Moves a delivery to the dead-letter list with the reason.
    async fn dead_letter(&self, tag: &str, reason: &str) -> Result<(), BrokerError>;

    /// Hands the messages of consumers whose lease lapsed back to the queue
    /// (attempt + 1), or to the dead-letter list when they reached the
    /// maximum deliveries. Any consumer may call it; servers do periodically.
    async fn reap(&self) -> Result<ReapStats, BrokerError>;

    /// Releases everything still held and gives the lease up.
    async fn close(&self) -> Result<(), BrokerError>;
}

/// A handle on a broker. Cheap to clone, shared by all tasks.
#[async_trait]
pub trait Broker: Send + Sync + 'static {
    /// Enqueues an encoded request for `service`.
    async fn publish(&self, service: &str, message: Bytes) -> Result<(), BrokerError>;

    /// Opens a reply inbox owned by the caller.
    async fn open_inbox(&self) -> Result<Box<dyn Inbox>, BrokerError>;

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
    async fn open_inbox(&self) -> Result<Box<dyn Inbox>, BrokerError> {
        (**self).open_inbox().await
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
