//! Schedulers killed and frozen on Redis (the end-to-end scenarios every
//! backend runs are in `rota/tests/schedules_redis.rs`): a scheduler
//! SIGKILLed while it holds every shard, whose leases lapse while another
//! scheduler takes over, and one frozen past its leases and fenced when it
//! thaws — no occurrence dispatched twice, runs going on.

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use rota::jobs::{JobContext, JobError, QueueOptions, Worker, WorkerHandle};
use rota::schedules::{
    JobTemplate, NewSchedule, RunRecord, RunState, Scheduler, SchedulerHandle, SchedulerOptions,
    Schedules, Trigger,
};
use rota_redis::{RedisBroker, RedisOptions};
use support::{Child, RedisServer, child_env};

const Q: &str = "runs";
const SHARDS: u32 = 8;

async fn store(url: &str) -> RedisBroker {
    RedisBroker::connect_with(
        RedisOptions::new(url)
            .prefix("test")
            .schedule_shards(SHARDS),
    )
    .await
    .expect("connect")
}

fn scheduler(store: &RedisBroker, name: &str) -> SchedulerHandle {
    Scheduler::new(store.clone())
        .options(
            SchedulerOptions::default()
                .name(name)
                .lease(Duration::from_millis(600))
                .poll(Duration::from_millis(20)),
        )
        .spawn()
}

/// A worker whose "sleep" jobs take `ms` milliseconds, counting starts.
fn worker(store: &RedisBroker, ms: u64, starts: Arc<AtomicU32>) -> WorkerHandle {
    Worker::new(store.clone())
        .queue(
            Q,
            QueueOptions::default()
                .claim_wait(Duration::from_millis(20))
                .lease(Duration::from_millis(300)),
        )
        .handle("sleep", move |_ctx: JobContext, _: serde_json::Value| {
            let starts = Arc::clone(&starts);
            async move {
                starts.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok::<_, JobError>(())
            }
        })
        .spawn()
}

fn every(ms: i64) -> Trigger {
    Trigger::fixed_rate(SignedDuration::from_millis(ms), Timestamp::now())
}

fn sleep_job() -> JobTemplate {
    JobTemplate::new(Q, "sleep", serde_json::json!({}))
}

fn finished(runs: &[RunRecord]) -> Vec<&RunRecord> {
    runs.iter()
        .filter(|r| matches!(r.state, RunState::Finished(_)))
        .collect()
}

