//! The planner's decisions, on instants given by hand.

use jiff::{SignedDuration, Timestamp};

use crate::jobs::JobState;

use super::super::{
    CatchUp, MAX_WALK, Missed, Overlap, Plan, Progress, Rules, Skip, Step, Trigger, TriggerKind,
    run_job_id,
};

const ID: &str = "s1";

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn ms(s: &str) -> i64 {
    t(s).as_millisecond()
}

struct Case {
    plan: Plan,
    after_completion: bool,
    overlap: Overlap,
    missed: Missed,
}

impl Case {
    fn new(trigger: Trigger, now: &str) -> Self {
        let after_completion = matches!(trigger.kind, TriggerKind::AfterCompletion { .. });
        Self {
            plan: trigger.validate(t(now)).unwrap().keyed(ID),
            after_completion,
            overlap: Overlap::Skip,
            missed: Missed::default(),
        }
    }
    fn rules(&self) -> Rules<'_> {
        Rules {
            id: ID,
            plan: &self.plan,
            after_completion: self.after_completion,
            overlap: self.overlap,
            missed: self.missed,
        }
    }
}

fn every_minute(now: &str) -> Case {
    Case::new(Trigger::cron_in("* * * * *", "UTC"), now)
}

fn dispatched(steps: &[Step]) -> Vec<i64> {
    steps
        .iter()
        .filter_map(|s| match s {
            Step::Dispatch(r) => Some(r.occurrence_ms),
            _ => None,
        })
        .collect()
}

#[test]
fn an_occurrence_fires_once_when_due_and_not_before() {
    let case = every_minute("2026-06-01T00:00:30Z");
    let mut p = Progress::start(case.rules(), t("2026-06-01T00:00:30Z"));
    assert_eq!(p.due_at(), Some(t("2026-06-01T00:01:00Z")));
    assert!(p.due(case.rules(), t("2026-06-01T00:00:59Z")).is_empty());
    let steps = p.due(case.rules(), t("2026-06-01T00:01:00Z"));
    assert_eq!(dispatched(&steps), vec![ms("2026-06-01T00:01:00Z")]);
    match &steps[0] {
        Step::Dispatch(run) => assert_eq!(run.job, run_job_id(ID, ms("2026-06-01T00:01:00Z"))),
        other => panic!("{other:?}"),
    }
    // Asked again at the same instant: handled already.
    assert!(p.due(case.rules(), t("2026-06-01T00:01:00Z")).is_empty());
    assert_eq!(p.due_at(), Some(t("2026-06-01T00:02:00Z")));
    assert_eq!(p.counts.fired, 1);
}

#[test]
fn skip_overlap_counts_what_came_while_a_run_ran() {
    let case = every_minute("2026-06-01T00:00:30Z");
    let mut p = Progress::start(case.rules(), t("2026-06-01T00:00:30Z"));
    p.due(case.rules(), t("2026-06-01T00:01:00Z"));
    let steps = p.due(case.rules(), t("2026-06-01T00:02:00Z"));
    assert_eq!(
        steps,
        vec![Step::Skipped {
            from_ms: ms("2026-06-01T00:02:00Z"),
            to_ms: ms("2026-06-01T00:02:00Z"),
            count: 1,
            why: Skip::Overlap
        }]
    );
    assert!(
        p.finished(
            case.rules(),
            ms("2026-06-01T00:01:00Z"),
            run_job_id(ID, ms("2026-06-01T00:01:00Z")),
            JobState::Succeeded,
            t("2026-06-01T00:02:30Z")
        )
        .is_empty()
    );
    let steps = p.due(case.rules(), t("2026-06-01T00:03:00Z"));
    assert_eq!(dispatched(&steps), vec![ms("2026-06-01T00:03:00Z")]);
    assert_eq!((p.counts.fired, p.counts.skipped_overlap), (2, 1));
}

#[test]
fn buffer_one_keeps_the_latest_and_buffer_all_keeps_its_bound() {
    let mut case = every_minute("2026-06-01T00:00:30Z");
    case.overlap = Overlap::BufferOne;
    let mut p = Progress::start(case.rules(), t("2026-06-01T00:00:30Z"));
    p.due(case.rules(), t("2026-06-01T00:01:00Z"));
    p.due(case.rules(), t("2026-06-01T00:02:00Z"));
    p.due(case.rules(), t("2026-06-01T00:03:00Z"));
    assert_eq!(p.counts.skipped_overlap, 1, "02:00 replaced by 03:00");
    let steps = p.finished(
        case.rules(),
        ms("2026-06-01T00:01:00Z"),
        run_job_id(ID, ms("2026-06-01T00:01:00Z")),
        JobState::Succeeded,
        t("2026-06-01T00:03:10Z"),
    );
    assert_eq!(dispatched(&steps), vec![ms("2026-06-01T00:03:00Z")]);

    let mut case = every_minute("2026-06-01T00:00:30Z");
    case.overlap = Overlap::BufferAll { max: 2 };
    let mut p = Progress::start(case.rules(), t("2026-06-01T00:00:30Z"));
    for minute in 1..=4 {
        p.due(case.rules(), t(&format!("2026-06-01T00:0{minute}:00Z")));
    }
    assert_eq!(
        p.counts.skipped_overlap, 1,
        "02:00 dropped, the oldest beyond 2"
    );
    let first = p.finished(
        case.rules(),
        ms("2026-06-01T00:01:00Z"),
        run_job_id(ID, ms("2026-06-01T00:01:00Z")),
        JobState::Succeeded,
        t("2026-06-01T00:04:10Z"),
    );
    assert_eq!(dispatched(&first), vec![ms("2026-06-01T00:03:00Z")]);
    let second = p.finished(
        case.rules(),
        ms("2026-06-01T00:03:00Z"),
        run_job_id(ID, ms("2026-06-01T00:03:00Z")),
        JobState::Succeeded,
        t("2026-06-01T00:04:20Z"),
    );
    assert_eq!(dispatched(&second), vec![ms("2026-06-01T00:04:00Z")]);
}

