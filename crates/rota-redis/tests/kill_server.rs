//! A server SIGKILLed in the middle of a call: the request is redelivered to
//! another server once the dead one's lease lapses, and the caller gets
//! exactly one reply.
//!
//! The server to kill is a child process: this same test binary, re-run
//! with only the ignored `child_server` test selected.

#![allow(missing_docs)] // test contracts

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rota::{Broker, Client, ServeOptions};

#[rota::contract]
pub trait Work {
    async fn run(&self, n: u32) -> String;
}

/// The doomed server: announces each call on stdout, then takes forever.
struct Slow;

impl Work for Slow {
    async fn run(&self, n: u32) -> String {
        println!("started {n}");
        tokio::time::sleep(Duration::from_secs(3600)).await;
        "the killed server answered".into()
    }
}

/// The surviving server: counts its executions.
struct Counting(Arc<AtomicU32>);

impl Work for Counting {
    async fn run(&self, n: u32) -> String {
        self.0.fetch_add(1, Ordering::SeqCst);
        let attempt = rota::context::current().expect("in a handler").attempt;
        format!("{n} on attempt {attempt}")
    }
}

/// Runs only as the child of `server_killed_mid_call_is_redelivered_once`.
#[test]
#[ignore = "the child process of another test"]
fn child_server() {
    let Some(url) = support::child_env("REDIS") else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let broker = rota_redis::RedisBroker::connect_with(
            rota_redis::RedisOptions::new(url).prefix("test"),
        )
        .await
        .unwrap();
        let options = ServeOptions::default().lease(Duration::from_secs(1));
        WorkServer::new(Slow)
            .serve(broker, "work", options)
            .await
            .unwrap();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_killed_mid_call_is_redelivered_once() {
    let redis = support::RedisServer::start();
    let broker = support::broker(&redis).await;

    let mut child = support::Child::spawn("child_server", &[("REDIS", &redis.url())]);

    let client = Client::new(broker.clone());
    let work = WorkClient::new(&client, "work").with_timeout(Duration::from_secs(60));
    let call = tokio::spawn(async move { work.run(7).await });

    // Wait (bounded) until the child is inside the handler.
    child
        .wait_for(Duration::from_secs(30), |line| line == "started 7")
        .await
        .expect("the child never started the call");
    child.kill(); // SIGKILL

    let executions = Arc::new(AtomicU32::new(0));
    let survivor = WorkServer::new(Counting(Arc::clone(&executions))).spawn(
        broker.clone(),
        "work",
        ServeOptions::default().lease(Duration::from_secs(1)),
    );

    let reply = tokio::time::timeout(Duration::from_secs(30), call)
        .await
        .expect("no reply after the redelivery")
        .unwrap()
        .expect("the call succeeds");
    assert_eq!(reply, "7 on attempt 2");
    assert_eq!(executions.load(Ordering::SeqCst), 1);

    // Exactly one reply reached the client, and nothing is left behind.
    let stats = client.stats();
    assert_eq!(stats.replies, 1);
    assert_eq!(stats.unmatched_replies, 0);
    survivor.shutdown().await.unwrap();
    assert_eq!(broker.queued("work").await.unwrap(), 0);
    assert!(broker.dead_letters("work", 10).await.unwrap().is_empty());
}
