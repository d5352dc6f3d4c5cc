//! The job worker on the in-memory store: outcomes, retries, timeouts,
//! panics, dead-letters, bounded concurrency and draining.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use rota::jobs::{
    AttemptOutcome, JobContext, JobError, JobState, Jobs, KindOptions, NewJob, QueueOptions,
    RetryPolicy, Worker, WorkerOptions,
};
use rota_core::jobs::{JobQuery, JobStore};
use rota_memory::MemoryBroker;
use serde::{Deserialize, Serialize};

const WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Serialize, Deserialize)]
struct Task {
    n: u32,
}

fn job(kind: &str, n: u32) -> NewJob {
    NewJob::new("work", "acme", kind, &Task { n }).unwrap()
}

fn fast_queue() -> QueueOptions {
    QueueOptions::default().claim_wait(Duration::from_millis(50))
}

fn quick_retries(max: u32) -> KindOptions {
    KindOptions::default().retry(
        RetryPolicy::default()
            .max_attempts(max)
            .backoff(Duration::from_millis(20), Duration::from_millis(50)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_succeeds_and_its_outcome_and_record_say_so() {
    let store = MemoryBroker::new();
    let worker = Worker::new(store.clone())
        .queue("work", fast_queue())
        .handle("double", |ctx: JobContext, t: Task| async move {
            assert_eq!(ctx.tenant(), "acme");
            Ok::<_, JobError>(t.n * 2)
        })
        .spawn();
    let jobs = Jobs::new(store.clone());
    let outcome = jobs.run(job("double", 21), WAIT).await.unwrap();
    assert_eq!(outcome.state, JobState::Succeeded);
    assert_eq!(outcome.result, Some(serde_json::json!(42)));
    assert_eq!(outcome.attempts, 1);
    let record = jobs
        .job("work", outcome.id)
        .await
        .unwrap()
        .expect("retained");
    assert_eq!(record.state, JobState::Succeeded);
    assert_eq!(record.attempts.len(), 1);
    assert_eq!(record.attempts[0].outcome, AttemptOutcome::Succeeded);
    worker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kinds_without_a_handler_of_their_own_go_to_the_catch_all() {
    let store = MemoryBroker::new();
    let worker = Worker::new(store.clone())
        .queue("work", fast_queue())
        .handle("double", |_ctx: JobContext, t: Task| async move {
            Ok::<_, JobError>(t.n * 2)
        })
        .handle_any(
            KindOptions::default(),
            |ctx: JobContext, raw: serde_json::Value| async move {
                Ok::<_, JobError>(format!("{} got {raw}", ctx.kind()))
            },
        )
        .spawn();
    let jobs = Jobs::new(store.clone());
    let own = jobs.run(job("double", 4), WAIT).await.unwrap();
    assert_eq!(own.result, Some(serde_json::json!(8)));
    let other = jobs.run(job("report.daily", 5), WAIT).await.unwrap();
    assert_eq!(other.state, JobState::Succeeded);
    assert_eq!(
        other.result,
        Some(serde_json::json!("report.daily got {\"n\":5}"))
    );
    worker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retryable_failures_are_retried_with_backoff_until_success() {
    let store = MemoryBroker::new();
    let calls = Arc::new(AtomicU32::new(0));
    let seen = Arc::clone(&calls);
    let worker = Worker::new(store.clone())
        .queue("work", fast_queue())
        .handle_with(
            "flaky",
            quick_retries(5),
            move |ctx: JobContext, _t: Task| {
                let seen = Arc::clone(&seen);
                async move {
                    seen.fetch_add(1, Ordering::SeqCst);
                    if ctx.attempt() < 3 {
                        return Err(JobError::retry(format!("try {} failed", ctx.attempt())));
                    }
                    Ok(ctx.attempt())
                }
            },
        )
        .spawn();
    let jobs = Jobs::new(store.clone());
    let outcome = jobs.run(job("flaky", 1), WAIT).await.unwrap();
    assert_eq!(outcome.state, JobState::Succeeded);
    assert_eq!(outcome.result, Some(serde_json::json!(3)));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let record = jobs.job("work", outcome.id).await.unwrap().unwrap();
    let errors: Vec<_> = record.attempts.iter().map(|a| a.outcome.clone()).collect();
    assert_eq!(
        errors,
        vec![
            AttemptOutcome::Failed {
                error: "try 1 failed".into(),
                retryable: true
            },
            AttemptOutcome::Failed {
                error: "try 2 failed".into(),
                retryable: true
            },
            AttemptOutcome::Succeeded,
        ]
    );
    worker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_jobs_are_dead_lettered_with_their_history_and_can_be_requeued() {
    let store = MemoryBroker::new();
    let fail = Arc::new(AtomicBool::new(true));
    let failing = Arc::clone(&fail);
    let worker = Worker::new(store.clone())
        .queue("work", fast_queue())
        .handle_with(
            "doomed",
            quick_retries(3),
            move |_: JobContext, _t: Task| {
                let failing = Arc::clone(&failing);
                async move {
                    if failing.load(Ordering::SeqCst) {
                        Err(JobError::retry("upstream down"))
                    } else {
                        Ok("recovered")
                    }
                }
            },
        )
        .spawn();
    let jobs = Jobs::new(store.clone());
    let outcome = jobs.run(job("doomed", 1), WAIT).await.unwrap();
    assert_eq!(outcome.state, JobState::Dead);
    assert_eq!(outcome.attempts, 3);
    let error = outcome.error.unwrap();
    assert!(
        error.contains("failed 3 attempts") && error.contains("upstream down"),
        "{error}"
    );

    let dead = store
        .list_jobs("work", &JobQuery::new(JobState::Dead))
        .await
        .unwrap()
        .jobs;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attempts.len(), 3);

    // Fixed upstream: re-enqueue the dead job, and it succeeds.
    fail.store(false, Ordering::SeqCst);
    assert!(store.requeue_dead_job("work", outcome.id).await.unwrap());
    let until = tokio::time::Instant::now() + WAIT;
    loop {
        let record = store.job("work", outcome.id).await.unwrap().unwrap();
        if record.state == JobState::Succeeded {
            break;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "stuck in {:?}",
            record.state
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        store
            .list_jobs("work", &JobQuery::new(JobState::Dead))
            .await
            .unwrap()
            .jobs
            .is_empty()
    );
    worker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fatal_errors_bad_payloads_and_unknown_kinds_are_not_retried() {
    let store = MemoryBroker::new();
    let worker = Worker::new(store.clone())
        .queue("work", fast_queue())
        .handle_with(
            "strict",
            quick_retries(5),
            |_: JobContext, t: Task| async move {
                if t.n == 0 {
                    return Err(JobError::fatal("n must not be 0"));
                }
                Ok(t.n)
            },
        )
        .spawn();
    let jobs = Jobs::new(store.clone());

    let outcome = jobs.run(job("strict", 0), WAIT).await.unwrap();
    assert_eq!(outcome.state, JobState::Failed);
    assert_eq!(outcome.attempts, 1);
    assert_eq!(outcome.error.as_deref(), Some("n must not be 0"));

    let wrong = NewJob::new("work", "acme", "strict", &serde_json::json!({"m": "x"})).unwrap();
    let outcome = jobs.run(wrong, WAIT).await.unwrap();
    assert_eq!(outcome.state, JobState::Failed);
    let error = outcome.error.unwrap();
    assert!(
        error.contains("does not match the handler of \"strict\""),
        "{error}"
    );
    assert!(error.contains("missing field `n`"), "{error}");

    let outcome = jobs.run(job("nobody-handles-this", 1), WAIT).await.unwrap();
    assert_eq!(outcome.state, JobState::Dead);
    assert!(outcome.error.unwrap().contains("no handler for job kind"));

    // The worker goes on serving.
    assert_eq!(
        jobs.run(job("strict", 7), WAIT).await.unwrap().state,
        JobState::Succeeded
    );
    worker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_cancel_the_handler_and_panics_are_failures() {
    let store = MemoryBroker::new();
    let cancelled = Arc::new(AtomicBool::new(false));
    let saw = Arc::clone(&cancelled);
    let worker = Worker::new(store.clone())
        .queue("work", fast_queue())
        .handle_with(
            "hang",
            quick_retries(1).timeout(Duration::from_millis(100)),
            move |ctx: JobContext, _t: Task| {
                let saw = Arc::clone(&saw);
                async move {
                    let token = ctx.cancellation().clone();
                    // Observe the cancellation from a task that outlives the handler.
                    tokio::spawn(async move {
                        token.cancelled().await;
                        saw.store(true, Ordering::SeqCst);
                    });
                    std::future::pending::<()>().await;
                    Ok::<_, JobError>(())
                }
            },
        )
        .handle_with(
            "boom",
            quick_retries(2),
            |_: JobContext, _t: Task| async move {
                if true {
                    panic!("kaboom");
                }
                Ok::<_, JobError>(())
            },
        )
        .spawn();
    let jobs = Jobs::new(store.clone());

    let outcome = jobs.run(job("hang", 1), WAIT).await.unwrap();
    assert_eq!(outcome.state, JobState::Dead);
    assert!(outcome.error.unwrap().contains("timed out"));
    let record = jobs.job("work", outcome.id).await.unwrap().unwrap();
    assert_eq!(record.attempts[0].outcome, AttemptOutcome::TimedOut);
    let until = tokio::time::Instant::now() + WAIT;
    while !cancelled.load(Ordering::SeqCst) && tokio::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        cancelled.load(Ordering::SeqCst),
        "the handler's token was not cancelled"
    );

    let outcome = jobs.run(job("boom", 1), WAIT).await.unwrap();
    assert_eq!(outcome.state, JobState::Dead);
    assert_eq!(outcome.attempts, 2);
    assert!(outcome.error.unwrap().contains("panicked: kaboom"));
    worker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_is_bounded_per_queue_and_one_worker_serves_many_queues() {
    let store = MemoryBroker::new();
    let running = Arc::new(AtomicU32::new(0));
    let peak = Arc::new(AtomicU32::new(0));
    let (r, p) = (Arc::clone(&running), Arc::clone(&peak));
    let worker = Worker::new(store.clone())
        .queue("work", fast_queue().concurrency(2))
        .queue("other", fast_queue())
        .handle("slow", move |_: JobContext, _t: Task| {
            let (r, p) = (Arc::clone(&r), Arc::clone(&p));
            async move {
                let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(30)).await;
                r.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, JobError>(())
            }
        })
        .handle("echo", |_: JobContext, t: Task| async move {
            Ok::<_, JobError>(t.n)
        })
        .spawn();
    let jobs = Jobs::new(store.clone());
    let batch: Vec<_> = (0..10).map(|n| job("slow", n)).collect();
    let ids: Vec<_> = jobs
        .enqueue_many(batch)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    let other = NewJob::new("other", "acme", "echo", &Task { n: 5 }).unwrap();
    assert_eq!(
        jobs.run(other, WAIT).await.unwrap().state,
        JobState::Succeeded
    );
    for id in ids {
        let until = tokio::time::Instant::now() + WAIT;
        while store.job("work", id).await.unwrap().unwrap().state != JobState::Succeeded {
            assert!(tokio::time::Instant::now() < until);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    assert_eq!(
        peak.load(Ordering::SeqCst),
        2,
        "the queue's concurrency of 2 was not kept"
    );
    worker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_and_gives_unfinished_jobs_to_another_worker() {
    let store = MemoryBroker::new();
    let started = Arc::new(AtomicU32::new(0));
    let s = Arc::clone(&started);
    let long_lease = fast_queue().lease(Duration::from_secs(60));
    let first = Worker::new(store.clone())
        .queue("work", long_lease.clone())
        .options(WorkerOptions::default().drain_timeout(Duration::from_millis(200)))
        .handle("nap", move |_: JobContext, t: Task| {
            let s = Arc::clone(&s);
            async move {
                s.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(u64::from(t.n))).await;
                Ok::<_, JobError>(())
            }
        })
        .spawn();
    let jobs = Jobs::new(store.clone());
    let short = jobs.enqueue(job("nap", 50)).await.unwrap().id;
    let long = jobs.enqueue(job("nap", 60_000)).await.unwrap().id;
    while started.load(Ordering::SeqCst) < 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.shutdown().await.unwrap();
    assert_eq!(
        store.job("work", short).await.unwrap().unwrap().state,
        JobState::Succeeded
    );
    let record = store.job("work", long).await.unwrap().unwrap();
    assert_eq!(
        record.state,
        JobState::Queued,
        "given back at once, not after the lease"
    );

    let second = Worker::new(store.clone())
        .queue("work", long_lease)
        .handle("nap", |ctx: JobContext, _t: Task| async move {
            Ok::<_, JobError>(ctx.attempt())
        })
        .spawn();
    let until = tokio::time::Instant::now() + WAIT;
    loop {
        let record = store.job("work", long).await.unwrap().unwrap();
        if record.state == JobState::Succeeded {
            assert_eq!(record.result, Some(serde_json::json!(2)));
            break;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "stuck in {:?}",
            record.state
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    second.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_loses_its_lease_cancels_its_handlers_and_another_takes_over() {
    let store = MemoryBroker::new();
    let cancelled = Arc::new(AtomicBool::new(false));
    let first_started = Arc::new(AtomicU32::new(0));
    let (c, s) = (Arc::clone(&cancelled), Arc::clone(&first_started));
    let lease = fast_queue().lease(Duration::from_millis(600));
    let first = Worker::new(store.clone())
        .queue("work", lease.clone())
        .options(WorkerOptions::default().drain_timeout(Duration::from_millis(50)))
        .handle("long", move |ctx: JobContext, _t: Task| {
            let (c, s) = (Arc::clone(&c), Arc::clone(&s));
            async move {
                s.fetch_add(1, Ordering::SeqCst);
                let token = ctx.cancellation().clone();
                tokio::spawn(async move {
                    token.cancelled().await;
                    c.store(true, Ordering::SeqCst);
                });
                std::future::pending::<()>().await;
                Ok::<_, JobError>(0u32)
            }
        })
        .spawn();
    let jobs = Jobs::new(store.clone());
    let id = jobs.enqueue(job("long", 1)).await.unwrap().id;
    while first_started.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The first worker is cut off from the store: its lease lapses there.
    store.expire_job_leases("work");
    let until = tokio::time::Instant::now() + WAIT;
    while !cancelled.load(Ordering::SeqCst) {
        assert!(
            tokio::time::Instant::now() < until,
            "the handler was never cancelled"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The first worker (which registers again and may take the job back)
    // stops; a second one finishes the job.
    first.shutdown().await.unwrap();
    let second = Worker::new(store.clone())
        .queue("work", lease)
        .handle("long", |ctx: JobContext, _t: Task| async move {
            Ok::<_, JobError>(ctx.attempt())
        })
        .spawn();
    loop {
        let record = store.job("work", id).await.unwrap().unwrap();
        if record.state == JobState::Succeeded {
            assert_eq!(record.attempts[0].outcome, AttemptOutcome::Lost);
            assert!(record.attempts.len() >= 2);
            break;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "stuck in {:?}",
            record.state
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    second.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kind_without_its_own_maximum_retries_as_the_queue_policy_says() {
    let store = MemoryBroker::new();
    let jobs = Jobs::new(store.clone());
    jobs.set_policy("work", rota::jobs::QueuePolicy::default().max_attempts(2))
        .await
        .unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let seen = Arc::clone(&calls);
    let retry =
        RetryPolicy::default().backoff(Duration::from_millis(10), Duration::from_millis(20));
    let worker = Worker::new(store.clone())
        .queue("work", fast_queue())
        .handle_with(
            "flaky",
            KindOptions::default().retry(retry),
            move |_ctx: JobContext, _t: Task| {
                let seen = Arc::clone(&seen);
                async move {
                    seen.fetch_add(1, Ordering::SeqCst);
                    Err::<(), _>(JobError::retry("not yet"))
                }
            },
        )
        .spawn();
    let outcome = jobs.run(job("flaky", 1), WAIT).await.unwrap();
    assert_eq!(outcome.state, JobState::Dead);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the queue allows 2 attempts"
    );
    worker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_running_job_stops_its_handler_within_a_renewal() {
    let store = MemoryBroker::new();
    let jobs = Jobs::new(store.clone());
    let (started_tx, started) = tokio::sync::oneshot::channel();
    let started_tx = Arc::new(std::sync::Mutex::new(Some(started_tx)));
    let saw_cancel = Arc::new(AtomicBool::new(false));
    let saw = Arc::clone(&saw_cancel);
    // A lease of 300 ms: renewals, and so the asks for cancellations, every
    // 100 ms.
    let worker = Worker::new(store.clone())
        .queue("work", fast_queue().lease(Duration::from_millis(300)))
        .handle("stubborn", move |ctx: JobContext, _t: Task| {
            // Work outside the handler's future watches the token.
            let (token, saw) = (ctx.cancellation().clone(), Arc::clone(&saw));
            tokio::spawn(async move {
                token.cancelled().await;
                saw.store(true, Ordering::SeqCst);
            });
            if let Some(tx) = started_tx.lock().unwrap().take() {
                let _ = tx.send(ctx.id());
            }
            std::future::pending::<Result<(), JobError>>()
        })
        .spawn();
    let waiting = {
        let jobs = jobs.clone();
        tokio::spawn(async move { jobs.run(job("stubborn", 1), WAIT).await })
    };
    let id = started.await.unwrap();
    assert_eq!(
        jobs.cancel("work", id).await.unwrap(),
        rota::jobs::CancelOutcome::Requested
    );
    let outcome = waiting.await.unwrap().unwrap();
    assert_eq!(outcome.state, JobState::Cancelled);
    assert_eq!(outcome.attempts, 1);
    let record = jobs.job("work", id).await.unwrap().unwrap();
    assert_eq!(record.attempts.len(), 1);
    assert_eq!(record.attempts[0].outcome, AttemptOutcome::Cancelled);
    tokio::time::timeout(WAIT, async {
        while !saw_cancel.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the handler's cancellation token fired");
    worker.shutdown().await.unwrap();
}
