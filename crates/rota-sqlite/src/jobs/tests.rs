//! Tests of what the conformance suite does not reach: the bookkeeping
//! agrees with the jobs, wake-ups without polling, other processes'
//! writes, fairness over many partitions, and a throughput measure.

use std::time::Duration;

use rota_core::jobs::{
    Attempt, AttemptOutcome, Job, JobConsumer, JobConsumerOptions, JobId, JobQuery, JobState,
    JobStore, NewJob, Next, QueuePolicy, Retention, Settle,
};
use rota_core::time::now_ms;
use rusqlite::{Connection, params_from_iter};
use tokio::time::Instant;

use crate::{SqliteBroker, SqliteOptions};

fn job(queue: &str, tenant: &str) -> NewJob {
    NewJob::new(queue, tenant, "k", &serde_json::json!({})).expect("encodes")
}

fn opts() -> JobConsumerOptions {
    JobConsumerOptions::default().lease(Duration::from_secs(60))
}

fn succeeded(job: &Job, worker: &dyn JobConsumer) -> Settle {
    let now = now_ms();
    Settle::new(
        job.id,
        Attempt {
            attempt: job.attempt,
            worker: worker.id().to_owned(),
            started_at_ms: now,
            finished_at_ms: now,
            outcome: AttemptOutcome::Succeeded,
        },
        Next::Finish(JobState::Succeeded),
    )
}

async fn open(dir: &tempfile::TempDir, poll: Duration) -> SqliteBroker {
    let options = SqliteOptions::new(dir.path().join("rota.db")).poll_interval(poll);
    SqliteBroker::open_with(options).await.expect("opens")
}

