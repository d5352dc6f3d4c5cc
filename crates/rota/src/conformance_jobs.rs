//! The conformance suite every [`JobStore`] backend passes.
//!
//! Each check takes a store and uses queue names of its own, so checks can
//! share one store. A backend's tests run them all with
//! [`job_conformance_tests!`](crate::job_conformance_tests):
//!
//! ```ignore
//! rota::job_conformance_tests!(async { ((), my_backend::connect().await) });
//! ```
//!
//! Time-dependent checks use real time — short leases and delays of a few
//! hundred milliseconds — because the Redis and SQLite backends keep time on
//! their own clocks; no check pauses tokio's clock.

use std::time::Duration;

use bytes::Bytes;
use rota_core::jobs::{
    Attempt, AttemptOutcome, Job, JobConsumer, JobConsumerOptions, JobId, JobState, JobStore,
    NewJob, Next, Retention, Settle,
};
use rota_core::time::now_ms;
use rota_core::{BrokerError, CorrelationId};

/// A lease short enough to let lapse in a check.
pub const SHORT_LEASE: Duration = Duration::from_millis(300);

/// How far ahead the scheduling checks schedule jobs.
pub const SHORT_DELAY: Duration = Duration::from_millis(200);

/// How long a claim that should find a job waits for it.
const FOUND: Duration = Duration::from_secs(2);

/// How long a claim that should find nothing waits.
const NOTHING: Duration = Duration::from_millis(50);

fn queue(check: &str) -> String {
    format!("jconf.{check}.{}", CorrelationId::new().as_uuid().simple())
}

/// Options with a lease that lapses within a check.
fn short() -> JobConsumerOptions {
    JobConsumerOptions::default().lease(SHORT_LEASE)
}

/// Options with a lease that outlives any check.
fn opts() -> JobConsumerOptions {
    JobConsumerOptions::default().lease(Duration::from_secs(60))
}

async fn lapse() {
    tokio::time::sleep(SHORT_LEASE * 2).await;
}

fn job(queue: &str, tenant: &str) -> NewJob {
    job_with(queue, tenant, &serde_json::json!({"n": 0}))
}

fn job_with(queue: &str, tenant: &str, payload: &serde_json::Value) -> NewJob {
    NewJob::new(queue, tenant, "conf.kind", payload).expect("encodes")
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn attempt(job: &Job, worker: &dyn JobConsumer, outcome: AttemptOutcome) -> Attempt {
    let now = now_ms();
    Attempt {
        attempt: job.attempt,
        worker: worker.id().to_owned(),
        started_at_ms: now,
        finished_at_ms: now,
        outcome,
    }
}

fn succeeded(job: &Job, worker: &dyn JobConsumer) -> Settle {
    Settle::new(
        job.id,
        attempt(job, worker, AttemptOutcome::Succeeded),
        Next::Finish(JobState::Succeeded),
    )
}

fn failed(job: &Job, worker: &dyn JobConsumer, error: &str, next: Next) -> Settle {
    let outcome = AttemptOutcome::Failed {
        error: error.to_owned(),
        retryable: matches!(next, Next::RetryAt(_)),
    };
    Settle::new(job.id, attempt(job, worker, outcome), next)
}

async fn claim_one(c: &dyn JobConsumer) -> Job {
    let mut got = c.claim(1, FOUND).await.expect("claim");
    assert_eq!(got.len(), 1, "expected one job to claim");
    got.remove(0)
}

async fn state_of(store: &dyn JobStore, id: JobId) -> JobState {
    store
        .job(id)
        .await
        .expect("job")
        .expect("record retained")
        .state
}

/// A job is enqueued, claimed once with its fields intact, settled as
/// succeeded; its record keeps the result and the attempt, and the outcome
/// reply reaches the inbox.
pub async fn enqueue_claim_settle_succeeded(store: &dyn JobStore) {
    let q = queue("basic");
    let mut inbox = store.open_inbox().await.expect("inbox");
    let new = job_with(&q, "acme", &serde_json::json!({"to": "a@b"}))
        .priority(2)
        .header("trace", "t1")
        .reply_to(inbox.address());
    let before = now_ms();
    let enq = store.enqueue(vec![new.clone()]).await.expect("enqueue");
    assert_eq!(enq.len(), 1);
    assert!(!enq[0].duplicate);
    let id = enq[0].id;
    assert_eq!(state_of(store, id).await, JobState::Queued);

    let c = store.job_consumer(&q, opts()).await.expect("consumer");
    let got = claim_one(&*c).await;
    assert_eq!(got.id, id);
    assert_eq!(got.queue, q);
    assert_eq!(got.tenant, "acme");
    assert_eq!(
        got.partition, "acme",
        "the partition defaults to the tenant"
    );
    assert_eq!(got.kind, "conf.kind");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&got.payload).unwrap(),
        serde_json::json!({"to": "a@b"})
    );
    assert_eq!(got.attempt, 1);
    assert_eq!(got.priority, 2);
    assert_eq!(
        got.run_id,
        id.to_string(),
        "the run id defaults to the job id"
    );
    assert_eq!(got.headers.get("trace").map(String::as_str), Some("t1"));
    assert_eq!(got.reply_to.as_deref(), Some(inbox.address()));
    assert!(got.enqueued_at_ms >= before && got.enqueued_at_ms <= now_ms());
    assert_eq!(state_of(store, id).await, JobState::Running);
    assert!(
        c.claim(1, NOTHING).await.unwrap().is_empty(),
        "claimed twice"
    );

    let mut done = succeeded(&got, &*c);
    done.result = Some(serde_json::json!({"sent": true}));
    done.reply = Some((inbox.address().to_owned(), Bytes::from_static(b"outcome")));
    let att = done.attempt.clone();
    assert_eq!(c.settle(vec![done]).await.expect("settle"), 1);

    let replies = inbox.recv(10, FOUND).await.expect("recv");
    assert_eq!(replies, vec![Bytes::from_static(b"outcome")]);
    let record = store.job(id).await.unwrap().expect("retained");
    assert_eq!(record.state, JobState::Succeeded);
    assert_eq!(record.attempts, vec![att]);
    assert_eq!(record.result, Some(serde_json::json!({"sent": true})));
    assert_eq!(record.reason, None);
    assert!(record.finished_at_ms.is_some_and(|t| t >= before));
    assert_eq!(record.job.id, id);

    // Settling again does nothing: the job is no longer held.
    assert_eq!(c.settle(vec![succeeded(&got, &*c)]).await.unwrap(), 0);
    assert!(c.claim(1, NOTHING).await.unwrap().is_empty());
    c.close().await.unwrap();
}

