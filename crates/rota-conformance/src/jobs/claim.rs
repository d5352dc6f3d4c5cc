//! Claiming fairly: priority and order within a partition, partitions in turn, the tenant cap.

use super::*;

/// Within a partition the highest priority runs first, then the oldest.
pub async fn priority_then_fifo_within_a_partition(store: &dyn JobBackend) {
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

/// Within a partition shared by many tenants, the order holds across them:
/// the highest priority of any tenant first, then the oldest, claim after
/// claim and within one claim.
pub async fn priority_then_fifo_across_the_tenants_of_a_partition(store: &dyn JobBackend) {
    let q = queue("prio-group");
    // Forty tenants in one partition, each with a job at each of three
    // priorities, enqueued tenant by tenant.
    let mut batch = Vec::new();
    for t in 0..40 {
        for p in [0, 7, 3] {
            batch.push(job(&q, &format!("t{t:02}")).partition("g").priority(p));
        }
    }
    let ids: Vec<JobId> = store
        .enqueue(batch)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    let mut expect = Vec::new();
    for p in [1, 2, 0] {
        expect.extend((0..40).map(|t| ids[t * 3 + p]));
    }
    let c = store.job_consumer(&q, opts()).await.unwrap();
    let mut order = Vec::new();
    order.push(claim_one(&*c).await.id);
    order.extend(c.claim(59, FOUND).await.unwrap().iter().map(|j| j.id));
    while order.len() < expect.len() {
        order.push(claim_one(&*c).await.id);
    }
    assert_eq!(
        order, expect,
        "priority first, then enqueue order, whatever the tenant"
    );
}

/// Partitions take turns: a tenant enqueued behind another's backlog runs
/// among the first, and successive claims continue where the last stopped.
pub async fn round_robin_across_partitions(store: &dyn JobBackend) {
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
pub async fn tenant_cap_holds_across_consumers(store: &dyn JobBackend) {
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

/// The tenant cap skips a capped tenant's jobs, however many of them stand
/// in front, and serves the other tenants of the same partition.
pub async fn a_capped_tenant_does_not_block_its_partition(store: &dyn JobBackend) {
    let q = queue("capfront");
    // Sixty of tenant a's jobs, all ahead of b's by priority, in one partition.
    let mut batch: Vec<NewJob> = (0..60)
        .map(|_| job(&q, "a").partition("g").priority(5))
        .collect();
    batch.push(job(&q, "b").partition("g"));
    store.enqueue(batch).await.unwrap();
    let c = store.job_consumer(&q, opts().tenant_cap(1)).await.unwrap();
    let got = c.claim(5, FOUND).await.unwrap();
    let tenants: Vec<&str> = got.iter().map(|j| j.tenant.as_str()).collect();
    assert_eq!(tenants, ["a", "b"], "one of a's (capped at 1), then b's");
    assert!(c.claim(5, NOTHING).await.unwrap().is_empty(), "a is capped");
}

/// A claim waiting on a capped tenant wakes when a settle frees a slot,
/// not at the end of its wait.
pub async fn a_capped_claim_wakes_when_a_slot_frees(store: &dyn JobBackend) {
    let q = queue("capwake");
    store
        .enqueue(vec![job(&q, "a"), job(&q, "a")])
        .await
        .unwrap();
    let c = store.job_consumer(&q, opts().tenant_cap(1)).await.unwrap();
    let first = claim_one(&*c).await;
    let started = tokio::time::Instant::now();
    let (second, ()) = tokio::join!(c.claim(1, Duration::from_secs(30)), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        c.settle(vec![succeeded(&first, &*c)]).await.unwrap();
    });
    assert_eq!(second.unwrap().len(), 1, "the freed slot is taken");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the claim slept through the freed slot"
    );
}

/// Small claims continue where the last stopped, over many partitions; one
/// claim larger than the ring goes round it again.
pub async fn claims_take_turns_over_many_partitions(store: &dyn JobBackend) {
    let q = queue("manyparts");
    let batch = (0..3)
        .flat_map(|_| (0..300).map(|t| job(&q, &format!("t{t:03}"))))
        .collect::<Vec<_>>();
    for chunk in batch.chunks(300) {
        store.enqueue(chunk.to_vec()).await.unwrap();
    }
    let c = store.job_consumer(&q, opts()).await.unwrap();
    let mut tenants = std::collections::HashSet::new();
    for _ in 0..30 {
        for j in c.claim(10, FOUND).await.unwrap() {
            assert!(tenants.insert(j.tenant), "a tenant served twice in a round");
        }
    }
    assert_eq!(tenants.len(), 300);
    let got = c.claim(600, FOUND).await.unwrap();
    assert_eq!(got.len(), 600);
    let first: std::collections::HashSet<_> = got[..300].iter().map(|j| &j.tenant).collect();
    assert_eq!(first.len(), 300);
}

/// A partition that becomes ready — an idle tenant's new job, or a
/// scheduled one coming due — is served at the next claim, not when the
/// round under way reaches it: a quiet tenant does not wait behind a round
/// of busy ones.
pub async fn an_idle_tenant_is_served_at_the_next_claim(store: &dyn JobBackend) {
    let q = queue("idle");
    let batch = (0..3)
        .flat_map(|_| (0..200).map(|t| job(&q, &format!("p{t:03}"))))
        .collect::<Vec<_>>();
    store.enqueue(batch).await.unwrap();
    let c = store.job_consumer(&q, opts()).await.unwrap();
    let mut served: std::collections::HashMap<String, usize> = Default::default();
    let mut count = |jobs: Vec<Job>| {
        for j in jobs {
            *served.entry(j.tenant).or_default() += 1;
        }
    };
    // Well into the rounds of the busy tenants.
    for _ in 0..25 {
        let got = c.claim(10, FOUND).await.unwrap();
        assert_eq!(got.len(), 10);
        count(got);
    }
    // "idle" and "later" sort before every busy tenant: by name, the
    // ring would reach them only after the round's other partitions.
    store.enqueue(vec![job(&q, "idle")]).await.unwrap();
    let got = c.claim(1, FOUND).await.unwrap();
    assert_eq!(got[0].tenant, "idle", "the idle tenant waited");
    count(got);
    store
        .enqueue(vec![job(&q, "later").at(now_ms() + 1_000)])
        .await
        .unwrap();
    let got = c.claim(1, FOUND).await.unwrap();
    assert_ne!(got[0].tenant, "later", "served before it was due");
    count(got);
    advance(Duration::from_millis(1_001));
    let got = c.claim(1, FOUND).await.unwrap();
    assert_eq!(
        got[0].tenant, "later",
        "a job come due waited for the round"
    );
    count(got);
    // The busy tenants' jobs all follow, none lost or served twice.
    loop {
        let got = c.claim(100, Duration::ZERO).await.unwrap();
        if got.is_empty() {
            break;
        }
        count(got);
    }
    assert_eq!(served.len(), 202);
    assert!(
        served
            .iter()
            .all(|(t, n)| *n == if t.starts_with('p') { 3 } else { 1 })
    );
}

/// Round-robin holds over fifty thousand partitions: claim after claim,
/// every partition is served once before any is served twice, and a
/// partition that becomes ready half way round is served before any other
/// is served again. (That a claim's cost does not grow with the partitions
/// cannot be checked without timing it; this is the load under which a
/// store that scans its partitions per claim would show, in the suite's
/// run time.)
pub async fn round_robin_over_fifty_thousand_partitions(store: &dyn JobBackend) {
    const PARTITIONS: usize = 50_000;
    let q = queue("fiftyk");
    // Three jobs in one partition, then one in each of the others.
    let mut batch: Vec<NewJob> = (0..3).map(|_| job(&q, "heavy")).collect();
    batch.extend((0..PARTITIONS).map(|t| job(&q, &format!("t{t}"))));
    for chunk in batch.chunks(1000) {
        store.enqueue(chunk.to_vec()).await.unwrap();
    }
    let c = store.job_consumer(&q, opts()).await.unwrap();
    let mut order: Vec<String> = Vec::new();
    while order.len() < PARTITIONS / 2 {
        let got = c.claim(500, FOUND).await.unwrap();
        assert!(!got.is_empty(), "jobs are queued");
        order.extend(got.into_iter().map(|j| j.tenant));
    }
    // A partition that becomes ready half way round.
    let joined_at = order.len();
    store.enqueue(vec![job(&q, "late")]).await.unwrap();
    while order.len() < PARTITIONS + 4 {
        let got = c.claim(500, FOUND).await.unwrap();
        assert!(!got.is_empty(), "jobs are queued");
        order.extend(got.into_iter().map(|j| j.tenant));
    }
    assert_eq!(order.len(), PARTITIONS + 4, "every job once");
    let mut seen = std::collections::HashSet::new();
    for (n, tenant) in order[..=PARTITIONS].iter().enumerate() {
        assert!(
            seen.insert(tenant),
            "claim {n}: {tenant} served a second time before every partition was served once"
        );
    }
    let late = order[joined_at..]
        .iter()
        .position(|t| t == "late")
        .expect("late was served");
    let mut since = std::collections::HashSet::new();
    for tenant in &order[joined_at..joined_at + late] {
        assert!(
            since.insert(tenant),
            "{tenant} was served twice while the late partition waited ({late} claims)"
        );
    }
    let heavy = order.iter().filter(|t| *t == "heavy").count();
    assert_eq!(heavy, 3);
}
