//! Schedulers SIGKILLed mid-work on the embedded store: no occurrence fires
//! twice, none is missed beyond what the missed-run policy allows (each is
//! in the history, fired or skipped, and a skip for being missed comes with
//! the latest due caught up), runs of a skip schedule never overlap, and
//! each after-completion run comes exactly its interval after the last.
//!
//! The schedulers to kill are this same test binary, re-run with only the
//! ignored `child_scheduler` test selected.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use rota::jobs::{JobContext, JobError, JobState, QueueOptions, Worker};
use rota::schedules::{
    CatchUp, JobTemplate, Missed, NewSchedule, Overlap, RunRecord, RunState, Scheduler,
    SchedulerOptions, Schedules, Trigger, TriggerKind,
};
use rota_conformance::support::{Child, child_env};
use rota_core::schedules::{MAX_HISTORY, Skip};
use rota_sqlite::SqliteBroker;

const Q: &str = "kill-runs";
const LEASE: Duration = Duration::from_millis(600);

fn options(name: &str) -> SchedulerOptions {
    SchedulerOptions::default()
        .name(name)
        .lease(LEASE)
        .poll(Duration::from_millis(20))
}

/// The missed-run policy of the fixed-rate schedules, made explicit: of
/// the occurrences missed while no scheduler held their shard, the latest
/// runs and the others are skipped, however late.
fn catch_up_once() -> Missed {
    let mut missed = Missed::default();
    missed.catch_up_window_ms = 3_600_000;
    missed.catch_up = CatchUp::Once;
    missed
}

/// Each occurrence `runs` handled, with the entry that handled it (a skip
/// entry stands for each of its occurrences, `every` apart); fails if one
/// was handled twice.
fn handled_once(id: &str, runs: &[RunRecord], every: i64) -> BTreeMap<i64, RunRecord> {
    let mut handled = BTreeMap::new();
    for r in runs {
        let (last, count) = r.skipped.unwrap_or((r.occurrence_ms, 1));
        assert_eq!(
            (last - r.occurrence_ms) / every + 1,
            count as i64,
            "{id}: {r:?}"
        );
        for o in (r.occurrence_ms..=last).step_by(every as usize) {
            assert!(
                handled.insert(o, r.clone()).is_none(),
                "{id}: {o} handled twice"
            );
        }
    }
    handled
}