/// A batch with one bad job is refused whole: nothing of it is enqueued.
pub async fn bulk_enqueue_is_all_or_nothing(store: &dyn JobStore) {
    let q = queue("bulk");
    let mut bad = job(&q, "b");
    bad.tenant = String::new();
    let batch = vec![
        job(&q, "a").idempotency_key("k1"),
        bad,
        job(&q, "c").idempotency_key("k3"),
    ];
    let err = store.enqueue(batch).await.unwrap_err();
    assert!(matches!(err, BrokerError::Invalid(_)), "{err}");
    assert!(err.to_string().contains("tenant is empty"), "{err}");
    assert_eq!(store.counts(&q).await.unwrap().total, Default::default());
    let c = store.job_consumer(&q, opts()).await.unwrap();
    assert!(c.claim(10, NOTHING).await.unwrap().is_empty());

    // The keys of the refused batch were not taken.
    let good = vec![
        job(&q, "a").idempotency_key("k1"),
        job(&q, "c").idempotency_key("k3"),
    ];
    let enq = store.enqueue(good).await.unwrap();
    assert!(enq.iter().all(|e| !e.duplicate), "{enq:?}");
    assert_eq!(store.counts(&q).await.unwrap().total.queued, 2);
    assert_eq!(c.claim(10, FOUND).await.unwrap().len(), 2);
}

/// The same idempotency key within a queue returns the earlier job, marked
/// duplicate, also within one batch; other queues have keys of their own.
pub async fn idempotent_enqueue(store: &dyn JobStore) {
    let q = queue("idem");
    let other = queue("idem-other");
    let first = store
        .enqueue(vec![job(&q, "a").idempotency_key("order-1")])
        .await
        .unwrap();
    assert!(!first[0].duplicate);
    let again = store
        .enqueue(vec![
            job(&q, "a").idempotency_key("order-1"),
            job(&q, "a").idempotency_key("order-2"),
            job(&q, "a").idempotency_key("order-2"),
        ])
        .await
        .unwrap();
    assert_eq!(again[0].id, first[0].id);
    assert!(again[0].duplicate);
    assert!(!again[1].duplicate);
    assert_eq!(again[2].id, again[1].id);
    assert!(again[2].duplicate);
    let elsewhere = store
        .enqueue(vec![job(&other, "a").idempotency_key("order-1")])
        .await
        .unwrap();
    assert!(!elsewhere[0].duplicate);
    assert_ne!(elsewhere[0].id, first[0].id);
    assert_eq!(store.counts(&q).await.unwrap().total.queued, 2);

    // Still a duplicate once the first job ran, while its record is kept.
    let c = store.job_consumer(&q, opts()).await.unwrap();
    let got = c.claim(10, FOUND).await.unwrap();
    assert_eq!(got.len(), 2);
    c.settle(got.iter().map(|j| succeeded(j, &*c)).collect())
        .await
        .unwrap();
    let later = store
        .enqueue(vec![job(&q, "a").idempotency_key("order-1")])
        .await
        .unwrap();
    assert_eq!(later[0].id, first[0].id);
    assert!(later[0].duplicate);
    assert!(c.claim(1, NOTHING).await.unwrap().is_empty());
}

