//! Connections: one shared, multiplexed connection for ordinary commands
//! (reconnects by itself), and a dedicated one per blocking reader, since a
//! blocked command would stall every other command sharing its connection.
//!
//! Either may reach one Redis or a Redis Cluster ([`Client`]); [`Conn`]
//! hides which. On a Cluster every command goes to the primary of its key's
//! slot, and a pipeline whose commands name keys of several slots is sent
//! as consecutive runs of one slot each, one after the other, in the
//! pipeline's order: a run is answered (so written) before the next is
//! sent. So a reply pushed ahead of the call that settles its job is
//! written before the settle, on a Cluster as on one Redis, where one
//! connection keeps the order. On one Redis a pipeline stays one round
//! trip.

use std::time::Duration;

use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster::{ClusterClient, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::Slot;
use redis::{AsyncConnectionConfig, Cmd, Pipeline, RedisFuture, Value};
use rota_core::BrokerError;

use crate::error::map;
use crate::options::{RedisOptions, redact};

/// What connections are opened from: one Redis, or a Cluster's seed nodes
/// (boxed: they differ much in size, and are cloned once per consumer).
#[derive(Clone)]
pub(crate) enum Client {
    Single(Box<redis::Client>),
    Cluster(Box<ClusterClient>),
}

/// A connection to one Redis or to a Cluster.
#[derive(Clone)]
pub(crate) enum Conn {
    /// The shared connection to one Redis: reconnects by itself.
    Managed(ConnectionManager),
    /// A blocking reader's own connection to one Redis.
    Direct(MultiplexedConnection),
    /// Connections to every primary of a Cluster, routed by key slot;
    /// reconnects and follows the slots by itself.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Managed(c) => c.req_packed_command(cmd),
            Conn::Direct(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Managed(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Direct(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => Box::pin(by_slot(c, pipeline, offset, count)),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Managed(c) => c.get_db(),
            Conn::Direct(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// The key a command of rota's is routed by: the first after the key count
/// for a function or script call, the first argument otherwise (every
/// other command rota pipelines names its key first).
fn key_of(cmd: &Cmd) -> Option<&[u8]> {
    let mut args = cmd.args_iter().map(|a| match a {
        redis::Arg::Simple(b) => Some(b),
        _ => None,
    });
    let name = args.next()??;
    let scripted = [
        &b"FCALL"[..],
        b"FCALL_RO",
        b"EVALSHA",
        b"EVALSHA_RO",
        b"EVAL",
    ]
    .iter()
    .any(|n| name.eq_ignore_ascii_case(n));
    if scripted {
        args.next()?;
        let keys: usize = std::str::from_utf8(args.next()??).ok()?.parse().ok()?;
        if keys == 0 {
            return None;
        }
    }
    args.next()?
}

/// Sends `pipeline` over a Cluster: at once if its keys are in one slot,
/// else as consecutive runs of one slot each, in order, each answered
/// before the next is sent (see the module's docs).
async fn by_slot(
    conn: &mut ClusterConnection,
    pipeline: &Pipeline,
    offset: usize,
    count: usize,
) -> redis::RedisResult<Vec<Value>> {
    let slots: Vec<Option<Slot>> = pipeline
        .cmd_iter()
        .map(|c| key_of(c).map(Slot::for_key))
        .collect();
    let first = slots.iter().flatten().next();
    if slots.iter().flatten().all(|s| Some(s) == first) {
        return conn.req_packed_commands(pipeline, offset, count).await;
    }
    if pipeline.is_transaction() {
        return Err(redis::RedisError::from((
            redis::ErrorKind::Client,
            "a transaction names keys of several Cluster slots",
        )));
    }
    let cmds: Vec<&Cmd> = pipeline.cmd_iter().collect();
    let mut out = Vec::with_capacity(cmds.len());
    let mut start = 0;
    while start < cmds.len() {
        // A run: the commands up to the next one of another slot (a command
        // naming no key goes with the run it is in).
        let slot = slots[start..].iter().flatten().next();
        let mut end = start + 1;
        while end < cmds.len() && slots[end].as_ref().is_none_or(|s| Some(s) == slot) {
            end += 1;
        }
        let mut run = redis::pipe();
        for cmd in &cmds[start..end] {
            run.add_command((*cmd).clone());
        }
        out.extend(conn.req_packed_commands(&run, 0, end - start).await?);
        start = end;
    }
    Ok(out)
}

/// The shared connection.
pub(crate) async fn shared(client: &Client, options: &RedisOptions) -> Result<Conn, BrokerError> {
    match client {
        Client::Single(client) => {
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(options.connect_timeout))
                .set_response_timeout(Some(options.command_timeout))
                .set_number_of_retries(2)
                .set_min_delay(Duration::from_millis(50))
                .set_max_delay(Duration::from_secs(2));
            client
                .get_connection_manager_with_config(config)
                .await
                .map(Conn::Managed)
                .map_err(|e| unreachable_at_start(&options.url, e))
        }
        Client::Cluster(client) => {
            let config = ClusterConfig::new()
                .set_connection_timeout(options.connect_timeout)
                .set_response_timeout(options.command_timeout);
            client
                .get_async_connection_with_config(config)
                .await
                .map(Conn::Cluster)
                .map_err(|e| unreachable_at_start(&options.url, e))
        }
    }
}

fn unreachable_at_start(url: &str, e: redis::RedisError) -> BrokerError {
    match map(e) {
        BrokerError::Unavailable(m) => {
            BrokerError::Unavailable(format!("cannot reach Redis at {}: {m}", redact(url)))
        }
        other => other,
    }
}

/// A connection of its own for blocking reads, opened lazily and dropped on
/// any error so the next read reconnects.
pub(crate) struct Blocking {
    client: Client,
    connect_timeout: Duration,
    /// Added to a blocking command's own wait to bound how long its answer
    /// may take.
    grace: Duration,
    conn: Option<Conn>,
}

/// The response timeout of a blocking reader's Cluster connection, which
/// must outlast any wait: each call is bounded by its own wait instead.
const BLOCKING_RESPONSE: Duration = Duration::from_secs(24 * 3600);

impl Blocking {
    pub(crate) fn new(client: Client, options: &RedisOptions) -> Self {
        Self {
            client,
            connect_timeout: options.connect_timeout,
            grace: options.command_timeout,
            conn: None,
        }
    }

    /// Runs a blocking command that waits at most `wait` on the server.
    pub(crate) async fn query(&mut self, cmd: &Cmd, wait: Duration) -> redis::RedisResult<Value> {
        if self.conn.is_none() {
            // No response timeout of redis-rs's own here: the command blocks
            // for `wait` by design, and the whole call is bounded below.
            let conn = match &self.client {
                Client::Single(client) => {
                    let config = AsyncConnectionConfig::new()
                        .set_connection_timeout(Some(self.connect_timeout))
                        .set_response_timeout(None);
                    Conn::Direct(
                        client
                            .get_multiplexed_async_connection_with_config(&config)
                            .await?,
                    )
                }
                Client::Cluster(client) => {
                    let config = ClusterConfig::new()
                        .set_connection_timeout(self.connect_timeout)
                        .set_response_timeout(BLOCKING_RESPONSE);
                    Conn::Cluster(client.get_async_connection_with_config(config).await?)
                }
            };
            self.conn = Some(conn);
        }
        let conn = self.conn.as_mut().expect("just set");
        let result = match tokio::time::timeout(wait + self.grace, cmd.query_async(conn)).await {
            Ok(r) => r,
            Err(_) => Err(redis::RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "blocking read got no answer in time",
            ))),
        };
        if result.is_err() {
            self.conn = None;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_routed_by_the_key_rota_gives_them() {
        let mut fcall = redis::cmd("FCALL");
        fcall
            .arg("f")
            .arg(2)
            .arg("p:{j:q}:ring")
            .arg("p:{j:q}:seq")
            .arg("x");
        assert_eq!(key_of(&fcall), Some(&b"p:{j:q}:ring"[..]));
        let mut evalsha = redis::cmd("EVALSHA");
        evalsha.arg("abc").arg(0).arg("x");
        assert_eq!(key_of(&evalsha), None);
        let mut rpush = redis::cmd("RPUSH");
        rpush.arg("p:{c:1}:r").arg("reply");
        assert_eq!(key_of(&rpush), Some(&b"p:{c:1}:r"[..]));
        assert_eq!(
            Slot::for_key(key_of(&fcall).unwrap()),
            Slot::for_key("p:{j:q}:job:1")
        );
    }
}
