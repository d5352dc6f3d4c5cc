//! Connections: one shared, multiplexed connection for ordinary commands
//! (reconnects by itself), and a dedicated one per blocking reader, since a
//! blocked command would stall every other command sharing its connection.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Value};
use rota_core::BrokerError;

use crate::error::map;
use crate::options::{RedisOptions, redact};

/// The shared connection.
pub(crate) async fn shared(
    client: &redis::Client,
    options: &RedisOptions,
) -> Result<ConnectionManager, BrokerError> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(options.connect_timeout))
        .set_response_timeout(Some(options.command_timeout))
        .set_number_of_retries(2)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_secs(2));
    client
        .get_connection_manager_with_config(config)
        .await
        .map_err(|e| unreachable_at_start(&options.url, e))
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
    client: redis::Client,
    connect_timeout: Duration,
    /// Added to a blocking command's own wait to bound how long its answer
    /// may take.
    grace: Duration,
    conn: Option<MultiplexedConnection>,
}

impl Blocking {
    pub(crate) fn new(client: redis::Client, options: &RedisOptions) -> Self {
        Self {
            client,
            connect_timeout: options.connect_timeout,
            grace: options.command_timeout,
            conn: None,
        }
    }

    /// Runs a blocking command that waits at most `wait` on the server.
    pub(crate) async fn query(
        &mut self,
        cmd: &redis::Cmd,
        wait: Duration,
    ) -> Result<Value, redis::RedisError> {
        if self.conn.is_none() {
            // No response timeout of redis-rs's own here: the command blocks
            // for `wait` by design, and the whole call is bounded below.
            let config = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(self.connect_timeout))
                .set_response_timeout(None);
            let conn = self
                .client
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
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
