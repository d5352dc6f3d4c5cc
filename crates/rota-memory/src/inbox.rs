//! Reply inboxes: the one part every feature shares. Calls answer into
//! them, and so do jobs whose outcome someone awaits.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use rota_core::BrokerError;
use rota_core::{Inbox, Inboxes};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::{MemoryBroker, uuid_like};

/// Every open inbox, by address; and the inboxes of the schedule shards,
/// which belong to the broker (they outlive any process that reads them).
#[derive(Default)]
pub(crate) struct OpenInboxes {
    open: HashMap<String, InboxQueue>,
    shards: HashMap<u32, ShardInbox>,
}

/// A schedule shard's inbox: replies kept until acknowledged, numbered.
#[derive(Default)]
pub(crate) struct ShardInbox {
    pub(crate) replies: VecDeque<Bytes>,
    /// The number of the first reply in `replies`.
    pub(crate) first: u64,
}

impl OpenInboxes {
    /// Delivers `reply` to the inbox at `to`. An inbox that is gone belonged
    /// to a client that is gone: the reply is dropped.
    pub(crate) fn deliver(&mut self, to: &str, reply: Bytes) {
        if let Some(shard) = shard_of_address(to) {
            self.shards
                .entry(shard)
                .or_default()
                .replies
                .push_back(reply);
        } else if let Some(inbox) = self.open.get_mut(to) {
            inbox.push(reply);
        }
    }

    /// The inbox of schedule shard `shard`.
    pub(crate) fn shard(&mut self, shard: u32) -> &mut ShardInbox {
        self.shards.entry(shard).or_default()
    }
}

/// What every schedule shard's inbox address starts with.
const SHARD_PREFIX: &str = "memory:shard:";

/// The address of schedule shard `shard`'s inbox.
pub(crate) fn shard_address(shard: u32) -> String {
    format!("{SHARD_PREFIX}{shard}")
}

fn shard_of_address(address: &str) -> Option<u32> {
    let n = address.strip_prefix(SHARD_PREFIX)?;
    let shard: u32 = n.parse().ok()?;
    (shard < crate::schedules::SHARDS && n == shard.to_string()).then_some(shard)
}

struct InboxQueue {
    replies: VecDeque<Bytes>,
    wake: Arc<Notify>,
}

impl InboxQueue {
    /// Delivers a reply and wakes the reader.
    fn push(&mut self, reply: Bytes) {
        self.replies.push_back(reply);
        self.wake.notify_one();
    }
}

/// What every inbox address starts with.
const ADDRESS_PREFIX: &str = "memory:inbox:";

#[async_trait]
impl Inboxes for MemoryBroker {
    async fn open_inbox(&self) -> Result<Box<dyn Inbox>, BrokerError> {
        Ok(open(self))
    }

    fn is_inbox(&self, address: &str) -> bool {
        shard_of_address(address).is_some()
            || address
                .strip_prefix(ADDRESS_PREFIX)
                .is_some_and(|id| rota_core::CorrelationId::parse(id).is_ok())
    }
}

/// Opens an inbox on `broker`.
fn open(broker: &MemoryBroker) -> Box<dyn Inbox> {
    let address = format!("{ADDRESS_PREFIX}{}", uuid_like());
    let wake = Arc::new(Notify::new());
    broker.lock().inboxes.open.insert(
        address.clone(),
        InboxQueue {
            replies: VecDeque::new(),
            wake: Arc::clone(&wake),
        },
    );
    Box::new(MemoryInbox {
        broker: broker.clone(),
        address,
        wake,
    })
}

struct MemoryInbox {
    broker: MemoryBroker,
    address: String,
    wake: Arc<Notify>,
}

impl Drop for MemoryInbox {
    fn drop(&mut self) {
        self.broker.lock().inboxes.open.remove(&self.address);
    }
}

#[async_trait]
impl Inbox for MemoryInbox {
    fn address(&self) -> &str {
        &self.address
    }

    async fn recv(&mut self, max: usize, wait: Duration) -> Result<Vec<Bytes>, BrokerError> {
        let until = Instant::now() + wait;
        loop {
            let notified = self.wake.notified();
            {
                let mut state = self.broker.lock();
                let q = state
                    .inboxes
                    .open
                    .get_mut(&self.address)
                    .ok_or(BrokerError::Closed)?;
                if !q.replies.is_empty() {
                    let n = max.min(q.replies.len());
                    return Ok(q.replies.drain(..n).collect());
                }
            }
            if tokio::time::timeout_at(until, notified).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }
}
