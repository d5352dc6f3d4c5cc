//! Schedules end to end, on any store: a scheduler dispatches runs, a
//! worker runs them, their outcomes drive the schedule. Each test file runs
//! these scenarios on one backend.

#![allow(dead_code)]

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use rota::jobs::{JobContext, JobError, JobState, QueueOptions, Worker, WorkerHandle};
use rota::schedules::{
    JobTemplate, NewSchedule, Overlap, RunRecord, RunState, ScheduleError, Scheduler,
    SchedulerHandle, SchedulerOptions, Schedules, Trigger,
};
use rota_core::Inboxes;
use rota_core::jobs::JobStore;
use rota_core::schedules::ScheduleStore;

pub(crate) mod frozen;

/// A store the scenarios run on.
pub(crate) trait Store: ScheduleStore + JobStore + Inboxes + Clone {}

impl<T: ScheduleStore + JobStore + Inboxes + Clone> Store for T {}

const Q: &str = "runs";

pub(crate) fn scheduler<S: ScheduleStore + JobStore + Clone>(
    store: &S,
    name: &str,
) -> SchedulerHandle {
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
pub(crate) fn worker<S: Store>(store: &S, ms: u64, starts: Arc<AtomicU32>) -> WorkerHandle {
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
pub(crate) async fn until_runs(
    schedules: &Schedules,
    id: &str,
    check: impl Fn(&[RunRecord]) -> bool,
) -> Vec<RunRecord> {
    for _ in 0..300 {
        let runs = schedules.runs(id, 100).await.unwrap();
        if check(&runs) {
            return runs;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("never: {:#?}", schedules.runs(id, 100).await.unwrap());
}

pub(crate) async fn a_fixed_rate_schedule_runs_each_occurrence_once<S: Store>(store: S) {
    let schedules = Schedules::new(store.clone());
    let s = schedules
        .create(NewSchedule::new("acme", sleep_job(), every(100)).id("tick"))
        .await
        .unwrap();
    assert_eq!(s.id, "tick");
    let starts = Arc::new(AtomicU32::new(0));
    let w = worker(&store, 1, Arc::clone(&starts));
    let sched = scheduler(&store, "a");
    let runs = until_runs(&schedules, "tick", |r| finished(r).len() >= 5).await;
    sched.shutdown().await;
    w.shutdown().await.unwrap();
    let done = finished(&runs);
    assert!(
        done.iter()
            .all(|r| r.state == RunState::Finished(JobState::Succeeded) && r.attempts == 1)
    );
    let occurrences: HashSet<i64> = runs
        .iter()
        .filter(|r| r.job.is_some())
        .map(|r| r.occurrence_ms)
        .collect();
    assert_eq!(
        occurrences.len(),
        runs.iter().filter(|r| r.job.is_some()).count(),
        "an occurrence ran twice"
    );
    let s = schedules.get("tick").await.unwrap().unwrap();
    assert!(s.progress.counts.fired >= 5);
    // The last finished run is kept with the schedule, as the history says.
    let last = s.progress.last.expect("a last run");
    let runs = schedules.runs("tick", 100).await.unwrap();
    let done = finished(&runs);
    let newest = runs
        .iter()
        .find(|r| r.occurrence_ms == last.occurrence_ms && r.job == Some(last.job))
        .expect("the last run is in the history");
    assert_eq!(RunState::Finished(last.state), newest.state);
    assert_eq!(Some(last.finished_ms), newest.finished_ms);
    assert!(
        done.iter().all(|r| r.occurrence_ms <= last.occurrence_ms),
        "a later run finished than the last: {last:?}"
    );
}

pub(crate) async fn skip_overlap_never_runs_two_at_once_and_counts_the_skips<S: Store>(store: S) {
    let schedules = Schedules::new(store.clone());
    schedules
        .create(
            NewSchedule::new("acme", sleep_job(), every(50))
                .id("slow")
                .overlap(Overlap::Skip),
        )
        .await
        .unwrap();
    let w = worker(&store, 180, Arc::default());
    let sched = scheduler(&store, "a");
    let runs = until_runs(&schedules, "slow", |r| finished(r).len() >= 3).await;
    sched.shutdown().await;
    w.shutdown().await.unwrap();
    let mut spans: Vec<(i64, i64)> = finished(&runs)
        .iter()
        .map(|r| (r.started_ms.unwrap(), r.finished_ms.unwrap()))
        .collect();
    spans.sort_unstable();
    for pair in spans.windows(2) {
        assert!(pair[1].0 >= pair[0].1, "runs overlapped: {pair:?}");
    }
    let s = schedules.get("slow").await.unwrap().unwrap();
    assert!(s.progress.counts.skipped_overlap > 0);
}

pub(crate) async fn after_completion_waits_its_interval_after_each_run_finished<S: Store>(
    store: S,
) {
    let schedules = Schedules::new(store.clone());
    let trigger = Trigger::after_completion(SignedDuration::from_millis(100));
    schedules
        .create(NewSchedule::new("acme", sleep_job(), trigger).id("chain"))
        .await
        .unwrap();
    let w = worker(&store, 150, Arc::default());
    let sched = scheduler(&store, "a");
    let runs = until_runs(&schedules, "chain", |r| finished(r).len() >= 3).await;
    sched.shutdown().await;
    w.shutdown().await.unwrap();
    let mut done: Vec<&RunRecord> = finished(&runs);
    done.sort_by_key(|r| r.occurrence_ms);
    for pair in done.windows(2) {
        let gap = pair[1].occurrence_ms - pair[0].finished_ms.unwrap();
        assert!(
            gap >= 100,
            "the next run came {gap} ms after the last finished"
        );
    }
}

pub(crate) async fn cancel_running_stops_the_run_and_starts_the_next<S: Store>(store: S) {
    let schedules = Schedules::new(store.clone());
    schedules
        .create(
            NewSchedule::new("acme", sleep_job(), every(400))
                .id("stubborn")
                .overlap(Overlap::CancelRunning),
        )
        .await
        .unwrap();
    // Each run would take 2 s, far longer than the 400 ms between them.
    let w = worker(&store, 2_000, Arc::default());
    let sched = scheduler(&store, "a");
    let runs = until_runs(&schedules, "stubborn", |r| {
        r.iter()
            .any(|r| r.state == RunState::Finished(JobState::Cancelled))
    })
    .await;
    sched.shutdown().await;
    w.shutdown().await.unwrap();
    assert!(runs.iter().filter(|r| r.job.is_some()).count() >= 2);
    let s = schedules.get("stubborn").await.unwrap().unwrap();
    assert!(s.progress.counts.cancelled >= 1);
}

pub(crate) async fn shards_move_to_the_scheduler_left_and_no_run_is_doubled<S: Store>(store: S) {
    let schedules = Schedules::new(store.clone());
    for n in 0..20 {
        schedules
            .create(NewSchedule::new("acme", sleep_job(), every(100)).id(format!("s{n}")))
            .await
            .unwrap();
    }
    let w = worker(&store, 1, Arc::default());
    let a = scheduler(&store, "a");
    let b = scheduler(&store, "b");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        !a.shards().is_empty() && !b.shards().is_empty(),
        "the shards are shared"
    );
    // "a" stops; "b" takes every shard.
    a.shutdown().await;
    for _ in 0..100 {
        if b.shards().len() == store.shards() as usize {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(b.shards().len(), store.shards() as usize);
    tokio::time::sleep(Duration::from_millis(400)).await;
    b.shutdown().await;
    w.shutdown().await.unwrap();
    for n in 0..20 {
        let runs = schedules.runs(&format!("s{n}"), 100).await.unwrap();
        let mut seen = HashSet::new();
        for r in runs.iter().filter(|r| r.job.is_some()) {
            assert!(
                seen.insert(r.occurrence_ms),
                "s{n}: {} twice",
                r.occurrence_ms
            );
        }
        assert!(seen.len() >= 5, "s{n} ran {} times", seen.len());
    }
}

pub(crate) async fn trigger_pause_and_resume_by_hand<S: Store>(store: S) {
    let schedules = Schedules::new(store.clone());
    // Once a year: only what is asked by hand runs.
    schedules
        .create(NewSchedule::new("acme", sleep_job(), Trigger::cron("0 0 1 1 *")).id("yearly"))
        .await
        .unwrap();
    let w = worker(&store, 1, Arc::default());
    let sched = scheduler(&store, "a");
    schedules.trigger("yearly").await.unwrap();
    until_runs(&schedules, "yearly", |r| finished(r).len() == 1).await;
    let paused = schedules.pause("yearly").await.unwrap();
    assert!(paused.paused);
    assert!(!schedules.resume("yearly").await.unwrap().paused);
    sched.shutdown().await;
    w.shutdown().await.unwrap();
}

pub(crate) async fn bad_input_is_refused_and_nothing_is_written<S: Store>(store: S) {
    let schedules = Schedules::new(store.clone());
    let bad_cron = NewSchedule::new("acme", sleep_job(), Trigger::cron("61 * * * *")).id("x");
    let e = schedules.create(bad_cron).await.unwrap_err();
    assert!(e.to_string().contains("minute"), "{e}");
    assert!(schedules.get("x").await.unwrap().is_none());
    let e = schedules
        .create(NewSchedule::new(
            "acme",
            sleep_job(),
            Trigger::cron_in("* * * * *", "Mars/Base"),
        ))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("Mars/Base"), "{e}");
    let e = schedules
        .create(NewSchedule::new(
            "acme",
            sleep_job(),
            Trigger::cron("0 0 30 2 *"),
        ))
        .await
        .unwrap_err();
    assert!(matches!(e, ScheduleError::Trigger(_)), "{e}");
    let bad_id = NewSchedule::new("acme", sleep_job(), every(1000)).id("a@b");
    assert!(matches!(
        schedules.create(bad_id).await,
        Err(ScheduleError::Invalid { field: "id", .. })
    ));
    let big = JobTemplate::new(Q, "sleep", serde_json::json!("x".repeat(2 << 20)));
    assert!(matches!(
        schedules
            .create(NewSchedule::new("acme", big, every(1000)))
            .await,
        Err(ScheduleError::Invalid { field: "job", .. })
    ));
    schedules
        .create(NewSchedule::new("acme", sleep_job(), every(1000)).id("dup"))
        .await
        .unwrap();
    assert!(matches!(
        schedules
            .create(NewSchedule::new("acme", sleep_job(), every(1000)).id("dup"))
            .await,
        Err(ScheduleError::Exists(_))
    ));
    assert!(matches!(
        schedules.pause("nope").await,
        Err(ScheduleError::NotFound(_))
    ));
    let page = schedules.list("acme", None, 10).await.unwrap();
    assert_eq!(page.schedules.len(), 1);
}

pub(crate) async fn update_recomputes_the_next_fire_and_delete_stops_fires<S: Store>(store: S) {
    let schedules = Schedules::new(store.clone());
    schedules
        .create(NewSchedule::new("acme", sleep_job(), every(100)).id("moving"))
        .await
        .unwrap();
    let w = worker(&store, 1, Arc::default());
    let sched = scheduler(&store, "a");
    until_runs(&schedules, "moving", |r| finished(r).len() >= 2).await;
    // Once a year from now on: the next fire moves out.
    let updated = schedules
        .update("moving", |s| s.trigger = Trigger::cron("0 0 1 1 *"))
        .await
        .unwrap();
    let next = updated.progress.due_at().unwrap();
    assert!(next > Timestamp::now() + SignedDuration::from_hours(24));
    let preview = Schedules::preview(&Trigger::cron("0 0 1 1 *"), Timestamp::now(), 2).unwrap();
    assert_eq!(preview[0], next);
    let fired = schedules
        .get("moving")
        .await
        .unwrap()
        .unwrap()
        .progress
        .counts
        .fired;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let after = schedules.get("moving").await.unwrap().unwrap();
    assert!(
        after.progress.counts.fired <= fired + 1,
        "fired on the old trigger after the update"
    );
    assert!(schedules.delete("moving").await.unwrap());
    assert!(schedules.get("moving").await.unwrap().is_none());
    assert!(matches!(
        schedules.runs("moving", 10).await,
        Err(ScheduleError::NotFound(_))
    ));
    sched.shutdown().await;
    w.shutdown().await.unwrap();
}

/// A scheduler frozen between committing a run and enqueueing its job — a
/// paused process — loses its leases; the next owner finds the run in the
/// outbox with no job, enqueues it, and it runs and finishes, its record
/// trimmed at once by the queue's retention (as at 10,000 fires a second).
/// When the frozen one thaws, its enqueue is refused by its lease's end:
/// the run does not run twice, though nothing of its job is left to dedupe
/// it by.
pub(crate) async fn a_thawed_owner_cannot_enqueue_a_run_again_once_its_record_is_gone<S: Store>(
    store: S,
) {
    use rota_core::jobs::{QueuePolicy, Retention};
    let schedules = Schedules::new(store.clone());
    store
        .set_policy(
            Q,
            QueuePolicy::default().retention(Retention::default().max_finished(0)),
        )
        .await
        .unwrap();
    let at = Timestamp::now() + SignedDuration::from_millis(300);
    schedules
        .create(NewSchedule::new("acme", sleep_job(), Trigger::once(at)).id("one"))
        .await
        .unwrap();
    let frozen = frozen::Frozen::armed(store.clone());
    let a = scheduler(&frozen, "a");
    for _ in 0..500 {
        if frozen.is_frozen() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(frozen.is_frozen(), "the first scheduler never enqueued");
    let starts = Arc::new(AtomicU32::new(0));
    let w = worker(&store, 1, Arc::clone(&starts));
    let b = scheduler(&store, "b");
    let runs = until_runs(&schedules, "one", |r| finished(r).len() == 1).await;
    let job = runs[0].job.expect("a run's job");
    for _ in 0..300 {
        if store.job(Q, job).await.unwrap().is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        store.job(Q, job).await.unwrap().is_none(),
        "the finished run's record was not trimmed: the check would prove nothing"
    );
    frozen.thaw();
    // Time for the thawed enqueue to land, were it let through, and run.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    a.shutdown().await;
    b.shutdown().await;
    w.shutdown().await.unwrap();
    assert_eq!(starts.load(Ordering::SeqCst), 1, "the run ran twice");
    assert!(store.job(Q, job).await.unwrap().is_none());
    let runs = schedules.runs("one", 100).await.unwrap();
    assert_eq!(
        runs.iter().filter(|r| r.job.is_some()).count(),
        1,
        "{runs:#?}"
    );
}
