//! Fixed rate, once and after completion.

use jiff::SignedDuration;

use super::{fires, plan, secs, t};
use crate::schedules::Trigger;

fn quarter_hours() -> Trigger {
    Trigger::fixed_rate(secs(15 * 60), t("2026-01-01T00:00:10Z"))
}

#[test]
fn fixed_rate_keeps_the_phase_of_its_anchor() {
    assert_eq!(
        fires(quarter_hours(), "2026-01-01T01:00:00Z", 3),
        [
            "2026-01-01T01:00:10Z",
            "2026-01-01T01:15:10Z",
            "2026-01-01T01:30:10Z"
        ]
    );
    // Strictly after a fire: the one that follows it.
    assert_eq!(
        fires(quarter_hours(), "2026-01-01T01:00:10Z", 1),
        ["2026-01-01T01:15:10Z"]
    );
    // A millisecond before one: that one.
    assert_eq!(
        fires(quarter_hours(), "2026-01-01T01:00:09.999Z", 1),
        ["2026-01-01T01:00:10Z"]
    );
}

#[test]
fn fixed_rate_first_fire_is_the_anchor() {
    assert_eq!(
        fires(quarter_hours(), "2025-06-01T00:00:00Z", 1),
        ["2026-01-01T00:00:10Z"]
    );
    let plan = plan(quarter_hours());
    assert_eq!(
        plan.first(t("2026-01-01T00:00:10Z")).unwrap().at,
        t("2026-01-01T00:00:10Z")
    );
}

#[test]
fn fixed_rate_start_moves_to_the_next_point_of_the_grid() {
    let trigger = quarter_hours().starting(t("2026-01-02T00:05:00Z"));
    assert_eq!(
        fires(trigger, "2026-01-01T00:00:00Z", 1),
        ["2026-01-02T00:15:10Z"]
    );
}

#[test]
fn once_fires_once() {
    let trigger = Trigger::once(t("2026-05-01T12:00:00Z"));
    assert_eq!(
        fires(trigger.clone(), "2026-01-01T00:00:00Z", 3),
        ["2026-05-01T12:00:00Z"]
    );
    assert!(fires(trigger.clone(), "2026-05-01T12:00:00Z", 3).is_empty());
    let plan = plan(trigger);
    assert_eq!(
        plan.first(t("2026-05-01T12:00:00Z")).unwrap().at,
        t("2026-05-01T12:00:00Z")
    );
    assert_eq!(plan.first(t("2026-05-01T12:00:00.001Z")), None);
}

#[test]
fn after_completion_fires_at_once_then_every_d_after_each_finish() {
    let plan = plan(Trigger::after_completion(secs(60)));
    let now = t("2026-01-01T10:00:00Z");
    assert_eq!(plan.first(now).unwrap().at, now);
    // The run took 25 s: the next starts a minute after it finished.
    let finished = t("2026-01-01T10:00:25Z");
    assert_eq!(
        plan.next_after(finished, 1).unwrap().at,
        t("2026-01-01T10:01:25Z")
    );
}

#[test]
fn after_completion_first_fire_waits_for_the_start() {
    let plan = plan(Trigger::after_completion(secs(60)).starting(t("2026-01-01T12:00:00Z")));
    assert_eq!(
        plan.first(t("2026-01-01T10:00:00Z")).unwrap().at,
        t("2026-01-01T12:00:00Z")
    );
    assert_eq!(
        plan.first(t("2026-01-01T13:00:00Z")).unwrap().at,
        t("2026-01-01T13:00:00Z")
    );
}

#[test]
fn after_completion_preview_takes_runs_as_instant() {
    assert_eq!(
        fires(
            Trigger::after_completion(secs(90)),
            "2026-01-01T10:00:00Z",
            3
        ),
        [
            "2026-01-01T10:01:30Z",
            "2026-01-01T10:03:00Z",
            "2026-01-01T10:04:30Z"
        ]
    );
    // With jitter, each run is taken to start at its dispatch.
    let plan = plan(Trigger::after_completion(secs(90)).with_jitter(secs(30)));
    let fires: Vec<_> = plan
        .fire_times_after(t("2026-01-01T10:00:00Z"))
        .take(3)
        .collect();
    for pair in fires.windows(2) {
        assert_eq!(pair[1].at, pair[0].fire_at + secs(90));
    }
}

#[test]
fn instants_count_in_whole_milliseconds() {
    let anchor = t("2026-01-01T00:00:00.123456789Z");
    let every = SignedDuration::new(60, 999_999); // 60.000999999 s
    let plan = plan(Trigger::fixed_rate(every, anchor));
    let fires: Vec<String> = plan
        .fire_times_after(t("2025-01-01T00:00:00Z"))
        .take(2)
        .map(|o| o.at.to_string())
        .collect();
    assert_eq!(
        fires,
        ["2026-01-01T00:00:00.123Z", "2026-01-01T00:01:00.123Z"]
    );
}
