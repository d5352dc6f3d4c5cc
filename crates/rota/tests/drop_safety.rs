//! Dropping a server's or a worker's future — the losing branch of a
//! `select!` against `ctrl_c()`, say — must not leave its lease renewed
//! forever: what it held is delivered again once the lease lapses.
//!
//! Regression: the lease keepers ran in tasks of their own and outlived the
//! dropped future, renewing forever, so the work it held was never
//! redelivered.

#![allow(missing_docs)] // test contracts

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rota::jobs::{JobContext, JobError, JobState, Jobs, NewJob, QueueOptions, Worker};
use rota::{Client, ServeOptions};
use rota_conformance::support::await_state;
use rota_memory::MemoryBroker;
use tokio::sync::Notify;

#[rota::contract]
pub trait Work {
    async fn run(&self) -> u32;
}

/// Signals when a handler starts, then never finishes.
struct Stuck(Arc<Notify>);

impl Work for Stuck {
    async fn run(&self) -> u32 {
        self.0.notify_one();
        std::future::pending().await
    }
}

/// Answers with the attempt it served.
struct Answers(Arc<AtomicU32>);

impl Work for Answers {
    async fn run(&self) -> u32 {
        self.0.fetch_add(1, Ordering::SeqCst);
        rota::context::current().expect("in a handler").attempt
    }
}

const LEASE: Duration = Duration::from_secs(10);

#[tokio::test(start_paused = true)]
async fn a_dropped_serve_future_lets_its_calls_be_served_again() {
    let broker = MemoryBroker::new();
    let client = Client::new(broker.clone());
    let work = WorkClient::new(&client, "work").with_timeout(Duration::from_secs(600));
    let call = tokio::spawn(async move { work.run().await });

    let started = Arc::new(Notify::new());
    let serving = WorkServer::new(Stuck(Arc::clone(&started))).serve(
        broker.clone(),
        "work",
        ServeOptions::default().lease(LEASE),
    );
    tokio::select! {
        served = serving => panic!("the server ended: {served:?}"),
        () = started.notified() => {} // the serve future is dropped here
    }

    let runs = Arc::new(AtomicU32::new(0));
    let survivor = WorkServer::new(Answers(Arc::clone(&runs))).spawn(
        broker.clone(),
        "work",
        ServeOptions::default().lease(LEASE),
    );
    let attempt = call
        .await
        .unwrap()
        .expect("served again after the lease lapsed");
    assert_eq!(attempt, 2);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    survivor.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_dropped_worker_future_lets_its_jobs_run_again() {
    let store = MemoryBroker::new();
    let jobs = Jobs::new(store.clone());
    let id = jobs
        .enqueue(NewJob::new("q", "acme", "stuck", &serde_json::json!({})).unwrap())
        .await
        .unwrap()
        .id;
    let started = Arc::new(Notify::new());
    let running = {
        let started = Arc::clone(&started);
        Worker::new(store.clone())
            .queue("q", QueueOptions::default().lease(LEASE))
            .handle("stuck", move |_: JobContext, _: serde_json::Value| {
                let started = Arc::clone(&started);
                async move {
                    started.notify_one();
                    std::future::pending::<Result<(), JobError>>().await
                }
            })
            .run()
    };
    tokio::select! {
        ran = running => panic!("the worker ended: {ran:?}"),
        () = started.notified() => {} // the run future is dropped here
    }

    let survivor = Worker::new(store.clone())
        .queue("q", QueueOptions::default().lease(LEASE))
        .handle(
            "stuck",
            |ctx: JobContext, _: serde_json::Value| async move { Ok::<_, JobError>(ctx.attempt()) },
        )
        .spawn();
    let record = await_state(
        &store,
        "q",
        &[id],
        JobState::Succeeded,
        Duration::from_secs(600),
    )
    .await;
    assert_eq!(record[0].job.attempt, 2);
    survivor.shutdown().await.unwrap();
}

/// A dropped scheduler handle stops the scheduler: its shards are given
/// back at once, not held (and renewed) by a scheduler no one can stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_scheduler_handle_gives_its_shards_back() {
    use rota::schedules::{Scheduler, SchedulerOptions};
    use rota_core::schedules::ScheduleStore;
    let store = MemoryBroker::new();
    let handle = Scheduler::new(store.clone())
        .options(SchedulerOptions::default().lease(LEASE))
        .spawn();
    let held = |owners: &[rota_core::schedules::ShardOwner]| {
        owners.iter().filter(|o| o.holder.is_some()).count()
    };
    for _ in 0..200 {
        if held(&store.shard_owners().await.unwrap()) == store.shards() as usize {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        held(&store.shard_owners().await.unwrap()),
        store.shards() as usize
    );
    drop(handle);
    for _ in 0..200 {
        if held(&store.shard_owners().await.unwrap()) == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "still held long after the handle was dropped (the lease is {LEASE:?}): {:?}",
        store.shard_owners().await.unwrap()
    );
}
