//! A `reply_to` comes from the wire, and a reply is pushed to it: it must
//! never land on a key that is no inbox, and a reply that cannot be written
//! must not wedge the server or the worker that owes it.
//!
//! Regression: a reply to a key of another type failed the reply pipeline;
//! the batch writer retried that error forever while renewals kept the
//! lease alive, every later completion queued behind it, and shutdown hung.
//! A `reply_to` naming the queue's own stream set a TTL on it.

#![allow(missing_docs)] // test contracts

mod support;

use std::time::Duration;

use bytes::Bytes;
use redis::AsyncCommands;
use rota::jobs::{JobContext, JobError, JobState, NewJob, QueueOptions, Worker};
use rota::{Broker, Client, CorrelationId, Request, ServeOptions};
use rota_core::jobs::JobStore;

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

fn request(reply_to: &str, text: &str) -> Bytes {
    Request {
        id: CorrelationId::new(),
        service: "echo".into(),
        method: "echo".into(),
        reply_to: Some(reply_to.into()),
        deadline: None,
        attempt: 1,
        headers: Default::default(),
        codec: rota::Codec::Json,
        body: Bytes::from(serde_json::to_vec(&serde_json::json!({ "text": text })).unwrap()),
    }
    .encode()
    .unwrap()
    .into()
}

/// An address shaped like an inbox of the broker's prefix.
fn inbox_shaped() -> String {
    format!("test:{{c:{}}}:r", CorrelationId::new().as_uuid().simple())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_to_that_is_no_inbox_is_dead_lettered_and_touches_nothing() {
    let redis = support::RedisServer::start();
    let broker = support::broker(&redis).await;
    let mut raw = redis.raw().await;
    let server = EchoServer::new(Impl).spawn(
        broker.clone(),
        "echo",
        ServeOptions::default().claim_wait(Duration::from_millis(100)),
    );
    let client = Client::new(broker.clone());
    let echo = EchoClient::new(&client, "echo").with_timeout(Duration::from_secs(10));
    assert_eq!(echo.echo("warm".into()).await.unwrap(), "warm");

    // The service's own stream, and an unrelated string key.
    let stream = "test:{echo}:q";
    let _: () = raw.set("someone:else", "precious").await.unwrap();
    broker.publish("echo", request(stream, "a")).await.unwrap();
    broker
        .publish("echo", request("someone:else", "b"))
        .await
        .unwrap();
    // Served on: a good call after the bad ones.
    assert_eq!(echo.echo("after".into()).await.unwrap(), "after");

    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    let dead = loop {
        let dead = broker.dead_letters("echo", 10).await.unwrap();
        if dead.len() == 2 || tokio::time::Instant::now() > until {
            break dead;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert!(
        dead.iter().all(|d| d.reason.contains("no inbox address")),
        "{dead:?}"
    );
    let ttl: i64 = raw.pttl(stream).await.unwrap();
    assert_eq!(ttl, -1, "the stream got an expiry");
    let kept: String = raw.get("someone:else").await.unwrap();
    assert_eq!(kept, "precious");
    tokio::time::timeout(Duration::from_secs(10), server.shutdown())
        .await
        .expect("shutdown hung")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_that_cannot_be_written_does_not_wedge_the_server() {
    let redis = support::RedisServer::start();
    let broker = support::broker(&redis).await;
    let mut raw = redis.raw().await;
    // An inbox address whose key somebody made a string: RPUSH to it fails
    // with WRONGTYPE, an error no retry mends.
    let poisoned = inbox_shaped();
    let _: () = raw.set(&poisoned, "not a list").await.unwrap();
    let server = EchoServer::new(Impl).spawn(
        broker.clone(),
        "echo",
        ServeOptions::default().claim_wait(Duration::from_millis(100)),
    );
    broker
        .publish("echo", request(&poisoned, "x"))
        .await
        .unwrap();
    let client = Client::new(broker.clone());
    let echo = EchoClient::new(&client, "echo").with_timeout(Duration::from_secs(10));
    for i in 0..20 {
        let text = format!("after {i}");
        assert_eq!(echo.echo(text.clone()).await.unwrap(), text);
    }
    assert_eq!(broker.queued("echo").await.unwrap(), 0);
    tokio::time::timeout(Duration::from_secs(10), server.shutdown())
        .await
        .expect("shutdown hung behind the unwritable reply")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_outcome_cannot_be_written_is_dead_not_wedged() {
    let redis = support::RedisServer::start();
    let store = support::broker(&redis).await;
    let mut raw = redis.raw().await;
    // A reply_to that is no inbox is refused at enqueue.
    let err = store
        .enqueue(vec![
            NewJob::new("q", "acme", "echo", &serde_json::json!({}))
                .unwrap()
                .reply_to("test:{j:q}:ring"),
        ])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no inbox address"), "{err}");
    // An inbox address whose key somebody made a string.
    let poisoned = inbox_shaped();
    let _: () = raw.set(&poisoned, "not a list").await.unwrap();
    let bad = store
        .enqueue(vec![
            NewJob::new("q", "acme", "echo", &serde_json::json!({}))
                .unwrap()
                .reply_to(&poisoned),
        ])
        .await
        .unwrap()[0]
        .id;
    let good: Vec<_> = store
        .enqueue(
            (0..20)
                .map(|_| NewJob::new("q", "acme", "echo", &serde_json::json!({})).unwrap())
                .collect(),
        )
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    let worker = Worker::new(store.clone())
        .queue(
            "q",
            QueueOptions::default().claim_wait(Duration::from_millis(100)),
        )
        .handle("echo", |_: JobContext, v: serde_json::Value| async move {
            Ok::<_, JobError>(v)
        })
        .spawn();
    let within = Duration::from_secs(20);
    support::await_state(&store, "q", &good, JobState::Succeeded, within).await;
    // The poisoned job ends too: succeeded (its outcome reply went with the
    // settle and failed alone, logged) or, had the settle failed with it,
    // dead with the reason. Never held, nor retried forever.
    let until = tokio::time::Instant::now() + within;
    let record = loop {
        let record = store.job("q", bad).await.unwrap().unwrap();
        if record.state.is_final() {
            break record;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "still {:?}",
            record.state
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    if record.state == JobState::Dead {
        let reason = record.reason.unwrap_or_default();
        assert!(reason.contains("could not be written"), "{reason}");
    } else {
        assert_eq!(record.state, JobState::Succeeded);
    }
    tokio::time::timeout(Duration::from_secs(10), worker.shutdown())
        .await
        .expect("shutdown hung behind the unwritable outcome")
        .unwrap();
}
