//! The stored form: compact JSON that reads back to the same trigger.

use jiff::SignedDuration;
use serde_json::json;

use super::{secs, t};
use crate::schedules::{Occurrence, Trigger, TriggerError};

fn round_trip(trigger: &Trigger) -> serde_json::Value {
    let text = serde_json::to_string(trigger).unwrap();
    let back: Trigger = serde_json::from_str(&text).unwrap();
    assert_eq!(&back, trigger, "{text}");
    serde_json::from_str(&text).unwrap()
}

#[test]
fn every_kind_round_trips_with_every_bound() {
    let start = t("2026-01-01T00:00:00Z");
    let bounded = |trigger: Trigger| {
        trigger
            .starting(start)
            .ending(t("2027-01-01T00:00:00Z"))
            .with_jitter(SignedDuration::from_millis(1500))
            .with_max_runs(10)
    };
    assert_eq!(
        round_trip(&bounded(Trigger::cron_in("*/5 * * * *", "Europe/Lisbon"))),
        json!({"kind": "cron", "expr": "*/5 * * * *", "tz": "Europe/Lisbon",
               "start_ms": 1767225600000_i64, "end_ms": 1798761600000_i64,
               "jitter_ms": 1500, "max_runs": 10})
    );
    assert_eq!(
        round_trip(&Trigger::after_completion(secs(60))),
        json!({"kind": "after_completion", "every_ms": 60000})
    );
    assert_eq!(
        round_trip(&Trigger::fixed_rate(secs(60), start)),
        json!({"kind": "fixed_rate", "every_ms": 60000, "anchor_ms": 1767225600000_i64})
    );
    assert_eq!(
        round_trip(&Trigger::once(start)),
        json!({"kind": "once", "at_ms": 1767225600000_i64})
    );
    round_trip(&bounded(Trigger::once(start)));
    round_trip(&bounded(Trigger::fixed_rate(secs(60), start)));
}

#[test]
fn utc_is_the_default_time_zone_and_left_out() {
    assert_eq!(
        round_trip(&Trigger::cron("@daily")),
        json!({"kind": "cron", "expr": "@daily"})
    );
    let read: Trigger = serde_json::from_value(json!({"kind": "cron", "expr": "@daily"})).unwrap();
    assert_eq!(read, Trigger::cron_in("@daily", "UTC"));
}

#[test]
fn a_negative_interval_reads_back_and_validation_names_it() {
    let read: Trigger =
        serde_json::from_value(json!({"kind": "after_completion", "every_ms": -5})).unwrap();
    assert_eq!(
        read.validate(t("2026-01-01T00:00:00Z")).unwrap_err(),
        TriggerError::NonPositiveInterval(SignedDuration::from_millis(-5))
    );
}

#[test]
fn an_unknown_kind_is_refused_by_the_decoder() {
    let e = serde_json::from_value::<Trigger>(json!({"kind": "fortnightly"})).unwrap_err();
    assert!(e.to_string().contains("fortnightly"), "{e}");
}

#[test]
fn occurrences_round_trip() {
    let occurrence = Occurrence {
        at: t("2026-01-01T00:00:00Z"),
        fire_at: t("2026-01-01T00:00:01.5Z"),
    };
    let text = serde_json::to_string(&occurrence).unwrap();
    assert_eq!(
        text,
        r#"{"at_ms":1767225600000,"fire_at_ms":1767225601500}"#
    );
    assert_eq!(
        serde_json::from_str::<Occurrence>(&text).unwrap(),
        occurrence
    );
}
