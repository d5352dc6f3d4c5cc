//! Contracts over Redis: calls, and bad input of every kind getting a clear
//! error while the server goes on serving.

#![allow(missing_docs)] // test contracts

mod support;

use std::time::Duration;

use bytes::Bytes;
use rota::{
    Broker, BrokerError, CallError, Client, ClientOptions, Codec, FaultKind, Inboxes, RpcError,
    ServeOptions,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invoice {
    pub tenant: String,
    pub month: u32,
    pub cents: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
pub enum BillingError {
    #[error("unknown tenant {0}")]
    UnknownTenant(String),
}

#[rota::contract]
pub trait Billing {
    async fn invoice(&self, tenant: String, month: u32) -> Result<Invoice, BillingError>;
    async fn echo(&self, text: String) -> String;
}

/// Executions of `echo("late")`, which must never run.
static LATE_RUNS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

struct Impl;

impl Billing for Impl {
    async fn invoice(&self, tenant: String, month: u32) -> Result<Invoice, BillingError> {
        if tenant == "ghost" {
            return Err(BillingError::UnknownTenant(tenant));
        }
        Ok(Invoice {
            tenant,
            month,
            cents: 100 * u64::from(month),
        })
    }

    async fn echo(&self, text: String) -> String {
        if text == "late" {
            LATE_RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        text
    }
}

fn opts() -> ServeOptions {
    ServeOptions::default().claim_wait(Duration::from_millis(200))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_results_and_errors_travel_in_both_codecs() {
    let redis = support::RedisServer::start();
    let broker = support::broker(&redis).await;
    let server = BillingServer::new(Impl).spawn(broker.clone(), "billing", opts());
    for codec in [Codec::Json, Codec::MessagePack] {
        let client = Client::with_options(broker.clone(), ClientOptions::default().codec(codec));
        let billing = BillingClient::new(&client, "billing");
        let invoice = billing.invoice("acme".into(), 11).await.unwrap();
        assert_eq!(invoice.cents, 1100);
        let err = billing.invoice("ghost".into(), 1).await.unwrap_err();
        assert!(matches!(err, CallError::Service(BillingError::UnknownTenant(t)) if t == "ghost"));
        // Many concurrent calls on one client.
        let calls = (0..200).map(|i| {
            let billing = billing.clone();
            async move { billing.echo(format!("m{i}")).await }
        });
        let replies = join_all(calls).await;
        for (i, r) in replies.into_iter().enumerate() {
            assert_eq!(r.unwrap(), format!("m{i}"));
        }
    }
    server.shutdown().await.unwrap();
}

async fn join_all<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

/// Helper contract with the same service name but other shapes: a caller
/// built from an older or different version of the contract.
mod older {
    #[rota::contract]
    pub trait Billing {
        async fn invoice(&self, tenant: u64) -> String;
        async fn refund(&self, id: u64) -> u64;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_methods_and_mismatched_arguments_get_faults_and_serving_goes_on() {
    let redis = support::RedisServer::start();
    let broker = support::broker(&redis).await;
    let server = BillingServer::new(Impl).spawn(broker.clone(), "billing", opts());
    let old = older::BillingClient::new(rota::Client::new(broker.clone()), "billing");

    let err = old.refund(1).await.unwrap_err();
    let RpcError::Remote(fault) = &err else {
        panic!("{err}")
    };
    assert_eq!(fault.kind, FaultKind::UnknownMethod);
    assert!(fault.message.contains("refund"), "{fault}");
    assert!(!err.is_retryable());

    let err = old.invoice(5).await.unwrap_err();
    let RpcError::Remote(fault) = &err else {
        panic!("{err}")
    };
    assert_eq!(fault.kind, FaultKind::BadRequest);
    assert!(fault.message.contains("billing.invoice"), "{fault}");

    let billing = BillingClient::new(rota::Client::new(broker.clone()), "billing");
    assert_eq!(
        billing.echo("still here".into()).await.unwrap(),
        "still here"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_in_the_queue_is_dead_lettered_with_the_reason() {
    let redis = support::RedisServer::start();
    let broker = support::broker(&redis).await;
    let server = BillingServer::new(Impl).spawn(broker.clone(), "billing", opts());
    broker
        .publish("billing", Bytes::from_static(b"\x00\x13 garbage"))
        .await
        .unwrap();
    broker
        .publish("billing", Bytes::from_static(b"{\"not\":\"an envelope\"}"))
        .await
        .unwrap();
    let billing = BillingClient::new(rota::Client::new(broker.clone()), "billing");
    assert_eq!(billing.echo("after".into()).await.unwrap(), "after");

    let dead = poll(
        || async { broker.dead_letters("billing", 10).await.unwrap() },
        |d| d.len() == 2,
    )
    .await;
    assert!(
        dead[0].reason.contains("not a rota envelope"),
        "{}",
        dead[0].reason
    );
    assert!(
        dead[1].reason.contains("malformed envelope"),
        "{}",
        dead[1].reason
    );
    assert_eq!(dead[0].payload, b"\x00\x13 garbage");

    // Re-queued garbage is dead-lettered again; purge empties the list.
    assert_eq!(
        broker
            .requeue_dead("billing", Some(&dead[0].id))
            .await
            .unwrap(),
        1
    );
    poll(
        || async { broker.dead_letters("billing", 10).await.unwrap() },
        |d| d.len() == 2 && d[1].payload == b"\x00\x13 garbage",
    )
    .await;
    assert_eq!(broker.purge_dead("billing").await.unwrap(), 2);
    assert!(broker.dead_letters("billing", 10).await.unwrap().is_empty());
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_payloads_are_refused_at_the_caller() {
    let redis = support::RedisServer::start();
    let broker = support::broker(&redis).await;
    let client = Client::with_options(broker.clone(), ClientOptions::default().max_payload(1024));
    let billing = BillingClient::new(&client, "billing");
    let err = billing.echo("x".repeat(2000)).await.unwrap_err();
    assert!(
        matches!(err, RpcError::PayloadTooLarge { limit: 1024, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("1024-byte limit"));
    assert_eq!(
        broker.queued("billing").await.unwrap(),
        0,
        "nothing was sent"
    );
}

/// Waits for the one reply in `inbox` and returns its fault.
async fn fault_in(inbox: &mut Box<dyn rota::Inbox>, id: rota::CorrelationId) -> rota::Fault {
    let got = inbox.recv(1, Duration::from_secs(10)).await.unwrap();
    assert_eq!(got.len(), 1, "no reply: the caller would wait in silence");
    let reply = rota::Reply::decode(&got[0]).unwrap();
    assert_eq!(reply.id, id);
    match reply.outcome {
        rota::Outcome::Fault(f) => f,
        other => panic!("expected a fault, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_malformed_requests_are_answered_and_dead_lettered() {
    let redis = support::RedisServer::start();
    let broker = support::broker(&redis).await;
    let server = BillingServer::new(Impl).spawn(broker.clone(), "billing", opts());
    let mut inbox = broker.open_inbox().await.unwrap();
    let to = inbox.address().to_owned();

    // 3 MB straight into the stream, past the server's default 1 MiB.
    let id = rota::CorrelationId::new();
    let big = format!(
        r#"{{"id":"{id}","service":"billing","method":"echo","reply_to":"{to}","body":{{"text":"{}"}}}}"#,
        "x".repeat(3 * 1024 * 1024)
    );
    let big_len = big.len();
    broker.publish("billing", Bytes::from(big)).await.unwrap();
    let fault = fault_in(&mut inbox, id).await;
    assert_eq!(fault.kind, FaultKind::BadRequest, "{fault}");
    assert!(fault.message.contains("1048576-byte limit"), "{fault}");

    // A field of the wrong type, with a readable id and reply_to.
    let id = rota::CorrelationId::new();
    let bad = format!(
        r#"{{"id":"{id}","service":"billing","method":"echo","reply_to":"{to}","deadline_ms":1.5,"body":{{"text":"t"}}}}"#
    );
    broker.publish("billing", Bytes::from(bad)).await.unwrap();
    let fault = fault_in(&mut inbox, id).await;
    assert_eq!(fault.kind, FaultKind::BadRequest, "{fault}");
    assert!(fault.message.contains("`deadline_ms`"), "{fault}");

    let dead = poll(
        || async { broker.dead_letters("billing", 10).await.unwrap() },
        |d| d.len() == 2,
    )
    .await;
    assert_eq!(dead.len(), 2);
    assert!(
        dead[0].reason.contains("1048576-byte limit"),
        "{}",
        dead[0].reason
    );
    assert_eq!(dead[0].payload.len(), big_len, "kept whole");
    assert!(
        dead[1].reason.contains("`deadline_ms`"),
        "{}",
        dead[1].reason
    );

    let billing = BillingClient::new(rota::Client::new(broker.clone()), "billing");
    assert_eq!(billing.echo("on".into()).await.unwrap(), "on");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_entry_without_its_m_field_reaches_the_dead_letter_stream() {
    let redis = support::RedisServer::start();
    let broker = support::broker(&redis).await;
    let server = BillingServer::new(Impl).spawn(broker.clone(), "billing", opts());
    let mut raw = redis.raw().await;
    let _: String = redis::cmd("XADD")
        .arg("test:{billing}:q")
        .arg("*")
        .arg("msg")
        .arg("{\"typo\":\"in the field name\"}")
        .query_async(&mut raw)
        .await
        .unwrap();
    let billing = BillingClient::new(rota::Client::new(broker.clone()), "billing");
    assert_eq!(billing.echo("after".into()).await.unwrap(), "after");
    let dead = poll(
        || async { broker.dead_letters("billing", 10).await.unwrap() },
        |d| !d.is_empty(),
    )
    .await;
    assert_eq!(
        dead.len(),
        1,
        "logged as dead-lettered, but not in the stream"
    );
    assert!(dead[0].reason.contains("no field m"), "{}", dead[0].reason);
    assert!(dead[0].reason.contains("msg"), "{}", dead[0].reason);
    let len: usize = redis::cmd("XLEN")
        .arg("test:{billing}:q")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(len, 0);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn invalid_urls_and_unreachable_redis_get_clear_errors() {
    let err = rota_redis::RedisBroker::connect("http://localhost")
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::Config(_)), "{err}");
    assert!(!err.is_retryable());

    let port = support::free_port();
    let err = rota_redis::RedisBroker::connect(&format!("redis://u:secret@127.0.0.1:{port}"))
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::Unavailable(_)), "{err}");
    assert!(err.is_retryable());
    let text = err.to_string();
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(!text.contains("secret"), "the password leaked: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_wants_a_password_and_got_none_is_a_config_error() {
    let redis = support::RedisServer::start_with(&["--requirepass", "s3cret-pw"]);
    let err = rota_redis::RedisBroker::connect(&redis.url())
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::Config(_)), "{err}");
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("password"), "{err}");
    assert!(err.to_string().contains("redis://"), "says how: {err}");

    let url = format!("redis://:s3cret-pw@127.0.0.1:{}", redis.port());
    let broker = rota_redis::RedisBroker::connect(&url).await.unwrap();
    for shown in [format!("{broker:?}"), format!("{:?}", broker.options())] {
        assert!(!shown.contains("s3cret-pw"), "the password leaked: {shown}");
        assert!(shown.contains(&redis.port().to_string()), "{shown}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_users_authenticate_and_wrong_passwords_are_config_errors() {
    let redis = support::RedisServer::start();
    let mut raw = redis.raw().await;
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "app", "on", ">pw", "~*", "+@all"][..])
        .query_async(&mut raw)
        .await
        .unwrap();
    let url = format!("redis://app:pw@127.0.0.1:{}", redis.port());
    let broker = rota_redis::RedisBroker::connect(&url).await.unwrap();
    let server = BillingServer::new(Impl).spawn(broker.clone(), "billing", opts());
    let billing = BillingClient::new(rota::Client::new(broker.clone()), "billing");
    assert_eq!(billing.echo("authed".into()).await.unwrap(), "authed");
    server.shutdown().await.unwrap();

    let url = format!("redis://app:wrong@127.0.0.1:{}", redis.port());
    let err = rota_redis::RedisBroker::connect(&url).await.unwrap_err();
    assert!(matches!(err, BrokerError::Config(_)), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_told_to_wait_for_redis_serves_once_it_appears() {
    // The broker handle exists, then Redis goes away before the server starts.
    let mut redis = support::RedisServer::start();
    let broker = support::broker(&redis).await;
    redis.kill();
    let err = BillingServer::new(Impl)
        .serve(broker.clone(), "billing", opts())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unavailable"), "{err}");

    let server =
        BillingServer::new(Impl).spawn(broker.clone(), "billing", opts().wait_for_broker(true));
    tokio::time::sleep(Duration::from_millis(300)).await;
    redis.restart();
    let billing = BillingClient::new(rota::Client::new(broker.clone()), "billing")
        .with_timeout(Duration::from_secs(5));
    let reply = poll(
        || {
            let billing = billing.clone();
            async move { billing.echo("back".into()).await.ok() }
        },
        Option::is_some,
    )
    .await;
    assert_eq!(reply.as_deref(), Some("back"));
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_its_deadline_is_not_executed() {
    let redis = support::RedisServer::start();
    let broker = support::broker(&redis).await;
    let billing = BillingClient::new(rota::Client::new(broker.clone()), "billing")
        .with_timeout(Duration::from_millis(50));
    // Nobody serves yet: the call times out, its request stays queued.
    let err = billing.echo("late".into()).await.unwrap_err();
    assert!(matches!(err, RpcError::DeadlineExceeded(_)), "{err}");
    assert!(err.is_retryable());
    assert_eq!(broker.queued("billing").await.unwrap(), 1);

    let server = BillingServer::new(Impl).spawn(broker.clone(), "billing", opts());
    poll(
        || async { broker.queued("billing").await.unwrap() },
        |n| *n == 0,
    )
    .await;
    // It was answered — with a fault nobody read: the client that gave up
    // counts the late reply — and never run.
    let client = billing.service_client().client().clone();
    poll(|| async { client.stats().unmatched_replies }, |n| *n == 1).await;
    server.shutdown().await.unwrap();
    let stats = client.stats();
    assert_eq!(stats.deadlines_exceeded, 1);
    assert_eq!(
        LATE_RUNS.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "an expired request ran"
    );
}

/// Polls `f` until `done` holds; fails the test after 10 s (a poll that
/// gave up in silence would let a test pass on nothing).
async fn poll<T: std::fmt::Debug, F, Fut>(mut f: F, done: impl Fn(&T) -> bool) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
{
    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let v = f().await;
        if done(&v) {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "still {v:?} after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
