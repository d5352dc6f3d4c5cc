//! The conformance suite of calls: what every [`Broker`](rota_core::rpc::Broker)
//! backend does.
//!
//! Each check takes a broker and uses service names of its own, so checks can
//! share one broker. A backend's tests run them all with
//! [`rpc_tests!`](crate::rpc_tests):
//!
//! ```ignore
//! rota_conformance::rpc_tests!(async { ((), my_backend::connect().await) });
//! ```
//!
//! Lease checks use short real-time leases (a few hundred milliseconds): the
//! Redis backend's leases expire on the server's clock.

use std::time::Duration;

use bytes::Bytes;
use rota_core::rpc::{Completion, ConsumerOptions};

use crate::RpcBackend;
use rota_core::{BrokerError, CorrelationId, Request};

/// A lease short enough to let lapse in a test.
pub const SHORT_LEASE: Duration = Duration::from_millis(300);

fn service(check: &str) -> String {
    format!("conf.{check}.{}", CorrelationId::new().as_uuid().simple())
}

fn short() -> ConsumerOptions {
    ConsumerOptions::default().lease(SHORT_LEASE)
}

async fn lapse() {
    tokio::time::sleep(SHORT_LEASE * 2).await;
}

fn request(service: &str, reply_to: Option<&str>) -> Bytes {
    Request {
        id: CorrelationId::new(),
        service: service.into(),
        method: "m".into(),
        reply_to: reply_to.map(str::to_owned),
        deadline: None,
        attempt: 1,
        headers: Default::default(),
        codec: rota_core::Codec::Json,
        body: Bytes::from_static(b"{}"),
    }
    .encode()
    .expect("encodes")
    .into()
}

/// A published request is claimed once, its reply reaches the inbox, and
/// after the acknowledgement nothing is left.
pub async fn publish_claim_reply_ack(broker: &dyn RpcBackend) {
    let svc = service("basic");
    let mut inbox = broker.open_inbox().await.expect("inbox");
    let msg = request(&svc, Some(inbox.address()));
    broker.publish(&svc, msg.clone()).await.expect("publish");
    assert_eq!(broker.queued(&svc).await.unwrap(), 1);
    let c = broker.consumer(&svc, short()).await.expect("consumer");
    let got = c.claim(10, Duration::from_secs(1)).await.expect("claim");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload, msg);
    assert_eq!(got[0].attempt, 1);
    assert_eq!(broker.queued(&svc).await.unwrap(), 0);
    let acked = c
        .settle(vec![Completion {
            tag: got[0].tag.clone(),
            reply: Some((inbox.address().to_owned(), Bytes::from_static(b"reply"))),
        }])
        .await
        .expect("complete");
    assert_eq!(acked, 1);
    let replies = inbox.recv(10, Duration::from_secs(1)).await.expect("recv");
    assert_eq!(replies, vec![Bytes::from_static(b"reply")]);
    assert!(
        c.claim(10, Duration::from_millis(50))
            .await
            .unwrap()
            .is_empty()
    );
    c.close().await.unwrap();
    assert_eq!(
        broker.queued(&svc).await.unwrap(),
        0,
        "acked work came back"
    );
}

/// A claim waits for work published after it started.
pub async fn claim_wakes_on_publish(broker: &dyn RpcBackend) {
    let svc = service("wake");
    let c = broker.consumer(&svc, short()).await.unwrap();
    let msg = request(&svc, None);
    let (got, ()) = tokio::join!(c.claim(1, Duration::from_secs(5)), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        broker.publish(&svc, msg.clone()).await.unwrap();
    });
    let got = got.unwrap();
    assert_eq!(got.len(), 1, "the claim returned without the message");
    assert_eq!(got[0].payload, msg);
}

