//! The call runtime on the in-memory broker: backpressure, deadlines under
//! paused time, misrouted requests, and lease fencing.

#![allow(missing_docs)] // test contracts

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use rota::{
    Broker, Client, ClientOptions, Codec, CorrelationId, FaultKind, Inboxes, Outcome, Reply,
    Request, RpcError, ServeOptions, WhenFull,
};
use rota_memory::MemoryBroker;

#[rota::contract]
pub trait Clock {
    async fn wait(&self, millis: u64) -> u64;
}

/// Counts handlers started, and (in `FINISHED`) handlers that ran to the end.
struct Sleeper(Arc<AtomicU32>);

static FINISHED: AtomicU32 = AtomicU32::new(0);

impl Clock for Sleeper {
    async fn wait(&self, millis: u64) -> u64 {
        self.0.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(millis)).await;
        if millis == 60_000 {
            FINISHED.fetch_add(1, Ordering::SeqCst);
        }
        millis
    }
}

#[tokio::test(start_paused = true)]
async fn a_call_nobody_serves_fails_at_its_deadline_with_a_retryable_error() {
    let broker = MemoryBroker::new();
    let clock = ClockClient::new(rota::Client::new(broker.clone()), "nobody")
        .with_timeout(Duration::from_secs(30));
    let started = tokio::time::Instant::now();
    let err = clock.wait(1).await.unwrap_err();
    assert!(matches!(err, RpcError::DeadlineExceeded(d) if d == Duration::from_secs(30)));
    assert!(err.is_retryable());
    assert_eq!(started.elapsed(), Duration::from_secs(30));
    assert_eq!(
        clock.service_client().client().pending(),
        0,
        "the call was forgotten"
    );
}

