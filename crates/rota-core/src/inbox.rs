//! Reply inboxes: the one part every feature's store shares. Calls answer
//! into them, and so do jobs (and, next, schedule runs) whose outcome
//! someone awaits. A backend value implements [`Inboxes`] beside each
//! feature's own trait, rather than every feature's trait extending one
//! base trait.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::BrokerError;

/// A reply queue owned by one client. Replies to its [`address`](Inbox::address)
/// land here; a backend expires an inbox nobody reads.
#[async_trait]
pub trait Inbox: Send + Sync {
    /// The address to put in a request's or job's `reply_to`.
    fn address(&self) -> &str;

    /// Waits up to `wait` for replies and returns up to `max` of them, or
    /// none when `wait` passed. Not cancel safe: a dropped call may lose
    /// the replies it popped; bound it with `wait` instead of racing it.
    async fn recv(&mut self, max: usize, wait: Duration) -> Result<Vec<Bytes>, BrokerError>;
}

/// Opens reply inboxes. Implemented by every backend.
#[async_trait]
pub trait Inboxes: Send + Sync + 'static {
    /// Opens an inbox owned by the caller.
    async fn open_inbox(&self) -> Result<Box<dyn Inbox>, BrokerError>;

    /// Whether `address` has the form of this backend's inbox addresses. A
    /// `reply_to` from the wire that is not one is never written to: it
    /// could name any key of the store.
    fn is_inbox(&self, address: &str) -> bool;
}

#[async_trait]
impl<I: Inboxes + ?Sized> Inboxes for Arc<I> {
    async fn open_inbox(&self) -> Result<Box<dyn Inbox>, BrokerError> {
        (**self).open_inbox().await
    }
    fn is_inbox(&self, address: &str) -> bool {
        (**self).is_inbox(address)
    }
}
