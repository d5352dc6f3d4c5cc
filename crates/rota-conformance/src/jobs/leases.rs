//! Leases: renewal, fencing, release, and reaping the work of lapsed ones.

use super::*;

/// A job whose workers keep dying is dead-lettered once its attempts reach
/// its maximum, with a `Lost` attempt for each and a reason naming the
/// lapsed leases.
pub async fn dead_after_exhausted_reaps(store: &dyn JobBackend) {
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
    let record = store.job(&q, id).await.unwrap().unwrap();
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
    assert_eq!(dead(store, &q).await.len(), 1);

    // Without a maximum of its own, the queue's policy applies.
    let q = queue("dead-reap-default");
    store
        .set_policy(&q, QueuePolicy::default().max_attempts(1))
        .await
        .unwrap();
    let id = store.enqueue(vec![job(&q, "a")]).await.unwrap()[0].id;
    let c = store.job_consumer(&q, short()).await.unwrap();
    claim_one(&*c).await;
    lapse().await;
    let reaper = store.job_consumer(&q, short()).await.unwrap();
    assert_eq!(reaper.reap().await.unwrap().dead_lettered, 1);
    assert_eq!(state_of(store, &q, id).await, JobState::Dead);
}

/// A job whose worker's lease lapsed is reaped and delivered again with
/// attempt + 1; its record holds a `Lost` attempt by that worker, timed
/// from the claim.
pub async fn lost_lease_is_redelivered(store: &dyn JobBackend) {
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
    assert_eq!(state_of(store, &q, id).await, JobState::Queued);
    let again = claim_one(&*b).await;
    assert_eq!(again.id, id);
    assert_eq!(again.attempt, 2);
    let record = store.job(&q, id).await.unwrap().unwrap();
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
pub async fn stale_settle_is_refused(store: &dyn JobBackend) {
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
    assert_eq!(state_of(store, &q, id).await, JobState::Running);
    assert_eq!(b.settle(vec![succeeded(&again, &*b)]).await.unwrap(), 1);
    assert_eq!(state_of(store, &q, id).await, JobState::Succeeded);
}

/// A worker opened with the name of a live one takes the lease over: a
/// later epoch; the earlier holder's writes are refused at once, though its
/// own lease has not run out, and its jobs are handed back with a `Lost`
/// attempt.
pub async fn a_later_epoch_fences_the_earlier(store: &dyn JobBackend) {
    let q = queue("epoch");
    let id = store.enqueue(vec![job(&q, "a")]).await.unwrap()[0].id;
    let long = opts().lease(Duration::from_secs(60)).name("host-1");
    let a = store.job_consumer(&q, long.clone()).await.unwrap();
    assert_eq!(a.id(), "host-1");
    let got = claim_one(&*a).await;
    let b = store.job_consumer(&q, long.clone()).await.unwrap();
    assert!(b.epoch() > a.epoch(), "{} then {}", a.epoch(), b.epoch());
    assert_eq!(
        a.settle(vec![succeeded(&got, &*a)]).await,
        Err(BrokerError::LeaseLost)
    );
    assert_eq!(a.renew().await, Err(BrokerError::LeaseLost));
    assert_eq!(
        a.release(vec![id], false).await,
        Err(BrokerError::LeaseLost)
    );
    // The takeover handed the job back.
    let again = claim_one(&*b).await;
    assert_eq!((again.id, again.attempt), (id, 2));
    let record = store.job(&q, id).await.unwrap().unwrap();
    assert_eq!(record.attempts.len(), 1);
    assert_eq!(record.attempts[0].outcome, AttemptOutcome::Lost);
    assert_eq!(b.settle(vec![succeeded(&again, &*b)]).await.unwrap(), 1);
    assert_eq!(state_of(store, &q, id).await, JobState::Succeeded);
    // Epochs never go back, even once the lease is given up.
    b.close().await.unwrap();
    a.close().await.unwrap();
    let c = store.job_consumer(&q, long).await.unwrap();
    assert!(c.epoch() > b.epoch(), "{} then {}", b.epoch(), c.epoch());
    assert!(store.job_consumer(&q, opts().name("a b")).await.is_err());
}

/// Renewal keeps a lease alive past its length.
pub async fn renewal_keeps_the_lease(store: &dyn JobBackend) {
    // Leases run on tokio's, Redis's or the store's clock: the time moves
    // on all of them, and a 2 s lease renewed every 250 ms for 3 s leaves a
    // wide margin on a busy machine.
    let lease = opts().lease(Duration::from_secs(2));
    let q = queue("renew");
    store.enqueue(vec![job(&q, "a")]).await.unwrap();
    let a = store.job_consumer(&q, lease.clone()).await.unwrap();
    let got = claim_one(&*a).await;
    let b = store.job_consumer(&q, lease).await.unwrap();
    for _ in 0..12 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        advance(Duration::from_millis(250));
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
pub async fn release_and_close_give_back_at_once(store: &dyn JobBackend) {
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
    assert_eq!(state_of(store, &q, started).await, JobState::Queued);
    let b = store.job_consumer(&q, opts()).await.unwrap();
    let again = b.claim(3, FOUND).await.unwrap();
    assert_eq!(again.len(), 2);
    let find = |id: JobId| again.iter().find(|j| j.id == id).expect("redelivered");
    assert_eq!(find(started).attempt, 2);
    assert_eq!(find(unstarted).attempt, 1);
    let record = store.job(&q, started).await.unwrap().unwrap();
    assert_eq!(record.attempts.len(), 1);
    assert_eq!(record.attempts[0].outcome, AttemptOutcome::Cancelled);
    assert_eq!(record.attempts[0].worker, a.id());
    assert!(
        store
            .job(&q, unstarted)
            .await
            .unwrap()
            .unwrap()
            .attempts
            .is_empty()
    );

    a.close().await.unwrap();
    assert_eq!(state_of(store, &q, closed).await, JobState::Queued);
    let last = claim_one(&*b).await;
    assert_eq!(last.id, closed);
    assert_eq!(last.attempt, 1);
}