/// Fails unless the queue's counters agree with the jobs they count, and
/// exactly the running jobs are held.
async fn assert_bookkeeping(broker: &SqliteBroker) {
    let wrong: Vec<String> = broker
        .with(|c: &mut Connection| {
            let sql = "
                SELECT 'queue ' || q.queue || ': ' || q.finished || ' counted finished'
                FROM rota_job_queues q
                WHERE q.finished != (SELECT count(*) FROM rota_jobs j WHERE j.queue = q.queue
                                     AND j.done_seq IS NOT NULL)
                UNION ALL
                SELECT 'job ' || seq || ' running without a consumer' FROM rota_jobs
                WHERE (state = 2) != (consumer IS NOT NULL)";
            let mut stmt = c.prepare(sql)?;
            let rows = stmt
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
        .await
        .unwrap();
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// The statements a claim or a settlement runs per job seek one entry of an
/// index, in its order: none scans the queue's partitions, its tenants or
/// its jobs, nor sorts them, so a job costs the same whatever their number.
#[tokio::test]
async fn per_job_statements_seek_one_index_entry() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(&dir, Duration::from_millis(50)).await;
    let expected = [
        (
            super::claim::NEXT_PARTITION,
            "SEARCH rota_jobs USING COVERING INDEX rota_jobs_queued (queue=? AND partition>?)",
        ),
        (
            super::claim::NEXT_TENANT,
            "SEARCH rota_jobs USING COVERING INDEX rota_jobs_queued \
             (queue=? AND partition=? AND tenant>?)",
        ),
        (
            super::claim::TENANT_HEAD,
            "SEARCH rota_jobs USING COVERING INDEX rota_jobs_queued \
             (queue=? AND partition=? AND tenant=?)",
        ),
        (
            super::claim::RUNNING_OF,
            "SEARCH rota_jobs USING COVERING INDEX rota_jobs_running \
             (queue=? AND tenant=? AND consumer>?)",
        ),
        (
            super::claim::HAS_QUEUED,
            "SEARCH rota_jobs USING COVERING INDEX rota_jobs_queued (queue=? AND partition=?)",
        ),
        (
            super::claim::FRESH,
            "SEARCH rota_job_fresh USING PRIMARY KEY (queue=?)",
        ),
        (
            super::claim::CURSOR,
            "SEARCH rota_job_rings USING PRIMARY KEY (queue=?)",
        ),
        (
            super::settle::HELD_BY,
            "SEARCH rota_jobs USING INDEX rota_jobs_queue_id (queue=? AND id=?)",
        ),
    ];
    let plans: Vec<(&str, Vec<String>)> = broker
        .with(move |c: &mut Connection| {
            let mut plans = Vec::new();
            for (sql, _) in expected {
                let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
                let nulls = vec![rusqlite::types::Null; stmt.parameter_count()];
                let details = stmt
                    .query_map(params_from_iter(nulls), |r| r.get(3))?
                    .collect::<rusqlite::Result<Vec<String>>>()?;
                plans.push((sql, details));
            }
            Ok(plans)
        })
        .await
        .unwrap();
    for ((sql, details), (_, plan)) in plans.into_iter().zip(expected) {
        assert_eq!(details, [plan], "the plan of {sql}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_counters_agree_with_the_jobs_through_every_transition() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(&dir, Duration::from_millis(50)).await;
    let mut batch = Vec::new();
    for n in 0..60 {
        let tenant = format!("t{}", n % 7);
        let mut j = job("q", &tenant).priority(n % 3);
        if n % 5 == 0 {
            j = j.partition("shared");
        }
        if n % 11 == 0 {
            j = j.after(Duration::from_millis(100));
        }
        batch.push(j);
    }
    let ids: Vec<JobId> = broker
        .enqueue(batch)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    assert_bookkeeping(&broker).await;
    use rota_core::jobs::CancelOutcome::Cancelled;
    assert_eq!(broker.cancel("q", ids[1]).await.unwrap(), Cancelled);
    assert_eq!(
        broker.cancel("q", ids[11]).await.unwrap(),
        Cancelled,
        "a scheduled one"
    );
    let a = broker
        .job_consumer("q", opts().tenant_cap(3))
        .await
        .unwrap();
    let short = opts().lease(Duration::from_millis(100));
    let b = broker.job_consumer("q", short).await.unwrap();
    let got = a.claim(20, Duration::ZERO).await.unwrap();
    assert!(!got.is_empty());
    assert_bookkeeping(&broker).await;
    let held_by_b = b.claim(5, Duration::ZERO).await.unwrap();
    assert_bookkeeping(&broker).await;

    let mut done = Vec::new();
    for (n, j) in got.iter().enumerate() {
        let mut s = succeeded(j, &*a);
        match n % 4 {
            0 => {}
            1 => s.next = Next::RetryAt(now_ms()),
            2 => s.next = Next::RetryAt(now_ms() + 50),
            _ => s.next = Next::Dead("no".into()),
        }
        done.push(s);
    }
    let (settle_now, release) = done.split_at(done.len() - 2);
    a.settle(settle_now.to_vec()).await.unwrap();
    a.release(release.iter().map(|s| s.id).collect(), true)
        .await
        .unwrap();
    assert_bookkeeping(&broker).await;

    tokio::time::sleep(Duration::from_millis(250)).await;
    let reaper = broker.job_consumer("q", opts()).await.unwrap();
    let stats = reaper.reap().await.unwrap();
    assert_eq!(stats.requeued, held_by_b.len());
    assert_bookkeeping(&broker).await;
    for dead in broker
        .list_jobs("q", &JobQuery::new(JobState::Dead).limit(1000))
        .await
        .unwrap()
        .jobs
    {
        assert!(broker.requeue_dead_job("q", dead.job.id).await.unwrap());
    }
    assert_bookkeeping(&broker).await;

    // Drain everything, closing one consumer half way.
    let mut seen = 0;
    let mut a_open = true;
    while seen < 200 {
        let got = reaper.claim(7, Duration::from_millis(200)).await.unwrap();
        if got.is_empty() {
            break;
        }
        seen += got.len();
        reaper
            .settle(got.iter().map(|j| succeeded(j, &*reaper)).collect())
            .await
            .unwrap();
        if a_open && !a.claim(3, Duration::ZERO).await.unwrap().is_empty() {
            a.close().await.unwrap();
            a_open = false;
        }
        assert_bookkeeping(&broker).await;
    }
    let counts = broker.counts("q").await.unwrap().total;
    assert_eq!((counts.queued, counts.running, counts.scheduled), (0, 0, 0));
    assert_eq!(counts.succeeded + counts.cancelled, 60);
}

/// A file written before the ring was read from the jobs' index still has
/// the per-partition and per-tenant counters: opening it drops them, and
/// its queued and running jobs carry on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_with_the_old_counters_opens_and_carries_on() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(&dir, Duration::from_millis(50)).await;
    broker
        .enqueue(vec![job("q", "a"), job("q", "a"), job("q", "b")])
        .await
        .unwrap();
    let c = broker.job_consumer("q", opts()).await.unwrap();
    let running = c.claim(1, Duration::ZERO).await.unwrap();
    drop(broker);
    let old = Connection::open(dir.path().join("rota.db")).unwrap();
    old.execute_batch(
        "DROP INDEX rota_jobs_running;
         CREATE INDEX rota_jobs_held ON rota_jobs (consumer) WHERE consumer IS NOT NULL;
         CREATE TABLE rota_job_partitions (queue TEXT NOT NULL, partition TEXT NOT NULL,
             queued INTEGER NOT NULL DEFAULT 0, turn INTEGER NOT NULL DEFAULT 0,
             PRIMARY KEY (queue, partition)) WITHOUT ROWID;
         CREATE TABLE rota_job_tenants (queue TEXT NOT NULL, tenant TEXT NOT NULL,
             running INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (queue, tenant)) WITHOUT ROWID;",
    )
    .unwrap();
    drop(old);

    let broker = open(&dir, Duration::from_millis(50)).await;
    let left: Vec<String> = broker
        .with(|c: &mut Connection| {
            let mut stmt = c.prepare(
                "SELECT name FROM sqlite_master WHERE name IN
                 ('rota_job_partitions', 'rota_job_tenants', 'rota_jobs_held')",
            )?;
            let names = stmt
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            Ok(names)
        })
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
    let capped = broker
        .job_consumer("q", opts().tenant_cap(1))
        .await
        .unwrap();
    let got = capped.claim(10, Duration::ZERO).await.unwrap();
    let tenants: Vec<&str> = got.iter().map(|j| j.tenant.as_str()).collect();
    let other = if running[0].tenant == "a" { "b" } else { "a" };
    assert_eq!(
        tenants,
        [other],
        "the running job counts against its tenant's cap"
    );
    assert_eq!(broker.counts("q").await.unwrap().total.running, 2);
    assert_bookkeeping(&broker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_claim_wakes_on_enqueue_and_when_due_without_polling() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(&dir, Duration::from_secs(60)).await;
    let c = broker.job_consumer("q", opts()).await.unwrap();
    let start = Instant::now();
    let (got, ()) = tokio::join!(c.claim(1, Duration::from_secs(30)), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        broker.enqueue(vec![job("q", "a")]).await.unwrap();
    });
    assert_eq!(got.unwrap().len(), 1);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );

    let due = now_ms() + 300;
    broker.enqueue(vec![job("q", "a").at(due)]).await.unwrap();
    let start = Instant::now();
    let got = c.claim(1, Duration::from_secs(30)).await.unwrap();
    assert_eq!(got.len(), 1);
    assert!(now_ms() >= due);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );

    // An empty claim returns when its wait ends.
    let start = Instant::now();
    assert!(
        c.claim(1, Duration::from_millis(200))
            .await
            .unwrap()
            .is_empty()
    );
    let waited = start.elapsed();
    assert!(waited >= Duration::from_millis(200) && waited < Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_handle_on_the_file_sees_jobs_by_polling() {
    let dir = tempfile::tempdir().unwrap();
    let worker_side = open(&dir, Duration::from_millis(20)).await;
    let enqueuer = open(&dir, Duration::from_millis(20)).await;
    let c = worker_side.job_consumer("q", opts()).await.unwrap();
    let start = Instant::now();
    let (got, ()) = tokio::join!(c.claim(1, Duration::from_secs(30)), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        enqueuer.enqueue(vec![job("q", "a")]).await.unwrap();
    });
    assert_eq!(got.unwrap().len(), 1);
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_and_leases_outlive_the_handle() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(&dir, Duration::from_millis(50)).await;
    let ids: Vec<JobId> = broker
        .enqueue(vec![job("q", "a"), job("q", "b")])
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    let c = broker.job_consumer("q", opts()).await.unwrap();
    let held = c.claim(1, Duration::ZERO).await.unwrap();
    drop(c);
    drop(broker);

    let broker = open(&dir, Duration::from_millis(50)).await;
    let other = broker.job_consumer("q", opts()).await.unwrap();
    assert_eq!(other.reap().await.unwrap().requeued, 0, "the lease holds");
    let rest = other.claim(10, Duration::ZERO).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert_ne!(rest[0].id, held[0].id);
    let record = broker.job("q", held[0].id).await.unwrap().unwrap();
    assert_eq!(record.state, JobState::Running);
    assert!(ids.contains(&held[0].id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_keeps_the_file_bounded_and_frees_keys() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(&dir, Duration::from_millis(50)).await;
    let retention = Retention::default().max_finished(10);
    let policy = QueuePolicy::default().retention(retention);
    broker.set_policy("q", policy).await.unwrap();
    let c = broker.job_consumer("q", opts()).await.unwrap();
    for i in 0..200 {
        let tenant = format!("t{}", i % 7);
        broker
            .enqueue(vec![job("q", &tenant).idempotency_key(format!("k{i}"))])
            .await
            .unwrap();
        let got = c.claim(1, Duration::ZERO).await.unwrap();
        c.settle(vec![succeeded(&got[0], &*c)]).await.unwrap();
    }
    let rows: i64 = broker
        .with(|conn: &mut Connection| {
            Ok(conn.query_row("SELECT count(*) FROM rota_jobs", [], |r| r.get(0))?)
        })
        .await
        .unwrap();
    assert_eq!(rows, 10);
    let again = broker
        .enqueue(vec![job("q", "t0").idempotency_key("k0")])
        .await
        .unwrap();
    assert!(!again[0].duplicate);
    assert_bookkeeping(&broker).await;

    // And by age.
    let retention = Retention::default().max_age(Duration::from_millis(20));
    let policy = QueuePolicy::default().retention(retention);
    broker.set_policy("aged", policy).await.unwrap();
    let c = broker.job_consumer("aged", opts()).await.unwrap();
    let old = broker.enqueue(vec![job("aged", "a")]).await.unwrap()[0].id;
    let got = c.claim(1, Duration::ZERO).await.unwrap();
    c.settle(vec![succeeded(&got[0], &*c)]).await.unwrap();
    assert!(broker.job("aged", old).await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(50)).await;
    broker.enqueue(vec![job("aged", "a")]).await.unwrap();
    let got = c.claim(1, Duration::ZERO).await.unwrap();
    c.settle(vec![succeeded(&got[0], &*c)]).await.unwrap();
    assert!(broker.job("aged", old).await.unwrap().is_none(), "expired");
    assert!(broker.job("aged", got[0].id).await.unwrap().is_some());
    assert_bookkeeping(&broker).await;
}

/// Enqueue in bulk, claim and settle in batches; prints jobs per second.
/// `cargo test --release -p rota-sqlite throughput -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn throughput() {
    const JOBS: usize = 50_000;
    const BATCH: usize = 500;
    let dir = tempfile::tempdir().unwrap();
    let broker = open(&dir, Duration::from_millis(50)).await;
    let start = Instant::now();
    for chunk in 0..JOBS / 1000 {
        let batch = (0..1000)
            .map(|n| {
                let tenant = format!("t{}", (chunk * 1000 + n) % 100);
                NewJob::new("bench", &tenant, "k", &serde_json::json!({"n": n})).unwrap()
            })
            .collect();
        broker.enqueue(batch).await.unwrap();
    }
    let enqueued = start.elapsed();
    let c = broker.job_consumer("bench", opts()).await.unwrap();
    let mut done = 0;
    while done < JOBS {
        let got = c.claim(BATCH, Duration::ZERO).await.unwrap();
        assert!(!got.is_empty());
        done += got.len();
        c.settle(got.iter().map(|j| succeeded(j, &*c)).collect())
            .await
            .unwrap();
    }
    let total = start.elapsed();
    let processed = total - enqueued;
    println!(
        "{JOBS} jobs: enqueue {:.0}/s, claim+settle {:.0}/s, end to end {:.0}/s",
        JOBS as f64 / enqueued.as_secs_f64(),
        JOBS as f64 / processed.as_secs_f64(),
        JOBS as f64 / total.as_secs_f64(),
    );
    assert_bookkeeping(&broker).await;
}
