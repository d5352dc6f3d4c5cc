//! An enqueue over several queues on Redis, when one queue's script fails
//! inside Redis: that queue gets none of its jobs (all or nothing per
//! queue, each queue being one script under its own hash tag).

#![allow(missing_docs)]

mod support;

use redis::AsyncCommands;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_whose_script_fails_gets_none_of_its_jobs() {
    let server = support::RedisServer::start();
    let store = support::broker(&server).await;
    let raw = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    // The idempotency keys' hash of the queue, made a string: looking a
    // key up fails inside the script, after it read the jobs before it.
    let keys = |queue: &str| format!("test:{{j:{queue}}}:keys");
    let (to_break, to_mend) = (raw.clone(), raw);
    rota_conformance::jobs::a_queue_the_store_fails_on_gets_none_of_its_jobs(
        &store,
        async |queue: &str| {
            let _: () = to_break.clone().set(keys(queue), "broken").await.unwrap();
        },
        async |queue: &str| {
            let _: () = to_mend.clone().del(keys(queue)).await.unwrap();
        },
    )
    .await;
}
