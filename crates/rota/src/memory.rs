//! The in-process broker: the same semantics as the Redis backend — leases,
//! redelivery with attempt + 1, dead letters, fencing — on tokio primitives,
//! so tests run fast and may pause time.
//!
//! [`MemoryBroker`] is also a [`JobStore`](rota_core::jobs::JobStore) (see
//! `memory_jobs.rs`): jobs live in the same state, behind the same lock, so
//! a settled job's outcome reply reaches its inbox atomically.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use rota_core::broker::{
    Broker, Completion, Consumer, ConsumerOptions, DeadLetter, Delivery, Inbox, ReapStats,
};
use rota_core::names::validate_service;
use rota_core::time::now_ms;
use rota_core::{BrokerError, Request};
use tokio::sync::Notify;
use tokio::time::Instant;

/// An in-process broker. Cheap to clone; clones share the queues.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use std::time::Duration;
/// use rota::{Broker, ConsumerOptions, memory::MemoryBroker};
///
/// let broker = MemoryBroker::new();
/// broker.publish("jobs", "hello".into()).await.unwrap();
/// let consumer = broker.consumer("jobs", ConsumerOptions::default()).await.unwrap();
/// let got = consumer.claim(10, Duration::from_millis(10)).await.unwrap();
/// assert_eq!(got[0].payload, "hello");
/// assert_eq!(got[0].attempt, 1);
/// # }
/// ```
#[derive(Clone, Default)]
pub struct MemoryBroker {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for MemoryBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBroker").finish_non_exhaustive()
    }
}

#[derive(Default)]
pub(crate) struct State {
    services: HashMap<String, ServiceQueue>,
    pub(crate) inboxes: HashMap<String, InboxQueue>,
    next_id: u64,
    /// The jobs of the [`JobStore`](rota_core::jobs::JobStore) side.
    pub(crate) jobs: crate::memory_jobs::JobsState,
}

#[derive(Default)]
struct ServiceQueue {
    ready: VecDeque<Message>,
    consumers: HashMap<String, Holder>,
    dead: Vec<DeadLetter>,
    wake: Arc<Notify>,
}

#[derive(Clone)]
struct Message {
    id: u64,
    attempt: u32,
    payload: Bytes,
}

struct Holder {
    lease_until: Instant,
    held: HashMap<String, Message>,
}

pub(crate) struct InboxQueue {
    replies: VecDeque<Bytes>,
    wake: Arc<Notify>,
}

impl InboxQueue {
    /// Delivers a reply and wakes the reader.
    pub(crate) fn push(&mut self, reply: Bytes) {
        self.replies.push_back(reply);
        self.wake.notify_one();
    }
}

impl MemoryBroker {
    /// An empty broker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Lets every lease on `service` lapse now, as if its servers had lost
    /// the broker: they can no longer renew or acknowledge, and a reap hands
    /// their messages to others. For tests of fencing.
    pub fn expire_leases(&self, service: &str) {
        let mut state = self.lock();
        if let Some(q) = state.services.get_mut(service) {
            let now = Instant::now();
            for holder in q.consumers.values_mut() {
                holder.lease_until = now;
            }
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn queue<'a>(state: &'a mut State, service: &str) -> &'a mut ServiceQueue {
    state.services.entry(service.to_owned()).or_default()
}

fn message_id(payload: &[u8], fallback: u64) -> String {
    Request::decode(payload)
        .map(|r| r.id.to_string())
        .unwrap_or_else(|_| format!("m{fallback}"))
}

#[async_trait]
impl Broker for MemoryBroker {
    async fn publish(&self, service: &str, message: Bytes) -> Result<(), BrokerError> {
        validate_service(service)?;
        let mut state = self.lock();
        state.next_id += 1;
        let id = state.next_id;
        let q = queue(&mut state, service);
        q.ready.push_back(Message {
            id,
            attempt: 1,
            payload: message,
        });
        q.wake.notify_one();
        Ok(())
    }

    async fn open_inbox(&self) -> Result<Box<dyn Inbox>, BrokerError> {
        let address = format!("memory:inbox:{}", uuid_like());
        let wake = Arc::new(Notify::new());
        self.lock().inboxes.insert(
            address.clone(),
            InboxQueue {
                replies: VecDeque::new(),
                wake: Arc::clone(&wake),
            },
        );
        Ok(Box::new(MemoryInbox {
            broker: self.clone(),
            address,
            wake,
        }))
    }