/// A job scheduled ahead is not claimable before it is due; a claim that
/// waits is woken when it comes due, without waiting out its whole wait.
pub async fn scheduled_job_waits_until_due(store: &dyn JobStore) {
    let q = queue("sched");
    let due = now_ms() + ms(SHORT_DELAY) + 100;
    let id = store.enqueue(vec![job(&q, "a").at(due)]).await.unwrap()[0].id;
    assert_eq!(state_of(store, id).await, JobState::Scheduled);
    let counts = store.counts(&q).await.unwrap();
    assert_eq!(counts.total.scheduled, 1);
    assert_eq!(counts.total.queued, 0);
    let c = store.job_consumer(&q, opts()).await.unwrap();
    assert!(
        c.claim(1, NOTHING).await.unwrap().is_empty(),
        "claimed early"
    );

    let waited = std::time::Instant::now();
    let got = c.claim(1, Duration::from_secs(10)).await.unwrap();
    let claimed_at = now_ms();
    assert_eq!(got.len(), 1, "not delivered once due");
    assert_eq!(got[0].id, id);
    assert_eq!(got[0].scheduled_for_ms, due);
    assert!(claimed_at >= due, "delivered {} ms early", due - claimed_at);
    assert!(
        waited.elapsed() < Duration::from_secs(3),
        "the waiting claim was not woken when the job came due ({:?})",
        waited.elapsed()
    );

    // A job scheduled in the past is queued at once.
    let past = store
        .enqueue(vec![job(&q, "a").at(now_ms().saturating_sub(60_000))])
        .await
        .unwrap()[0]
        .id;
    assert_eq!(state_of(store, past).await, JobState::Queued);
}

/// Within a partition the highest priority runs first, then the oldest.
pub async fn priority_then_fifo_within_a_partition(store: &dyn JobStore) {
    let q = queue("prio");
    let batch = [0, 5, 0, -1, 5, 9]
        .iter()
        .enumerate()
        .map(|(n, p)| job_with(&q, "a", &serde_json::json!({ "n": n })).priority(*p))
        .collect();
    let ids: Vec<JobId> = store
        .enqueue(batch)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    let c = store.job_consumer(&q, opts()).await.unwrap();
    let mut order = Vec::new();
    let first = c.claim(2, FOUND).await.unwrap();
    order.extend(first.iter().map(|j| j.id));
    let rest = c.claim(10, FOUND).await.unwrap();
    order.extend(rest.iter().map(|j| j.id));
    let expect = vec![ids[5], ids[1], ids[4], ids[0], ids[2], ids[3]];
    assert_eq!(order, expect, "priority first, then enqueue order");
}

/// Partitions take turns: a tenant enqueued behind another's backlog runs
/// among the first, and successive claims continue where the last stopped.
pub async fn round_robin_across_partitions(store: &dyn JobStore) {
    let q = queue("fair");
    let backlog = (0..50).map(|_| job(&q, "tenant-a")).collect();
    store.enqueue(backlog).await.unwrap();
    let b = store.enqueue(vec![job(&q, "tenant-b")]).await.unwrap()[0].id;
    let c = store.job_consumer(&q, opts()).await.unwrap();
    let first = [claim_one(&*c).await, claim_one(&*c).await];
    assert!(
        first.iter().any(|j| j.id == b),
        "tenant-b waited behind tenant-a's backlog: {:?}",
        first.iter().map(|j| &j.tenant).collect::<Vec<_>>()
    );

    let q = queue("fair-cursor");
    let batch = ["x", "y", "z"]
        .iter()
        .flat_map(|t| (0..3).map(|_| job(&q, t)))
        .collect();
    store.enqueue(batch).await.unwrap();
    let c = store.job_consumer(&q, opts()).await.unwrap();
    let mut tenants = Vec::new();
    for _ in 0..3 {
        tenants.push(claim_one(&*c).await.tenant);
    }
    tenants.sort();
    assert_eq!(tenants, ["x", "y", "z"], "one claim at a time took turns");
    let batch = c.claim(3, FOUND).await.unwrap();
    let mut tenants: Vec<_> = batch.into_iter().map(|j| j.tenant).collect();
    tenants.sort();
    assert_eq!(tenants, ["x", "y", "z"], "one claim of three took turns");

    // Grouped tenants share a partition, named by the group.
    let q = queue("fair-groups");
    store
        .enqueue(vec![
            job(&q, "t1").partition("grp"),
            job(&q, "t2").partition("grp"),
        ])
        .await
        .unwrap();
    let c = store.job_consumer(&q, opts()).await.unwrap();
    let got = c.claim(2, FOUND).await.unwrap();
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|j| j.partition == "grp"));
}

