//! [`RedisBroker`]: one handle on Redis that every feature's store trait
//! is implemented for (calls in `rpc`, jobs in `jobs`, schedules in
//! `schedules`).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use rota_core::BrokerError;
use rota_core::names::validate_service;

use crate::conn::{self, Client, Conn};
use crate::error::map;
use crate::keys::ServiceKeys;
use crate::options::RedisOptions;

/// A handle on Redis as a rota broker. Cheap to clone; clones share one
/// multiplexed connection (and open their own for blocking reads).
#[derive(Clone)]
pub struct RedisBroker {
    pub(crate) client: Client,
    pub(crate) conn: Conn,
    pub(crate) options: RedisOptions,
    /// Whether the store's number of schedule shards was found to be the
    /// options' (checked at the first use of schedules).
    pub(crate) shards_checked: Arc<AtomicBool>,
}

impl std::fmt::Debug for RedisBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBroker")
            .field("url", &crate::options::redact(&self.options.url))
            .field("prefix", &self.options.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisBroker {
    /// Connects to the Redis at `url` with default options.
    ///
    /// Cancel safe: a dropped call leaves nothing behind.
    pub async fn connect(url: &str) -> Result<Self, BrokerError> {
        Self::connect_with(RedisOptions::new(url)).await
    }

    /// Connects with `options`. Fails with [`BrokerError::Config`] for a bad
    /// URL or credentials, and [`BrokerError::Unavailable`] when Redis cannot
    /// be reached (retry later).
    ///
    /// Cancel safe: a dropped call leaves nothing behind.
    pub async fn connect_with(options: RedisOptions) -> Result<Self, BrokerError> {
        let client = options.client()?;
        let mut conn = conn::shared(&client, &options).await?;
        // A Cluster connection reached its nodes to learn the slots.
        if let Conn::Managed(_) = conn {
            let _: String = redis::cmd("PING")
                .query_async(&mut conn)
                .await
                .map_err(map)?;
        }
        Ok(Self {
            client,
            conn,
            options,
            shards_checked: Arc::default(),
        })
    }

    /// Connects with `options`, waiting while Redis cannot be reached — a
    /// daemon started before its Redis, or during an outage: each failed
    /// attempt is logged with its cause and retried with backoff (up to 5 s
    /// apart, with jitter). Fails at once only on errors retrying won't fix
    /// (a bad URL, wrong credentials).
    ///
    /// Cancel safe: drop the future to stop waiting.
    pub async fn connect_waiting(options: RedisOptions) -> Result<Self, BrokerError> {
        let mut delay = std::time::Duration::from_millis(100);
        loop {
            match Self::connect_with(options.clone()).await {
                Err(e) if e.is_retryable() => {
                    let jitter = rand::random_range(0.5..=1.0);
                    let wait = delay.mul_f64(jitter);
                    tracing::warn!(error = %e, ?wait, "cannot reach Redis; retrying");
                    tokio::time::sleep(wait).await;
                    delay = (delay * 2).min(std::time::Duration::from_secs(5));
                }
                connected => return connected,
            }
        }
    }

    /// The options in force.
    pub fn options(&self) -> &RedisOptions {
        &self.options
    }

    /// A handle on the shared connection.
    pub(crate) fn conn(&self) -> Conn {
        self.conn.clone()
    }

    /// The Redis client, for connections of one's own.
    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    pub(crate) fn keys(&self, service: &str) -> Result<ServiceKeys, BrokerError> {
        validate_service(service)?;
        Ok(ServiceKeys::new(&self.options.prefix, service))
    }
}
