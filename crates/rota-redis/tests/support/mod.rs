//! The shared test support, and a broker on a private server.

#![allow(dead_code, unreachable_pub)]

pub use rota_conformance::support::*;
use rota_redis::{RedisBroker, RedisOptions};

/// A broker on `server`, under the key prefix `test`.
pub async fn broker(server: &RedisServer) -> RedisBroker {
    RedisBroker::connect_with(RedisOptions::new(server.url()).prefix("test"))
        .await
        .expect("connect")
}
