//! Start, end, max runs and jitter, the same for every kind.

use super::{fires, plan, secs, t};
use crate::schedules::Trigger;

#[test]
fn start_holds_back_every_kind() {
    let start = "2026-03-01T00:00:00Z";
    let after = "2026-01-01T00:00:00Z";
    assert_eq!(
        fires(Trigger::cron("0 0 * * *").starting(t(start)), after, 1),
        [start]
    );
    let rate = Trigger::fixed_rate(secs(3600), t("2025-01-01T00:00:00Z")).starting(t(start));
    assert_eq!(fires(rate, after, 1), [start]);
    let once = Trigger::once(t("2026-02-01T00:00:00Z")).starting(t(start));
    assert!(fires(once, after, 1).is_empty());
}

#[test]
fn end_is_inclusive_and_final() {
    let trigger = Trigger::cron("0 0 * * *").ending(t("2026-01-03T00:00:00Z"));
    assert_eq!(
        fires(trigger, "2026-01-01T00:00:00Z", 10),
        ["2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"]
    );
    let trigger = Trigger::after_completion(secs(60)).ending(t("2026-01-01T10:00:00Z"));
    let plan = plan(trigger);
    assert_eq!(
        plan.next_after(t("2026-01-01T09:59:00Z"), 3).unwrap().at,
        t("2026-01-01T10:00:00Z")
    );
    assert_eq!(plan.next_after(t("2026-01-01T09:59:01Z"), 3), None);
}

#[test]
fn max_runs_counts_occurrences() {
    let trigger = Trigger::fixed_rate(secs(60), t("2026-01-01T00:00:00Z")).with_max_runs(3);
    assert_eq!(fires(trigger.clone(), "2025-12-31T00:00:00Z", 10).len(), 3);
    let plan = plan(trigger);
    let after = t("2026-01-01T00:00:00Z");
    assert!(plan.next_after(after, 2).is_some());
    assert_eq!(plan.next_after(after, 3), None);
}

#[test]
fn jitter_delays_the_dispatch_but_not_the_occurrence() {
    let trigger = Trigger::fixed_rate(secs(3600), t("2026-01-01T00:00:00Z"));
    let plain = plan(trigger.clone());
    let jittered = plan(trigger.with_jitter(secs(600))).keyed("schedule-1");
    let after = t("2025-12-31T00:00:00Z");
    let delays: Vec<i64> = plain
        .fire_times_after(after)
        .zip(jittered.fire_times_after(after))
        .take(500)
        .map(|(p, j)| {
            assert_eq!(p.at, j.at);
            assert_eq!(p.fire_at, p.at);
            j.fire_at.duration_since(j.at).as_secs()
        })
        .collect();
    assert!(delays.iter().all(|d| (0..600).contains(d)), "{delays:?}");
    // Spread over the whole window, not stuck at one end.
    assert!(delays.iter().any(|&d| d < 60) && delays.iter().any(|&d| d >= 540));
}

#[test]
fn jitter_is_the_same_for_the_same_key_and_differs_between_keys() {
    let trigger = Trigger::cron("*/10 * * * *").with_jitter(secs(300));
    let after = t("2026-01-01T00:00:00Z");
    let dispatches = |key: &str| -> Vec<_> {
        plan(trigger.clone())
            .keyed(key)
            .fire_times_after(after)
            .take(20)
            .map(|o| o.fire_at)
            .collect()
    };
    assert_eq!(dispatches("a"), dispatches("a"));
    assert_ne!(dispatches("a"), dispatches("b"));
}

#[test]
fn jitter_is_pinned_across_releases() {
    // Every scheduler of every release must agree on dispatch instants:
    // a change here moves every jittered schedule.
    let plan = plan(Trigger::cron("0 * * * *").with_jitter(secs(3599))).keyed("schedule-42");
    let first = plan.first(t("2026-01-01T00:00:00Z")).unwrap();
    assert_eq!(first.at, t("2026-01-01T00:00:00Z"));
    assert_eq!(first.fire_at.to_string(), PINNED_FIRE_AT);
}

const PINNED_FIRE_AT: &str = "2026-01-01T00:52:45.988Z";
