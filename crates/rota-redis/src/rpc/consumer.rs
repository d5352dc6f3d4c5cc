//! A server's consumer: a member of the service's consumer group, fenced by
//! its lease key.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use redis::Value;
use rota_core::BrokerError;
use rota_core::rpc::{Completion, Consumer, ConsumerOptions, Delivery};
use rota_core::time::now_ms;
use rota_core::{Leased, ReapStats};
use tokio::sync::Mutex;

use crate::conn::{Blocking, Conn};
use crate::error::{is_nogroup, is_noscript, map};
use crate::inbox::push_replies;
use crate::keys::{GROUP, ServiceKeys};
use crate::lease::{Grant, fenced, ms, renew};
use crate::scripts;

pub(crate) struct RedisConsumer {
    /// The lease grant; its holder name is the stream consumer's.
    pub(crate) grant: Grant,
    pub(crate) keys: ServiceKeys,
    pub(crate) lease_key: String,
    pub(crate) options: ConsumerOptions,
    pub(crate) conn: Conn,
    pub(crate) blocking: Mutex<Blocking>,
    pub(crate) reply_ttl: Duration,
}

/// Creates the consumer group (and the stream) unless it exists.
pub(crate) async fn ensure_group(conn: &mut Conn, keys: &ServiceKeys) -> Result<(), BrokerError> {
    let created: Result<(), _> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&keys.queue)
        .arg(GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(conn)
        .await;
    match created {
        Err(e) if e.code() != Some("BUSYGROUP") => Err(map(e)),
        _ => Ok(()),
    }
}

impl RedisConsumer {
    fn read_cmd(&self, max: usize, wait: Duration) -> redis::Cmd {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(GROUP)
            .arg(&self.grant.holder)
            .arg("COUNT")
            .arg(max.max(1));
        if !wait.is_zero() {
            cmd.arg("BLOCK").arg(ms(wait));
        }
        cmd.arg("STREAMS").arg(&self.keys.queue).arg(">");
        cmd
    }
}

/// A stream entry's field-value pairs.
pub(crate) type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// Parses XREADGROUP's answer: `[[stream, [[id, [field, value, …]], …]]]`.
pub(crate) fn parse_entries(value: Value) -> Vec<(String, Fields)> {
    let mut out = Vec::new();
    let Value::Array(streams) = value else {
        return out;
    };
    for stream in streams {
        let Value::Array(mut parts) = stream else {
            continue;
        };
        let Some(Value::Array(entries)) = parts.pop() else {
            continue;
        };
        out.extend(entries.into_iter().filter_map(parse_entry));
    }
    out
}

/// Parses one `[id, [field, value, …]]` entry.
pub(crate) fn parse_entry(entry: Value) -> Option<(String, Fields)> {
    let Value::Array(mut e) = entry else {
        return None;
    };
    if e.len() != 2 {
        return None;
    }
    let fields = e.pop()?;
    let id = match e.pop()? {
        Value::BulkString(b) => String::from_utf8(b).ok()?,
        Value::SimpleString(s) => s,
        _ => return None,
    };
    let mut pairs = Vec::new();
    if let Value::Array(fields) = fields {
        let mut it = fields.into_iter();
        while let (Some(Value::BulkString(k)), Some(Value::BulkString(v))) = (it.next(), it.next())
        {
            pairs.push((k, v));
        }
    }
    Some((id, pairs))
}

pub(crate) fn field<'a>(fields: &'a [(Vec<u8>, Vec<u8>)], name: &str) -> Option<&'a [u8]> {
    fields
        .iter()
        .find(|(k, _)| k == name.as_bytes())
        .map(|(_, v)| v.as_slice())
}

#[async_trait]
impl Consumer for RedisConsumer {
    async fn dead_letter(&self, tag: &str, reason: &str) -> Result<(), BrokerError> {
        let n: i64 = scripts::BURY
            .key(&self.keys.queue)
            .key(&self.lease_key)
            .key(&self.keys.dead)
            .arg(GROUP)
            .arg(tag)
            .arg(reason)
            .arg(now_ms())
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(map)?;
        fenced(n).map(|_| ())
    }
}

#[async_trait]
impl Leased for RedisConsumer {
    type Work = Delivery;
    type Done = Completion;
    type Tag = String;

    fn id(&self) -> &str {
        &self.grant.name
    }

    fn epoch(&self) -> u64 {
        self.grant.epoch
    }