#[test]
fn allow_all_runs_beside_and_cancel_running_stops_then_starts() {
    let mut case = every_minute("2026-06-01T00:00:30Z");
    case.overlap = Overlap::AllowAll;
    let mut p = Progress::start(case.rules(), t("2026-06-01T00:00:30Z"));
    p.due(case.rules(), t("2026-06-01T00:01:00Z"));
    let steps = p.due(case.rules(), t("2026-06-01T00:02:00Z"));
    assert_eq!(dispatched(&steps), vec![ms("2026-06-01T00:02:00Z")]);
    assert_eq!(p.running.len(), 2);

    let mut case = every_minute("2026-06-01T00:00:30Z");
    case.overlap = Overlap::CancelRunning;
    let mut p = Progress::start(case.rules(), t("2026-06-01T00:00:30Z"));
    p.due(case.rules(), t("2026-06-01T00:01:00Z"));
    let steps = p.due(case.rules(), t("2026-06-01T00:02:00Z"));
    assert_eq!(
        steps,
        vec![Step::Cancel(run_job_id(ID, ms("2026-06-01T00:01:00Z")))]
    );
    // Asked once, however many come meanwhile.
    let steps = p.due(case.rules(), t("2026-06-01T00:03:00Z"));
    assert!(!steps.iter().any(|s| matches!(s, Step::Cancel(_))));
    let steps = p.finished(
        case.rules(),
        ms("2026-06-01T00:01:00Z"),
        run_job_id(ID, ms("2026-06-01T00:01:00Z")),
        JobState::Succeeded,
        t("2026-06-01T00:03:01Z"),
    );
    assert_eq!(dispatched(&steps), vec![ms("2026-06-01T00:03:00Z")]);
    assert_eq!((p.counts.cancelled, p.counts.skipped_overlap), (1, 1));
}

#[test]
fn missed_occurrences_fire_once_inside_the_window_and_are_skipped_outside() {
    let mut case = every_minute("2026-06-01T00:00:30Z");
    case.missed = Missed {
        catch_up_window_ms: 150_000,
        catch_up: CatchUp::Once,
    };
    let mut p = Progress::start(case.rules(), t("2026-06-01T00:00:30Z"));
    // Down from 00:00:30 to 00:10:30: ten occurrences, two in the window.
    let steps = p.due(case.rules(), t("2026-06-01T00:10:30Z"));
    assert_eq!(dispatched(&steps), vec![ms("2026-06-01T00:10:00Z")]);
    assert_eq!(
        steps[0],
        Step::Skipped {
            from_ms: ms("2026-06-01T00:01:00Z"),
            to_ms: ms("2026-06-01T00:09:00Z"),
            count: 9,
            why: Skip::Missed
        }
    );
    assert_eq!(p.counts.skipped_missed, 9);
    assert_eq!(p.due_at(), Some(t("2026-06-01T00:11:00Z")));
}

#[test]
fn catch_up_all_fires_each_missed_one_in_the_window_oldest_first() {
    let mut case = every_minute("2026-06-01T00:00:30Z");
    case.overlap = Overlap::AllowAll;
    case.missed = Missed {
        catch_up_window_ms: 10 * 60_000,
        catch_up: CatchUp::All { max: 3 },
    };
    let mut p = Progress::start(case.rules(), t("2026-06-01T00:00:30Z"));
    let steps = p.due(case.rules(), t("2026-06-01T00:05:30Z"));
    assert_eq!(
        dispatched(&steps),
        vec![
            ms("2026-06-01T00:03:00Z"),
            ms("2026-06-01T00:04:00Z"),
            ms("2026-06-01T00:05:00Z")
        ]
    );
    assert_eq!(p.counts.skipped_missed, 2);
}

#[test]
fn after_completion_waits_for_the_run_and_counts_from_its_end() {
    let case = Case::new(
        Trigger::after_completion(SignedDuration::from_secs(60)),
        "2026-06-01T00:00:00Z",
    );
    let mut p = Progress::start(case.rules(), t("2026-06-01T00:00:00Z"));
    let steps = p.due(case.rules(), t("2026-06-01T00:00:00Z"));
    assert_eq!(dispatched(&steps), vec![ms("2026-06-01T00:00:00Z")]);
    assert_eq!(p.due_at(), None, "nothing until the run finished");
    // The run took five minutes.
    p.finished(
        case.rules(),
        ms("2026-06-01T00:00:00Z"),
        run_job_id(ID, ms("2026-06-01T00:00:00Z")),
        JobState::Succeeded,
        t("2026-06-01T00:05:00Z"),
    );
    assert_eq!(p.due_at(), Some(t("2026-06-01T00:06:00Z")));
}