#[tokio::test(start_paused = true)]
async fn a_full_client_fails_fast_or_waits_as_configured() {
    let broker = MemoryBroker::new();
    let runs = Arc::new(AtomicU32::new(0));
    let server = ClockServer::new(Sleeper(Arc::clone(&runs))).spawn(
        broker.clone(),
        "clock",
        ServeOptions::default(),
    );
    let options = ClientOptions::default()
        .max_pending(2)
        .when_full(WhenFull::Fail);
    let client = Client::with_options(broker.clone(), options);
    let clock = ClockClient::new(&client, "clock");
    let a = tokio::spawn({
        let clock = clock.clone();
        async move { clock.wait(1000).await }
    });
    let b = tokio::spawn({
        let clock = clock.clone();
        async move { clock.wait(1000).await }
    });
    while client.pending() < 2 {
        tokio::task::yield_now().await;
    }
    let err = clock.wait(1).await.unwrap_err();
    assert!(matches!(err, RpcError::Overloaded(2)), "{err}");
    assert!(err.is_retryable());
    assert_eq!(a.await.unwrap().unwrap(), 1000);
    assert_eq!(b.await.unwrap().unwrap(), 1000);

    // A waiting client queues the third call instead.
    let client = Client::with_options(broker.clone(), ClientOptions::default().max_pending(1));
    let clock = ClockClient::new(&client, "clock");
    let (x, y) = tokio::join!(clock.wait(10), clock.wait(20));
    assert_eq!((x.unwrap(), y.unwrap()), (10, 20));
    server.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn concurrency_is_bounded_per_server() {
    let broker = MemoryBroker::new();
    let runs = Arc::new(AtomicU32::new(0));
    let server = ClockServer::new(Sleeper(Arc::clone(&runs))).spawn(
        broker.clone(),
        "clock",
        ServeOptions::default().concurrency(3),
    );
    let clock = ClockClient::new(rota::Client::new(broker.clone()), "clock");
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let clock = clock.clone();
            tokio::spawn(async move { clock.wait(1000).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        runs.load(Ordering::SeqCst),
        3,
        "more than 3 handlers started"
    );
    assert_eq!(broker.queued("clock").await.unwrap(), 7);
    for c in calls {
        c.await.unwrap().unwrap();
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_request_in_the_wrong_queue_gets_an_unknown_service_fault() {
    let broker = MemoryBroker::new();
    let server = ClockServer::new(Sleeper(Arc::default())).spawn(
        broker.clone(),
        "clock",
        ServeOptions::default(),
    );
    let mut inbox = broker.open_inbox().await.unwrap();
    let request = Request {
        id: CorrelationId::new(),
        service: "calendar".into(),
        method: "wait".into(),
        reply_to: Some(inbox.address().to_owned()),
        deadline: None,
        attempt: 1,
        headers: Default::default(),
        codec: Codec::Json,
        body: Bytes::from_static(b"{\"millis\":1}"),
    };
    broker
        .publish("clock", request.encode().unwrap().into())
        .await
        .unwrap();
    let replies = inbox.recv(1, Duration::from_secs(5)).await.unwrap();
    let reply = Reply::decode(&replies[0]).unwrap();
    assert_eq!(reply.id, request.id);
    let Outcome::Fault(fault) = reply.outcome else {
        panic!("{reply:?}")
    };
    assert_eq!(fault.kind, FaultKind::UnknownService);
    assert!(fault.message.contains("calendar"), "{fault}");
    server.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_server_that_cannot_renew_stops_its_handlers_before_the_lease_lapses() {
    // A consumer whose lease the broker has already dropped: the server must
    // notice at its next renewal and cancel the running handler, and the
    // request must be handed to another server exactly once.
    let broker = MemoryBroker::new();
    let first_runs = Arc::new(AtomicU32::new(0));
    let lease = Duration::from_secs(3);
    let options = ServeOptions::default().lease(lease);
    let first = ClockServer::new(Sleeper(Arc::clone(&first_runs))).spawn(
        broker.clone(),
        "clock",
        options.clone(),
    );
    let clock = ClockClient::new(rota::Client::new(broker.clone()), "clock")
        .with_timeout(Duration::from_secs(600));
    let call = tokio::spawn(async move { clock.wait(60_000).await });
    while first_runs.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The first server's lease lapses on the broker, as when it is cut off:
    // its next renewal fails and it must cancel the running handler.
    broker.expire_leases("clock");
    let second_runs = Arc::new(AtomicU32::new(0));
    let second =
        ClockServer::new(Sleeper(Arc::clone(&second_runs))).spawn(broker.clone(), "clock", options);
    let reply = call.await.unwrap().unwrap();
    assert_eq!(reply, 60_000);
    // Started twice (the fenced run, then the redelivery), finished once:
    // the fenced handler was cancelled, never ran alongside the second.
    let started = first_runs.load(Ordering::SeqCst) + second_runs.load(Ordering::SeqCst);
    assert_eq!(started, 2);
    assert_eq!(FINISHED.load(Ordering::SeqCst), 1);
    first.shutdown().await.unwrap();
    second.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_reply_after_the_deadline_is_dropped_and_counted() {
    let broker = MemoryBroker::new();
    let client = Client::new(broker.clone());
    let clock = ClockClient::new(&client, "clock").with_timeout(Duration::from_millis(100));
    // Nobody serves yet, so the caller gives up first.
    let err = clock.wait(1).await.unwrap_err();
    assert!(matches!(err, RpcError::DeadlineExceeded(_)), "{err}");
    // A server that comes later answers the expired request with a fault,
    // without running it; that reply finds nobody waiting.
    let runs = Arc::new(AtomicU32::new(0));
    let server = ClockServer::new(Sleeper(Arc::clone(&runs))).spawn(
        broker.clone(),
        "clock",
        ServeOptions::default(),
    );
    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    while client.stats().unmatched_replies == 0 && tokio::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stats = client.stats();
    assert_eq!(stats.unmatched_replies, 1);
    assert_eq!(stats.deadlines_exceeded, 1);
    assert_eq!(stats.replies, 0);
    assert_eq!(client.pending(), 0);
    assert_eq!(runs.load(Ordering::SeqCst), 0, "an expired request ran");
    server.shutdown().await.unwrap();
}
