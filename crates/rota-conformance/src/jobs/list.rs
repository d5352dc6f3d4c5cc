//! Listing jobs: every state, paged, filtered by tenant; the queues.

use std::collections::{BTreeMap, BTreeSet};

use rota_core::jobs::{JobPage, JobQuery, JobRecord};

use super::*;

/// Every page of `query` over `q`, in order, checked on the way: none
/// longer than its limit, and not endless.
async fn pages(
    store: &dyn JobBackend,
    q: &str,
    mut query: JobQuery,
    most: usize,
) -> Vec<JobRecord> {
    let mut out = Vec::new();
    for _ in 0..most + 2 {
        let JobPage { jobs, next, .. } = store.list_jobs(q, &query).await.unwrap();
        assert!(jobs.len() <= query.limit, "a page longer than its limit");
        out.extend(jobs);
        match next {
            Some(cursor) => query = query.after(cursor),
            None => return out,
        }
    }
    panic!("{query:?}: more pages than jobs");
}

/// Jobs in every state are listed, each once, page by page whatever the
/// page size, by tenant too; in the state's order (soonest due first,
/// partition by partition, the latest finished or dead first). Queued jobs
/// count those of a tenant parked at its cap and of tenants grouped in a
/// partition, and not those cancelled while queued. A cursor that no page
/// handed out is refused. The queue is among the store's queues.
pub async fn jobs_are_listed_by_state_page_by_page(store: &dyn JobBackend) {
    let q = queue("list");
    let mut want: BTreeMap<JobState, Vec<(JobId, String)>> = BTreeMap::new();
    let mut note = |state, id, tenant: &str| {
        want.entry(state).or_default().push((id, tenant.to_owned()));
    };

    // Running, then finished in each way, a few ms apart.
    let enq = store
        .enqueue(["r", "r", "r", "r", "s", "s"].map(|t| job(&q, t)).to_vec())
        .await
        .unwrap();
    let c = store.job_consumer(&q, opts()).await.unwrap();
    let mut held = Vec::new();
    while held.len() < enq.len() {
        let got = c.claim(enq.len() - held.len(), FOUND).await.unwrap();
        assert!(!got.is_empty(), "claimed {} of {}", held.len(), enq.len());
        held.extend(got);
    }
    let by_id: BTreeMap<JobId, Job> = held.into_iter().map(|j| (j.id, j)).collect();
    let get = |n: usize| &by_id[&enq[n].id];
    for (n, next) in [
        (0, Next::Finish(JobState::Succeeded)),
        (1, Next::Finish(JobState::Succeeded)),
        (4, Next::Finish(JobState::Failed)),
        (2, Next::Dead("no".into())),
    ] {
        advance(Duration::from_millis(5));
        let s = match next {
            Next::Finish(JobState::Succeeded) => succeeded(get(n), &*c),
            next => failed(get(n), &*c, "x", next),
        };
        assert_eq!(c.settle(vec![s]).await.unwrap(), 1);
    }
    note(JobState::Succeeded, enq[1].id, "r");
    note(JobState::Succeeded, enq[0].id, "r");
    note(JobState::Failed, enq[4].id, "s");
    note(JobState::Dead, enq[2].id, "r");
    note(JobState::Running, enq[3].id, "r");
    note(JobState::Running, enq[5].id, "s");

    // A tenant at its cap: one job running, two queued (parked on Redis).
    let parked = store
        .enqueue((0..3).map(|_| job(&q, "p")).collect())
        .await
        .unwrap();
    let capped = store.job_consumer(&q, opts().tenant_cap(1)).await.unwrap();
    let got = capped.claim(3, FOUND).await.unwrap();
    assert_eq!(got.len(), 1, "a cap of one");
    for e in &parked {
        let state = if e.id == got[0].id {
            JobState::Running
        } else {
            JobState::Queued
        };
        note(state, e.id, "p");
    }

    // Queued: own partitions, a priority, grouped tenants; one cancelled.
    let mut queued = vec![
        job(&q, "a"),
        job(&q, "b"),
        job(&q, "a"),
        job(&q, "c").priority(5),
        job(&q, "g1").tenant_group(4),
        job(&q, "g2").tenant_group(4),
        job(&q, "b"),
        job(&q, "a"),
    ];
    let tenants: Vec<String> = queued.iter().map(|j| j.tenant.clone()).collect();
    queued.push(job(&q, "a"));
    let enq = store.enqueue(queued).await.unwrap();
    for (e, t) in enq.iter().zip(&tenants) {
        note(JobState::Queued, e.id, t);
    }
    let gone = enq.last().unwrap().id;
    assert_eq!(
        store.cancel(&q, gone).await.unwrap(),
        CancelOutcome::Cancelled
    );
    note(JobState::Cancelled, gone, "a");

    // Scheduled, two due at the same instant.
    let now = now_ms();
    let later = [(90, "b"), (30, "a"), (60, "a"), (60, "b")];
    let enq = store
        .enqueue(
            later
                .iter()
                .map(|(s, t)| job(&q, t).at(now + s * 1000))
                .collect(),
        )
        .await
        .unwrap();
    for (e, (_, t)) in enq.iter().zip(later) {
        note(JobState::Scheduled, e.id, t);
    }

    for (state, jobs) in &want {
        let all: BTreeSet<JobId> = jobs.iter().map(|(id, _)| *id).collect();
        for limit in [1, 2, 100] {
            let got = pages(store, &q, JobQuery::new(*state).limit(limit), jobs.len()).await;
            let ids: Vec<JobId> = got.iter().map(|r| r.job.id).collect();
            let set: BTreeSet<JobId> = ids.iter().copied().collect();
            assert_eq!(set.len(), ids.len(), "{state:?} by {limit}: a job twice");
            assert_eq!(set, all, "{state:?} by {limit}");
            assert!(got.iter().all(|r| r.state == *state));
            match state {
                JobState::Scheduled => assert!(
                    got.is_sorted_by_key(|r| r.job.scheduled_for_ms),
                    "soonest due first"
                ),
                JobState::Queued => assert!(
                    got.is_sorted_by(|x, y| x.job.partition <= y.job.partition),
                    "partition by partition"
                ),
                JobState::Succeeded => {
                    let order: Vec<JobId> = jobs.iter().map(|(id, _)| *id).collect();
                    assert_eq!(ids, order, "the latest finished first");
                }
                _ => {}
            }
        }
        for tenant in ["a", "p", "r", "g1"] {
            let mine: BTreeSet<JobId> = jobs
                .iter()
                .filter(|(_, t)| t == tenant)
                .map(|(id, _)| *id)
                .collect();
            for limit in [1, 100] {
                let query = JobQuery::new(*state).tenant(tenant).limit(limit);
                let got = pages(store, &q, query, jobs.len()).await;
                let ids: BTreeSet<JobId> = got.iter().map(|r| r.job.id).collect();
                assert_eq!(ids.len(), got.len(), "{state:?} of {tenant}: a job twice");
                assert_eq!(ids, mine, "{state:?} of {tenant} by {limit}");
            }
        }
    }
    assert!(
        pages(
            store,
            &q,
            JobQuery::new(JobState::Queued).tenant("nobody"),
            0
        )
        .await
        .is_empty()
    );

    // Bad queries are refused before anything is read.
    for state in want.keys() {
        for bad in ["garbage", "1 2 3 4 5 6", "x y", "-1"] {
            let query = JobQuery::new(*state).after(bad);
            assert!(
                matches!(
                    store.list_jobs(&q, &query).await,
                    Err(BrokerError::Invalid(_))
                ),
                "{state:?} after {bad:?}"
            );
        }
    }
    for bad in [
        JobQuery::new(JobState::Queued).limit(0),
        JobQuery::new(JobState::Queued).tenant("a b"),
    ] {
        assert!(matches!(
            store.list_jobs(&q, &bad).await,
            Err(BrokerError::Invalid(_))
        ));
    }
    assert!(matches!(
        store
            .list_jobs("bad queue", &JobQuery::new(JobState::Queued))
            .await,
        Err(BrokerError::Invalid(_))
    ));
    let unused = queue("list-none");
    assert_eq!(
        store
            .list_jobs(&unused, &JobQuery::new(JobState::Dead))
            .await
            .unwrap(),
        JobPage::default()
    );

    let queues = store.queues().await.unwrap();
    assert!(queues.contains(&q), "{q} not among {queues:?}");
    assert!(!queues.contains(&unused));
    assert!(queues.is_sorted());
    let policy = queue("list-policy");
    store
        .set_policy(&policy, QueuePolicy::default())
        .await
        .unwrap();
    assert!(store.queues().await.unwrap().contains(&policy));
}