    async fn give_up(&self, done: Completion, reason: &str) -> Result<(), BrokerError> {
        Consumer::dead_letter(self, &done.tag, reason).await
    }

    async fn claim(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, BrokerError> {
        let mut blocking = self.blocking.lock().await;
        let value = match blocking.query(&self.read_cmd(max, wait), wait).await {
            Ok(v) => v,
            Err(e) if is_nogroup(&e) => {
                // Redis lost the group (a restart without persistence).
                ensure_group(&mut self.conn.clone(), &self.keys).await?;
                blocking
                    .query(&self.read_cmd(max, Duration::ZERO), Duration::ZERO)
                    .await
                    .map_err(map)?
            }
            Err(e) => return Err(map(e)),
        };
        Ok(parse_entries(value)
            .into_iter()
            .map(|(tag, fields)| Delivery {
                attempt: field(&fields, "a")
                    .and_then(|a| std::str::from_utf8(a).ok()?.parse().ok())
                    .unwrap_or(1),
                payload: field(&fields, "m")
                    .map(Bytes::copy_from_slice)
                    .unwrap_or_default(),
                tag,
            })
            .collect())
    }

    async fn renew(&self) -> Result<(), BrokerError> {
        renew(&mut self.conn.clone(), &self.lease_key, self.options.lease).await
    }

    async fn settle(&self, done: Vec<Completion>) -> Result<usize, BrokerError> {
        if done.is_empty() {
            return Ok(0);
        }
        // Replies first, then the fenced acknowledgement, in one round trip:
        // a crash in between redelivers the request rather than lose a reply.
        let mut pipe = redis::pipe();
        let replies = done
            .iter()
            .filter_map(|c| c.reply.as_ref().map(|(to, r)| (to.as_str(), r.as_ref())));
        push_replies(&mut pipe, replies, self.reply_ttl);
        let tags: Vec<&str> = done.iter().map(|c| c.tag.as_str()).collect();
        pipe.cmd("EVALSHA")
            .arg(scripts::ACK.get_hash())
            .arg(2)
            .arg(&self.keys.queue)
            .arg(&self.lease_key)
            .arg(GROUP)
            .arg(&tags);
        let mut conn = self.conn.clone();
        let result: Result<(i64,), _> = pipe.query_async(&mut conn).await;
        let acked = match result {
            Ok((n,)) => n,
            Err(e) if is_noscript(&e) => {
                // The replies went out; only the acknowledgement is left
                // (the script cache is empty after a Redis restart).
                scripts::ACK
                    .key(&self.keys.queue)
                    .key(&self.lease_key)
                    .arg(GROUP)
                    .arg(&tags)
                    .invoke_async(&mut conn)
                    .await
                    .map_err(map)?
            }
            Err(e) => return Err(map(e)),
        };
        fenced(acked).map(|n| n as usize)
    }

    async fn release(&self, tags: Vec<String>, attempted: bool) -> Result<(), BrokerError> {
        if tags.is_empty() {
            return Ok(());
        }
        let n: i64 = scripts::RELEASE
            .key(&self.keys.queue)
            .key(&self.lease_key)
            .arg(GROUP)
            .arg(if attempted { "1" } else { "0" })
            .arg(&tags)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(map)?;
        fenced(n).map(|_| ())
    }

    async fn reap(&self) -> Result<ReapStats, BrokerError> {
        reap(&mut self.conn.clone(), &self.keys, &self.options, "").await
    }

    async fn close(&self) -> Result<(), BrokerError> {
        reap(
            &mut self.conn.clone(),
            &self.keys,
            &self.options,
            &self.grant.holder,
        )
        .await
        .map(|_| ())
    }
}

/// Runs the reap script; with `closing`, that consumer's messages go back
/// as they are and its lease is dropped.
pub(crate) async fn reap(
    conn: &mut Conn,
    keys: &ServiceKeys,
    options: &ConsumerOptions,
    closing: &str,
) -> Result<ReapStats, BrokerError> {
    let (requeued, dead_lettered): (usize, usize) = scripts::REAP
        .key(&keys.queue)
        .key(&keys.dead)
        .arg(GROUP)
        .arg(&keys.lease_prefix)
        .arg(options.max_deliveries)
        .arg(now_ms())
        .arg(closing)
        .invoke_async(conn)
        .await
        .map_err(map)?;
    Ok(ReapStats {
        requeued,
        dead_lettered,
        ..ReapStats::default()
    })
}