#[test]
fn max_runs_ends_the_trigger_and_trigger_now_does_not_count() {
    let case = Case::new(
        Trigger::cron_in("* * * * *", "UTC").with_max_runs(2),
        "2026-06-01T00:00:30Z",
    );
    let mut p = Progress::start(case.rules(), t("2026-06-01T00:00:30Z"));
    let now = p.trigger_now(case.rules(), t("2026-06-01T00:00:40Z"));
    assert_eq!(dispatched(&now), vec![ms("2026-06-01T00:00:40Z")]);
    p.finished(
        case.rules(),
        ms("2026-06-01T00:00:40Z"),
        run_job_id(ID, ms("2026-06-01T00:00:40Z")),
        JobState::Succeeded,
        t("2026-06-01T00:00:41Z"),
    );
    p.due(case.rules(), t("2026-06-01T00:01:00Z"));
    p.finished(
        case.rules(),
        ms("2026-06-01T00:01:00Z"),
        run_job_id(ID, ms("2026-06-01T00:01:00Z")),
        JobState::Succeeded,
        t("2026-06-01T00:01:01Z"),
    );
    p.due(case.rules(), t("2026-06-01T00:02:00Z"));
    assert_eq!(p.due_at(), None);
    assert_eq!(p.counts.fired, 3);
}

#[test]
fn backfill_goes_through_the_overlap_policy() {
    let mut case = every_minute("2026-06-01T00:00:30Z");
    case.overlap = Overlap::BufferAll { max: 10 };
    let mut p = Progress::start(case.rules(), t("2026-06-01T00:00:30Z"));
    let steps = p.backfill(
        case.rules(),
        t("2026-05-31T23:00:00Z"),
        t("2026-05-31T23:03:00Z"),
    );
    assert_eq!(dispatched(&steps), vec![ms("2026-05-31T23:00:00Z")]);
    assert_eq!(p.waiting.len(), 3);
}

#[test]
fn a_long_outage_is_jumped_not_walked() {
    let case = Case::new(
        Trigger::cron_in("* * * * * *", "UTC"),
        "2026-06-01T00:00:00Z",
    );
    let mut p = Progress::start(case.rules(), t("2026-06-01T00:00:00Z"));
    // Two days of one a second: more than MAX_WALK.
    let steps = p.due(case.rules(), t("2026-06-03T00:00:00Z"));
    assert!(dispatched(&steps).is_empty(), "all were outside the window");
    assert!(p.counts.skipped_missed > MAX_WALK as u64);
    assert!(p.due_at().unwrap() > t("2026-06-03T00:00:00Z"));
}

#[test]
fn progress_round_trips_as_json() {
    let case = every_minute("2026-06-01T00:00:30Z");
    let mut p = Progress::start(case.rules(), t("2026-06-01T00:00:30Z"));
    p.due(case.rules(), t("2026-06-01T00:01:00Z"));
    let json = serde_json::to_string(&p).unwrap();
    assert_eq!(serde_json::from_str::<Progress>(&json).unwrap(), p);
}

#[test]
fn a_run_job_id_is_the_same_for_every_scheduler_and_differs_per_occurrence() {
    assert_eq!(run_job_id("s1", 1_000), run_job_id("s1", 1_000));
    assert_ne!(run_job_id("s1", 1_000), run_job_id("s1", 1_001));
    assert_ne!(run_job_id("s1", 1_000), run_job_id("s2", 1_000));
    // "s1@10" + "00" cannot meet "s1@1" + "000": the instant is one number.
    assert_ne!(run_job_id("s1@1", 0), run_job_id("s1", 10));
}

#[test]
fn an_outcome_of_another_job_finishes_nothing() {
    let case = every_minute("2026-06-01T00:00:30Z");
    let mut p = Progress::start(case.rules(), t("2026-06-01T00:00:30Z"));
    p.due(case.rules(), t("2026-06-01T00:01:00Z"));
    let forged = crate::jobs::JobId::new();
    let at = ms("2026-06-01T00:01:00Z");
    assert!(
        p.finished(
            case.rules(),
            at,
            forged,
            JobState::Succeeded,
            t("2026-06-01T00:01:05Z")
        )
        .is_empty()
    );
    assert_eq!(p.running.len(), 1, "a forged outcome ended the run");
    assert_eq!(p.last, None, "a forged outcome became the last run");
    let job = p.running[0].job;
    p.finished(
        case.rules(),
        at,
        job,
        JobState::Failed,
        t("2026-06-01T00:01:07Z"),
    );
    assert_eq!(
        p.last,
        Some(super::super::LastRun::new(
            at,
            job,
            JobState::Failed,
            ms("2026-06-01T00:01:07Z")
        ))
    );
}
