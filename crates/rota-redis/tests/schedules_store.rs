//! What the Redis schedule store keeps beyond the suite: its keys in their
//! shards' slots, a fixed number of shards, shard inboxes that never
//! expire, keys that hostile ids cannot break, versions an upsert cannot
//! roll back, its functions loaded again into a Redis that lost them, a
//! corrupt stored schedule read as an error, a schedule given twice in
//! one call, and many read at once.

mod support;

use std::time::Duration;

use redis::AsyncCommands;
use rota::jobs::{JobContext, JobError, JobState, NewJob, QueueOptions, Worker};
use rota_core::BrokerError;
use rota_core::jobs::JobStore;
use rota_core::schedules::{
    Change, JobTemplate, NewSchedule, Schedule, ScheduleError, ScheduleStore, Trigger, shard_of,
};
use rota_redis::{RedisBroker, RedisOptions};
use support::{RedisServer, await_state};

async fn with_shards(server: &RedisServer, shards: u32) -> RedisBroker {
    RedisBroker::connect_with(
        RedisOptions::new(server.url())
            .prefix("test")
            .schedule_shards(shards),
    )
    .await
    .expect("connect")
}

fn schedule(id: &str, tenant: &str) -> Schedule {
    let job = JobTemplate::new("q", "k", serde_json::json!({}));
    let mut s = Schedule::from_new(
        NewSchedule::new(tenant, job, Trigger::cron("* * * * *")),
        id.to_owned(),
        1_000,
    );
    let at = jiff::Timestamp::from_millisecond(5_000).unwrap();
    s.progress.next = Some(rota_core::schedules::Occurrence { at, fire_at: at });
    s
}

