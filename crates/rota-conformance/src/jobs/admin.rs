//! Looking after a queue: cancel, policy and retention, counts, dead jobs.

use rota_core::jobs::JobQuery;

use super::*;

/// Scheduled and queued jobs are cancelled at once (they become final,
/// never run); a running one is asked to stop; a finished one is left as
/// it is.
pub async fn cancel_only_before_start(store: &dyn JobBackend) {
    let q = queue("cancel");
    let later = now_ms() + 60_000;
    let enq = store
        .enqueue(vec![job(&q, "a"), job(&q, "a").at(later), job(&q, "a")])
        .await
        .unwrap();
    let (queued, scheduled, other) = (enq[0].id, enq[1].id, enq[2].id);
    let cancel = async |id| store.cancel(&q, id).await.unwrap();
    assert_eq!(cancel(queued).await, CancelOutcome::Cancelled);
    assert_eq!(cancel(scheduled).await, CancelOutcome::Cancelled);
    assert_eq!(cancel(queued).await, CancelOutcome::Unchanged, "twice");
    assert_eq!(cancel(JobId::new()).await, CancelOutcome::Unchanged);
    let record = store.job(&q, scheduled).await.unwrap().unwrap();
    assert_eq!(record.state, JobState::Cancelled);
    assert!(record.finished_at_ms.is_some());
    assert!(record.attempts.is_empty());
    let c = store.job_consumer(&q, opts()).await.unwrap();
    let got = c.claim(10, FOUND).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id, other);
    assert_eq!(cancel(other).await, CancelOutcome::Requested);
    // Finished first: its outcome stands, and the request is forgotten.
    c.settle(vec![succeeded(&got[0], &*c)]).await.unwrap();
    assert_eq!(cancel(other).await, CancelOutcome::Unchanged, "finished");
    assert!(store.cancel_requests(&q, c.id()).await.unwrap().is_empty());
    let counts = store.counts(&q).await.unwrap();
    assert_eq!((counts.total.cancelled, counts.total.succeeded), (2, 1));
}

/// A running job whose cancellation is asked for: its holder learns it
/// from `cancel_requests` (another consumer does not) and settles it
/// cancelled; if the holder gives it back or dies instead, the store makes
/// it cancelled rather than running it again, and replies its outcome.
pub async fn a_running_job_is_cancelled_through_its_holder(store: &dyn JobBackend) {
    let q = queue("cancel-running");
    let mut inbox = store.open_inbox().await.unwrap();
    let ids: Vec<JobId> = store
        .enqueue(
            (0..3)
                .map(|_| job(&q, "a").reply_to(inbox.address()))
                .collect(),
        )
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    let holder = store.job_consumer(&q, short()).await.unwrap();
    let other = store.job_consumer(&q, short()).await.unwrap();
    let got = holder.claim(3, FOUND).await.unwrap();
    assert_eq!(got.len(), 3);
    for id in &ids {
        assert_eq!(
            store.cancel(&q, *id).await.unwrap(),
            CancelOutcome::Requested
        );
    }
    assert_eq!(
        store.cancel(&q, ids[0]).await.unwrap(),
        CancelOutcome::Requested,
        "asking again"
    );
    let mut asked = store.cancel_requests(&q, holder.id()).await.unwrap();
    asked.sort_unstable();
    let mut want = ids.clone();
    want.sort_unstable();
    assert_eq!(asked, want);
    assert!(
        store
            .cancel_requests(&q, other.id())
            .await
            .unwrap()
            .is_empty()
    );

    // The holder stops the first and settles it cancelled.
    let first = got.iter().find(|j| j.id == ids[0]).unwrap();
    let stopped = Settle::new(
        first.id,
        attempt(first, &*holder, AttemptOutcome::Cancelled),
        Next::Finish(JobState::Cancelled),
    );
    holder.settle(vec![stopped]).await.unwrap();
    // It gives the second back: it ends there, cancelled.
    holder.release(vec![ids[1]], true).await.unwrap();
    assert_eq!(
        store.cancel_requests(&q, holder.id()).await.unwrap(),
        vec![ids[2]]
    );
    // It dies holding the third: the reap cancels it.
    lapse().await;
    let reaper = store.job_consumer(&q, short()).await.unwrap();
    assert_eq!(reaper.reap().await.unwrap().cancelled, 1);
    for id in &ids {
        let record = store.job(&q, *id).await.unwrap().unwrap();
        assert_eq!(record.state, JobState::Cancelled, "job {id}");
    }
    assert!(
        reaper.claim(10, Duration::ZERO).await.unwrap().is_empty(),
        "a cancelled job ran again"
    );
    // Each outcome was replied (the first by the holder's settle, which
    // carried no reply here; the others by the store).
    let mut replied = 0;
    while replied < 2 {
        let got = inbox.recv(10, FOUND).await.unwrap();
        assert!(!got.is_empty(), "an outcome was not replied");
        replied += got.len();
    }
    assert_eq!(store.counts(&q).await.unwrap().total.cancelled, 3);
}