/// Claims take at most `max`, oldest first.
pub async fn claims_are_bounded_and_ordered(broker: &dyn RpcBackend) {
    let svc = service("order");
    let msgs: Vec<_> = (0..5).map(|_| request(&svc, None)).collect();
    for m in &msgs {
        broker.publish(&svc, m.clone()).await.unwrap();
    }
    let c = broker.consumer(&svc, short()).await.unwrap();
    let first = c.claim(3, Duration::from_millis(100)).await.unwrap();
    let rest = c.claim(10, Duration::from_millis(100)).await.unwrap();
    assert_eq!(first.len(), 3);
    assert_eq!(rest.len(), 2);
    let order: Vec<_> = first
        .iter()
        .chain(&rest)
        .map(|d| d.payload.clone())
        .collect();
    assert_eq!(order, msgs);
}

/// A message whose consumer's lease lapses is delivered again, to another
/// consumer, with the attempt raised by one.
pub async fn lapsed_lease_redelivers_with_next_attempt(broker: &dyn RpcBackend) {
    let svc = service("redeliver");
    let msg = request(&svc, None);
    broker.publish(&svc, msg.clone()).await.unwrap();
    let a = broker.consumer(&svc, short()).await.unwrap();
    assert_eq!(a.claim(1, Duration::from_secs(1)).await.unwrap().len(), 1);
    let early = broker.consumer(&svc, short()).await.unwrap();
    // While A's lease holds, reaping hands nothing back.
    assert_eq!(early.reap().await.unwrap().requeued, 0);
    early.close().await.unwrap();
    lapse().await;
    let b = broker.consumer(&svc, short()).await.unwrap();
    let stats = b.reap().await.unwrap();
    assert_eq!(stats.requeued, 1);
    let again = b.claim(1, Duration::from_secs(1)).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].payload, msg);
    assert_eq!(again[0].attempt, 2);
}

/// A consumer whose lease lapsed can neither renew nor acknowledge: its
/// stale settle — a reply and an acknowledgement, as a server writes them —
/// is refused, and the message stays with its new holder.
///
/// What of the stale settle still lands differs by backend, and the README
/// says so: on memory and SQLite nothing (the reply and the acknowledgement
/// are one step); on Redis the reply may reach its inbox, since a reply in
/// another hash slot cannot be fenced there — the holder fences itself by
/// its lease clock first, and clients drop a second reply to one
/// correlation id. The acknowledgement is refused everywhere.
pub async fn stale_ack_is_refused(broker: &dyn RpcBackend) {
    let svc = service("fence");
    let mut inbox = broker.open_inbox().await.expect("inbox");
    broker
        .publish(&svc, request(&svc, Some(inbox.address())))
        .await
        .unwrap();
    let a = broker.consumer(&svc, short()).await.unwrap();
    let got = a.claim(1, Duration::from_secs(1)).await.unwrap();
    lapse().await;
    let b = broker.consumer(&svc, short()).await.unwrap();
    b.reap().await.unwrap();
    let again = b.claim(1, Duration::from_secs(1)).await.unwrap();
    assert_eq!(again.len(), 1);
    let reply = |tag: &str| Completion {
        tag: tag.to_owned(),
        reply: Some((inbox.address().to_owned(), Bytes::from_static(b"answer"))),
    };
    let stale = a.settle(vec![reply(&got[0].tag)]).await;
    assert_eq!(stale, Err(BrokerError::LeaseLost));
    assert_eq!(a.renew().await, Err(BrokerError::LeaseLost));
    let fresh = b.settle(vec![reply(&again[0].tag)]).await.unwrap();
    assert_eq!(fresh, 1, "the new holder's acknowledgement");
    let replies = inbox.recv(10, Duration::from_secs(1)).await.unwrap();
    assert!(
        (1..=2).contains(&replies.len()),
        "the new holder's reply, and on Redis perhaps the stale one: {replies:?}"
    );
    assert_eq!(broker.queued(&svc).await.unwrap(), 0);
}

