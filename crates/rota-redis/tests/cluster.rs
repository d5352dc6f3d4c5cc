//! The Redis backend passes the conformance suites of calls, jobs and
//! schedules on a real Redis Cluster (3 primaries, 1 replica each),
//! reached through a `redis+cluster://` URL. The checks of this binary
//! share one Cluster, each under a key prefix of its own.

mod support;

use std::sync::Arc;

use rota_redis::{RedisBroker, RedisOptions};
use support::RedisCluster;

/// A broker on the shared Cluster under a fresh prefix, and the Cluster
/// (held while the check runs).
async fn broker(
    options: impl FnOnce(RedisOptions) -> RedisOptions,
) -> (Arc<RedisCluster>, RedisBroker) {
    let cluster = tokio::task::spawn_blocking(RedisCluster::shared)
        .await
        .expect("start the cluster");
    let prefix = format!("t{}", uuid::Uuid::now_v7().simple());
    let options = options(RedisOptions::new(cluster.url()).prefix(prefix));
    let broker = RedisBroker::connect_with(options).await.expect("connect");
    (cluster, broker)
}

rota_conformance::rpc_tests!(broker(|o| o));

rota_conformance::jobs_tests!(|clock| broker(move |o| o.clock(clock)));

rota_conformance::schedules_tests!(broker(|o| o));
