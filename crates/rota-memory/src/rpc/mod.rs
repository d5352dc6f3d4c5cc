//! Calls on the in-process backend: request queues per service, consumers
//! under leases, dead letters.

mod consumer;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use rota_core::names::validate_service;
use rota_core::rpc::{Broker, Consumer, ConsumerOptions, DeadLetter};
use rota_core::{BrokerError, Request};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::{MemoryBroker, uuid_like};

/// The request queues, per service.
#[derive(Default)]
pub(crate) struct Services {
    services: HashMap<String, ServiceQueue>,
    next_id: u64,
}

#[derive(Default)]
pub(super) struct ServiceQueue {
    pub(super) ready: VecDeque<Message>,
    /// The live and lapsed leases, by name.
    pub(super) consumers: HashMap<String, Holder>,
    /// The latest epoch granted per lease name; never goes back.
    pub(super) epochs: HashMap<String, u64>,
    pub(super) dead: Vec<DeadLetter>,
    pub(super) wake: Arc<Notify>,
}

#[derive(Clone)]
pub(super) struct Message {
    pub(super) id: u64,
    pub(super) attempt: u32,
    pub(super) payload: Bytes,
}

pub(super) struct Holder {
    pub(super) epoch: u64,
    pub(super) lease_until: Instant,
    pub(super) held: HashMap<String, Message>,
}

impl MemoryBroker {
    /// Lets every lease on `service` lapse now, as if its servers had lost
    /// the broker: they can no longer renew or acknowledge, and a reap hands
    /// their messages to others. For tests of fencing.
    pub fn expire_leases(&self, service: &str) {
        let mut state = self.lock();
        if let Some(q) = state.rpc.services.get_mut(service) {
            let now = Instant::now();
            for holder in q.consumers.values_mut() {
                holder.lease_until = now;
            }
        }
    }
}

pub(super) fn queue<'a>(state: &'a mut Services, service: &str) -> &'a mut ServiceQueue {
    state.services.entry(service.to_owned()).or_default()
}

pub(super) fn message_id(payload: &[u8], fallback: u64) -> String {
    Request::decode(payload)
        .map(|r| r.id.to_string())
        .unwrap_or_else(|_| format!("m{fallback}"))
}

#[async_trait]
impl Broker for MemoryBroker {
    async fn publish(&self, service: &str, message: Bytes) -> Result<(), BrokerError> {
        validate_service(service)?;
        let mut guard = self.lock();
        let state = &mut guard.rpc;
        state.next_id += 1;
        let id = state.next_id;
        let q = queue(state, service);
        q.ready.push_back(Message {
            id,
            attempt: 1,
            payload: message,
        });
        q.wake.notify_one();
        Ok(())
    }

    async fn consumer(
        &self,
        service: &str,
        options: ConsumerOptions,
    ) -> Result<Box<dyn Consumer>, BrokerError> {
        validate_service(service)?;
        let id = match &options.name {
            Some(name) => {
                validate_service(name)?;
                name.clone()
            }
            None => format!("c-{}", uuid_like()),
        };
        let now = self.now_ms();
        let (epoch, wake) = {
            let mut guard = self.lock();
            let state = &mut guard.rpc;
            let q = queue(state, service);
            // A live holder of the name is taken over: what it held goes
            // back as if its lease had lapsed.
            if let Some(earlier) = q.consumers.remove(&id) {
                consumer::hand_back(q, &id, earlier, options.max_deliveries, now);
            }
            let epoch = q.epochs.entry(id.clone()).or_default();
            *epoch += 1;
            let epoch = *epoch;
            q.consumers.insert(
                id.clone(),
                Holder {
                    epoch,
                    lease_until: Instant::now() + options.lease,
                    held: HashMap::new(),
                },
            );
            (epoch, Arc::clone(&q.wake))
        };
        Ok(Box::new(consumer::MemoryConsumer {
            broker: self.clone(),
            service: service.to_owned(),
            id,
            epoch,
            options,
            wake,
        }))
    }

    async fn queued(&self, service: &str) -> Result<usize, BrokerError> {
        validate_service(service)?;
        Ok(self
            .lock()
            .rpc
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
            .rpc
            .services
            .get(service)
            .map_or(Vec::new(), |q| q.dead.iter().take(limit).cloned().collect()))
    }

    async fn requeue_dead(&self, service: &str, id: Option<&str>) -> Result<usize, BrokerError> {
        validate_service(service)?;
        let mut guard = self.lock();
        let state = &mut guard.rpc;
        let mut next = state.next_id;
        let q = queue(state, service);
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
            .rpc
            .services
            .get_mut(service)
            .map_or(0, |q| q.dead.drain(..).count()))
    }
}
