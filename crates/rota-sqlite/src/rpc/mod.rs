//! Calls on SQLite: [`SqliteBroker`] as the [`Broker`]. Requests are rows
//! of `rota_messages`, held by a consumer under a lease in
//! `rota_consumers`; the transactions are in `store`.

mod consumer;
pub(crate) mod store;

use async_trait::async_trait;
use bytes::Bytes;
use rota_core::BrokerError;
use rota_core::names::{validate_lease_name, validate_service};
use rota_core::rpc::{Broker, Consumer, ConsumerOptions, DeadLetter};

use crate::SqliteBroker;
use crate::lease::Lease;

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

    async fn consumer(
        &self,
        service: &str,
        options: ConsumerOptions,
    ) -> Result<Box<dyn Consumer>, BrokerError> {
        validate_service(service)?;
        if let Some(name) = &options.name {
            validate_lease_name(name)?;
        }
        let key = Lease::key(service, options.name.as_deref());
        let (s, k) = (service.to_owned(), key.clone());
        let (length, max) = (options.lease, options.max_deliveries);
        let lease = self
            .with(move |conn| store::register(conn, &s, &k, length, max))
            .await?;
        // A taken-over holder's messages may be waiting.
        self.wake(&service_key(service));
        Ok(Box::new(consumer::SqliteConsumer {
            broker: self.clone(),
            service: service.to_owned(),
            id: options.name.clone().unwrap_or(key),
            lease: std::sync::Arc::new(lease),
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
