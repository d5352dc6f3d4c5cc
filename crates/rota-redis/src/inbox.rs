//! A client's reply inbox: a list read with BLMPOP on a connection of its
//! own.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use redis::Value;
use rota_core::BrokerError;
use rota_core::{Inbox, Inboxes};
use uuid::Uuid;

use crate::broker::RedisBroker;
use crate::conn::Blocking;
use crate::error::map;
use crate::keys;

#[async_trait]
impl Inboxes for RedisBroker {
    async fn open_inbox(&self) -> Result<Box<dyn Inbox>, BrokerError> {
        let key = keys::inbox(&self.options.prefix, &Uuid::now_v7().simple().to_string());
        Ok(Box::new(RedisInbox {
            key,
            conn: Blocking::new(self.client.clone(), &self.options),
        }))
    }

    fn is_inbox(&self, address: &str) -> bool {
        keys::is_inbox(&self.options.prefix, address, self.options.schedule_shards)
    }
}

pub(crate) struct RedisInbox {
    pub(crate) key: String,
    pub(crate) conn: Blocking,
}

#[async_trait]
impl Inbox for RedisInbox {
    fn address(&self) -> &str {
        &self.key
    }

    async fn recv(&mut self, max: usize, wait: Duration) -> Result<Vec<Bytes>, BrokerError> {
        let mut cmd = if wait.is_zero() {
            redis::cmd("LMPOP")
        } else {
            let mut c = redis::cmd("BLMPOP");
            c.arg(wait.as_secs_f64());
            c
        };
        cmd.arg(1)
            .arg(&self.key)
            .arg("LEFT")
            .arg("COUNT")
            .arg(max.max(1));
        let value = self.conn.query(&cmd, wait).await.map_err(map)?;
        // [key, [reply, …]] or nil.
        let Value::Array(mut parts) = value else {
            return Ok(Vec::new());
        };
        match parts.pop() {
            Some(Value::Array(items)) => Ok(items
                .into_iter()
                .filter_map(|v| match v {
                    Value::BulkString(b) => Some(Bytes::from(b)),
                    _ => None,
                })
                .collect()),
            _ => Ok(Vec::new()),
        }
    }
}

/// Adds the replies to `pipe`: one RPUSH and one PEXPIRE per inbox, however
/// many replies it gets (no PEXPIRE for a schedule shard's inbox, whose
/// replies stay until acknowledged). A reply to an address that is no inbox
/// key is dropped (and logged): it must never reach another key. Returns
/// whether any reply was added.
pub(crate) fn push_replies<'a>(
    pipe: &mut redis::Pipeline,
    replies: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ttl: Duration,
) -> bool {
    let mut inboxes: Vec<(&str, Vec<&[u8]>)> = Vec::new();
    for (to, reply) in replies {
        if !keys::has_inbox_shape(to) {
            tracing::warn!(reply_to = %to, "dropping a reply to an address that is no inbox");
            continue;
        }
        match inboxes.iter_mut().find(|(k, _)| *k == to) {
            Some((_, batch)) => batch.push(reply),
            None => inboxes.push((to, vec![reply])),
        }
    }
    for (to, batch) in &inboxes {
        pipe.cmd("RPUSH").arg(*to).arg(batch).ignore();
        if keys::inbox_expires(to) {
            pipe.cmd("PEXPIRE")
                .arg(*to)
                .arg(crate::lease::ms(ttl))
                .ignore();
        }
    }
    !inboxes.is_empty()
}