/// A consumer opened with the name of a live one takes the lease over: a
/// later epoch; the earlier holder's writes are refused at once, though its
/// own lease has not run out, and what it held is delivered again.
pub async fn a_later_epoch_fences_the_earlier(broker: &dyn RpcBackend) {
    let svc = service("epoch");
    let mut inbox = broker.open_inbox().await.expect("inbox");
    broker
        .publish(&svc, request(&svc, Some(inbox.address())))
        .await
        .unwrap();
    let long = ConsumerOptions::default()
        .lease(Duration::from_secs(60))
        .name("w1");
    let a = broker.consumer(&svc, long.clone()).await.unwrap();
    assert_eq!(a.id(), "w1");
    let got = a.claim(1, Duration::from_secs(1)).await.unwrap();
    assert_eq!(got.len(), 1);
    let b = broker.consumer(&svc, long.clone()).await.unwrap();
    assert!(b.epoch() > a.epoch(), "{} then {}", a.epoch(), b.epoch());
    let stale = a
        .settle(vec![Completion {
            tag: got[0].tag.clone(),
            reply: None,
        }])
        .await;
    assert_eq!(stale, Err(BrokerError::LeaseLost));
    assert_eq!(a.renew().await, Err(BrokerError::LeaseLost));
    assert_eq!(
        a.release(vec![got[0].tag.clone()], false).await,
        Err(BrokerError::LeaseLost)
    );
    // What the earlier holder took is delivered again, to the new holder.
    b.reap().await.unwrap();
    let again = b.claim(1, Duration::from_secs(2)).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].payload, got[0].payload);
    assert_eq!(again[0].attempt, 2);
    let acked = b
        .settle(vec![Completion {
            tag: again[0].tag.clone(),
            reply: Some((inbox.address().to_owned(), Bytes::from_static(b"r"))),
        }])
        .await
        .unwrap();
    assert_eq!(acked, 1);
    assert_eq!(
        inbox.recv(10, Duration::from_secs(1)).await.unwrap().len(),
        1
    );
    // Epochs never go back, even once the lease is given up.
    b.close().await.unwrap();
    a.close().await.unwrap();
    let c = broker.consumer(&svc, long).await.unwrap();
    assert!(c.epoch() > b.epoch(), "{} then {}", b.epoch(), c.epoch());
    assert!(
        broker
            .consumer(&svc, short().name("bad/name"))
            .await
            .is_err()
    );
}

/// Renewal keeps a lease alive past its length.
pub async fn renewal_keeps_the_lease(broker: &dyn RpcBackend) {
    // Redis keeps leases on its own clock, so this runs in real time: a
    // 2 s lease renewed every 250 ms for 3 s leaves a wide margin on a busy
    // machine. (Under paused time, on memory: the runtime's tests.)
    let lease = ConsumerOptions::default().lease(Duration::from_secs(2));
    let svc = service("renew");
    broker.publish(&svc, request(&svc, None)).await.unwrap();
    let a = broker.consumer(&svc, lease.clone()).await.unwrap();
    assert_eq!(a.claim(1, Duration::from_secs(1)).await.unwrap().len(), 1);
    let b = broker.consumer(&svc, lease).await.unwrap();
    for _ in 0..12 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        a.renew().await.expect("renew");
        b.renew().await.expect("renew");
    }
    assert_eq!(b.reap().await.unwrap().requeued, 0);
    assert!(
        b.claim(1, Duration::from_millis(50))
            .await
            .unwrap()
            .is_empty()
    );
}