/// The shard a key's hash tag `{s:<n>}` names.
fn tag_shard(key: &str) -> Option<u32> {
    let rest = key.split_once("{s:")?.1;
    rest.split_once('}')?.0.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_a_shard_holds_is_about_that_shard() {
    let server = RedisServer::start();
    let store = with_shards(&server, 16).await;
    rota_conformance::schedules::commits_write_the_outbox_and_history(&store).await;
    rota_conformance::schedules::insert_get_list_delete(&store).await;
    rota_conformance::schedules::shard_inboxes_keep_outcomes_until_acknowledged(&store).await;
    let mut raw = server.raw().await;
    let keys: Vec<String> = raw.keys("test:{s:*").await.unwrap();
    assert!(keys.len() > 10, "{keys:?}");
    for key in &keys {
        if key.starts_with("test:{s:all}:") {
            continue;
        }
        let n = tag_shard(key).unwrap_or_else(|| panic!("{key} has no shard tag"));
        let rest = key.split_once("}:").unwrap().1;
        let of = |id: &str| shard_of(id, 16);
        match rest.split_once(':') {
            Some(("h", id)) => assert_eq!(of(id), n, "{key}"),
            Some(("t", _)) => {
                let ids: Vec<String> = raw.zrange(key, 0, -1).await.unwrap();
                assert!(ids.iter().all(|id| of(id) == n), "{key}: {ids:?}");
            }
            None if rest == "s" => {
                let ids: Vec<String> = raw.hkeys(key).await.unwrap();
                assert!(ids.iter().all(|id| of(id) == n), "{key}: {ids:?}");
            }
            None if rest == "due" => {
                let ids: Vec<String> = raw.zrange(key, 0, -1).await.unwrap();
                assert!(ids.iter().all(|id| of(id) == n), "{key}: {ids:?}");
            }
            None if rest == "outbox" => {
                let runs: Vec<String> = raw.zrange(key, 0, -1).await.unwrap();
                assert!(
                    runs.iter().all(|r| of(r.split(' ').next().unwrap()) == n),
                    "{key}: {runs:?}"
                );
            }
            None if ["lease", "meta", "r"].contains(&rest) => {}
            _ => panic!("a key of no known kind: {key}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_refuses_a_handle_with_another_number_of_shards() {
    let server = RedisServer::start();
    let first = with_shards(&server, 8).await;
    first.insert(schedule("a", "t")).await.unwrap();
    let other = with_shards(&server, 16).await;
    let e = other.get("a").await.unwrap_err();
    assert!(
        matches!(&e, ScheduleError::Store(BrokerError::Config(m)) if m.contains("8 shards")),
        "{e}"
    );
    assert!(other.acquire_shard(0, "x", 1_000).await.is_err());
    // The number the store was made with still works.
    assert!(
        with_shards(&server, 8)
            .await
            .get("a")
            .await
            .unwrap()
            .is_some()
    );
    assert!(matches!(
        RedisBroker::connect_with(RedisOptions::new(server.url()).schedule_shards(0)).await,
        Err(BrokerError::Config(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_to_a_shard_inbox_never_expire() {
    let server = RedisServer::start();
    let store = RedisBroker::connect_with(
        RedisOptions::new(server.url())
            .prefix("test")
            .schedule_shards(4)
            .reply_ttl(Duration::from_millis(200)),
    )
    .await
    .unwrap();
    let inbox = store.shard_inbox(3);
    // One outcome from a worker's settle, one from a cancel.
    let mut ran = NewJob::new("inbox-q", "t", "k", &1).unwrap();
    ran.reply_to = Some(inbox.clone());
    let mut cancelled = NewJob::new("inbox-q", "t", "other", &2).unwrap();
    cancelled.reply_to = Some(inbox.clone());
    let ids: Vec<_> = store
        .enqueue(vec![ran, cancelled])
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    store.cancel("inbox-q", ids[1]).await.unwrap();
    let worker = Worker::new(store.clone())
        .queue(
            "inbox-q",
            QueueOptions::default().claim_wait(Duration::from_millis(20)),
        )
        .handle("k", |_: JobContext, _: u32| async { Ok::<_, JobError>(()) })
        .spawn();
    await_state(
        &store,
        "inbox-q",
        &ids[..1],
        JobState::Succeeded,
        Duration::from_secs(10),
    )
    .await;
    worker.shutdown().await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut raw = server.raw().await;
    let ttl: i64 = raw.pttl(&inbox).await.unwrap();
    assert_eq!(ttl, -1, "the shard inbox got a TTL");
    let lease = store.acquire_shard(3, "r", 1_000).await.unwrap().unwrap();
    assert_eq!(store.replies(&lease, 10).await.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_that_would_break_keys_are_refused() {
    let server = RedisServer::start();
    let store = with_shards(&server, 4).await;
    for bad in ["a}b", "x{s:1}", "a b", "", "line\nbreak"] {
        let invalid = |r: Result<_, ScheduleError>| matches!(r, Err(ScheduleError::Invalid { .. }));
        assert!(
            invalid(store.insert(schedule(bad, "t")).await.map(|_| ())),
            "{bad:?}"
        );
        assert!(
            invalid(store.insert(schedule("ok", bad)).await.map(|_| ())),
            "{bad:?}"
        );
        assert!(invalid(store.get(bad).await.map(|_| ())), "{bad:?}");
        assert!(invalid(store.delete(bad).await.map(|_| ())), "{bad:?}");
        assert!(invalid(store.runs(bad, 10).await.map(|_| ())), "{bad:?}");
        assert!(
            invalid(store.list(bad, None, 10).await.map(|_| ())),
            "{bad:?}"
        );
        assert!(invalid(
            store
                .upsert_many(vec![schedule("fine", "t"), schedule(bad, "t")])
                .await
        ));
    }
    let mut raw = server.raw().await;
    let keys: Vec<String> = raw.keys("test:{s:*}:s").await.unwrap();
    assert!(keys.is_empty(), "an upsert with a bad id wrote: {keys:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_stored_schedule_is_a_protocol_error_and_spoils_no_other() {
    let server = RedisServer::start();
    let store = with_shards(&server, 4).await;
    store
        .upsert_many(vec![schedule("bad", "t"), schedule("good", "t")])
        .await
        .unwrap();
    let hash = format!("test:{{s:{}}}:s", shard_of("bad", 4));
    let mut raw = server.raw().await;
    let stored: String = raw.hget(&hash, "bad").await.unwrap();
    assert!(stored.starts_with("1 t {\"f\":1,"), "{stored}");
    let _: () = raw
        .hset(&hash, "bad", stored.replace("\"c\":", "\"c\":\"soon\","))
        .await
        .unwrap();
    fn protocol<T>(r: Result<T, ScheduleError>) -> String {
        match r {
            Err(ScheduleError::Store(BrokerError::Protocol(m))) => m,
            Err(e) => panic!("not a protocol error: {e}"),
            Ok(_) => panic!("a corrupt schedule was read"),
        }
    }
    let m = protocol(store.get("bad").await);
    assert!(m.contains("\"bad\"") && m.contains("invalid type"), "{m}");
    protocol(store.list("t", None, 10).await);
    let lease = store
        .acquire_shard(shard_of("bad", 4), "o", 5_000)
        .await
        .unwrap()
        .unwrap();
    protocol(store.due(&lease, i64::MAX, 10).await);
    assert!(store.get("good").await.unwrap().is_some());
    // Deleting it still works, and then the rest reads.
    assert!(store.delete("bad").await.unwrap());
    assert_eq!(store.list("t", None, 10).await.unwrap().schedules.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_from_before_an_upsert_cannot_be_committed_over_it() {
    let server = RedisServer::start();
    let store = with_shards(&server, 4).await;
    store.insert(schedule("up", "t")).await.unwrap();
    let shard = shard_of("up", 4);
    let lease = store
        .acquire_shard(shard, "o", 5_000)
        .await
        .unwrap()
        .unwrap();
    let read = store.get("up").await.unwrap().unwrap();
    // An import replaces it whole; its new content says version 1 again.
    let mut imported = schedule("up", "t");
    imported.name = "imported".into();
    store.upsert_many(vec![imported]).await.unwrap();
    let now = store.get("up").await.unwrap().unwrap();
    assert_eq!(
        (now.name.as_str(), now.version),
        ("imported", read.version + 1)
    );
    let results = store.commit(&lease, vec![Change::new(read)]).await.unwrap();
    assert!(matches!(results[0], Err(ScheduleError::Conflict(_))));
    assert_eq!(store.get("up").await.unwrap().unwrap().name, "imported");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restarted_empty_gets_the_functions_again() {
    let mut server = RedisServer::start();
    let store = with_shards(&server, 4).await;
    store.insert(schedule("before", "t")).await.unwrap();
    server.restart();
    let mut done = false;
    for _ in 0..100 {
        match store.insert(schedule("after", "t")).await {
            Ok(()) => {
                done = true;
                break;
            }
            Err(ScheduleError::Store(e)) if e.is_retryable() => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(done, "never stored again");
    let lease = store
        .acquire_shard(shard_of("after", 4), "o", 5_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(lease.epoch, 1, "the restarted Redis kept nothing");
    assert!(store.get("before").await.unwrap().is_none());
    assert!(store.get("after").await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_given_twice_in_one_call_is_written_as_the_last_says() {
    let server = RedisServer::start();
    let store = with_shards(&server, 4).await;
    store
        .upsert_many(vec![schedule("twice", "t1"), schedule("twice", "t2")])
        .await
        .unwrap();
    let read = store.get("twice").await.unwrap().unwrap();
    assert_eq!((read.tenant.as_str(), read.version), ("t2", 1));
    assert!(
        store
            .list("t1", None, 10)
            .await
            .unwrap()
            .schedules
            .is_empty()
    );
    assert_eq!(store.list("t2", None, 10).await.unwrap().schedules.len(), 1);
    // Two changes of one read in one commit: the second finds it moved.
    let lease = store
        .acquire_shard(shard_of("twice", 4), "o", 5_000)
        .await
        .unwrap()
        .unwrap();
    let mut moved = read.clone();
    moved.tenant = "t3".into();
    let results = store
        .commit(&lease, vec![Change::new(moved), Change::new(read)])
        .await
        .unwrap();
    assert!(results[0].is_ok());
    assert!(matches!(results[1], Err(ScheduleError::Conflict(_))));
    let now = store.get("twice").await.unwrap().unwrap();
    assert_eq!((now.tenant.as_str(), now.version), ("t3", 2));
    assert!(
        store
            .list("t2", None, 10)
            .await
            .unwrap()
            .schedules
            .is_empty()
    );
    assert_eq!(store.list("t3", None, 10).await.unwrap().schedules.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_schedules_read_at_once_come_in_the_order_asked() {
    let server = RedisServer::start();
    let store = with_shards(&server, 4).await;
    let ids: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
    store
        .upsert_many(ids.iter().step_by(2).map(|id| schedule(id, "t")).collect())
        .await
        .unwrap();
    let mut asked: Vec<&str> = ids.iter().map(String::as_str).rev().collect();
    asked.push("m0");
    let read = store.get_many(&asked).await.unwrap();
    assert_eq!(read.len(), asked.len());
    for (id, s) in asked.iter().zip(&read) {
        let even = id[1..].parse::<u32>().unwrap() % 2 == 0;
        assert_eq!(
            s.as_ref().map(|s| s.id.as_str()),
            even.then_some(*id),
            "{id}"
        );
    }
    assert!(store.get_many(&[]).await.unwrap().is_empty());
    assert!(matches!(
        store.get_many(&["m0", "a b"]).await,
        Err(ScheduleError::Invalid { .. })
    ));
}