/// Only `max_finished` finished records are kept per queue, the oldest
/// deleted first, and a deleted job's idempotency key is free again.
pub async fn retention_by_count(store: &dyn JobBackend) {
    let q = queue("retain");
    let policy = QueuePolicy::default().retention(Retention::default().max_finished(3));
    store.set_policy(&q, policy).await.unwrap();
    let c = store.job_consumer(&q, opts()).await.unwrap();
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
        let kept = store.job(&q, *id).await.unwrap().is_some();
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

/// A queue's policy is kept with the queue: read back as set, the default
/// before, and applied by every consumer of the queue — retention by age
/// here, whichever consumer settles.
pub async fn policy_is_kept_with_the_queue(store: &dyn JobBackend) {
    let q = queue("policy");
    assert_eq!(store.policy(&q).await.unwrap(), QueuePolicy::default());
    let policy = QueuePolicy::default()
        .max_attempts(3)
        .retention(Retention::default().max_age(Duration::from_secs(60)));
    store.set_policy(&q, policy).await.unwrap();
    assert_eq!(store.policy(&q).await.unwrap(), policy);
    assert_eq!(
        store.policy(&queue("policy-other")).await.unwrap(),
        QueuePolicy::default(),
        "a policy leaked into another queue"
    );

    let a = store.job_consumer(&q, opts()).await.unwrap();
    let first = store.enqueue(vec![job(&q, "a")]).await.unwrap()[0].id;
    let got = claim_one(&*a).await;
    a.settle(vec![succeeded(&got, &*a)]).await.unwrap();
    advance(Duration::from_secs(61));
    let b = store.job_consumer(&q, opts()).await.unwrap();
    let second = store.enqueue(vec![job(&q, "a")]).await.unwrap()[0].id;
    let got = claim_one(&*b).await;
    b.settle(vec![succeeded(&got, &*b)]).await.unwrap();
    assert!(
        store.job(&q, first).await.unwrap().is_none(),
        "a record older than the queue's max age was kept"
    );
    assert!(store.job(&q, second).await.unwrap().is_some());

    // Set again, it replaces the earlier one whole.
    store.set_policy(&q, QueuePolicy::default()).await.unwrap();
    assert_eq!(store.policy(&q).await.unwrap(), QueuePolicy::default());
    assert!(matches!(
        store.set_policy("bad queue name", policy).await,
        Err(BrokerError::Invalid(_))
    ));
}

/// Counts per state in all (with retained final jobs), and per partition
/// of the jobs still to run.
pub async fn counts_per_state_and_partition(store: &dyn JobBackend) {
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
pub async fn requeue_and_purge_dead(store: &dyn JobBackend) {
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
    let query = JobQuery::new(JobState::Dead).limit(2);
    let page = store.list_jobs(&q, &query).await.unwrap().jobs;
    let ids: Vec<_> = page.iter().map(|r| r.job.id).collect();
    assert_eq!(
        ids,
        [enq[2].id, enq[1].id],
        "the latest first, at most the limit"
    );

    assert!(store.requeue_dead_job(&q, enq[0].id).await.unwrap());
    assert!(
        !store.requeue_dead_job(&q, enq[0].id).await.unwrap(),
        "not dead now"
    );
    let record = store.job(&q, enq[0].id).await.unwrap().unwrap();
    assert_eq!(record.state, JobState::Queued);
    assert_eq!(record.job.attempt, 1);
    assert_eq!(record.attempts.len(), 1, "the history is kept");
    let again = claim_one(&*c).await;
    assert_eq!(again.id, enq[0].id);
    assert_eq!(again.attempt, 1, "a re-queued dead job starts over");

    assert_eq!(store.purge_dead_jobs(&q).await.unwrap(), 2);
    assert!(dead(store, &q).await.is_empty());
    assert!(store.job(&q, enq[1].id).await.unwrap().is_none());
    assert_eq!(store.counts(&q).await.unwrap().total.dead, 0);
    assert_eq!(store.purge_dead_jobs(&q).await.unwrap(), 0);
}

/// Counts see every queued job: those of a tenant parked at its cap, those
/// of tenants grouped in one partition (with priorities of their own), and
/// not those cancelled while queued.
pub async fn counts_see_capped_grouped_and_cancelled_jobs(store: &dyn JobStore) {
    let q = queue("counts-capped");
    let mut batch: Vec<NewJob> = (0..4).map(|_| job(&q, "a")).collect();
    batch.push(job(&q, "t1").partition("g"));
    batch.push(job(&q, "t1").partition("g"));
    batch.push(job(&q, "t2").partition("g").priority(3));
    let enq = store.enqueue(batch).await.unwrap();
    assert_eq!(
        store.cancel(&q, enq[3].id).await.unwrap(),
        CancelOutcome::Cancelled
    );
    let c = store.job_consumer(&q, opts().tenant_cap(1)).await.unwrap();
    let got = c.claim(10, FOUND).await.unwrap();
    let mut tenants: Vec<&str> = got.iter().map(|j| j.tenant.as_str()).collect();
    tenants.sort_unstable();
    assert_eq!(
        tenants,
        ["a", "t1", "t2"],
        "one job per tenant under the cap"
    );
    let counts = store.counts(&q).await.unwrap();
    let t = counts.total;
    assert_eq!((t.queued, t.running, t.cancelled), (3, 3, 1), "{counts:?}");
    let a = counts.partitions.get("a").expect("partition a");
    assert_eq!((a.queued, a.running), (2, 1));
    let g = counts.partitions.get("g").expect("partition g");
    assert_eq!((g.queued, g.running), (1, 2));
    assert!(c.claim(10, NOTHING).await.unwrap().is_empty(), "all capped");
}
