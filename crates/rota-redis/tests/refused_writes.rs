//! A Redis that refuses writes for a while — at its `maxmemory` (OOM on
//! every write) — is an outage like any other: servers and workers log each
//! failure, retry with backoff, and serve again once memory is freed. And a
//! daemon started before its Redis waits for it.
//!
//! Regression: the refusal was taken for an error retrying won't fix; after
//! "lease lost; registering again" the registration failed for good, and
//! the process stayed up serving nothing, saying nothing more.

#![allow(missing_docs)] // test contracts

mod support;

use std::time::Duration;

use rota::jobs::{JobContext, JobError, JobState, NewJob, QueueOptions, Worker};
use rota::{Client, ServeOptions};
use rota_core::jobs::JobStore;
use rota_redis::{RedisBroker, RedisOptions};

#[rota::contract]
pub trait Echo {
    async fn echo(&self, text: String) -> String;
}

struct Impl;

impl Echo for Impl {
    async fn echo(&self, text: String) -> String {
        text
    }
}

/// Makes Redis refuse every write (OOM) for `secs`, then frees it.
async fn refuse_writes_for(redis: &support::RedisServer, secs: u64) {
    let mut raw = redis.raw().await;
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("1")
        .query_async(&mut raw)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("0")
        .query_async(&mut raw)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_serves_again_once_redis_accepts_writes() {
    let redis = support::RedisServer::start();
    let broker = support::broker(&redis).await;
    let server = EchoServer::new(Impl).spawn(
        broker.clone(),
        "echo",
        ServeOptions::default()
            .lease(Duration::from_secs(1))
            .claim_wait(Duration::from_millis(100)),
    );
    let client = Client::new(broker.clone());
    let echo = EchoClient::new(&client, "echo").with_timeout(Duration::from_secs(5));
    assert_eq!(echo.echo("before".into()).await.unwrap(), "before");

    // Long enough for the server to lose its lease and fail to register.
    refuse_writes_for(&redis, 3).await;

    let until = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match echo.echo("after".into()).await {
            Ok(text) => {
                assert_eq!(text, "after");
                break;
            }
            Err(e) => assert!(
                tokio::time::Instant::now() < until,
                "never served again: {e}"
            ),
        }
    }
    tokio::time::timeout(Duration::from_secs(10), server.shutdown())
        .await
        .expect("shutdown hung")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_works_again_once_redis_accepts_writes() {
    let redis = support::RedisServer::start();
    let store = support::broker(&redis).await;
    let worker = Worker::new(store.clone())
        .queue(
            "q",
            QueueOptions::default()
                .lease(Duration::from_secs(1))
                .claim_wait(Duration::from_millis(100)),
        )
        .handle("echo", |_: JobContext, n: u32| async move {
            Ok::<_, JobError>(n)
        })
        .spawn();
    let first = store
        .enqueue(vec![NewJob::new("q", "acme", "echo", &1).unwrap()])
        .await
        .unwrap()[0]
        .id;
    refuse_writes_for(&redis, 3).await;
    let later = store
        .enqueue(vec![NewJob::new("q", "acme", "echo", &2).unwrap()])
        .await
        .unwrap()[0]
        .id;
    let within = Duration::from_secs(30);
    support::await_state(&store, "q", &[first, later], JobState::Succeeded, within).await;
    tokio::time::timeout(Duration::from_secs(10), worker.shutdown())
        .await
        .expect("shutdown hung")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_waiting_waits_for_a_redis_that_is_down_at_start() {
    let mut redis = support::RedisServer::start();
    redis.kill();
    let options = RedisOptions::new(redis.url())
        .prefix("test")
        .connect_timeout(Duration::from_millis(200));
    assert!(
        RedisBroker::connect_with(options.clone())
            .await
            .unwrap_err()
            .is_retryable()
    );
    let connecting = tokio::spawn(RedisBroker::connect_waiting(options));
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!connecting.is_finished(), "gave up while Redis was down");
    redis.restart();
    let broker = tokio::time::timeout(Duration::from_secs(20), connecting)
        .await
        .expect("still waiting after Redis came up")
        .unwrap()
        .expect("connected");
    let server = EchoServer::new(Impl).spawn(broker.clone(), "echo", ServeOptions::default());
    let client = Client::new(broker);
    let echo = EchoClient::new(&client, "echo").with_timeout(Duration::from_secs(5));
    assert_eq!(echo.echo("up".into()).await.unwrap(), "up");
    server.shutdown().await.unwrap();
    // A wrong password is no outage: it fails at once.
    let wrong = RedisOptions::new(format!("redis://:nope@127.0.0.1:{}", redis.port()));
    let err = tokio::time::timeout(Duration::from_secs(5), RedisBroker::connect_waiting(wrong))
        .await
        .expect("waited on a configuration error")
        .unwrap_err();
    assert!(!err.is_retryable(), "{err}");
}
