//! One server's leased claim on a service's requests.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rota_core::BrokerError;
use rota_core::rpc::{Completion, Consumer, ConsumerOptions, DeadLetter, Delivery};
use rota_core::{Leased, ReapStats};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{Holder, ServiceQueue, message_id, queue};
use crate::MemoryBroker;

pub(super) struct MemoryConsumer {
    pub(super) broker: MemoryBroker,
    pub(super) service: String,
    pub(super) id: String,
    pub(super) epoch: u64,
    pub(super) options: ConsumerOptions,
    pub(super) wake: Arc<Notify>,
}

impl MemoryConsumer {
    /// Runs `f` on this consumer's holder if its lease still holds: not
    /// lapsed, and not granted again (a later epoch) since.
    fn with_holder<T>(
        &self,
        f: impl FnOnce(&mut Holder, &mut ServiceQueue) -> T,
    ) -> Result<T, BrokerError> {
        let mut guard = self.broker.lock();
        let q = queue(&mut guard.rpc, &self.service);
        match q.consumers.get_mut(&self.id) {
            Some(holder) if holder.epoch == self.epoch && holder.lease_until > Instant::now() => {
                let mut holder = q.consumers.remove(&self.id).expect("present");
                let out = f(&mut holder, q);
                q.consumers.insert(self.id.clone(), holder);
                Ok(out)
            }
            // Lapsed (the holder stays for a reaper to hand its messages
            // back), or taken over.
            _ => Err(BrokerError::LeaseLost),
        }
    }
}

/// Hands back what `holder` (the lease `id`) held: each message to the
/// queue with attempt + 1, or to the dead-letter list once delivered
/// `max_deliveries` times (dead-lettered at `now`, Unix ms).
pub(super) fn hand_back(
    q: &mut ServiceQueue,
    id: &str,
    holder: Holder,
    max_deliveries: u32,
    now: u64,
) -> ReapStats {
    let mut stats = ReapStats::default();
    let mut held: Vec<_> = holder.held.into_values().collect();
    held.sort_by_key(|m| std::cmp::Reverse(m.id));
    for mut m in held {
        if m.attempt >= max_deliveries {
            stats.dead_lettered += 1;
            q.dead.push(DeadLetter {
                id: message_id(&m.payload, m.id),
                reason: format!(
                    "delivered {} times (the maximum); the lease of consumer {id} lapsed during the last delivery",
                    m.attempt
                ),
                attempts: m.attempt,
                at_ms: now,
                payload: m.payload.to_vec(),
            });
        } else {
            stats.requeued += 1;
            m.attempt += 1;
            q.ready.push_front(m);
            q.wake.notify_one();
        }
    }
    stats
}

#[async_trait]
impl Consumer for MemoryConsumer {
    async fn dead_letter(&self, tag: &str, reason: &str) -> Result<(), BrokerError> {
        self.with_holder(|holder, q| {
            if let Some(m) = holder.held.remove(tag) {
                q.dead.push(DeadLetter {
                    id: message_id(&m.payload, m.id),
                    reason: reason.to_owned(),
                    attempts: m.attempt,
                    at_ms: self.broker.now_ms(),
                    payload: m.payload.to_vec(),
                });
            }
        })
    }
}

#[async_trait]
impl Leased for MemoryConsumer {
    type Work = Delivery;
    type Done = Completion;
    type Tag = String;

    fn id(&self) -> &str {
        &self.id
    }

    fn epoch(&self) -> u64 {
        self.epoch
    }

    async fn give_up(&self, done: Completion, reason: &str) -> Result<(), BrokerError> {
        Consumer::dead_letter(self, &done.tag, reason).await
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

    async fn settle(&self, done: Vec<Completion>) -> Result<usize, BrokerError> {
        let mut state = self.broker.lock();
        let state = &mut *state;
        let q = queue(&mut state.rpc, &self.service);
        match q.consumers.get(&self.id) {
            Some(h) if h.epoch == self.epoch && h.lease_until > Instant::now() => {}
            _ => return Err(BrokerError::LeaseLost),
        }
        let mut acked = 0;
        for c in done {
            if let Some((to, reply)) = c.reply {
                // An inbox that is gone belonged to a client that is gone.
                state.inboxes.deliver(&to, reply);
            }
            let q = queue(&mut state.rpc, &self.service);
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

    async fn reap(&self) -> Result<ReapStats, BrokerError> {
        let at = self.broker.now_ms();
        let mut guard = self.broker.lock();
        let q = queue(&mut guard.rpc, &self.service);
        let now = Instant::now();
        let lapsed: Vec<String> = q
            .consumers
            .iter()
            .filter(|(_, h)| h.lease_until <= now)
            .map(|(id, _)| id.clone())
            .collect();
        let mut stats = ReapStats::default();
        for id in lapsed {
            if let Some(holder) = q.consumers.remove(&id) {
                let s = hand_back(q, &id, holder, self.options.max_deliveries, at);
                stats.requeued += s.requeued;
                stats.dead_lettered += s.dead_lettered;
            }
        }
        Ok(stats)
    }

    async fn close(&self) -> Result<(), BrokerError> {
        let mut guard = self.broker.lock();
        let q = queue(&mut guard.rpc, &self.service);
        if q.consumers
            .get(&self.id)
            .is_some_and(|h| h.epoch == self.epoch)
            && let Some(holder) = q.consumers.remove(&self.id)
        {
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