/// Child: a scheduler that runs until it is killed.
#[test]
#[ignore = "the child process of another test"]
fn child_scheduler() {
    let (Some(db), Some(name)) = (child_env("DB"), child_env("NAME")) else {
        return;
    };
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = SqliteBroker::open(&db).await.unwrap();
        let handle = Scheduler::new(store).options(options(&name)).spawn();
        println!("ready");
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            println!("dispatched {}", handle.lateness().dispatched());
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_schedulers_neither_double_nor_lose_an_occurrence() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("rota.db");
    let store = SqliteBroker::open(&db).await.unwrap();
    let schedules = Schedules::new(store.clone());
    let job = |ms: u64| JobTemplate::new(Q, "work", serde_json::json!({ "ms": ms }));
    // In the future, so the first occurrence is the anchor itself.
    let anchor = Timestamp::now() + SignedDuration::from_millis(300);
    for n in 0..6 {
        // Fixed rate, skip on overlap; jobs that sometimes outlast the rate.
        let trigger = Trigger::fixed_rate(SignedDuration::from_millis(100), anchor);
        schedules
            .create(
                NewSchedule::new("acme", job(20 + 40 * n), trigger)
                    .id(format!("rate-{n}"))
                    .overlap(Overlap::Skip)
                    .missed(catch_up_once()),
            )
            .await
            .unwrap();
        let trigger = Trigger::after_completion(SignedDuration::from_millis(80));
        schedules
            .create(NewSchedule::new("globex", job(30), trigger).id(format!("chain-{n}")))
            .await
            .unwrap();
    }
    let worker = Worker::new(store.clone())
        .queue(
            Q,
            QueueOptions::default().claim_wait(Duration::from_millis(20)),
        )
        .handle(
            "work",
            |_ctx: JobContext, p: serde_json::Value| async move {
                let ms = p["ms"].as_u64().unwrap_or(10);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok::<_, JobError>(())
            },
        )
        .spawn();

    // Two schedulers killed one after the other, each mid-work.
    for name in ["first", "second"] {
        let mut child = Child::spawn(
            "child_scheduler",
            &[("DB", db.to_str().unwrap()), ("NAME", name)],
        );
        let busy = child
            .wait_for(Duration::from_secs(30), |l| {
                l.strip_prefix("dispatched ")
                    .and_then(|n| n.parse::<u64>().ok())
                    .is_some_and(|n| n >= 40)
            })
            .await;
        assert!(busy.is_some(), "scheduler {name} never got going");
        child.kill();
    }
    // A third, in process, takes over (once the killed one's leases lapse)
    // and runs a while.
    let last = Scheduler::new(store.clone())
        .options(options("third"))
        .spawn();
    tokio::time::sleep(LEASE * 3).await;
    last.shutdown().await;
    // Let the last runs finish (their outcomes stay in the shard inboxes).
    tokio::time::sleep(Duration::from_millis(400)).await;
    worker.shutdown().await.unwrap();

    for n in 0..6 {
        for id in [format!("rate-{n}"), format!("chain-{n}")] {
            let s = schedules.get(&id).await.unwrap().unwrap();
            let runs = schedules.runs(&id, 100).await.unwrap();
            let dispatched: Vec<_> = runs.iter().filter(|r| r.job.is_some()).collect();
            assert!(dispatched.len() >= 5, "{id} ran {} times", dispatched.len());
            let mut seen = HashSet::new();
            for r in &dispatched {
                assert!(
                    seen.insert(r.occurrence_ms),
                    "{id}: {} fired twice",
                    r.occurrence_ms
                );
                if let Some(job) = r.job {
                    let record = rota_core::jobs::JobStore::job(&store, Q, job)
                        .await
                        .unwrap()
                        .unwrap_or_else(|| panic!("{id}: the job of {} is gone", r.occurrence_ms));
                    assert_eq!(record.attempts.len().max(1), 1, "{id}: ran twice");
                }
            }
            let c = s.progress.counts;
            // Trimmed histories say nothing of their beginnings.
            let whole = runs.len() < MAX_HISTORY;
            match s.trigger.kind {
                TriggerKind::FixedRate { every, .. } => {
                    let every_ms = every.as_millis() as i64;
                    let handled = handled_once(&id, &runs, every_ms);
                    let first = *handled.keys().next().unwrap();
                    if whole {
                        assert_eq!(first, anchor.as_millisecond(), "{id}: the first is missing");
                    }
                    // Every occurrence from the first to the last handled
                    // is in the history, fired or skipped …
                    let occurrences: Vec<i64> = handled.keys().copied().collect();
                    for pair in occurrences.windows(2) {
                        assert_eq!(pair[1] - pair[0], every_ms, "{id}: missed between {pair:?}");
                    }
                    // … and a missed one only as the policy says: with
                    // one run caught up, the latest due went in the same
                    // commit, fired or skipped for overlap — never missed.
                    for (&o, r) in &handled {
                        if r.state == RunState::Skipped(Skip::Missed) {
                            let (last, _) = r.skipped.unwrap();
                            let latest = handled.get(&(last + every_ms));
                            assert!(
                                latest.is_some_and(|l| l.at_ms == r.at_ms
                                    && l.state != RunState::Skipped(Skip::Missed)),
                                "{id}: {o} skipped as missed, but the latest due went {latest:?}"
                            );
                        }
                    }
                    // Each occurrence up to the next was handled once:
                    // fired, or skipped and counted.
                    assert_eq!(
                        s.progress.occurrences,
                        c.fired + c.skipped_overlap + c.skipped_missed,
                        "{id}: {c:?}"
                    );
                    let next = s.progress.next.unwrap().at;
                    let expected = anchor + every * i32::try_from(s.progress.occurrences).unwrap();
                    assert_eq!(
                        next.as_millisecond(),
                        expected.as_millisecond(),
                        "{id}: an occurrence was passed over uncounted"
                    );
                    let mut spans: Vec<(i64, i64)> = runs
                        .iter()
                        .filter(|r| r.state == RunState::Finished(JobState::Succeeded))
                        .map(|r| (r.started_ms.unwrap(), r.finished_ms.unwrap()))
                        .collect();
                    spans.sort_unstable();
                    for pair in spans.windows(2) {
                        assert!(pair[1].0 >= pair[0].1, "{id}: runs overlapped: {pair:?}");
                    }
                }
                _ => {
                    let mut done: Vec<_> = runs
                        .iter()
                        .filter(|r| matches!(r.state, RunState::Finished(_)))
                        .collect();
                    done.sort_by_key(|r| r.occurrence_ms);
                    if whole {
                        assert_eq!(runs.last().unwrap().occurrence_ms, s.created_ms, "{id}");
                    }
                    for pair in done.windows(2) {
                        let gap = pair[1].occurrence_ms - pair[0].finished_ms.unwrap();
                        assert!(gap >= 80, "{id}: the next run came {gap} ms after the last");
                        // Exactly the interval: none was missed either.
                        assert_eq!(
                            gap, 80,
                            "{id}: a run was missed after {}",
                            pair[0].occurrence_ms
                        );
                    }
                }
            }
        }
    }
}
