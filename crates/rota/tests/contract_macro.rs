//! `#[rota::contract]` end to end: a contract, its implementation served on
//! the in-memory broker, and calls through the generated client.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rota::{CallError, Fault, FaultKind, RpcError, ServeOptions};
use rota_memory::MemoryBroker;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// A tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantId(pub String);

/// A monthly invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invoice {
    /// Who pays.
    pub tenant: TenantId,
    /// For which month.
    pub month: u32,
    /// How much, in cents.
    pub cents: u64,
}

/// Something worth auditing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// What happened.
    pub what: String,
}

/// The billing service's own errors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum BillingError {
    /// The tenant is not known.
    #[error("unknown tenant {0}")]
    UnknownTenant(String),
}

/// Billing, as a contract.
#[rota::contract]
pub trait Billing {
    /// The invoice of a tenant for a month; month 0 panics.
    async fn invoice(&self, tenant: TenantId, month: u32) -> Result<Invoice, BillingError>;
    /// Records an event; nobody waits for it.
    #[rota(oneway)]
    async fn audit(&self, event: AuditEvent);
    /// Answers `pong`.
    #[rota(timeout_ms = 5000)]
    async fn ping(&self) -> String;
    /// Answers after `millis`, but callers give up after 50 ms.
    #[rota(timeout_ms = 50)]
    async fn slow(&self, millis: u64) -> u64;
    /// Always panics.
    async fn explode(&self, reason: String) -> u32;
    /// Counts calls; returns nothing but is waited for.
    async fn touch(&self);
}

struct Books {
    audits: mpsc::Sender<AuditEvent>,
    touches: AtomicU32,
}

impl Billing for Books {
    async fn invoice(&self, tenant: TenantId, month: u32) -> Result<Invoice, BillingError> {
        assert!(month != 0, "month 0 does not exist");
        if tenant.0 != "acme" {
            return Err(BillingError::UnknownTenant(tenant.0));
        }
        Ok(Invoice {
            tenant,
            month,
            cents: 100 * u64::from(month),
        })
    }

    async fn audit(&self, event: AuditEvent) {
        // The receiver lives as long as the test; a full channel would only
        // slow this handler down.
        let _ = self.audits.send(event).await;
    }

    async fn ping(&self) -> String {
        "pong".to_owned()
    }

    async fn slow(&self, millis: u64) -> u64 {
        tokio::time::sleep(Duration::from_millis(millis)).await;
        millis
    }

    async fn explode(&self, reason: String) -> u32 {
        panic!("exploded: {reason}");
    }

    async fn touch(&self) {
        self.touches.fetch_add(1, Ordering::SeqCst);
    }
}

/// Names that are awkward for generated code: a method named like `Arc`'s
/// `clone`, raw identifiers, a `mut` argument and arguments named like the
/// generated code's locals.
#[rota::contract]
pub trait Odd {
    /// Must reach the service, not clone the `Arc` it lives in.
    async fn clone(&self) -> u32;
    /// A keyword as method and argument name.
    async fn r#match(&self, r#type: String) -> String;
    /// `mut` is dropped from the contract but allowed in the implementation.
    async fn add(&self, mut service: u32, codec: u32, args: u32, call: u32) -> u32;
}

struct OddOne;

impl Odd for OddOne {
    async fn clone(&self) -> u32 {
        7
    }

    async fn r#match(&self, r#type: String) -> String {
        format!("matched {type}", type = r#type)
    }

    async fn add(&self, mut service: u32, codec: u32, args: u32, call: u32) -> u32 {
        service += codec + args + call;
        service
    }
}

