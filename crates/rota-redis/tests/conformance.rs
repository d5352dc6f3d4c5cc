//! The Redis backend passes the conformance suites of calls, jobs and
//! schedules, each check on a Redis server of its own.

mod support;

use rota_redis::{RedisBroker, RedisOptions};

rota_conformance::rpc_tests!(async {
    let server = support::RedisServer::start();
    let broker = support::broker(&server).await;
    (server, broker)
});

rota_conformance::jobs_tests!(|clock| async move {
    let server = support::RedisServer::start();
    let options = RedisOptions::new(server.url()).prefix("test").clock(clock);
    let broker = RedisBroker::connect_with(options).await.expect("connect");
    (server, broker)
});

rota_conformance::schedules_tests!(async {
    let server = support::RedisServer::start();
    let broker = support::broker(&server).await;
    (server, broker)
});
