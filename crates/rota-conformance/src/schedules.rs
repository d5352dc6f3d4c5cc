//! The schedules suite: what every
//! [`ScheduleStore`](rota_core::schedules::ScheduleStore) does.
//!
//! The checks drive the store as a scheduler and an API would, with
//! schedules made by hand (the planner is checked in `rota-core`); leases
//! run on short TTLs and real time.

use std::time::Duration;

use rota_core::BrokerError;
use rota_core::jobs::{JobId, NewJob};
use rota_core::schedules::{
    Asked, Change, JobTemplate, MAX_HISTORY, NewSchedule, Outbound, Request, RunRecord, RunRef,
    RunState, Schedule, ScheduleError, ShardLease, Skip, Trigger, shard_of,
};

use crate::ScheduleBackend;

/// Generates one test per check of the schedules suite. `$make` is an
/// async block giving `(guard, store)`.
#[macro_export]
macro_rules! schedules_tests {
    ($make:expr) => {
        $crate::schedules_tests!(@each $make;
            insert_get_list_delete, replace_is_compare_and_set, shard_leases_are_fenced,
            the_due_index_answers_what_came_due, commits_write_the_outbox_and_history,
            shard_inboxes_keep_outcomes_until_acknowledged, heartbeats_list_the_living,
            upsert_many_replaces_whole);
    };
    (@each $make:expr; $($check:ident),* $(,)?) => {
        mod schedules_conformance {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let (_guard, store) = $make.await;
                    $crate::schedules::$check(&store).await;
                }
            )*
        }
    };
}

const TTL: u64 = 400;

fn schedule(id: &str, tenant: &str, due_ms: Option<i64>) -> Schedule {
    let job = JobTemplate::new("sched-q", "k", serde_json::json!({"n": 1}));
    let trigger = Trigger::cron("* * * * *");
    let mut s = Schedule::from_new(NewSchedule::new(tenant, job, trigger), id.to_owned(), 1_000);
    if let Some(at) = due_ms {
        let at = jiff::Timestamp::from_millisecond(at).unwrap();
        s.progress.next = Some(rota_core::schedules::Occurrence { at, fire_at: at });
    }
    s
}

/// Ids of `n` schedules that fall in shard `shard`.
fn ids_in(store: &dyn ScheduleBackend, shard: u32, n: usize, tag: &str) -> Vec<String> {
    (0..)
        .map(|i| format!("{tag}-{i}"))
        .filter(|id| shard_of(id, store.shards()) == shard)
        .take(n)
        .collect()
}

async fn lease(store: &dyn ScheduleBackend, shard: u32, holder: &str) -> ShardLease {
    store
        .acquire_shard(shard, holder, TTL)
        .await
        .unwrap()
        .expect("the shard is free")
}

fn lost<T: std::fmt::Debug>(r: Result<T, ScheduleError>) -> bool {
    matches!(r, Err(ScheduleError::Store(BrokerError::LeaseLost)))
}

/// Schedules are stored once by id, read back whole, listed by tenant in
/// pages by id, and deleted.
pub async fn insert_get_list_delete(store: &dyn ScheduleBackend) {
    for n in 0..5 {
        store
            .insert(schedule(&format!("crud-{n}"), "t-crud", None))
            .await
            .unwrap();
    }
    store
        .insert(schedule("crud-other", "t-other", None))
        .await
        .unwrap();
    assert!(matches!(
        store.insert(schedule("crud-0", "t-crud", None)).await,
        Err(ScheduleError::Exists(_))
    ));
    let got = store.get("crud-3").await.unwrap().unwrap();
    assert_eq!(got, schedule("crud-3", "t-crud", None));
    assert!(store.get("crud-none").await.unwrap().is_none());
    let first = store.list("t-crud", None, 2).await.unwrap();
    let ids: Vec<&str> = first.schedules.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["crud-0", "crud-1"]);
    let next = store
        .list("t-crud", first.next.as_deref(), 10)
        .await
        .unwrap();
    let ids: Vec<&str> = next.schedules.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["crud-2", "crud-3", "crud-4"]);
    assert!(next.next.is_none());
    assert!(store.delete("crud-2").await.unwrap());
    assert!(!store.delete("crud-2").await.unwrap());
    assert!(store.get("crud-2").await.unwrap().is_none());
    assert_eq!(
        store
            .list("t-crud", None, 10)
            .await
            .unwrap()
            .schedules
            .len(),
        4
    );
}

