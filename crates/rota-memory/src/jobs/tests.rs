//! Unit tests of the in-memory job store under paused time.

use std::time::Duration;

use rota_core::ReapStats;
use rota_core::jobs::{Attempt, AttemptOutcome, Next, Retention, Settle};
use rota_core::time::now_ms;

use super::*;

const LEASE: Duration = Duration::from_secs(10);

fn job(queue: &str, tenant: &str) -> NewJob {
    NewJob::new(queue, tenant, "k", &serde_json::json!({})).expect("encodes")
}

fn opts() -> JobConsumerOptions {
    JobConsumerOptions::default().lease(LEASE)
}

fn succeeded(job: &Job, worker: &str) -> Settle {
    Settle::new(
        job.id,
        Attempt {
            attempt: job.attempt,
            worker: worker.into(),
            started_at_ms: now_ms(),
            finished_at_ms: now_ms(),
            outcome: AttemptOutcome::Succeeded,
        },
        Next::Finish(JobState::Succeeded),
    )
}

#[tokio::test(start_paused = true)]
async fn a_waiting_claim_wakes_on_enqueue_not_at_the_end_of_its_wait() {
    let broker = MemoryBroker::new();
    let c = broker.job_consumer("q", opts()).await.unwrap();
    let start = Instant::now();
    let (got, ()) = tokio::join!(c.claim(1, Duration::from_secs(60)), async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        broker.enqueue(vec![job("q", "a")]).await.unwrap();
    });
    assert_eq!(got.unwrap().len(), 1);
    assert_eq!(start.elapsed(), Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn an_empty_claim_returns_when_its_wait_ends() {
    let broker = MemoryBroker::new();
    let c = broker.job_consumer("q", opts()).await.unwrap();
    let start = Instant::now();
    assert!(c.claim(5, Duration::from_secs(3)).await.unwrap().is_empty());
    assert_eq!(start.elapsed(), Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn a_lapsed_lease_is_fenced_and_its_jobs_reaped() {
    let broker = MemoryBroker::new();
    broker.enqueue(vec![job("q", "a")]).await.unwrap();
    let a = broker.job_consumer("q", opts()).await.unwrap();
    let got = a.claim(1, Duration::ZERO).await.unwrap();
    tokio::time::advance(LEASE / 2).await;
    a.renew().await.unwrap();
    tokio::time::advance(LEASE / 2).await;
    let b = broker.job_consumer("q", opts()).await.unwrap();
    assert_eq!(b.reap().await.unwrap(), ReapStats::default(), "renewed");
    tokio::time::advance(LEASE).await;
    assert_eq!(a.renew().await, Err(BrokerError::LeaseLost));
    assert_eq!(
        a.settle(vec![succeeded(&got[0], a.id())]).await,
        Err(BrokerError::LeaseLost)
    );
    assert_eq!(
        a.claim(1, Duration::ZERO).await,
        Err(BrokerError::LeaseLost)
    );
    let b = broker.job_consumer("q", opts()).await.unwrap();
    assert_eq!(b.reap().await.unwrap().requeued, 1);
    let again = b.claim(1, Duration::ZERO).await.unwrap();
    assert_eq!(again[0].attempt, 2);
    assert_eq!(b.settle(vec![succeeded(&again[0], b.id())]).await, Ok(1));
}

#[tokio::test(start_paused = true)]
async fn expiring_job_leases_fences_their_holders() {
    let broker = MemoryBroker::new();
    broker.enqueue(vec![job("q", "a")]).await.unwrap();
    let a = broker.job_consumer("q", opts()).await.unwrap();
    let got = a.claim(1, Duration::ZERO).await.unwrap();
    broker.expire_job_leases("q");
    assert_eq!(
        a.settle(vec![succeeded(&got[0], a.id())]).await,
        Err(BrokerError::LeaseLost)
    );
}

#[tokio::test]
async fn memory_stays_bounded_by_retention() {
    let broker = MemoryBroker::new();
    let retention = Retention::default().max_finished(10);
    let policy = QueuePolicy::default().retention(retention);
    broker.set_policy("q", policy).await.unwrap();
    let c = broker.job_consumer("q", opts()).await.unwrap();
    for i in 0..500 {
        let tenant = format!("t{}", i % 7);
        broker
            .enqueue(vec![job("q", &tenant).idempotency_key(format!("k{i}"))])
            .await
            .unwrap();
        let got = c.claim(1, Duration::ZERO).await.unwrap();
        c.settle(vec![succeeded(&got[0], c.id())]).await.unwrap();
    }
    let state = broker.lock();
    let q = &state.jobs.queues["q"];
    assert_eq!(q.records.len(), 10);
    assert_eq!(q.keys.len(), 10);
    assert_eq!(q.finished.len(), 10);
    assert!(q.partitions.is_empty() && q.running.is_empty());
    assert!(q.holders[c.id()].held.is_empty());
}

#[tokio::test]
async fn finished_records_older_than_max_age_are_deleted_on_settle() {
    let broker = MemoryBroker::new();
    let retention = Retention::default().max_age(Duration::from_millis(20));
    let policy = QueuePolicy::default().retention(retention);
    broker.set_policy("q", policy).await.unwrap();
    let c = broker.job_consumer("q", opts()).await.unwrap();
    let old = broker.enqueue(vec![job("q", "a")]).await.unwrap()[0].id;
    let got = c.claim(1, Duration::ZERO).await.unwrap();
    c.settle(vec![succeeded(&got[0], c.id())]).await.unwrap();
    assert!(broker.job("q", old).await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(50)).await;
    broker.enqueue(vec![job("q", "a")]).await.unwrap();
    let got = c.claim(1, Duration::ZERO).await.unwrap();
    c.settle(vec![succeeded(&got[0], c.id())]).await.unwrap();
    assert!(broker.job("q", old).await.unwrap().is_none(), "expired");
    assert!(broker.job("q", got[0].id).await.unwrap().is_some());
}
