//! The Redis backend passes the broker conformance suite, each check on a
//! Redis server of its own.

mod support;

rota::conformance_tests!(async {
    let server = support::RedisServer::start();
    let broker = server.broker().await;
    (server, broker)
});