/// After the maximum deliveries a message goes to the dead-letter list with
/// the reason; it can be listed, re-queued and purged.
pub async fn exhausted_messages_are_dead_lettered(broker: &dyn RpcBackend) {
    let svc = service("dead");
    let msg = request(&svc, None);
    broker.publish(&svc, msg.clone()).await.unwrap();
    let opts = short().max_deliveries(2);
    for attempt in 1..=2 {
        let c = broker.consumer(&svc, opts.clone()).await.unwrap();
        let got = c.claim(1, Duration::from_secs(1)).await.unwrap();
        assert_eq!(got.len(), 1, "delivery {attempt}");
        assert_eq!(got[0].attempt, attempt);
        lapse().await;
        let reaper = broker.consumer(&svc, opts.clone()).await.unwrap();
        reaper.reap().await.unwrap();
        reaper.close().await.unwrap();
    }
    assert_eq!(broker.queued(&svc).await.unwrap(), 0);
    let dead = broker.dead_letters(&svc, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].payload, msg.to_vec());
    assert_eq!(dead[0].attempts, 2);
    assert!(dead[0].reason.contains("2 times"), "{}", dead[0].reason);

    assert_eq!(
        broker.requeue_dead(&svc, Some(&dead[0].id)).await.unwrap(),
        1
    );
    assert!(broker.dead_letters(&svc, 10).await.unwrap().is_empty());
    let c = broker.consumer(&svc, short()).await.unwrap();
    let got = c.claim(1, Duration::from_secs(1)).await.unwrap();
    assert_eq!(got[0].payload, msg);
    assert_eq!(got[0].attempt, 1, "a re-queued dead letter starts over");
    c.dead_letter(&got[0].tag, "poison").await.unwrap();
    assert_eq!(
        broker.dead_letters(&svc, 10).await.unwrap()[0].reason,
        "poison"
    );
    assert_eq!(broker.purge_dead(&svc).await.unwrap(), 1);
    assert!(broker.dead_letters(&svc, 10).await.unwrap().is_empty());
}

