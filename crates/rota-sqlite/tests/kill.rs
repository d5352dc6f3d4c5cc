//! The embedded backend survives a killed process: everything a publish
//! accepted is still there, and calls a killed server held are redelivered.
//!
//! The processes to kill are this same test binary, re-run with only one of
//! the ignored `child_*` tests selected.

#![allow(missing_docs)] // test contracts

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rota::{Broker, ServeOptions};
use rota_conformance::support::{Child, child_env};
use rota_sqlite::SqliteBroker;

#[rota::contract]
pub trait Work {
    async fn run(&self, n: u32) -> String;
}

struct Slow;

impl Work for Slow {
    async fn run(&self, n: u32) -> String {
        println!("started {n}");
        tokio::time::sleep(Duration::from_secs(3600)).await;
        "the killed server answered".into()
    }
}

struct Counting(Arc<AtomicU32>);

impl Work for Counting {
    async fn run(&self, n: u32) -> String {
        self.0.fetch_add(1, Ordering::SeqCst);
        let attempt = rota::context::current().expect("in a handler").attempt;
        format!("{n} on attempt {attempt}")
    }
}

/// Child: publishes numbered messages as fast as it can, printing each one
/// the broker accepted.
#[test]
#[ignore = "the child process of another test"]
fn child_publisher() {
    let Some(db) = child_env("DB") else {
        return;
    };
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let broker = SqliteBroker::open(&db).await.unwrap();
        for i in 0u64.. {
            broker.publish("sink", i.to_string().into()).await.unwrap();
            println!("accepted {i}");
        }
    });
}

/// Child: serves `work` with handlers that never finish.
#[test]
#[ignore = "the child process of another test"]
fn child_server() {
    let Some(db) = child_env("DB") else {
        return;
    };
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let broker = SqliteBroker::open(&db).await.unwrap();
        let options = ServeOptions::default().lease(Duration::from_secs(1));
        WorkServer::new(Slow)
            .serve(broker, "work", options)
            .await
            .unwrap();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_killed_mid_stream_loses_nothing_it_was_told_was_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("rota.db");
    let mut publisher = Child::spawn("child_publisher", &[("DB", db.to_str().unwrap())]);
    let last = publisher
        .wait_for(Duration::from_secs(60), |l| l == "accepted 300")
        .await
        .expect("the publisher stalled");
    publisher.kill(); // SIGKILL, while it goes on publishing
    let last: u64 = last["accepted ".len()..].parse().unwrap();

    let broker = SqliteBroker::open(&db).await.unwrap();
    let consumer = broker
        .consumer("sink", rota::ConsumerOptions::default())
        .await
        .unwrap();
    let mut seen = Vec::new();
    loop {
        let got = consumer.claim(1000, Duration::ZERO).await.unwrap();
        if got.is_empty() {
            break;
        }
        seen.extend(got.iter().map(|d| {
            std::str::from_utf8(&d.payload)
                .unwrap()
                .parse::<u64>()
                .unwrap()
        }));
    }
    // Every accepted message is there, in order, each once (one more may
    // have committed after the last line was printed).
    assert!(
        seen.len() as u64 > last,
        "{} kept, {last} accepted",
        seen.len()
    );
    for (i, n) in seen.iter().enumerate() {
        assert_eq!(*n, i as u64, "lost or duplicated around {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_call_is_redelivered_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("rota.db");
    let broker = SqliteBroker::open(&db).await.unwrap();
    let mut server = Child::spawn("child_server", &[("DB", db.to_str().unwrap())]);

    let client = rota::Client::new(broker.clone());
    let work = WorkClient::new(&client, "work").with_timeout(Duration::from_secs(60));
    let call = tokio::spawn(async move { work.run(7).await });
    server
        .wait_for(Duration::from_secs(30), |l| l == "started 7")
        .await
        .expect("the child never started the call");
    server.kill(); // SIGKILL

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
        .unwrap();
    assert_eq!(reply, "7 on attempt 2");
    assert_eq!(executions.load(Ordering::SeqCst), 1);
    assert_eq!(client.stats().replies, 1);
    assert_eq!(client.stats().unmatched_replies, 0);
    survivor.shutdown().await.unwrap();
    assert_eq!(broker.queued("work").await.unwrap(), 0);
    assert!(broker.dead_letters("work", 10).await.unwrap().is_empty());
}