fn options() -> ServeOptions {
    ServeOptions::default()
        .claim_wait(Duration::from_millis(50))
        .drain_timeout(Duration::from_millis(500))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_client_and_server_talk_through_the_broker() {
    let broker = MemoryBroker::new();
    let (audits, mut audited) = mpsc::channel(8);
    let books = Books {
        audits,
        touches: AtomicU32::new(0),
    };
    let server = BillingServer::new(books).spawn(broker.clone(), "billing", options());
    let billing = BillingClient::new(rota::Client::new(broker.clone()), "billing");

    // A fallible method: the value, then the service's own error, typed.
    let invoice = billing
        .invoice(TenantId("acme".into()), 3)
        .await
        .expect("acme has an invoice");
    assert_eq!(invoice.cents, 300);
    assert_eq!(invoice.tenant, TenantId("acme".into()));
    match billing.invoice(TenantId("nobody".into()), 3).await {
        Err(CallError::Service(BillingError::UnknownTenant(who))) => assert_eq!(who, "nobody"),
        other => panic!("expected the service's error, got {other:?}"),
    }

    // A method with no arguments and its own timeout.
    assert_eq!(billing.ping().await.expect("ping"), "pong");

    // A oneway call returns once sent; the server still runs it.
    billing
        .audit(AuditEvent {
            what: "logged in".into(),
        })
        .await
        .expect("the audit is sent");
    let event = tokio::time::timeout(Duration::from_secs(5), audited.recv())
        .await
        .expect("the oneway call reaches the server")
        .expect("the channel is open");
    assert_eq!(event.what, "logged in");

    // Panics become faults, for fallible and infallible methods alike, and
    // the server keeps serving.
    match billing.invoice(TenantId("acme".into()), 0).await {
        Err(CallError::Rpc(RpcError::Remote(Fault {
            kind: FaultKind::Panicked,
            ..
        }))) => {}
        other => panic!("expected a panic fault, got {other:?}"),
    }
    match billing.explode("on purpose".into()).await {
        Err(RpcError::Remote(Fault {
            kind: FaultKind::Panicked,
            ..
        })) => {}
        other => panic!("expected a panic fault, got {other:?}"),
    }
    assert_eq!(billing.ping().await.expect("ping after panics"), "pong");

    // `timeout_ms` bounds the call (whether the client's timer or the
    // server's deadline notices first, the caller sees one error).
    let started = std::time::Instant::now();
    match billing.slow(2_000).await {
        Err(RpcError::DeadlineExceeded(d)) => assert_eq!(d, Duration::from_millis(50)),
        other => panic!("expected the method's 50 ms timeout, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_millis(1_500),
        "the call gave up after {:?}, not about 50 ms",
        started.elapsed()
    );
    // …unless the caller sets a timeout of its own.
    let patient = billing.with_timeout(Duration::from_secs(5));
    assert_eq!(patient.slow(100).await.expect("slow with time"), 100);

    server
        .shutdown()
        .await
        .expect("the server shuts down cleanly");
}

/// A method returning `()` answers `null` in JSON; the reply must still
/// arrive (and not be taken for a reply without a body).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unit_results_arrive_as_json_null() {
    let broker = MemoryBroker::new();
    let (audits, _audited) = mpsc::channel(8);
    let books = Arc::new(Books {
        audits,
        touches: AtomicU32::new(0),
    });
    let server =
        BillingServer::from_arc(Arc::clone(&books)).spawn(broker.clone(), "billing", options());
    let billing = BillingClient::new(rota::Client::new(broker.clone()), "billing")
        .with_timeout(Duration::from_secs(2));

    billing.touch().await.expect("a `()` result arrives");
    billing.touch().await.expect("a `()` result arrives");
    assert_eq!(books.touches.load(Ordering::SeqCst), 2);

    server
        .shutdown()
        .await
        .expect("the server shuts down cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_body_is_an_object_keyed_by_argument_name() {
    let broker = MemoryBroker::new();
    let (audits, _audited) = mpsc::channel(8);
    let books = Books {
        audits,
        touches: AtomicU32::new(0),
    };
    let server = BillingServer::new(books).spawn(broker.clone(), "billing", options());
    let raw = BillingClient::new(rota::Client::new(broker.clone()), "billing")
        .service_client()
        .clone();

    let args = serde_json::json!({ "tenant": "acme", "month": 2 });
    let invoice = raw
        .call::<_, Invoice, BillingError>("invoice", None, &args)
        .await
        .expect("a hand-written body is understood");
    assert_eq!(invoice.cents, 200);

    let pong = raw
        .call_infallible::<_, String>("ping", None, &serde_json::json!({}))
        .await
        .expect("no arguments: an empty object");
    assert_eq!(pong, "pong");

    match raw
        .call_infallible::<_, u32>("invoice", None, &serde_json::json!({ "month": 2 }))
        .await
    {
        Err(RpcError::Remote(Fault {
            kind: FaultKind::BadRequest,
            ..
        })) => {}
        other => panic!("expected a bad request for a missing argument, got {other:?}"),
    }
    match raw
        .call_infallible::<_, u32>("refund", None, &serde_json::json!({}))
        .await
    {
        Err(RpcError::Remote(Fault {
            kind: FaultKind::UnknownMethod,
            ..
        })) => {}
        other => panic!("expected an unknown method, got {other:?}"),
    }

    server
        .shutdown()
        .await
        .expect("the server shuts down cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awkward_names_reach_the_service() {
    let broker = MemoryBroker::new();
    let server = OddServer::from_arc(Arc::new(OddOne)).spawn(broker.clone(), "odd", options());
    let odd = OddClient::new(rota::Client::new(broker.clone()), "odd");

    assert_eq!(odd.clone().await.expect("clone"), 7);
    assert_eq!(
        odd.r#match("fire".into()).await.expect("match"),
        "matched fire"
    );
    assert_eq!(odd.add(1, 2, 3, 4).await.expect("add"), 10);

    server
        .shutdown()
        .await
        .expect("the server shuts down cleanly");
}

#[test]
fn the_server_reports_its_contract() {
    use rota::Dispatch;

    let server = OddServer::new(OddOne);
    assert_eq!(server.contract(), "Odd");
    assert_eq!(server.methods(), ["clone", "match", "add"]);
}
