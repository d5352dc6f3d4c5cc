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

/// A server in Redis Cluster mode, one node serving every slot: a command
/// or a script (declared keys or not) that touches keys of two slots is
/// refused there, as on a real Cluster.
pub async fn cluster_node() -> RedisServer {
    let server = RedisServer::start_with(&["--cluster-enabled", "yes"]);
    let mut conn = server.raw().await;
    let _: () = redis::cmd("CLUSTER")
        .arg("ADDSLOTSRANGE")
        .arg(0)
        .arg(16383)
        .query_async(&mut conn)
        .await
        .expect("assign every slot");
    for _ in 0..500 {
        let info: String = redis::cmd("CLUSTER")
            .arg("INFO")
            .query_async(&mut conn)
            .await
            .expect("cluster info");
        if info.contains("cluster_state:ok") {
            return server;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the cluster node never became ready");
}