    async fn consumer(
        &self,
        service: &str,
        options: ConsumerOptions,
    ) -> Result<Box<dyn Consumer>, BrokerError> {
        validate_service(service)?;
        let id = format!("c-{}", uuid_like());
        let wake = {
            let mut state = self.lock();
            let q = queue(&mut state, service);
            q.consumers.insert(
                id.clone(),
                Holder {
                    lease_until: Instant::now() + options.lease,
                    held: HashMap::new(),
                },
            );
            Arc::clone(&q.wake)
        };
        Ok(Box::new(MemoryConsumer {
            broker: self.clone(),
            service: service.to_owned(),
            id,
            options,
            wake,
        }))
    }

    async fn queued(&self, service: &str) -> Result<usize, BrokerError> {
        validate_service(service)?;
        Ok(self
            .lock()
            .services
            .get(service)
            .map_or(0, |q| q.ready.len()))
    }

    async fn dead_letters(
        &self,
        service: &str,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, BrokerError> {
        validate_service(service)?;
        Ok(self
            .lock()
            .services
            .get(service)
            .map_or(Vec::new(), |q| q.dead.iter().take(limit).cloned().collect()))
    }

    async fn requeue_dead(&self, service: &str, id: Option<&str>) -> Result<usize, BrokerError> {
        validate_service(service)?;
        let mut state = self.lock();
        let mut next = state.next_id;
        let q = queue(&mut state, service);
        let (back, keep): (Vec<_>, Vec<_>) = q
            .dead
            .drain(..)
            .partition(|d| id.is_none_or(|id| d.id == id));
        q.dead = keep;
        let n = back.len();
        for d in back {
            next += 1;
            q.ready.push_back(Message {
                id: next,
                attempt: 1,
                payload: Bytes::from(d.payload),
            });
            q.wake.notify_one();
        }
        state.next_id = next;
        Ok(n)
    }

    async fn purge_dead(&self, service: &str) -> Result<usize, BrokerError> {
        validate_service(service)?;
        Ok(self
            .lock()
            .services
            .get_mut(service)
            .map_or(0, |q| q.dead.drain(..).count()))
    }
}

pub(crate) fn uuid_like() -> String {
    rota_core::CorrelationId::new().to_string()
}

struct MemoryInbox {
    broker: MemoryBroker,
    address: String,
    wake: Arc<Notify>,
}

impl Drop for MemoryInbox {
    fn drop(&mut self) {
        self.broker.lock().inboxes.remove(&self.address);
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

struct MemoryConsumer {
    broker: MemoryBroker,
    service: String,
    id: String,
    options: ConsumerOptions,
    wake: Arc<Notify>,
}

impl MemoryConsumer {
    /// Runs `f` on this consumer's holder if its lease still holds.
    fn with_holder<T>(
        &self,
        f: impl FnOnce(&mut Holder, &mut ServiceQueue) -> T,
    ) -> Result<T, BrokerError> {
        let mut state = self.broker.lock();
        let q = queue(&mut state, &self.service);
        let mut holder = q.consumers.remove(&self.id).ok_or(BrokerError::LeaseLost)?;
        if holder.lease_until <= Instant::now() {
            // Lapsed: the holder stays for a reaper to hand its messages back.
            q.consumers.insert(self.id.clone(), holder);
            return Err(BrokerError::LeaseLost);
        }
        let out = f(&mut holder, q);
        q.consumers.insert(self.id.clone(), holder);
        Ok(out)
    }
}

#[async_trait]
impl Consumer for MemoryConsumer {
    fn id(&self) -> &str {
        &self.id
    }

    async fn claim(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, BrokerError> {
        let until = Instant::now() + wait;
        loop {
            let notified = self.wake.notified();
            let got = self.with_holder(|holder, q| {
                let n = max.min(q.ready.len());
                let mut out = Vec::with_capacity(n);
                for m in q.ready.drain(..n) {
                    let tag = m.id.to_string();
                    out.push(Delivery {
                        tag: tag.clone(),
                        attempt: m.attempt,
                        payload: m.payload.clone(),
                    });
                    holder.held.insert(tag, m);
                }
                // Pass a wake-up on if work is left for another consumer.
                if !q.ready.is_empty() {
                    q.wake.notify_one();
                }
                out
            })?;
            if !got.is_empty() {
                return Ok(got);
            }
            if tokio::time::timeout_at(until, notified).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    async fn renew(&self) -> Result<(), BrokerError> {
        let lease = self.options.lease;
        self.with_holder(|holder, _| holder.lease_until = Instant::now() + lease)
    }

    async fn complete(&self, done: Vec<Completion>) -> Result<usize, BrokerError> {
        let mut state = self.broker.lock();
        let state = &mut *state;
        let q = queue(state, &self.service);
        let holder = q
            .consumers
            .get_mut(&self.id)
            .ok_or(BrokerError::LeaseLost)?;
        if holder.lease_until <= Instant::now() {
            return Err(BrokerError::LeaseLost);
        }
        let mut acked = 0;
        for c in done {
            if let Some((to, reply)) = c.reply {
                // An inbox that is gone belonged to a client that is gone.
                if let Some(inbox) = state.inboxes.get_mut(&to) {
                    inbox.replies.push_back(reply);
                    inbox.wake.notify_one();
                }
            }
            let q = queue(state, &self.service);
            if let Some(holder) = q.consumers.get_mut(&self.id) {
                acked += usize::from(holder.held.remove(&c.tag).is_some());
            }
        }
        Ok(acked)
    }

    async fn release(&self, tags: Vec<String>, attempted: bool) -> Result<(), BrokerError> {
        self.with_holder(|holder, q| {
            for tag in tags.iter().rev() {
                if let Some(mut m) = holder.held.remove(tag) {
                    m.attempt += u32::from(attempted);
                    q.ready.push_front(m);
                    q.wake.notify_one();
                }
            }
        })
    }

    async fn dead_letter(&self, tag: &str, reason: &str) -> Result<(), BrokerError> {
        self.with_holder(|holder, q| {
            if let Some(m) = holder.held.remove(tag) {
                q.dead.push(DeadLetter {
                    id: message_id(&m.payload, m.id),
                    reason: reason.to_owned(),
                    attempts: m.attempt,
                    at_ms: now_ms(),
                    payload: m.payload.to_vec(),
                });
            }
        })
    }

    async fn reap(&self) -> Result<ReapStats, BrokerError> {
        let mut state = self.broker.lock();
        let q = queue(&mut state, &self.service);
        let now = Instant::now();
        let lapsed: Vec<String> = q
            .consumers
            .iter()
            .filter(|(_, h)| h.lease_until <= now)
            .map(|(id, _)| id.clone())
            .collect();
        let mut stats = ReapStats::default();
        for id in lapsed {
            let Some(holder) = q.consumers.remove(&id) else {
                continue;
            };
            let mut held: Vec<_> = holder.held.into_values().collect();
            held.sort_by_key(|m| std::cmp::Reverse(m.id));
            for mut m in held {
                if m.attempt >= self.options.max_deliveries {
                    stats.dead_lettered += 1;
                    q.dead.push(DeadLetter {
                        id: message_id(&m.payload, m.id),
                        reason: format!(
                            "delivered {} times (the maximum); the lease of consumer {id} lapsed during the last delivery",
                            m.attempt
                        ),
                        attempts: m.attempt,
                        at_ms: now_ms(),
                        payload: m.payload.to_vec(),
                    });
                } else {
                    stats.requeued += 1;
                    m.attempt += 1;
                    q.ready.push_front(m);
                    q.wake.notify_one();
                }
            }
        }
        Ok(stats)
    }

    async fn close(&self) -> Result<(), BrokerError> {
        let mut state = self.broker.lock();
        let q = queue(&mut state, &self.service);
        if let Some(holder) = q.consumers.remove(&self.id) {
            let mut held: Vec<_> = holder.held.into_values().collect();
            held.sort_by_key(|m| std::cmp::Reverse(m.id));
            for m in held {
                q.ready.push_front(m);
                q.wake.notify_one();
            }
        }
        Ok(())
    }
}
