//! Claiming fairly: priority and order within a partition, partitions in turn, the tenant cap.

use super::*;

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