/// With a tenant cap, a tenant's running jobs across every consumer of the
/// queue stay under it; other tenants go on; a settled job frees a slot.
pub async fn tenant_cap_holds_across_consumers(store: &dyn JobStore) {
    let q = queue("cap");
    let mut batch: Vec<_> = (0..5).map(|_| job(&q, "busy")).collect();
    batch.push(job(&q, "quiet"));
    store.enqueue(batch).await.unwrap();
    let capped = opts().tenant_cap(2);
    let a = store.job_consumer(&q, capped.clone()).await.unwrap();
    let b = store.job_consumer(&q, capped).await.unwrap();
    let got_a = a.claim(10, FOUND).await.unwrap();
    let busy: Vec<_> = got_a.iter().filter(|j| j.tenant == "busy").collect();
    assert_eq!(busy.len(), 2, "the cap held within one claim");
    assert_eq!(got_a.len(), 3, "the other tenant was not held back");
    assert!(
        b.claim(10, NOTHING).await.unwrap().is_empty(),
        "the cap did not hold across consumers"
    );
    assert_eq!(a.settle(vec![succeeded(busy[0], &*a)]).await.unwrap(), 1);
    let got_b = b.claim(10, FOUND).await.unwrap();
    assert_eq!(got_b.len(), 1, "one slot was freed");
    assert_eq!(got_b[0].tenant, "busy");
    assert_eq!(store.counts(&q).await.unwrap().total.running, 3);
}

/// A retry at an instant makes the job scheduled with the next attempt
/// number; it is delivered again once due.
pub async fn retry_at_schedules_the_next_attempt(store: &dyn JobStore) {
    let q = queue("retry");
    let id = store.enqueue(vec![job(&q, "a")]).await.unwrap()[0].id;
    let c = store.job_consumer(&q, opts()).await.unwrap();
    let got = claim_one(&*c).await;
    let at = now_ms() + ms(SHORT_DELAY);
    let s = failed(&got, &*c, "smtp said 451", Next::RetryAt(at));
    assert_eq!(c.settle(vec![s]).await.unwrap(), 1);
    let record = store.job(id).await.unwrap().unwrap();
    assert_eq!(record.state, JobState::Scheduled);
    assert_eq!(record.job.attempt, 2);
    assert_eq!(record.job.scheduled_for_ms, at);
    assert_eq!(record.attempts.len(), 1);
    assert!(matches!(
        &record.attempts[0].outcome,
        AttemptOutcome::Failed { error, retryable: true } if error == "smtp said 451"
    ));
    assert!(
        c.claim(1, NOTHING).await.unwrap().is_empty(),
        "retried early"
    );
    let again = claim_one(&*c).await;
    assert!(now_ms() >= at);
    assert_eq!(again.id, id);
    assert_eq!(again.attempt, 2);
    assert_eq!(again.scheduled_for_ms, at);
    c.settle(vec![succeeded(&again, &*c)]).await.unwrap();
    let record = store.job(id).await.unwrap().unwrap();
    assert_eq!(record.state, JobState::Succeeded);
    assert_eq!(
        record
            .attempts
            .iter()
            .map(|a| a.attempt)
            .collect::<Vec<_>>(),
        [1, 2]
    );
}

/// A failure for good is final with the error as reason.
pub async fn failed_for_good_keeps_the_reason(store: &dyn JobStore) {
    let q = queue("failed");
    let id = store.enqueue(vec![job(&q, "a")]).await.unwrap()[0].id;
    let c = store.job_consumer(&q, opts()).await.unwrap();
    let got = claim_one(&*c).await;
    let s = failed(&got, &*c, "no such user", Next::Finish(JobState::Failed));
    c.settle(vec![s]).await.unwrap();
    let record = store.job(id).await.unwrap().unwrap();
    assert_eq!(record.state, JobState::Failed);
    assert_eq!(record.reason.as_deref(), Some("no such user"));
    assert!(record.finished_at_ms.is_some());
    assert!(store.dead_jobs(&q, 10).await.unwrap().is_empty());
}

/// `Next::Dead` puts the job in the dead-letter set with the reason.
pub async fn dead_by_the_worker(store: &dyn JobStore) {
    let q = queue("dead-next");
    let id = store.enqueue(vec![job(&q, "a")]).await.unwrap()[0].id;
    let c = store.job_consumer(&q, opts()).await.unwrap();
    let got = claim_one(&*c).await;
    let s = failed(&got, &*c, "boom", Next::Dead("unknown job kind".into()));
    assert_eq!(c.settle(vec![s]).await.unwrap(), 1);
    let dead = store.dead_jobs(&q, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].job.id, id);
    assert_eq!(dead[0].state, JobState::Dead);
    assert_eq!(dead[0].reason.as_deref(), Some("unknown job kind"));
    assert_eq!(dead[0].attempts.len(), 1);
    assert_eq!(store.counts(&q).await.unwrap().total.dead, 1);
    assert!(c.claim(1, NOTHING).await.unwrap().is_empty());
}

