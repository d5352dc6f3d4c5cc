//! How Redis orders partitions beyond what every store promises: a
//! partition that becomes ready is served at the next claim, however many
//! partitions have backlogs, then takes its turns at the back.

#![allow(missing_docs)]

mod support;

use std::time::Duration;

use rota_core::jobs::{JobConsumerOptions, JobStore, NewJob};

fn job(queue: &str, tenant: &str) -> NewJob {
    NewJob::new(queue, tenant, "k", &0).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_tenant_is_served_at_the_next_claim_behind_many_backlogs() {
    let server = support::RedisServer::start();
    let store = support::broker(&server).await;
    let q = "fair-front";
    let backlog: Vec<NewJob> = (0..2)
        .flat_map(|_| (0..500).map(|t| job(q, &format!("noisy{t}"))))
        .collect();
    store.enqueue(backlog).await.unwrap();
    let c = store
        .job_consumer(q, JobConsumerOptions::default())
        .await
        .unwrap();
    let wait = Duration::from_secs(2);
    assert_eq!(c.claim(10, wait).await.unwrap().len(), 10);

    // The quiet tenant comes after 500 partitions that are not served yet,
    // and goes first; its lane runs dry with that job, and the next one it
    // enqueues goes first again.
    for round in 0..3 {
        store.enqueue(vec![job(q, "quiet")]).await.unwrap();
        let got = c.claim(1, wait).await.unwrap();
        assert_eq!(got[0].tenant, "quiet", "round {round}");
        let next = c.claim(1, wait).await.unwrap();
        assert!(next[0].tenant.starts_with("noisy"));
    }

    // A partition that stays busy takes its turns at the back.
    store
        .enqueue(vec![job(q, "busy"), job(q, "busy")])
        .await
        .unwrap();
    assert_eq!(c.claim(1, wait).await.unwrap()[0].tenant, "busy");
    for _ in 0..50 {
        let got = c.claim(1, wait).await.unwrap();
        assert_ne!(got[0].tenant, "busy", "served again before its turn");
    }
}