/// A change made from a stale read is refused and changes nothing; a
/// change from a fresh one bumps the version.
pub async fn replace_is_compare_and_set(store: &dyn ScheduleBackend) {
    store.insert(schedule("cas", "t", None)).await.unwrap();
    let read = store.get("cas").await.unwrap().unwrap();
    let mut a = read.clone();
    a.name = "first".into();
    let stored = store.replace(a).await.unwrap();
    assert_eq!(stored.version, read.version + 1);
    let mut b = read.clone();
    b.name = "second".into();
    assert!(matches!(
        store.replace(b).await,
        Err(ScheduleError::Conflict(_))
    ));
    let now = store.get("cas").await.unwrap().unwrap();
    assert_eq!(
        (now.name.as_str(), now.version),
        ("first", read.version + 1)
    );
    assert!(matches!(
        store.replace(schedule("cas-none", "t", None)).await,
        Err(ScheduleError::NotFound(_))
    ));
}

/// A shard's lease is granted only when free, each grant with a higher
/// epoch; once it lapsed (or another grant came) the earlier holder's
/// writes are refused.
///
/// A grant says when it ends, by the store's clock, and a renewal moves
/// that on; job enqueues fenced by the end of a lease that was taken over
/// are refused.
pub async fn shard_leases_are_fenced(store: &dyn ScheduleBackend) {
    let shard = store.shards() - 1;
    let before = rota_core::time::now_ms() as i64;
    let a = lease(store, shard, "a").await;
    let slack = 1_000;
    assert!(
        (before + TTL as i64 - slack..=before + TTL as i64 + slack).contains(&a.until_ms),
        "a lease of {TTL} ms granted at {before} ends at {}",
        a.until_ms
    );
    assert!(
        store
            .acquire_shard(shard, "b", TTL)
            .await
            .unwrap()
            .is_none(),
        "granted while held"
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    let renewed = store.renew_shard(&a, TTL).await.unwrap();
    assert!(renewed > a.until_ms, "{renewed} <= {}", a.until_ms);
    let owners = store.shard_owners().await.unwrap();
    let o = owners.iter().find(|o| o.shard == shard).unwrap();
    assert_eq!((o.holder.as_deref(), o.epoch), (Some("a"), a.epoch));
    tokio::time::sleep(Duration::from_millis(TTL + 200)).await;
    let b = lease(store, shard, "b").await;
    assert!(b.epoch > a.epoch);
    assert!(lost(store.renew_shard(&a, TTL).await));
    assert!(lost(store.due(&a, i64::MAX, 10).await));
    assert!(lost(store.commit(&a, Vec::new()).await));
    assert!(lost(store.ack_replies(&a, 0).await));
    assert!(lost(store.dispatched(&a, &[]).await));
    let late = NewJob::new("fenced-runs", "t", "k", &())
        .unwrap()
        .fenced_until(renewed as u64);
    assert!(matches!(
        store.enqueue(vec![late]).await,
        Err(BrokerError::LeaseLost)
    ));
    // Given back, it is free at once, and the next grant fences again.
    store.release_shard(&b).await.unwrap();
    let c = lease(store, shard, "c").await;
    assert!(c.epoch > b.epoch);
    assert!(lost(store.renew_shard(&b, TTL).await));
    store.release_shard(&c).await.unwrap();
    assert!(matches!(
        store.acquire_shard(store.shards(), "x", TTL).await,
        Err(ScheduleError::Invalid { .. })
    ));
}

/// The due index answers the shard's schedules due by an instant, earliest
/// first, up to a limit: not paused ones, and a schedule with a request at
/// once.
pub async fn the_due_index_answers_what_came_due(store: &dyn ScheduleBackend) {
    let shard = 0;
    let ids = ids_in(store, shard, 5, "due");
    store
        .insert(schedule(&ids[0], "t", Some(3_000)))
        .await
        .unwrap();
    store
        .insert(schedule(&ids[1], "t", Some(1_000)))
        .await
        .unwrap();
    store
        .insert(schedule(&ids[2], "t", Some(9_000)))
        .await
        .unwrap();
    let mut paused = schedule(&ids[3], "t", Some(500));
    paused.paused = true;
    store.insert(paused).await.unwrap();
    let mut asked = schedule(&ids[4], "t", None);
    asked.requests.push(Request::new(2_000, Asked::TriggerNow));
    store.insert(asked).await.unwrap();
    let l = lease(store, shard, "due").await;
    let due: Vec<String> = store
        .due(&l, 5_000, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(due, [ids[1].clone(), ids[4].clone(), ids[0].clone()]);
    assert_eq!(store.due(&l, 5_000, 1).await.unwrap().len(), 1);
    assert_eq!(store.next_due(&l).await.unwrap(), Some(1_000));
    // Deleted, it is due no more.
    store.delete(&ids[1]).await.unwrap();
    assert_eq!(store.next_due(&l).await.unwrap(), Some(2_000));
    store.release_shard(&l).await.unwrap();
}

/// A commit is fenced and compare-and-set per schedule; the runs it
/// dispatches wait in the outbox until marked enqueued; its history
/// entries come back newest first, bounded, a finished run updating its
/// dispatched entry.
pub async fn commits_write_the_outbox_and_history(store: &dyn ScheduleBackend) {
    let shard = 1 % store.shards();
    let ids = ids_in(store, shard, 2, "commit");
    store
        .insert(schedule(&ids[0], "t", Some(1_000)))
        .await
        .unwrap();
    store
        .insert(schedule(&ids[1], "t", Some(1_000)))
        .await
        .unwrap();
    let l = lease(store, shard, "committer").await;
    let read = store.get(&ids[0]).await.unwrap().unwrap();
    let run = RunRef::of(&ids[0], 1_000);
    let mut s = read.clone();
    s.progress.next = None;
    s.progress.running.push(run.clone());
    let mut change = Change::new(s);
    change.dispatch.push(run.clone());
    change.history.push(RunRecord::dispatched(&run, 1_005));
    change
        .history
        .push(RunRecord::skipped(900, 950, 2, Skip::Missed, 1_005));
    let mut stale = Change::new(store.get(&ids[1]).await.unwrap().unwrap());
    stale.schedule.version += 7;
    let results = store.commit(&l, vec![change, stale]).await.unwrap();
    assert_eq!(results[0].as_ref().unwrap().version, read.version + 1);
    assert!(matches!(results[1], Err(ScheduleError::Conflict(_))));
    let stored = store.get(&ids[0]).await.unwrap().unwrap();
    assert_eq!(stored.progress.running, vec![run.clone()]);
    assert_eq!(
        store.next_due(&l).await.unwrap(),
        Some(1_000),
        "only the other is due"
    );
    let out = store.outbox(&l, 10).await.unwrap();
    assert_eq!(out, vec![Outbound::new(ids[0].clone(), run.clone())]);
    store.dispatched(&l, &out).await.unwrap();
    assert!(store.outbox(&l, 10).await.unwrap().is_empty());
    let runs = store.runs(&ids[0], 10).await.unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(
        runs[0].state,
        RunState::Skipped(Skip::Missed),
        "newest first"
    );
    assert_eq!(runs[1].state, RunState::Dispatched);
    // The run finishes.
    let mut change = Change::new(stored.clone());
    change.schedule.progress.running.clear();
    change.finished.push(RunRecord::finished(
        1_000,
        run.job,
        RunState::Finished(rota_core::jobs::JobState::Succeeded),
        1_010,
        1_020,
        1,
        None,
    ));
    store.commit(&l, vec![change]).await.unwrap()[0]
        .as_ref()
        .unwrap();
    let runs = store.runs(&ids[0], 10).await.unwrap();
    let done = runs.iter().find(|r| r.job == Some(run.job)).unwrap();
    assert_eq!(done.finished_ms, Some(1_020));
    assert_eq!(done.at_ms, 1_005, "the dispatch instant is kept");
    assert_eq!(runs.len(), 2, "updated in place");
    // Bounded.
    let mut s = store.get(&ids[0]).await.unwrap().unwrap();
    for n in 0..(MAX_HISTORY + 10) as i64 {
        let mut change = Change::new(s.clone());
        change
            .history
            .push(RunRecord::skipped(n, n, 1, Skip::Overlap, 2_000 + n));
        s = store
            .commit(&l, vec![change])
            .await
            .unwrap()
            .remove(0)
            .unwrap();
    }
    let runs = store.runs(&ids[0], 1_000).await.unwrap();
    assert_eq!(runs.len(), MAX_HISTORY);
    assert_eq!(runs[0].occurrence_ms, (MAX_HISTORY + 9) as i64);
    store.release_shard(&l).await.unwrap();
}

/// A shard's inbox is an inbox of the store: outcomes sent to it (here by
/// the job store, cancelling a queued job) stay, in order, until the
/// shard's holder acknowledges them.
pub async fn shard_inboxes_keep_outcomes_until_acknowledged(store: &dyn ScheduleBackend) {
    let shard = 2 % store.shards();
    let address = store.shard_inbox(shard);
    assert!(store.is_inbox(&address), "{address} is not an inbox");
    let mut ids: Vec<JobId> = Vec::new();
    for n in 0..3 {
        let mut job = NewJob::new("sched-inbox", "t", "k", &n).unwrap();
        job.reply_to = Some(address.clone());
        ids.push(store.enqueue(vec![job]).await.unwrap()[0].id);
    }
    for id in &ids {
        store.cancel("sched-inbox", *id).await.unwrap();
    }
    let l = lease(store, shard, "reader").await;
    let got = store.replies(&l, 10).await.unwrap();
    assert_eq!(got.len(), 3);
    let first = rota_core::Reply::decode(&got[0].body).unwrap();
    assert_eq!(first.id, rota_core::CorrelationId::from(*ids[0].as_uuid()));
    // Read again, they are still there.
    assert_eq!(store.replies(&l, 10).await.unwrap().len(), 3);
    store.ack_replies(&l, got[1].seq).await.unwrap();
    let left = store.replies(&l, 10).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].seq, got[2].seq);
    store.release_shard(&l).await.unwrap();
}