/// A job whose workers keep dying is dead-lettered once its attempts reach
/// its maximum, with a `Lost` attempt for each and a reason naming the
/// lapsed leases.
pub async fn dead_after_exhausted_reaps(store: &dyn JobStore) {
    let q = queue("dead-reap");
    let id = store
        .enqueue(vec![job(&q, "a").max_attempts(2)])
        .await
        .unwrap()[0]
        .id;
    let mut workers = Vec::new();
    for n in 1..=2 {
        let c = store.job_consumer(&q, short()).await.unwrap();
        let got = claim_one(&*c).await;
        assert_eq!(got.attempt, n);
        workers.push(c.id().to_owned());
        lapse().await;
        let reaper = store.job_consumer(&q, short()).await.unwrap();
        let stats = reaper.reap().await.unwrap();
        assert_eq!(
            (stats.requeued, stats.dead_lettered),
            if n == 1 { (1, 0) } else { (0, 1) }
        );
        reaper.close().await.unwrap();
    }
    let record = store.job(id).await.unwrap().unwrap();
    assert_eq!(record.state, JobState::Dead);
    let reason = record.reason.unwrap_or_default();
    assert!(reason.contains("lease"), "{reason:?}");
    let lost: Vec<_> = record
        .attempts
        .iter()
        .map(|a| (a.attempt, a.worker.clone(), a.outcome.clone()))
        .collect();
    assert_eq!(
        lost,
        vec![
            (1, workers[0].clone(), AttemptOutcome::Lost),
            (2, workers[1].clone(), AttemptOutcome::Lost)
        ]
    );
    assert_eq!(store.dead_jobs(&q, 10).await.unwrap().len(), 1);

    // Without a maximum of its own, the reaper's default applies.
    let q = queue("dead-reap-default");
    let id = store.enqueue(vec![job(&q, "a")]).await.unwrap()[0].id;
    let c = store.job_consumer(&q, short()).await.unwrap();
    claim_one(&*c).await;
    lapse().await;
    let reaper = store
        .job_consumer(&q, short().max_attempts(1))
        .await
        .unwrap();
    assert_eq!(reaper.reap().await.unwrap().dead_lettered, 1);
    assert_eq!(state_of(store, id).await, JobState::Dead);
}

/// Outcomes the store decides itself — a reap that dead-letters a job, a
/// cancel — reach the job's `reply_to` inbox, so nobody awaits in vain.
pub async fn store_decided_outcomes_are_replied(store: &dyn JobStore) {
    let q = queue("store-replies");
    let mut inbox = store.open_inbox().await.unwrap();
    let doomed = job(&q, "a").max_attempts(1).reply_to(inbox.address());
    let doomed = store.enqueue(vec![doomed]).await.unwrap()[0].id;
    let c = store.job_consumer(&q, short()).await.unwrap();
    claim_one(&*c).await;
    lapse().await;
    let reaper = store.job_consumer(&q, short()).await.unwrap();
    assert_eq!(reaper.reap().await.unwrap().dead_lettered, 1);
    let later = job(&q, "a")
        .at(rota_core::time::now_ms() + 60_000)
        .reply_to(inbox.address());
    let later = store.enqueue(vec![later]).await.unwrap()[0].id;
    assert!(store.cancel(later).await.unwrap());

    let mut outcomes = Vec::new();
    while outcomes.len() < 2 {
        let got = inbox.recv(10, Duration::from_secs(5)).await.unwrap();
        assert!(!got.is_empty(), "an outcome never arrived");
        for bytes in got {
            let reply = rota_core::Reply::decode(&bytes).unwrap();
            let rota_core::Outcome::Ok(body) = reply.outcome else {
                panic!("not an ok reply: {reply:?}")
            };
            let outcome: rota_core::jobs::JobOutcome = serde_json::from_slice(&body).unwrap();
            assert_eq!(*reply.id.as_uuid(), *outcome.id.as_uuid());
            outcomes.push((outcome.id, outcome.state));
        }
    }
    outcomes.sort();
    let mut expected = vec![(doomed, JobState::Dead), (later, JobState::Cancelled)];
    expected.sort();
    assert_eq!(outcomes, expected);
}

/// A job whose worker's lease lapsed is reaped and delivered again with
/// attempt + 1; its record holds a `Lost` attempt by that worker, timed
/// from the claim.
pub async fn lost_lease_is_redelivered(store: &dyn JobStore) {
    let q = queue("lost");
    let id = store.enqueue(vec![job(&q, "a")]).await.unwrap()[0].id;
    let a = store.job_consumer(&q, short()).await.unwrap();
    let before = now_ms();
    claim_one(&*a).await;
    let after = now_ms();
    let early = store.job_consumer(&q, short()).await.unwrap();
    assert_eq!(
        early.reap().await.unwrap().requeued,
        0,
        "reaped a live lease"
    );
    early.close().await.unwrap();
    lapse().await;
    let b = store.job_consumer(&q, short()).await.unwrap();
    let stats = b.reap().await.unwrap();
    assert_eq!((stats.requeued, stats.dead_lettered), (1, 0));
    assert_eq!(state_of(store, id).await, JobState::Queued);
    let again = claim_one(&*b).await;
    assert_eq!(again.id, id);
    assert_eq!(again.attempt, 2);
    let record = store.job(id).await.unwrap().unwrap();
    assert_eq!(record.attempts.len(), 1);
    let lost = &record.attempts[0];
    assert_eq!(lost.attempt, 1);
    assert_eq!(lost.worker, a.id());
    assert_eq!(lost.outcome, AttemptOutcome::Lost);
    assert!(
        lost.started_at_ms >= before && lost.started_at_ms <= after,
        "started {} not within the claim ({before}..={after})",
        lost.started_at_ms
    );
    assert!(lost.finished_at_ms >= lost.started_at_ms + ms(SHORT_LEASE));
}

