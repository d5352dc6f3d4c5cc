//! One server's leased claim on a service's requests.

use std::time::Duration;

use async_trait::async_trait;
use rota_core::BrokerError;
use rota_core::rpc::{Completion, Consumer, ConsumerOptions, Delivery, ReapStats};

use super::{service_key, store};
use crate::SqliteBroker;

pub(super) struct SqliteConsumer {
    pub(super) broker: SqliteBroker,
    pub(super) service: String,
    pub(super) id: String,
    pub(super) options: ConsumerOptions,
}

#[async_trait]
impl Consumer for SqliteConsumer {
    fn id(&self) -> &str {
        &self.id
    }

    async fn claim(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, BrokerError> {
        let key = service_key(&self.service);
        let got = self
            .broker
            .wait_for(&key, wait, || {
                let (broker, s, c) = (self.broker.clone(), self.service.clone(), self.id.clone());
                async move {
                    broker
                        .with(move |conn| store::claim(conn, &s, &c, max.max(1)))
                        .await
                }
            })
            .await?;
        Ok(got)
    }

    async fn renew(&self) -> Result<(), BrokerError> {
        let (c, lease) = (self.id.clone(), self.options.lease);
        self.broker
            .with(move |conn| store::renew(conn, &c, lease))
            .await
    }

    async fn complete(&self, done: Vec<Completion>) -> Result<usize, BrokerError> {
        let inboxes: Vec<String> = done
            .iter()
            .filter_map(|c| c.reply.as_ref().map(|(to, _)| format!("i:{to}")))
            .collect();
        let done: Vec<_> = done
            .into_iter()
            .map(|c| (c.tag, c.reply.map(|(to, r)| (to, r.to_vec()))))
            .collect();
        let (c, ttl) = (self.id.clone(), self.broker.options().reply_ttl);
        let acked = self
            .broker
            .with(move |conn| store::complete(conn, &c, &done, ttl))
            .await?;
        for key in inboxes {
            self.broker.wake(&key);
        }
        Ok(acked)
    }

    async fn release(&self, tags: Vec<String>, attempted: bool) -> Result<(), BrokerError> {
        let c = self.id.clone();
        self.broker
            .with(move |conn| store::release(conn, &c, &tags, attempted))
            .await?;
        self.broker.wake(&service_key(&self.service));
        Ok(())
    }

    async fn dead_letter(&self, tag: &str, reason: &str) -> Result<(), BrokerError> {
        let (c, t, r) = (self.id.clone(), tag.to_owned(), reason.to_owned());
        self.broker
            .with(move |conn| store::bury(conn, &c, &t, &r))
            .await
    }

    async fn reap(&self) -> Result<ReapStats, BrokerError> {
        let (s, max) = (self.service.clone(), self.options.max_deliveries);
        let stats = self
            .broker
            .with(move |conn| store::reap(conn, &s, max, None))
            .await?;
        if stats.requeued > 0 {
            self.broker.wake(&service_key(&self.service));
        }
        Ok(stats)
    }

    async fn close(&self) -> Result<(), BrokerError> {
        let (s, c, max) = (
            self.service.clone(),
            self.id.clone(),
            self.options.max_deliveries,
        );
        self.broker
            .with(move |conn| store::reap(conn, &s, max, Some(&c)))
            .await?;
        self.broker.wake(&service_key(&self.service));
        Ok(())
    }
}