/// Garbage published to a queue is delivered (and can be dead-lettered by
/// the server), never lost or crashing the broker.
pub async fn garbage_is_delivered_and_dead_letterable(broker: &dyn RpcBackend) {
    let svc = service("garbage");
    broker
        .publish(&svc, Bytes::from_static(b"\x00\xffnot an envelope"))
        .await
        .unwrap();
    let c = broker.consumer(&svc, short()).await.unwrap();
    let got = c.claim(1, Duration::from_secs(1)).await.unwrap();
    assert_eq!(got[0].payload.as_ref(), b"\x00\xffnot an envelope");
    c.dead_letter(&got[0].tag, "undecodable request: not a rota envelope")
        .await
        .unwrap();
    let dead = broker.dead_letters(&svc, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert!(dead[0].reason.starts_with("undecodable"));
    assert_eq!(broker.requeue_dead(&svc, None).await.unwrap(), 1);
    assert_eq!(broker.queued(&svc).await.unwrap(), 1);
}

/// Released messages can be claimed again at once (by any consumer: their
/// place in line is the backend's — first on memory and SQLite, behind what
/// is queued on Redis, whose stream only grows at its end); the attempt
/// counts only when the handler had started.
pub async fn release_gives_back_at_once(broker: &dyn RpcBackend) {
    let svc = service("release");
    let (m1, m2) = (request(&svc, None), request(&svc, None));
    broker.publish(&svc, m1.clone()).await.unwrap();
    broker.publish(&svc, m2.clone()).await.unwrap();
    let a = broker.consumer(&svc, short()).await.unwrap();
    let got = a.claim(2, Duration::from_secs(1)).await.unwrap();
    a.release(vec![got[0].tag.clone()], true).await.unwrap();
    a.release(vec![got[1].tag.clone()], false).await.unwrap();
    let b = broker.consumer(&svc, short()).await.unwrap();
    let again = b.claim(2, Duration::from_secs(1)).await.unwrap();
    assert_eq!(again.len(), 2);
    let find = |m: &Bytes| again.iter().find(|d| d.payload == m).expect("redelivered");
    assert_eq!(find(&m1).attempt, 2);
    assert_eq!(find(&m2).attempt, 1);
}

/// Closing a consumer gives back what it holds, at once.
pub async fn close_gives_back_held(broker: &dyn RpcBackend) {
    let svc = service("close");
    for _ in 0..3 {
        broker.publish(&svc, request(&svc, None)).await.unwrap();
    }
    let a = broker.consumer(&svc, short()).await.unwrap();
    assert_eq!(a.claim(3, Duration::from_secs(1)).await.unwrap().len(), 3);
    a.close().await.unwrap();
    assert_eq!(broker.queued(&svc).await.unwrap(), 3);
}

/// Competing consumers share a service's work.
pub async fn competing_consumers_share(broker: &dyn RpcBackend) {
    let svc = service("share");
    const N: usize = 200;
    for _ in 0..N {
        broker.publish(&svc, request(&svc, None)).await.unwrap();
    }
    let a = broker.consumer(&svc, short()).await.unwrap();
    let b = broker.consumer(&svc, short()).await.unwrap();
    let drain = |c: Box<dyn rota_core::Consumer>| async move {
        let mut n = 0;
        loop {
            let got = c.claim(5, Duration::from_millis(100)).await.unwrap();
            if got.is_empty() {
                return n;
            }
            n += got.len();
            let done = got
                .into_iter()
                .map(|d| Completion {
                    tag: d.tag,
                    reply: None,
                })
                .collect();
            c.settle(done).await.unwrap();
            tokio::task::yield_now().await;
        }
    };
    let (na, nb) = tokio::join!(drain(a), drain(b));
    assert_eq!(na + nb, N, "every message exactly once");
    assert!(na >= N / 5 && nb >= N / 5, "unfair split: {na} / {nb}");
}

/// An inbox returns at most `max` replies per receive, in order, and waits
/// no longer than asked when empty.
pub async fn inbox_batches_in_order(broker: &dyn RpcBackend) {
    let svc = service("inbox");
    let mut inbox = broker.open_inbox().await.unwrap();
    assert!(
        inbox
            .recv(10, Duration::from_millis(20))
            .await
            .unwrap()
            .is_empty()
    );
    for _ in 0..3 {
        broker.publish(&svc, request(&svc, None)).await.unwrap();
    }
    let c = broker.consumer(&svc, short()).await.unwrap();
    let got = c.claim(3, Duration::from_secs(1)).await.unwrap();
    let done = got
        .iter()
        .enumerate()
        .map(|(i, d)| Completion {
            tag: d.tag.clone(),
            reply: Some((inbox.address().to_owned(), Bytes::from(format!("r{i}")))),
        })
        .collect();
    assert_eq!(c.settle(done).await.unwrap(), 3);
    let first = inbox.recv(2, Duration::from_secs(1)).await.unwrap();
    let second = inbox.recv(2, Duration::from_secs(1)).await.unwrap();
    assert_eq!(first, vec![Bytes::from("r0"), Bytes::from("r1")]);
    assert_eq!(second, vec![Bytes::from("r2")]);
}

/// Names that cannot be used in keys are refused with a clear error.
pub async fn bad_names_are_refused(broker: &dyn RpcBackend) {
    for bad in ["", "has space", "brace{", "colon:x"] {
        let err = broker
            .publish(bad, Bytes::from_static(b"{}"))
            .await
            .unwrap_err();
        assert!(matches!(err, BrokerError::InvalidName(_)), "{bad:?}: {err}");
        assert!(broker.consumer(bad, short()).await.is_err());
    }
}

/// Generates one `#[tokio::test]` per conformance check. `$make` is an
/// expression evaluating to a future of `(guard, broker)`: the guard (say, a
/// Redis server process) lives as long as the check runs.
#[macro_export]
macro_rules! rpc_tests {
    ($make:expr) => {
        $crate::rpc_tests!(@each $make;
            publish_claim_reply_ack, claim_wakes_on_publish, claims_are_bounded_and_ordered,
            lapsed_lease_redelivers_with_next_attempt, stale_ack_is_refused,
            a_later_epoch_fences_the_earlier,
            renewal_keeps_the_lease, exhausted_messages_are_dead_lettered,
            garbage_is_delivered_and_dead_letterable, release_gives_back_at_once,
            close_gives_back_held, competing_consumers_share, inbox_batches_in_order,
            bad_names_are_refused);
    };
    (@each $make:expr; $($check:ident),* $(,)?) => {
        mod rpc_conformance {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let (_guard, broker) = $make.await;
                    $crate::rpc::$check(&broker).await;
                }
            )*
        }
    };
}