/// Waits until `check` holds for the history of `id`, or panics.
async fn until_runs(
    schedules: &Schedules,
    id: &str,
    check: impl Fn(&[RunRecord]) -> bool,
) -> Vec<RunRecord> {
    for _ in 0..500 {
        let runs = schedules.runs(id, 100).await.unwrap();
        if check(&runs) {
            return runs;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("never: {:#?}", schedules.runs(id, 100).await.unwrap());
}

/// Each run in the history of `id` has a job of its own and an occurrence
/// of its own; returns how many runs there are.
fn assert_no_run_doubled(id: &str, runs: &[RunRecord]) -> usize {
    let mut jobs = HashSet::new();
    let mut occurrences = HashSet::new();
    for r in runs {
        if let Some(job) = r.job {
            assert!(jobs.insert(job), "{id}: job {job} twice: {runs:#?}");
            assert!(
                occurrences.insert(r.occurrence_ms),
                "{id}: occurrence {} twice: {runs:#?}",
                r.occurrence_ms
            );
        }
    }
    jobs.len()
}

#[test]
#[ignore = "the child process of another test"]
fn child_scheduler() {
    let Some(url) = child_env("REDIS") else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = store(&url).await;
        let sched = scheduler(&store, "victim");
        loop {
            println!("holds {}", sched.shards().len());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduler_killed_while_it_holds_the_shards_leaves_no_run_doubled() {
    let server = RedisServer::start();
    let store = store(&server.url()).await;
    let schedules = Schedules::new(store.clone());
    let ids: Vec<String> = (0..16).map(|n| format!("k{n}")).collect();
    for id in &ids {
        schedules
            .create(NewSchedule::new("acme", sleep_job(), every(100)).id(id.as_str()))
            .await
            .unwrap();
    }
    // Runs take a while, so some are always running (their outcomes on
    // the way to a shard inbox) when the scheduler dies.
    let w = worker(&store, 40, Arc::default());
    let mut victim = Child::spawn("child_scheduler", &[("REDIS", &server.url())]);
    let all = format!("holds {SHARDS}");
    assert!(
        victim
            .wait_for(Duration::from_secs(20), |l| l == all)
            .await
            .is_some(),
        "the victim never held every shard"
    );
    for id in &ids {
        until_runs(&schedules, id, |r| finished(r).len() >= 3).await;
    }
    // SIGKILL: no shutdown, no release; its leases lapse by their TTL.
    victim.kill();
    let killed_at = Timestamp::now().as_millisecond();
    let owners = rota_core::schedules::ScheduleStore::shard_owners(&store)
        .await
        .unwrap();
    assert!(
        owners.iter().all(|o| o.holder.as_deref() == Some("victim")),
        "the dead scheduler's leases are still live: {owners:?}"
    );
    let heir = scheduler(&store, "heir");
    for _ in 0..200 {
        if heir.shards().len() == SHARDS as usize {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(heir.shards().len(), SHARDS as usize, "the heir took over");
    // Each shard went to the heir with a later epoch than the victim's.
    for (shard, epoch) in heir.shards() {
        assert!(epoch >= 2, "shard {shard} at epoch {epoch}");
    }
    for id in &ids {
        until_runs(&schedules, id, |r| {
            finished(r)
                .iter()
                .filter(|r| r.occurrence_ms > killed_at)
                .count()
                >= 3
        })
        .await;
    }
    heir.shutdown().await;
    w.shutdown().await.unwrap();
    for id in &ids {
        let runs = schedules.runs(id, 100).await.unwrap();
        assert_no_run_doubled(id, &runs);
        // Every run dispatched before the kill finished, and its outcome
        // reached the heir through the shard's inbox.
        let s = schedules.get(id).await.unwrap().unwrap();
        assert!(
            s.progress
                .running
                .iter()
                .all(|r| r.occurrence_ms > killed_at),
            "{id}: a run of the victim's never finished: {:?}",
            s.progress.running
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduler_frozen_past_its_leases_is_fenced_when_it_thaws() {
    let server = RedisServer::start();
    let store = store(&server.url()).await;
    let schedules = Schedules::new(store.clone());
    let ids: Vec<String> = (0..16).map(|n| format!("z{n}")).collect();
    for id in &ids {
        schedules
            .create(NewSchedule::new("acme", sleep_job(), every(100)).id(id.as_str()))
            .await
            .unwrap();
    }
    let w = worker(&store, 40, Arc::default());
    let mut zombie = Child::spawn("child_scheduler", &[("REDIS", &server.url())]);
    let all = format!("holds {SHARDS}");
    assert!(
        zombie
            .wait_for(Duration::from_secs(20), |l| l == all)
            .await
            .is_some(),
        "it never held every shard"
    );
    for id in &ids {
        until_runs(&schedules, id, |r| finished(r).len() >= 2).await;
    }
    // Frozen mid-work: its leases lapse while it believes it holds them.
    zombie.freeze();
    let heir = scheduler(&store, "heir");
    for _ in 0..200 {
        if heir.shards().len() == SHARDS as usize {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(heir.shards().len(), SHARDS as usize, "the heir took over");
    let thawed_at = Timestamp::now().as_millisecond();
    zombie.drain();
    zombie.thaw();
    // It wakes up to refused writes, then takes its share again.
    let half = format!("holds {}", SHARDS / 2);
    assert!(
        zombie
            .wait_for(Duration::from_secs(20), |l| l == half)
            .await
            .is_some(),
        "the thawed scheduler never took its share again"
    );
    for id in &ids {
        until_runs(&schedules, id, |r| {
            finished(r)
                .iter()
                .filter(|r| r.occurrence_ms > thawed_at)
                .count()
                >= 3
        })
        .await;
    }
    heir.shutdown().await;
    zombie.kill();
    w.shutdown().await.unwrap();
    for id in &ids {
        let runs = schedules.runs(id, 100).await.unwrap();
        assert_no_run_doubled(id, &runs);
        // No outcome was lost to the thawed scheduler's stale reads.
        let s = schedules.get(id).await.unwrap().unwrap();
        assert!(
            s.progress
                .running
                .iter()
                .all(|r| r.occurrence_ms > thawed_at),
            "{id}: a run from before the thaw never finished: {:?}",
            s.progress.running
        );
    }
}