/// A worker whose lease lapsed can neither renew, claim, settle nor
/// release: refused with `LeaseLost`, and the job stays with its new holder.
pub async fn stale_settle_is_refused(store: &dyn JobStore) {
    let q = queue("fence");
    let id = store.enqueue(vec![job(&q, "a")]).await.unwrap()[0].id;
    let a = store.job_consumer(&q, short()).await.unwrap();
    let got = claim_one(&*a).await;
    lapse().await;
    assert_eq!(
        a.settle(vec![succeeded(&got, &*a)]).await,
        Err(BrokerError::LeaseLost),
        "settled under a lapsed lease, before any reap"
    );
    let b = store.job_consumer(&q, short()).await.unwrap();
    b.reap().await.unwrap();
    let again = claim_one(&*b).await;
    assert_eq!(
        a.settle(vec![succeeded(&got, &*a)]).await,
        Err(BrokerError::LeaseLost)
    );
    assert_eq!(a.renew().await, Err(BrokerError::LeaseLost));
    assert_eq!(
        a.release(vec![id], false).await,
        Err(BrokerError::LeaseLost)
    );
    assert!(matches!(
        a.claim(1, NOTHING).await,
        Err(BrokerError::LeaseLost)
    ));
    assert_eq!(state_of(store, id).await, JobState::Running);
    assert_eq!(b.settle(vec![succeeded(&again, &*b)]).await.unwrap(), 1);
    assert_eq!(state_of(store, id).await, JobState::Succeeded);
}

/// Renewal keeps a lease alive past its length.
pub async fn renewal_keeps_the_lease(store: &dyn JobStore) {
    let q = queue("renew");
    store.enqueue(vec![job(&q, "a")]).await.unwrap();
    let a = store.job_consumer(&q, short()).await.unwrap();
    let got = claim_one(&*a).await;
    let b = store.job_consumer(&q, short()).await.unwrap();
    for _ in 0..6 {
        tokio::time::sleep(SHORT_LEASE / 3).await;
        a.renew().await.expect("renew");
        b.renew().await.expect("renew");
    }
    assert_eq!(b.reap().await.unwrap().requeued, 0);
    assert!(b.claim(1, NOTHING).await.unwrap().is_empty());
    assert_eq!(a.settle(vec![succeeded(&got, &*a)]).await.unwrap(), 1);
}

/// Released jobs go back at once; the attempt counts (with a `Cancelled`
/// attempt in the history) only when the handler had started. Closing a
/// consumer gives back what it holds, not counting an attempt.
pub async fn release_and_close_give_back_at_once(store: &dyn JobStore) {
    let q = queue("release");
    let enq = store
        .enqueue(vec![job(&q, "a"), job(&q, "a"), job(&q, "a")])
        .await
        .unwrap();
    let (started, unstarted, closed) = (enq[0].id, enq[1].id, enq[2].id);
    let a = store.job_consumer(&q, opts()).await.unwrap();
    assert_eq!(a.claim(3, FOUND).await.unwrap().len(), 3);
    a.release(vec![started], true).await.unwrap();
    a.release(vec![unstarted], false).await.unwrap();
    assert_eq!(state_of(store, started).await, JobState::Queued);
    let b = store.job_consumer(&q, opts()).await.unwrap();
    let again = b.claim(3, FOUND).await.unwrap();
    assert_eq!(again.len(), 2);
    let find = |id: JobId| again.iter().find(|j| j.id == id).expect("redelivered");
    assert_eq!(find(started).attempt, 2);
    assert_eq!(find(unstarted).attempt, 1);
    let record = store.job(started).await.unwrap().unwrap();
    assert_eq!(record.attempts.len(), 1);
    assert_eq!(record.attempts[0].outcome, AttemptOutcome::Cancelled);
    assert_eq!(record.attempts[0].worker, a.id());
    assert!(
        store
            .job(unstarted)
            .await
            .unwrap()
            .unwrap()
            .attempts
            .is_empty()
    );

    a.close().await.unwrap();
    assert_eq!(state_of(store, closed).await, JobState::Queued);
    let last = claim_one(&*b).await;
    assert_eq!(last.id, closed);
    assert_eq!(last.attempt, 1);
}

