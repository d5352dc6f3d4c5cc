//! One server's leased claim on a service's requests.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rota_core::rpc::{Completion, Consumer, ConsumerOptions, Delivery};
use rota_core::{BrokerError, Leased, ReapStats};

use super::{service_key, store};
use crate::SqliteBroker;
use crate::lease::Lease;

pub(super) struct SqliteConsumer {
    pub(super) broker: SqliteBroker,
    pub(super) service: String,
    /// The lease's name, as the consumer reports it.
    pub(super) id: String,
    pub(super) lease: Arc<Lease>,
    pub(super) options: ConsumerOptions,
}

#[async_trait]
impl Consumer for SqliteConsumer {
    async fn dead_letter(&self, tag: &str, reason: &str) -> Result<(), BrokerError> {
        let (lease, t, r) = (Arc::clone(&self.lease), tag.to_owned(), reason.to_owned());
        self.broker
            .with(move |conn| store::bury(conn, &lease, &t, &r))
            .await
    }
}

#[async_trait]
impl Leased for SqliteConsumer {
    type Work = Delivery;
    type Done = Completion;
    type Tag = String;

    fn id(&self) -> &str {
        &self.id
    }

    fn epoch(&self) -> u64 {
        u64::try_from(self.lease.epoch).unwrap_or(0)
    }

    async fn give_up(&self, done: Completion, reason: &str) -> Result<(), BrokerError> {
        Consumer::dead_letter(self, &done.tag, reason).await
    }

    async fn claim(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, BrokerError> {
        let key = service_key(&self.service);
        self.broker
            .wait_for(&key, wait, || {
                let (broker, s) = (self.broker.clone(), self.service.clone());
                let lease = Arc::clone(&self.lease);
                async move {
                    broker
                        .with(move |conn| store::claim(conn, &s, &lease, max.max(1)))
                        .await
                }
            })
            .await
    }

    async fn renew(&self) -> Result<(), BrokerError> {
        let (lease, length) = (Arc::clone(&self.lease), self.options.lease);
        self.broker
            .with(move |conn| store::renew(conn, &lease, length))
            .await
    }

    async fn settle(&self, done: Vec<Completion>) -> Result<usize, BrokerError> {
        let inboxes: Vec<String> = done
            .iter()
            .filter_map(|c| c.reply.as_ref().map(|(to, _)| format!("i:{to}")))
            .collect();
        let done: Vec<_> = done
            .into_iter()
            .map(|c| (c.tag, c.reply.map(|(to, r)| (to, r.to_vec()))))
            .collect();
        let (lease, ttl) = (Arc::clone(&self.lease), self.broker.options().reply_ttl);
        let acked = self
            .broker
            .with(move |conn| store::complete(conn, &lease, &done, ttl))
            .await?;
        for key in inboxes {
            self.broker.wake(&key);
        }
        Ok(acked)
    }

    async fn release(&self, tags: Vec<String>, attempted: bool) -> Result<(), BrokerError> {
        let lease = Arc::clone(&self.lease);
        self.broker
            .with(move |conn| store::release(conn, &lease, &tags, attempted))
            .await?;
        self.broker.wake(&service_key(&self.service));
        Ok(())
    }

    async fn reap(&self) -> Result<ReapStats, BrokerError> {
        let (s, max) = (self.service.clone(), self.options.max_deliveries);
        let stats = self
            .broker
            .with(move |conn| store::reap(conn, &s, max))
            .await?;
        if stats.requeued > 0 {
            self.broker.wake(&service_key(&self.service));
        }
        Ok(stats)
    }

    async fn close(&self) -> Result<(), BrokerError> {
        let lease = Arc::clone(&self.lease);
        self.broker
            .with(move |conn| store::close(conn, &lease))
            .await?;
        self.broker.wake(&service_key(&self.service));
        Ok(())
    }
}
