//! The Redis backend passes the jobs conformance suite, each check on a
//! Redis server of its own.

mod support;

rota::job_conformance_tests!(async {
    let server = support::RedisServer::start();
    let broker = server.broker().await;
    (server, broker)
});