/// Scheduled and queued jobs can be cancelled (they become final, never
/// run); running and finished ones cannot.
pub async fn cancel_only_before_start(store: &dyn JobStore) {
    let q = queue("cancel");
    let later = now_ms() + 60_000;
    let enq = store
        .enqueue(vec![job(&q, "a"), job(&q, "a").at(later), job(&q, "a")])
        .await
        .unwrap();
    let (queued, scheduled, other) = (enq[0].id, enq[1].id, enq[2].id);
    assert!(store.cancel(queued).await.unwrap());
    assert!(store.cancel(scheduled).await.unwrap());
    assert!(!store.cancel(queued).await.unwrap(), "cancelled twice");
    assert!(!store.cancel(JobId::new()).await.unwrap());
    let record = store.job(scheduled).await.unwrap().unwrap();
    assert_eq!(record.state, JobState::Cancelled);
    assert!(record.finished_at_ms.is_some());
    assert!(record.attempts.is_empty());
    let c = store.job_consumer(&q, opts()).await.unwrap();
    let got = c.claim(10, FOUND).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id, other);
    assert!(
        !store.cancel(other).await.unwrap(),
        "cancelled a running job"
    );
    c.settle(vec![succeeded(&got[0], &*c)]).await.unwrap();
    assert!(
        !store.cancel(other).await.unwrap(),
        "cancelled a finished job"
    );
    let counts = store.counts(&q).await.unwrap();
    assert_eq!((counts.total.cancelled, counts.total.succeeded), (2, 1));
}

/// Only `max_finished` finished records are kept per queue, the oldest
/// deleted first, and a deleted job's idempotency key is free again.
pub async fn retention_by_count(store: &dyn JobStore) {
    let q = queue("retain");
    let mut retention = Retention::default();
    retention.max_finished = 3;
    let c = store
        .job_consumer(&q, opts().retention(retention))
        .await
        .unwrap();
    let mut ids = Vec::new();
    for n in 0..5 {
        let e = store
            .enqueue(vec![job(&q, "a").idempotency_key(format!("key-{n}"))])
            .await
            .unwrap();
        ids.push(e[0].id);
        let got = claim_one(&*c).await;
        assert_eq!(c.settle(vec![succeeded(&got, &*c)]).await.unwrap(), 1);
    }
    for (n, id) in ids.iter().enumerate() {
        let kept = store.job(*id).await.unwrap().is_some();
        assert_eq!(kept, n >= 2, "job {n}: kept {kept}");
    }
    assert_eq!(store.counts(&q).await.unwrap().total.succeeded, 3);
    let again = store
        .enqueue(vec![
            job(&q, "a").idempotency_key("key-0"),
            job(&q, "a").idempotency_key("key-4"),
        ])
        .await
        .unwrap();
    assert!(!again[0].duplicate, "the key of a deleted job was kept");
    assert_ne!(again[0].id, ids[0]);
    assert!(again[1].duplicate);
    assert_eq!(again[1].id, ids[4]);
}

/// Counts per state in all (with retained final jobs), and per partition
/// of the jobs still to run.
pub async fn counts_per_state_and_partition(store: &dyn JobStore) {
    let q = queue("counts");
    let later = now_ms() + 60_000;
    store
        .enqueue(vec![
            job(&q, "a"),
            job(&q, "a"),
            job(&q, "a").at(later),
            job(&q, "b"),
            job(&q, "b"),
            job(&q, "c"),
        ])
        .await
        .unwrap();
    let c = store.job_consumer(&q, opts()).await.unwrap();
    // One job of each partition runs; then c's finishes, b's dies.
    let got = c.claim(3, FOUND).await.unwrap();
    assert_eq!(got.len(), 3);
    let by = |t: &str| got.iter().find(|j| j.tenant == t).expect("claimed");
    let done = vec![
        succeeded(by("c"), &*c),
        failed(by("b"), &*c, "bad", Next::Dead("bad".into())),
    ];
    assert_eq!(c.settle(done).await.unwrap(), 2);
    let counts = store.counts(&q).await.unwrap();
    let t = counts.total;
    assert_eq!(
        (
            t.scheduled,
            t.queued,
            t.running,
            t.succeeded,
            t.failed,
            t.cancelled,
            t.dead
        ),
        (1, 2, 1, 1, 0, 0, 1)
    );
    let a = counts.partitions.get("a").expect("partition a");
    assert_eq!((a.scheduled, a.queued, a.running), (1, 1, 1));
    let b = counts.partitions.get("b").expect("partition b");
    assert_eq!((b.scheduled, b.queued, b.running), (0, 1, 0));
    assert!(
        counts
            .partitions
            .get("c")
            .is_none_or(|c| c.scheduled + c.queued + c.running == 0),
        "{counts:?}"
    );
    assert_eq!(
        store.counts(&queue("counts-empty")).await.unwrap(),
        Default::default()
    );
}

