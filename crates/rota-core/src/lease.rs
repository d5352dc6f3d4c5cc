//! The shape every leased consumer shares — a server's claim on calls, a
//! worker's claim on a queue's jobs, and (next) a scheduler's claim on a
//! shard of schedules: [`Leased`].
//!
//! A consumer registers under a **lease**: a time-limited claim with a
//! **fencing token**, its [`epoch`](Leased::epoch). The work it claims is
//! its own while the lease lives; it [`renew`](Leased::renew)s the lease
//! well within its length. Every write the consumer makes under the lease
//! ([`settle`](Leased::settle), [`release`](Leased::release)) is *fenced*:
//! the store refuses it with [`BrokerError::LeaseLost`] once the lease
//! lapsed, or once a later epoch of the same lease was granted — even if
//! the writer's own clock says its lease still runs. A consumer whose lease
//! lapsed has its work handed back by any other consumer's
//! [`reap`](Leased::reap), with the attempt raised by one.
//!
//! Epochs grow by one with each grant of a lease name: a consumer opened
//! with a stable name (say, a worker's host name, or a scheduler shard)
//! takes the name over from an earlier holder, whose writes are refused
//! from then on. A consumer opened without a name gets a name of its own.
//!
//! # Cancel safety
//!
//! None of the async methods is cancel safe in the sense of tokio's
//! `select!`: a dropped [`claim`](Leased::claim) may have claimed work that
//! then only returns when the lease lapses. Call them with a `wait` bound and
//! check for shutdown between calls instead of racing them.

use std::time::Duration;

use async_trait::async_trait;

use crate::error::BrokerError;

/// What a [`Leased::reap`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReapStats {
    /// Work of lapsed leases put back to be claimed again.
    pub requeued: usize,
    /// Work that reached its maximum attempts and was dead-lettered.
    pub dead_lettered: usize,
    /// Work whose cancellation was asked for while it ran: made final
    /// (cancelled) rather than run again.
    pub cancelled: usize,
}

/// A consumer's leased claim on work. See the module docs.
#[async_trait]
pub trait Leased: Send + Sync {
    /// A claimed piece of work.
    type Work: Send + 'static;
    /// A finished piece of work, to [`settle`](Leased::settle).
    type Done: Clone + Send + Sync + 'static;
    /// Names a piece of work to [`release`](Leased::release).
    type Tag: Send + Sync + 'static;

    /// The lease's name, unique among the consumers of the same work.
    fn id(&self) -> &str;

    /// The fencing token of this grant of the lease: greater than that of
    /// every earlier grant of the same name.
    fn epoch(&self) -> u64;

    /// Claims up to `max` pieces of work, waiting up to `wait` for the
    /// first. Returns none when `wait` passed. Refused with
    /// [`BrokerError::LeaseLost`] once the lease is lost.
    async fn claim(&self, max: usize, wait: Duration) -> Result<Vec<Self::Work>, BrokerError>;

    /// Extends the lease by its full length from now. Fails with
    /// [`BrokerError::LeaseLost`] if it had lapsed or was taken over: the
    /// caller must stop the work it holds, and open a new consumer.
    async fn renew(&self) -> Result<(), BrokerError>;

    /// Records finished work (writing any reply first, so that a crash in
    /// between leads to a redelivery, never to a lost reply), fenced.
    /// Returns how many pieces were still held and are now settled.
    async fn settle(&self, done: Vec<Self::Done>) -> Result<usize, BrokerError>;

    /// Gives up on finished work that cannot be written — its
    /// [`settle`](Leased::settle) failed with an error retrying will not fix
    /// (say, its reply address holds something that is no inbox): moves it
    /// to the dead letters with `reason`, without its reply. Fenced.
    async fn give_up(&self, done: Self::Done, reason: &str) -> Result<(), BrokerError>;

    /// Gives held work back at once, for another consumer; `attempted`
    /// counts the attempt (the handler had started). Fenced.
    async fn release(&self, tags: Vec<Self::Tag>, attempted: bool) -> Result<(), BrokerError>;

    /// Hands back the work of consumers whose lease lapsed (attempt + 1),
    /// or dead-letters it once it reached its maximum attempts. Any
    /// consumer may call it; the runtime does periodically.
    async fn reap(&self) -> Result<ReapStats, BrokerError>;

    /// Gives everything still held back and the lease up.
    async fn close(&self) -> Result<(), BrokerError>;
}
