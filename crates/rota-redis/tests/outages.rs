//! Redis restarted under load, and graceful shutdown.

#![allow(missing_docs)] // test contracts

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use rota::{Client, RpcError, ServeOptions};
use tokio::time::Instant;

#[rota::contract]
pub trait Sleepy {
    async fn nap(&self, millis: u64) -> u32;
}

/// Naps, and tells which attempt it served.
struct Napper {
    started: Arc<AtomicU32>,
}

impl Sleepy for Napper {
    async fn nap(&self, millis: u64) -> u32 {
        self.started.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(millis)).await;
        rota::context::current().map_or(0, |c| c.attempt)
    }
}

fn napper() -> (Napper, Arc<AtomicU32>) {
    let started = Arc::new(AtomicU32::new(0));
    (
        Napper {
            started: Arc::clone(&started),
        },
        started,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_under_load_every_call_ends_by_its_deadline() {
    let mut redis = support::RedisServer::start();
    let broker = support::broker(&redis).await;
    let (imp, _) = napper();
    let server = SleepyServer::new(imp).spawn(
        broker.clone(),
        "sleepy",
        ServeOptions::default()
            .lease(Duration::from_secs(2))
            .claim_wait(Duration::from_millis(200)),
    );
    let client = Client::new(broker.clone());
    let timeout = Duration::from_secs(1);
    let restarted = Arc::new(AtomicBool::new(false));
    let ok_after_restart = Arc::new(AtomicU32::new(0));

    let callers: Vec<_> = (0..16)
        .map(|_| {
            let sleepy = SleepyClient::new(&client, "sleepy").with_timeout(timeout);
            let restarted = Arc::clone(&restarted);
            let ok_after = Arc::clone(&ok_after_restart);
            tokio::spawn(async move {
                let (mut ok, mut failed) = (0u32, 0u32);
                let until = Instant::now() + Duration::from_secs(60);
                while ok_after.load(Ordering::SeqCst) < 200 && Instant::now() < until {
                    let was_restarted = restarted.load(Ordering::SeqCst);
                    let started = Instant::now();
                    let result = sleepy.nap(1).await;
                    let took = started.elapsed();
                    // None hangs: an answer or an error by the deadline
                    // (plus scheduling slack on a loaded machine).
                    assert!(
                        took < timeout + Duration::from_secs(2),
                        "a call took {took:?}"
                    );
                    match result {
                        Ok(_) => {
                            ok += 1;
                            if was_restarted {
                                ok_after.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        Err(e) => {
                            assert!(e.is_retryable(), "not retryable: {e}");
                            failed += 1;
                            // Back off a little, as a caller would.
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
                (ok, failed)
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(500)).await;
    redis.restart();
    restarted.store(true, Ordering::SeqCst);

    let mut ok_total = 0;
    for c in callers {
        let (ok, _failed) = c.await.expect("a caller panicked");
        ok_total += ok;
    }
    assert!(
        ok_after_restart.load(Ordering::SeqCst) >= 200,
        "calls did not resume after the restart"
    );
    assert!(ok_total > 200);
    server
        .shutdown()
        .await
        .expect("the server survived the restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_in_flight_calls_and_gives_the_rest_back_at_once() {
    let redis = support::RedisServer::start();
    let broker = support::broker(&redis).await;
    let (imp, started) = napper();
    // A long lease: if the long calls were not given back, they would wait
    // 60 s for it to lapse, far past their deadline.
    let options = ServeOptions::default()
        .concurrency(4)
        .lease(Duration::from_secs(60))
        .drain_timeout(Duration::from_millis(300))
        .claim_wait(Duration::from_millis(100));
    let first = SleepyServer::new(imp).spawn(broker.clone(), "sleepy", options.clone());

    let client = Client::new(broker.clone());
    let sleepy = SleepyClient::new(&client, "sleepy").with_timeout(Duration::from_secs(20));
    let calls: Vec<_> = [100, 100, 60_000, 60_000]
        .into_iter()
        .map(|ms| {
            let sleepy = sleepy.clone();
            tokio::spawn(async move { sleepy.nap(ms).await })
        })
        .collect();
    while started.load(Ordering::SeqCst) < 4 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.shutdown().await.unwrap();

    // The short calls finished during the drain; nothing runs on the first
    // server any more.
    let (second_imp, second_started) = napper();
    let second = SleepyServer::new(Quick(second_imp)).spawn(broker.clone(), "sleepy", options);
    let mut attempts = Vec::new();
    for call in calls {
        let result: Result<u32, RpcError> = call.await.unwrap();
        attempts.push(result.expect("every call is answered"));
    }
    assert_eq!(
        attempts,
        [1, 1, 2, 2],
        "short calls drained, long ones redelivered"
    );
    assert_eq!(second_started.load(Ordering::SeqCst), 2);
    second.shutdown().await.unwrap();
}

/// Serves naps instantly.
struct Quick(Napper);

impl Sleepy for Quick {
    async fn nap(&self, _millis: u64) -> u32 {
        self.0.nap(0).await
    }
}