/// Dead jobs are listed oldest first, re-queued with their attempts
/// starting over (the history kept), and purged.
pub async fn requeue_and_purge_dead(store: &dyn JobStore) {
    let q = queue("requeue");
    let enq = store
        .enqueue(vec![job(&q, "a"), job(&q, "a"), job(&q, "a")])
        .await
        .unwrap();
    let c = store.job_consumer(&q, opts()).await.unwrap();
    for (n, e) in enq.iter().enumerate() {
        let got = claim_one(&*c).await;
        assert_eq!(got.id, e.id);
        let s = failed(&got, &*c, "x", Next::Dead(format!("dead {n}")));
        c.settle(vec![s]).await.unwrap();
    }
    let dead = store.dead_jobs(&q, 2).await.unwrap();
    let ids: Vec<_> = dead.iter().map(|r| r.job.id).collect();
    assert_eq!(
        ids,
        [enq[0].id, enq[1].id],
        "oldest first, at most the limit"
    );

    assert!(store.requeue_dead_job(enq[0].id).await.unwrap());
    assert!(
        !store.requeue_dead_job(enq[0].id).await.unwrap(),
        "not dead now"
    );
    let record = store.job(enq[0].id).await.unwrap().unwrap();
    assert_eq!(record.state, JobState::Queued);
    assert_eq!(record.job.attempt, 1);
    assert_eq!(record.attempts.len(), 1, "the history is kept");
    let again = claim_one(&*c).await;
    assert_eq!(again.id, enq[0].id);
    assert_eq!(again.attempt, 1, "a re-queued dead job starts over");

    assert_eq!(store.purge_dead_jobs(&q).await.unwrap(), 2);
    assert!(store.dead_jobs(&q, 10).await.unwrap().is_empty());
    assert!(store.job(enq[1].id).await.unwrap().is_none());
    assert_eq!(store.counts(&q).await.unwrap().total.dead, 0);
    assert_eq!(store.purge_dead_jobs(&q).await.unwrap(), 0);
}

/// Bad input is refused with an error naming the problem, and nothing is
/// enqueued.
pub async fn bad_input_is_refused(store: &dyn JobStore) {
    let q = queue("bad");
    let mut empty_tenant = job(&q, "a");
    empty_tenant.tenant = String::new();
    let mut oversized = job(&q, "a");
    oversized.payload = Bytes::from(format!("\"{}\"", "x".repeat(2 * 1024 * 1024)));
    let mut not_json = job(&q, "a");
    not_json.payload = Bytes::from_static(b"{nope");
    let cases: Vec<(NewJob, &str)> = vec![
        (empty_tenant, "tenant is empty"),
        (job("bad queue!", "a"), "queue name"),
        (job(&q, "a b"), "tenant"),
        (oversized, "limit"),
        (not_json, "not valid JSON"),
        (job(&q, "a").at(u64::MAX), "10 years"),
    ];
    for (bad, expect) in cases {
        let err = store.enqueue(vec![bad]).await.unwrap_err();
        assert!(
            matches!(err, BrokerError::Invalid(_)),
            "{expect}: not an Invalid error: {err:?}"
        );
        assert!(
            err.to_string().contains(expect),
            "{err:?} does not say {expect:?}"
        );
    }
    assert_eq!(store.counts(&q).await.unwrap().total, Default::default());
    for bad in ["", "has space", "brace{", "colon:x"] {
        assert!(store.job_consumer(bad, opts()).await.is_err(), "{bad:?}");
        assert!(store.counts(bad).await.is_err(), "{bad:?}");
    }
}

/// Generates one `#[tokio::test]` per job conformance check. `$make` is an
/// expression evaluating to a future of `(guard, store)`: the guard (say, a
/// Redis server process) lives as long as the check runs.
#[macro_export]
macro_rules! job_conformance_tests {
    ($make:expr) => {
        $crate::job_conformance_tests!(@each $make;
            enqueue_claim_settle_succeeded, bulk_enqueue_is_all_or_nothing, idempotent_enqueue,
            scheduled_job_waits_until_due, priority_then_fifo_within_a_partition,
            round_robin_across_partitions, tenant_cap_holds_across_consumers,
            retry_at_schedules_the_next_attempt, failed_for_good_keeps_the_reason,
            dead_by_the_worker, dead_after_exhausted_reaps, store_decided_outcomes_are_replied,
            lost_lease_is_redelivered,
            stale_settle_is_refused, renewal_keeps_the_lease,
            release_and_close_give_back_at_once, cancel_only_before_start, retention_by_count,
            counts_per_state_and_partition, requeue_and_purge_dead, bad_input_is_refused);
    };
    (@each $make:expr; $($check:ident),* $(,)?) => {
        mod job_conformance {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let (_guard, store) = $make.await;
                    $crate::conformance::jobs::$check(&store).await;
                }
            )*
        }
    };
}
