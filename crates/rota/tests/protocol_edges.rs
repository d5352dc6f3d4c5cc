//! Protocol edges on the in-memory broker: requests a server cannot run as
//! they are still get an answer that names the problem (never silence until
//! the caller's deadline), and the defaults let a second server save a call
//! whose server died before the caller gives up.

#![allow(missing_docs)] // test contracts

use std::time::Duration;

use bytes::Bytes;
use rota::{
    Broker, Client, Codec, ConsumerOptions, CorrelationId, Fault, FaultKind, Inbox, Inboxes,
    Outcome, Reply, ServeOptions,
};
use rota_memory::MemoryBroker;
use tokio::time::Instant;

#[rota::contract]
pub trait Greeter {
    async fn greet(&self, name: String) -> String;
    async fn hello(&self) -> String;
    async fn maybe(&self, name: Option<String>) -> String;
}

struct English;

impl Greeter for English {
    async fn greet(&self, name: String) -> String {
        let attempt = rota::context::current().map_or(0, |c| c.attempt);
        format!("hello, {name} (attempt {attempt})")
    }
    async fn hello(&self) -> String {
        "hello".into()
    }
    async fn maybe(&self, name: Option<String>) -> String {
        name.unwrap_or_else(|| "nobody".into())
    }
}

fn spawn(broker: &MemoryBroker, options: ServeOptions) -> rota::ServerHandle {
    GreeterServer::new(English).spawn(broker.clone(), "greeter", options)
}

/// A JSON envelope for `greeter` with `fields` spliced in after the id.
fn envelope(id: CorrelationId, inbox: &dyn Inbox, fields: &str) -> Bytes {
    Bytes::from(format!(
        r#"{{"v":1,"id":"{id}","service":"greeter","reply_to":"{}",{fields}}}"#,
        inbox.address()
    ))
}

/// `json` as a MessagePack envelope; a `body` object becomes a `bin` of its
/// own MessagePack encoding, as §1.5 says.
fn msgpack(json: &[u8]) -> Bytes {
    #[derive(serde::Serialize)]
    #[serde(untagged)]
    enum Field {
        Plain(serde_json::Value),
        Bin(#[serde(with = "serde_bytes_compat")] Vec<u8>),
    }
    mod serde_bytes_compat {
        pub(super) fn serialize<S: serde::Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(b)
        }
    }
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(json).unwrap();
    let map: std::collections::BTreeMap<String, Field> = map
        .into_iter()
        .map(|(k, v)| {
            let f = if k == "body" && !v.is_null() {
                Field::Bin(Codec::MessagePack.encode(&v).unwrap())
            } else {
                Field::Plain(v)
            };
            (k, f)
        })
        .collect();
    Bytes::from(Codec::MessagePack.encode(&map).unwrap())
}

async fn reply_to(inbox: &mut Box<dyn Inbox>, id: CorrelationId) -> Reply {
    let got = inbox.recv(1, Duration::from_secs(10)).await.unwrap();
    assert_eq!(got.len(), 1, "no reply: the caller would wait in silence");
    let reply = Reply::decode(&got[0]).unwrap();
    assert_eq!(reply.id, id);
    reply
}

fn fault_of(reply: Reply) -> Fault {
    match reply.outcome {
        Outcome::Fault(f) => f,
        other => panic!("expected a fault, got {other:?}"),
    }
}

