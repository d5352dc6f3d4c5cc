//! The Redis backend passes the conformance suites of calls and jobs, each
//! check on a Redis server of its own.

mod support;

rota_conformance::rpc_tests!(async {
    let server = support::RedisServer::start();
    let broker = support::broker(&server).await;
    (server, broker)
});

rota_conformance::jobs_tests!(async {
    let server = support::RedisServer::start();
    let broker = support::broker(&server).await;
    (server, broker)
});
