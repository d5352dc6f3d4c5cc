//! Calls on SQLite: [`SqliteBroker`] as the [`Broker`]. Requests are rows
//! of `rota_messages`, held by a consumer under a lease in
//! `rota_consumers`; the transactions are in `store`.

mod consumer;
pub(crate) mod store;

use async_trait::async_trait;
use bytes::Bytes;
use rota_core::BrokerError;
use rota_core::names::validate_service;
use rota_core::rpc::{Broker, Consumer, ConsumerOptions, DeadLetter, Inbox};
use uuid::Uuid;

use crate::SqliteBroker;

pub(crate) fn service_key(service: &str) -> String {
    format!("s:{service}")
}

#[async_trait]
impl Broker for SqliteBroker {
    async fn publish(&self, service: &str, message: Bytes) -> Result<(), BrokerError> {
        validate_service(service)?;
        let s = service.to_owned();
        self.with(move |c| store::publish(c, &s, &message)).await?;
        self.wake(&service_key(service));
        Ok(())
    }

    async fn open_inbox(&self) -> Result<Box<dyn Inbox>, BrokerError> {
        crate::inbox::open(self).await
    }

    async fn consumer(
        &self,
        service: &str,
        options: ConsumerOptions,
    ) -> Result<Box<dyn Consumer>, BrokerError> {
        validate_service(service)?;
        let id = Uuid::now_v7().simple().to_string();
        let (s, c, lease) = (service.to_owned(), id.clone(), options.lease);
        self.with(move |conn| store::register(conn, &s, &c, lease))
            .await?;
        Ok(Box::new(consumer::SqliteConsumer {
            broker: self.clone(),
            service: service.to_owned(),
            id,
            options,
        }))
    }

    async fn queued(&self, service: &str) -> Result<usize, BrokerError> {
        validate_service(service)?;
        let s = service.to_owned();
        self.with(move |c| store::queued(c, &s)).await
    }

    async fn dead_letters(
        &self,
        service: &str,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, BrokerError> {
        validate_service(service)?;
        let s = service.to_owned();
        self.with(move |c| store::dead_letters(c, &s, limit)).await
    }

    async fn requeue_dead(&self, service: &str, id: Option<&str>) -> Result<usize, BrokerError> {
        validate_service(service)?;
        let (s, id) = (service.to_owned(), id.map(str::to_owned));
        let n = self
            .with(move |c| store::requeue_dead(c, &s, id.as_deref()))
            .await?;
        self.wake(&service_key(service));
        Ok(n)
    }

    async fn purge_dead(&self, service: &str) -> Result<usize, BrokerError> {
        validate_service(service)?;
        let s = service.to_owned();
        self.with(move |c| store::purge_dead(c, &s)).await
    }
}