/// Heartbeats answer the schedulers alive, sorted; one that stopped
/// beating drops out once its TTL passed.
pub async fn heartbeats_list_the_living(store: &dyn ScheduleBackend) {
    store.heartbeat("hb-b", 5_000).await.unwrap();
    store.heartbeat("hb-a", 200).await.unwrap();
    let alive = store.heartbeat("hb-c", 5_000).await.unwrap();
    let ours: Vec<&str> = alive
        .iter()
        .map(String::as_str)
        .filter(|n| n.starts_with("hb-"))
        .collect();
    assert_eq!(ours, ["hb-a", "hb-b", "hb-c"]);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let alive = store.heartbeat("hb-c", 5_000).await.unwrap();
    assert!(!alive.iter().any(|n| n == "hb-a"));
}

/// An upsert stores new schedules and replaces existing ones whole.
pub async fn upsert_many_replaces_whole(store: &dyn ScheduleBackend) {
    store
        .insert(schedule("up-1", "t-up", Some(5_000)))
        .await
        .unwrap();
    let mut replaced = schedule("up-1", "t-up", None);
    replaced.name = "again".into();
    store
        .upsert_many(vec![replaced, schedule("up-2", "t-up", None)])
        .await
        .unwrap();
    let one = store.get("up-1").await.unwrap().unwrap();
    assert_eq!(one.name, "again");
    assert!(one.progress.next.is_none());
    assert!(store.get("up-2").await.unwrap().is_some());
    let shard = shard_of("up-1", store.shards());
    let l = lease(store, shard, "up").await;
    let due = store.due(&l, i64::MAX, 100).await.unwrap();
    assert!(
        !due.iter().any(|s| s.id == "up-1"),
        "the old due entry stayed"
    );
    store.release_shard(&l).await.unwrap();
}
