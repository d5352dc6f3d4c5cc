//! Settling: retries, failures, dead-letters, and the outcome replies the store owes.

use super::*;

/// A retry at an instant makes the job scheduled with the next attempt
/// number; it is delivered again once due.
pub async fn retry_at_schedules_the_next_attempt(store: &dyn JobBackend) {
    let q = queue("retry");
    let id = store.enqueue(vec![job(&q, "a")]).await.unwrap()[0].id;
    let c = store.job_consumer(&q, opts()).await.unwrap();
    let got = claim_one(&*c).await;
    let at = now_ms() + 60_000;
    let s = failed(&got, &*c, "smtp said 451", Next::RetryAt(at));
    assert_eq!(c.settle(vec![s]).await.unwrap(), 1);
    let record = store.job(&q, id).await.unwrap().unwrap();
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
    // Leases kept by the store's clock lapse as it jumps: a fresh consumer.
    advance(Duration::from_secs(60));
    let c = store.job_consumer(&q, opts()).await.unwrap();
    let again = claim_one(&*c).await;
    assert!(now_ms() >= at);
    assert_eq!(again.id, id);
    assert_eq!(again.attempt, 2);
    assert_eq!(again.scheduled_for_ms, at);
    c.settle(vec![succeeded(&again, &*c)]).await.unwrap();
    let record = store.job(&q, id).await.unwrap().unwrap();
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
pub async fn failed_for_good_keeps_the_reason(store: &dyn JobBackend) {
    let q = queue("failed");
    let id = store.enqueue(vec![job(&q, "a")]).await.unwrap()[0].id;
    let c = store.job_consumer(&q, opts()).await.unwrap();
    let got = claim_one(&*c).await;
    let s = failed(&got, &*c, "no such user", Next::Finish(JobState::Failed));
    c.settle(vec![s]).await.unwrap();
    let record = store.job(&q, id).await.unwrap().unwrap();
    assert_eq!(record.state, JobState::Failed);
    assert_eq!(record.reason.as_deref(), Some("no such user"));
    assert!(record.finished_at_ms.is_some());
    assert!(dead(store, &q).await.is_empty());
}

/// `Next::Dead` puts the job in the dead-letter set with the reason.
pub async fn dead_by_the_worker(store: &dyn JobBackend) {
    let q = queue("dead-next");
    let id = store.enqueue(vec![job(&q, "a")]).await.unwrap()[0].id;
    let c = store.job_consumer(&q, opts()).await.unwrap();
    let got = claim_one(&*c).await;
    let s = failed(&got, &*c, "boom", Next::Dead("unknown job kind".into()));
    assert_eq!(c.settle(vec![s]).await.unwrap(), 1);
    let dead = dead(store, &q).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].job.id, id);
    assert_eq!(dead[0].state, JobState::Dead);
    assert_eq!(dead[0].reason.as_deref(), Some("unknown job kind"));
    assert_eq!(dead[0].attempts.len(), 1);
    assert_eq!(store.counts(&q).await.unwrap().total.dead, 1);
    assert!(c.claim(1, NOTHING).await.unwrap().is_empty());
}

/// Outcomes the store decides itself — a reap that dead-letters a job, a
/// cancel — reach the job's `reply_to` inbox, so nobody awaits in vain.
pub async fn store_decided_outcomes_are_replied(store: &dyn JobBackend) {
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
    assert_eq!(
        store.cancel(&q, later).await.unwrap(),
        rota_core::jobs::CancelOutcome::Cancelled
    );

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

/// `Next::Finish` with a state that is not final is refused, and the job
/// stays running.
pub async fn finishing_in_a_state_that_is_not_final_is_refused(store: &dyn JobBackend) {
    let q = queue("notfinal");
    store.enqueue(vec![job(&q, "a")]).await.unwrap();
    let c = store.job_consumer(&q, opts()).await.unwrap();
    let got = claim_one(&*c).await;
    let mut s = succeeded(&got, &*c);
    s.next = Next::Finish(JobState::Queued);
    let err = c.settle(vec![s]).await.unwrap_err();
    assert!(err.to_string().contains("final state"), "{err}");
    assert_eq!(state_of(store, &q, got.id).await, JobState::Running);
}