#[tokio::test]
async fn a_null_body_means_no_arguments_in_both_codecs() {
    let broker = MemoryBroker::new();
    let server = spawn(&broker, ServeOptions::default());
    let mut inbox = broker.open_inbox().await.unwrap();
    for codec in [Codec::Json, Codec::MessagePack] {
        for (method, answer) in [("hello", "hello"), ("maybe", "nobody")] {
            let id = CorrelationId::new();
            let json = envelope(id, &*inbox, &format!(r#""method":"{method}","body":null"#));
            let bytes = match codec {
                Codec::Json => json,
                _ => msgpack(&json),
            };
            broker.publish("greeter", bytes).await.unwrap();
            let reply = reply_to(&mut inbox, id).await;
            let Outcome::Ok(body) = reply.outcome else {
                panic!("{codec} {method}: {reply:?}")
            };
            assert_eq!(codec.decode::<String>(&body).unwrap(), answer, "{codec}");
        }
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_malformed_envelope_with_a_way_back_gets_a_fault_naming_the_field_and_a_dead_letter() {
    let broker = MemoryBroker::new();
    let server = spawn(&broker, ServeOptions::default());
    let mut inbox = broker.open_inbox().await.unwrap();
    let cases = [
        (
            r#""method":"greet","deadline_ms":1.5,"body":{"name":"ada"}"#,
            "deadline_ms",
        ),
        (
            r#""method":"greet","attempt":"one","body":{"name":"ada"}"#,
            "attempt",
        ),
        (r#""method":7,"body":{"name":"ada"}"#, "method"),
    ];
    let mut dead = 0;
    for codec in [Codec::Json, Codec::MessagePack] {
        for (fields, named) in cases {
            let id = CorrelationId::new();
            let json = envelope(id, &*inbox, fields);
            let bytes = match codec {
                Codec::Json => json,
                _ => msgpack(&json),
            };
            broker.publish("greeter", bytes).await.unwrap();
            let reply = reply_to(&mut inbox, id).await;
            assert_eq!(reply.codec, codec, "answered in the request's codec");
            let fault = fault_of(reply);
            assert_eq!(fault.kind, FaultKind::BadRequest, "{fault}");
            assert!(
                fault.message.contains(&format!("`{named}`")),
                "{codec}: {fault}"
            );
            assert!(fault.message.contains("dead-letter"), "{fault}");
            dead += 1;
            let letters = broker.dead_letters("greeter", 100).await.unwrap();
            assert_eq!(letters.len(), dead, "{codec} {fields}");
            let reason = &letters.last().unwrap().reason;
            assert!(reason.contains(&format!("`{named}`")), "{reason}");
        }
    }
    // A version this server does not speak is answered the same way.
    let id = CorrelationId::new();
    let bytes = Bytes::from(format!(
        r#"{{"v":2,"id":"{id}","service":"greeter","method":"greet","reply_to":"{}","body":{{}}}}"#,
        inbox.address()
    ));
    broker.publish("greeter", bytes).await.unwrap();
    let fault = fault_of(reply_to(&mut inbox, id).await);
    assert_eq!(fault.kind, FaultKind::BadRequest);
    assert!(fault.message.contains("version 2"), "{fault}");
    assert_eq!(
        broker.dead_letters("greeter", 100).await.unwrap().len(),
        dead + 1
    );

    // And the server goes on serving.
    let greeter = GreeterClient::new(rota::Client::new(broker.clone()), "greeter");
    assert_eq!(greeter.hello().await.unwrap(), "hello");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn positional_arguments_are_refused_with_a_bad_request_that_says_so() {
    let broker = MemoryBroker::new();
    let server = spawn(&broker, ServeOptions::default());
    let mut inbox = broker.open_inbox().await.unwrap();
    for codec in [Codec::Json, Codec::MessagePack] {
        let id = CorrelationId::new();
        let json = envelope(id, &*inbox, r#""method":"greet","body":["ada"]"#);
        let bytes = match codec {
            Codec::Json => json,
            _ => msgpack(&json),
        };
        broker.publish("greeter", bytes).await.unwrap();
        let fault = fault_of(reply_to(&mut inbox, id).await);
        assert_eq!(fault.kind, FaultKind::BadRequest, "{fault}");
        assert!(fault.message.contains("greeter.greet"), "{fault}");
        assert!(fault.message.contains("positional"), "{codec}: {fault}");
        assert!(fault.message.contains("keyed by parameter name"), "{fault}");
    }
    // An argument of the wrong type is named, in MessagePack too.
    let id = CorrelationId::new();
    let json = envelope(id, &*inbox, r#""method":"greet","body":{"name":42}"#);
    broker.publish("greeter", msgpack(&json)).await.unwrap();
    let fault = fault_of(reply_to(&mut inbox, id).await);
    assert!(fault.message.contains("`name`"), "{fault}");
    assert!(broker.dead_letters("greeter", 10).await.unwrap().is_empty());
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_oversized_request_gets_a_fault_and_a_dead_letter_and_serving_goes_on() {
    let broker = MemoryBroker::new();
    let defaults = ServeOptions::default();
    assert_eq!(
        defaults.max_payload,
        1024 * 1024,
        "the client's default limit"
    );
    let server = spawn(&broker, defaults);
    let mut inbox = broker.open_inbox().await.unwrap();
    let id = CorrelationId::new();
    let name = "x".repeat(3 * 1024 * 1024);
    let fields = format!(r#""method":"greet","body":{{"name":"{name}"}}"#);
    broker
        .publish("greeter", envelope(id, &*inbox, &fields))
        .await
        .unwrap();
    let fault = fault_of(reply_to(&mut inbox, id).await);
    assert_eq!(fault.kind, FaultKind::BadRequest, "{fault}");
    assert!(fault.message.contains("1048576-byte limit"), "{fault}");
    let dead = broker.dead_letters("greeter", 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0].reason.contains("1048576-byte limit"),
        "{}",
        dead[0].reason
    );
    let greeter = GreeterClient::new(rota::Client::new(broker.clone()), "greeter");
    assert_eq!(greeter.hello().await.unwrap(), "hello");
    server.shutdown().await.unwrap();

    // The limit is the server's to set.
    let server = spawn(&broker, ServeOptions::default().max_payload(256));
    let id = CorrelationId::new();
    let fields = format!(
        r#""method":"greet","body":{{"name":"{}"}}"#,
        "y".repeat(300)
    );
    broker
        .publish("greeter", envelope(id, &*inbox, &fields))
        .await
        .unwrap();
    let fault = fault_of(reply_to(&mut inbox, id).await);
    assert!(fault.message.contains("256-byte limit"), "{fault}");
    assert_eq!(broker.dead_letters("greeter", 10).await.unwrap().len(), 2);
    server.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn with_the_defaults_a_call_whose_server_died_is_answered_by_another_before_the_caller_gives_up()
 {
    let broker = MemoryBroker::new();
    let defaults = ServeOptions::default();
    // A server with the default lease that claimed the call and died: its
    // consumer never renews, acknowledges or closes.
    let dead = broker
        .consumer(
            "greeter",
            ConsumerOptions::default()
                .lease(defaults.lease)
                .max_deliveries(defaults.max_deliveries),
        )
        .await
        .unwrap();
    let client = Client::new(broker.clone());
    let timeout = client.options().default_timeout;
    let greeter = GreeterClient::new(&client, "greeter");
    let started = Instant::now();
    let call = tokio::spawn(async move { greeter.greet("ada".into()).await });
    assert_eq!(
        dead.claim(1, Duration::from_secs(5)).await.unwrap().len(),
        1
    );
    // A surviving server, with the default options.
    let server = spawn(&broker, ServeOptions::default());
    let answer = call.await.unwrap().expect("answered before the deadline");
    let took = started.elapsed();
    assert_eq!(answer, "hello, ada (attempt 2)");
    // Redelivered once the lease lapsed and a reap ran (every lease/2, plus
    // up to lease/8 of jitter): the bound the README gives.
    let bound = defaults.lease + defaults.lease / 2 + defaults.lease / 8;
    assert!(took <= bound + Duration::from_secs(1), "took {took:?}");
    assert!(
        bound * 3 / 2 < timeout,
        "the default timeout {timeout:?} leaves no room for a redelivery within {bound:?}"
    );
    server.shutdown().await.unwrap();
}
