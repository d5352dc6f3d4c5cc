//! Calls on Redis: [`RedisBroker`] as the [`Broker`], request streams with
//! one consumer group per service, consumers under fenced leases.

pub(crate) mod consumer;

use async_trait::async_trait;
use bytes::Bytes;
use rota_core::BrokerError;
use rota_core::names::validate_lease_name;
use rota_core::rpc::{Broker, Consumer, ConsumerOptions, DeadLetter};
use tokio::sync::Mutex;

use crate::broker::RedisBroker;
use crate::conn::Blocking;
use crate::error::map;
use crate::keys::GROUP;
use crate::lease::grant;
use crate::scripts;
use consumer::{RedisConsumer, ensure_group, field, parse_entry};

#[async_trait]
impl Broker for RedisBroker {
    async fn publish(&self, service: &str, message: Bytes) -> Result<(), BrokerError> {
        let keys = self.keys(service)?;
        let _: Option<String> = redis::cmd("XADD")
            .arg(&keys.queue)
            .arg("*")
            .arg("m")
            .arg(message.as_ref())
            .query_async(&mut self.conn.clone())
            .await
            .map_err(map)?;
        Ok(())
    }

    async fn consumer(
        &self,
        service: &str,
        options: ConsumerOptions,
    ) -> Result<Box<dyn Consumer>, BrokerError> {
        let keys = self.keys(service)?;
        if let Some(name) = &options.name {
            validate_lease_name(name)?;
        }
        let mut conn = self.conn.clone();
        ensure_group(&mut conn, &keys).await?;
        scripts::ACK
            .prepare_invoke()
            .load_async(&mut conn)
            .await
            .map_err(map)?;
        let grant = grant(
            &mut conn,
            &keys.epochs,
            &keys.lease_prefix,
            options.name.as_deref(),
            options.lease,
        )
        .await?;
        if grant.epoch > 1 {
            // The name's earlier holder lost its lease: hand back what it
            // held now rather than at the next periodic reap.
            consumer::reap(&mut conn, &keys, &options, "").await?;
        }
        let lease_key = keys.lease(&grant.holder);
        Ok(Box::new(RedisConsumer {
            grant,
            keys,
            lease_key,
            options,
            conn,
            blocking: Mutex::new(Blocking::new(self.client.clone(), &self.options)),
            reply_ttl: self.options.reply_ttl,
        }))
    }

    async fn queued(&self, service: &str) -> Result<usize, BrokerError> {
        let keys = self.keys(service)?;
        let mut conn = self.conn.clone();
        let len: usize = redis::cmd("XLEN")
            .arg(&keys.queue)
            .query_async(&mut conn)
            .await
            .map_err(map)?;
        let pending: Result<(usize, redis::Value, redis::Value, redis::Value), _> =
            redis::cmd("XPENDING")
                .arg(&keys.queue)
                .arg(GROUP)
                .query_async(&mut conn)
                .await;
        let pending = match pending {
            Ok((n, ..)) => n,
            Err(e) if crate::error::is_nogroup(&e) => 0,
            Err(e) => return Err(map(e)),
        };
        Ok(len.saturating_sub(pending))
    }

    async fn dead_letters(
        &self,
        service: &str,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, BrokerError> {
        let keys = self.keys(service)?;
        let value: redis::Value = redis::cmd("XRANGE")
            .arg(&keys.dead)
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(limit.max(1))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(map)?;
        let redis::Value::Array(entries) = value else {
            return Ok(Vec::new());
        };
        let text = |fields: &[(Vec<u8>, Vec<u8>)], name| {
            field(fields, name)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default()
        };
        Ok(entries
            .into_iter()
            .filter_map(parse_entry)
            .map(|(id, fields)| DeadLetter {
                reason: text(&fields, "reason"),
                attempts: text(&fields, "attempts").parse().unwrap_or(0),
                at_ms: text(&fields, "at_ms").parse().unwrap_or(0),
                payload: field(&fields, "m").map(<[u8]>::to_vec).unwrap_or_default(),
                id,
            })
            .collect())
    }

    async fn requeue_dead(&self, service: &str, id: Option<&str>) -> Result<usize, BrokerError> {
        let keys = self.keys(service)?;
        scripts::REQUEUE_DEAD
            .key(&keys.queue)
            .key(&keys.dead)
            .arg(id.unwrap_or(""))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(map)
    }

    async fn purge_dead(&self, service: &str) -> Result<usize, BrokerError> {
        let keys = self.keys(service)?;
        let (n, _): (usize, usize) = redis::pipe()
            .atomic()
            .cmd("XLEN")
            .arg(&keys.dead)
            .cmd("DEL")
            .arg(&keys.dead)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(map)?;
        Ok(n)
    }
}
