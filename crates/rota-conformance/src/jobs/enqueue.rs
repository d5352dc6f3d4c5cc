//! Enqueueing: all or nothing, idempotent, scheduled, validated.

use super::*;

/// A job is enqueued, claimed once with its fields intact, settled as
/// succeeded; its record keeps the result and the attempt, and the outcome
/// reply reaches the inbox.
pub async fn enqueue_claim_settle_succeeded(store: &dyn JobBackend) {
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
    assert_eq!(state_of(store, &q, id).await, JobState::Queued);

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
    assert_eq!(state_of(store, &q, id).await, JobState::Running);
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
    let record = store.job(&q, id).await.unwrap().expect("retained");
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
pub async fn bulk_enqueue_is_all_or_nothing(store: &dyn JobBackend) {
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

/// A batch with a job fenced by a lease that has ended is refused whole
/// as a lost lease (its writer was fenced out), nothing written; the same
/// jobs under a fence still ahead go in. The fence is by the store's own
/// clock — Redis's, for Redis — so the check uses fences far on either side.
pub async fn a_fenced_enqueue_is_refused_once_the_fence_passed(store: &dyn JobBackend) {
    let q = queue("fenced");
    let a = JobId::new();
    let b = JobId::new();
    let batch = |until: u64| {
        vec![
            job(&q, "a").with_id(a).fenced_until(until),
            job(&q, "b").with_id(b),
        ]
    };
    let err = store.enqueue(batch(1)).await.unwrap_err();
    assert!(matches!(err, BrokerError::LeaseLost), "{err}");
    assert_eq!(store.counts(&q).await.unwrap().total, Default::default());
    assert!(store.job(&q, a).await.unwrap().is_none());
    assert!(store.job(&q, b).await.unwrap().is_none());

    let ahead = now_ms() + 3_600_000 * 24 * 365 * 100;
    let enq = store.enqueue(batch(ahead)).await.unwrap();
    assert!(enq.iter().all(|e| !e.duplicate), "{enq:?}");
    assert_eq!(store.counts(&q).await.unwrap().total.queued, 2);
}

/// The same idempotency key within a queue returns the earlier job, marked
/// duplicate, also within one batch; other queues have keys of their own.
pub async fn idempotent_enqueue(store: &dyn JobBackend) {
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
pub async fn scheduled_job_waits_until_due(store: &dyn JobBackend) {
    let q = queue("sched");
    let due = now_ms() + 3_600_000;
    let id = store.enqueue(vec![job(&q, "a").at(due)]).await.unwrap()[0].id;
    assert_eq!(state_of(store, &q, id).await, JobState::Scheduled);
    let counts = store.counts(&q).await.unwrap();
    assert_eq!(counts.total.scheduled, 1);
    assert_eq!(counts.total.queued, 0);
    let c = store.job_consumer(&q, opts()).await.unwrap();
    assert!(
        c.claim(1, NOTHING).await.unwrap().is_empty(),
        "claimed early"
    );
    // Leases kept by the store's clock lapse as it jumps: a fresh consumer
    // after each jump.
    advance(Duration::from_secs(3_599));
    let c = store.job_consumer(&q, opts()).await.unwrap();
    assert!(
        c.claim(1, NOTHING).await.unwrap().is_empty(),
        "claimed a second early"
    );
    advance(Duration::from_secs(1));
    let c = store.job_consumer(&q, opts()).await.unwrap();
    let got = c.claim(1, FOUND).await.unwrap();
    assert_eq!(got.len(), 1, "not delivered once due");
    assert_eq!(got[0].id, id);
    assert_eq!(got[0].scheduled_for_ms, due);

    // A claim that waits is woken when its job comes due, not at the end of
    // its wait (here the clock moves with real time, as the system's does).
    let soon = now_ms() + ms(SHORT_DELAY);
    let id = store.enqueue(vec![job(&q, "a").at(soon)]).await.unwrap()[0].id;
    let waited = std::time::Instant::now();
    let (got, ()) = tokio::join!(c.claim(1, Duration::from_secs(10)), async {
        tokio::time::sleep(SHORT_DELAY).await;
        advance(SHORT_DELAY);
    });
    let got = got.unwrap();
    assert_eq!(got.len(), 1, "not delivered once due");
    assert_eq!(got[0].id, id);
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
    assert_eq!(state_of(store, &q, past).await, JobState::Queued);
}

/// Bad input is refused with an error naming the problem, and nothing is
/// enqueued.
pub async fn bad_input_is_refused(store: &dyn JobBackend) {
    let q = queue("bad");
    let mut empty_tenant = job(&q, "a");
    empty_tenant.tenant = String::new();
    let mut oversized = job(&q, "a");
    oversized.payload = Bytes::from(format!("\"{}\"", "x".repeat(2 * 1024 * 1024)));
    let mut not_json = job(&q, "a");
    not_json.payload = Bytes::from_static(b"{nope");
    let huge_header = job(&q, "a").header("note", "x".repeat(1024 * 1024));
    let cases: Vec<(NewJob, &str)> = vec![
        (empty_tenant, "tenant is empty"),
        (job("bad queue!", "a"), "queue name"),
        (job(&q, "a b"), "tenant"),
        (oversized, "limit"),
        (not_json, "not valid JSON"),
        (huge_header, "headers are"),
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

/// A chosen id names one job within its queue: enqueued again there it is
/// a duplicate; in another queue it is a job of its own.
pub async fn a_chosen_id_is_unique_within_its_queue(store: &dyn JobBackend) {
    let q = queue("chosen");
    let other = queue("chosen.other");
    let id = JobId::new();
    let first = store.enqueue(vec![job(&q, "a").with_id(id)]).await.unwrap();
    assert_eq!((first[0].id, first[0].duplicate), (id, false));
    let again = store.enqueue(vec![job(&q, "a").with_id(id)]).await.unwrap();
    assert_eq!((again[0].id, again[0].duplicate), (id, true));
    assert_eq!(store.counts(&q).await.unwrap().total.queued, 1);
    let elsewhere = store
        .enqueue(vec![job(&other, "b").with_id(id)])
        .await
        .unwrap();
    assert_eq!((elsewhere[0].id, elsewhere[0].duplicate), (id, false));
    let a = store.job(&q, id).await.unwrap().unwrap();
    let b = store.job(&other, id).await.unwrap().unwrap();
    assert_eq!((a.job.tenant.as_str(), b.job.tenant.as_str()), ("a", "b"));
    assert!(store.job(&other, JobId::new()).await.unwrap().is_none());
}

/// A job whose `reply_to` is no inbox address of the store is refused, with
/// the rest of its batch: its outcome would be written there.
pub async fn a_reply_to_that_is_no_inbox_is_refused(store: &dyn JobBackend) {
    let q = queue("replyto");
    let inbox = store.open_inbox().await.expect("inbox");
    for hostile in ["", "nowhere", "rota:{j:q}:ring", "test:{svc}:q"] {
        let err = store
            .enqueue(vec![
                job(&q, "a").reply_to(inbox.address()),
                job(&q, "a").reply_to(hostile),
            ])
            .await
            .unwrap_err();
        assert!(matches!(err, BrokerError::Invalid(_)), "{hostile:?}: {err}");
        assert!(err.to_string().contains("no inbox address"), "{err}");
    }
    assert_eq!(
        store.counts(&q).await.unwrap().total.queued,
        0,
        "all or none"
    );
    store
        .enqueue(vec![job(&q, "a").reply_to(inbox.address())])
        .await
        .unwrap();
}

/// A batch over several queues with an invalid job is refused whole,
/// before anything is written: none of its queues gets a job.
pub async fn an_invalid_job_refuses_a_batch_over_several_queues(store: &dyn JobStore) {
    let (a, b) = (queue("multi-a"), queue("multi-b"));
    let mut bad = job(&b, "y");
    bad.payload = Bytes::from_static(b"{nope");
    let batch = vec![job(&a, "x"), job(&b, "y"), bad, job(&a, "z")];
    let err = store.enqueue(batch).await.unwrap_err();
    assert!(matches!(err, BrokerError::Invalid(_)), "{err}");
    assert!(err.to_string().contains("nothing was enqueued"), "{err}");
    for q in [&a, &b] {
        assert_eq!(store.counts(q).await.unwrap().total, Default::default());
    }
}

/// A batch is all or nothing **per queue**: when the store fails on one
/// queue's part of a batch — `break_queue` makes it fail the way only the
/// store can tell, after looking at some of that queue's jobs — none of that
/// queue's jobs is enqueued, however many came before the one it failed
/// on, and the error names the queue; another queue's part is there whole
/// or not at all. After `mend_queue`, the same jobs go in.
///
/// Not in [`jobs_tests!`](crate::jobs_tests): a backend calls it with the
/// sabotage it can do.
pub async fn a_queue_the_store_fails_on_gets_none_of_its_jobs(
    store: &dyn JobStore,
    break_queue: impl AsyncFn(&str),
    mend_queue: impl AsyncFn(&str),
) {
    let (good, bad) = (queue("whole-good"), queue("whole-bad"));
    let ids: Vec<JobId> = (0..5).map(|_| JobId::new()).collect();
    let batch = || {
        vec![
            job(&good, "a").with_id(ids[0]),
            job(&bad, "b").with_id(ids[1]),
            job(&bad, "c").with_id(ids[2]),
            job(&good, "d").with_id(ids[3]),
            // The store fails on this one, after two of its queue's jobs.
            job(&bad, "e").with_id(ids[4]).idempotency_key("k-e"),
        ]
    };
    break_queue(&bad).await;
    let err = store.enqueue(batch()).await.unwrap_err();
    assert!(
        err.to_string().contains(&bad),
        "the error names the queue: {err}"
    );
    for id in [ids[1], ids[2], ids[4]] {
        assert!(
            store.job(&bad, id).await.unwrap().is_none(),
            "part of the failed queue's jobs were enqueued"
        );
    }
    assert_eq!(store.counts(&bad).await.unwrap().total, Default::default());
    let good_in = 2 - missing(store, &good, &[ids[0], ids[3]]).await;
    assert!(
        good_in == 0 || good_in == 2,
        "another queue's part was half enqueued ({good_in} of 2)"
    );

    mend_queue(&bad).await;
    let enq = store.enqueue(batch()).await.expect("enqueue once mended");
    assert!(enq[1..3].iter().all(|e| !e.duplicate) && !enq[4].duplicate);
    assert_eq!(store.counts(&bad).await.unwrap().total.queued, 3);
    assert_eq!(store.counts(&good).await.unwrap().total.queued, 2);
}

/// How many of `ids` in `queue` have no record.
async fn missing(store: &dyn JobStore, queue: &str, ids: &[JobId]) -> usize {
    let mut none = 0;
    for id in ids {
        if store.job(queue, *id).await.unwrap().is_none() {
            none += 1;
        }
    }
    none
}
