//! Bad input: each gets an error that names the problem.

use jiff::SignedDuration;

use super::{secs, t};
use crate::schedules::{CronField, Trigger, TriggerError};

const NOW: &str = "2026-01-01T00:00:00Z";

fn error(trigger: Trigger) -> TriggerError {
    match trigger.validate(t(NOW)) {
        Ok(plan) => panic!("{trigger:?} was accepted: {plan:?}"),
        Err(e) => e,
    }
}

fn cron_error(expr: &str) -> String {
    error(Trigger::cron(expr)).to_string()
}

#[test]
fn a_cron_field_error_names_the_field_its_position_and_the_value() {
    assert_eq!(
        cron_error("0 25 * * *"),
        "hour field (position 2): 25 is out of range 0-23"
    );
    assert_eq!(
        error(Trigger::cron("0 25 * * *")),
        TriggerError::CronField {
            field: CronField::Hour,
            position: 2,
            problem: "25 is out of range 0-23".into()
        }
    );
    // With seconds first, the hour is the third field.
    assert_eq!(
        cron_error("0 0 25 * * *"),
        "hour field (position 3): 25 is out of range 0-23"
    );
    assert_eq!(
        cron_error("60 * * * * *"),
        "second field (position 1): 60 is out of range 0-59"
    );
    assert_eq!(
        cron_error("60 * * * *"),
        "minute field (position 1): 60 is out of range 0-59"
    );
    assert_eq!(
        cron_error("0 0 0 * *"),
        "day-of-month field (position 3): 0 is out of range 1-31"
    );
    assert_eq!(
        cron_error("0 0 32W * *"),
        "day-of-month field (position 3): 32 is out of range 1-31"
    );
    assert_eq!(
        cron_error("0 0 * 13 *"),
        "month field (position 4): 13 is out of range 1-12"
    );
    assert_eq!(
        cron_error("0 0 * * 8"),
        "day-of-week field (position 5): 8 is out of range 0-7"
    );
    assert_eq!(
        cron_error("0 0-30 * * *"),
        "hour field (position 2): 30 is out of range 0-23"
    );
}

#[test]
fn unknown_names_and_misplaced_letters() {
    assert_eq!(
        cron_error("0 0 * FOO *"),
        "month field (position 4): \"FOO\" is not a number from 1 to 12 or a name JAN-DEC"
    );
    assert_eq!(
        cron_error("0 0 * MON *"),
        "month field (position 4): \"MON\" is not a number from 1 to 12 or a name JAN-DEC"
    );
    assert_eq!(
        cron_error("0 1W * * *"),
        "hour field (position 2): \"1W\" is not a number from 0 to 23"
    );
    assert_eq!(
        cron_error("? * * * *"),
        "minute field (position 1): \"?\" is not a number from 0 to 59"
    );
    assert!(cron_error("0 0 * * L").starts_with("day-of-week field (position 5): L alone"));
}

#[test]
fn ranges_steps_lists_and_hashes_that_make_no_sense() {
    assert!(
        cron_error("0 22-2 * * *")
            .starts_with("hour field (position 2): the range 22-2 runs backwards")
    );
    assert_eq!(
        cron_error("*/0 * * * *"),
        "minute field (position 1): */0: a step must be at least 1"
    );
    assert!(
        cron_error("5/15 * * * *")
            .contains("5/15: a step needs a range to step through; write */15 or 5-59/15")
    );
    assert!(cron_error("*/x * * * *").contains("the step after / must be a whole number"));
    assert!(
        cron_error("1,,2 * * * *").starts_with("minute field (position 1): an empty list item")
    );
    assert!(
        cron_error("0 0 * * 1#6").contains("the number after # is which week of the month, 1-5")
    );
}

#[test]
fn a_cron_expression_of_the_wrong_shape() {
    assert_eq!(cron_error("   "), "cron expression \"   \": it is empty");
    assert!(cron_error("* * * *").contains("found 4 fields; write 5"));
    assert!(cron_error("0 0 0 1 1 * 2026").contains("found 7 fields"));
    assert!(cron_error("@fortnightly").contains("@fortnightly is not a known shortcut"));
}

#[test]
fn an_unknown_time_zone() {
    let e = error(Trigger::cron_in("0 0 * * *", "Mars/Olympus_Mons"));
    assert_eq!(e, TriggerError::UnknownTimeZone("Mars/Olympus_Mons".into()));
    assert!(
        e.to_string()
            .starts_with("unknown time zone \"Mars/Olympus_Mons\": use an IANA name")
    );
    assert!(matches!(
        error(Trigger::cron_in("0 0 * * *", "")),
        TriggerError::UnknownTimeZone(_)
    ));
}

#[test]
fn an_interval_that_is_not_positive() {
    let anchor = t(NOW);
    for every in [
        SignedDuration::ZERO,
        secs(-60),
        SignedDuration::from_micros(500),
    ] {
        assert_eq!(
            error(Trigger::after_completion(every)),
            TriggerError::NonPositiveInterval(every)
        );
        assert_eq!(
            error(Trigger::fixed_rate(every, anchor)),
            TriggerError::NonPositiveInterval(every)
        );
    }
    assert_eq!(
        error(Trigger::after_completion(secs(-60))).to_string(),
        "the interval must be at least 1 ms, not -60000 ms"
    );
}

#[test]
fn an_end_before_the_start() {
    let (start, end) = (t("2026-02-01T00:00:00Z"), t("2026-01-15T00:00:00Z"));
    let e = error(Trigger::cron("0 0 * * *").starting(start).ending(end));
    assert_eq!(e, TriggerError::EndBeforeStart { start, end });
    assert_eq!(
        e.to_string(),
        "the end 2026-01-15T00:00:00Z comes before the start 2026-02-01T00:00:00Z"
    );
}

#[test]
fn a_negative_jitter() {
    let e = error(Trigger::cron("0 0 * * *").with_jitter(secs(-1)));
    assert_eq!(e, TriggerError::NegativeJitter(secs(-1)));
}

#[test]
fn a_jitter_as_long_as_the_interval() {
    let anchor = t(NOW);
    for trigger in [
        Trigger::fixed_rate(secs(60), anchor),
        Trigger::after_completion(secs(60)),
    ] {
        let e = error(trigger.clone().with_jitter(secs(60)));
        assert!(matches!(e, TriggerError::JitterTooLarge { limit, .. } if limit == secs(60)));
        assert!(
            e.to_string()
                .contains("shorter than 60000 ms (the interval)"),
            "{e}"
        );
        let just_under = trigger.with_jitter(SignedDuration::from_millis(59_999));
        assert!(just_under.validate(anchor).is_ok());
    }
}

#[test]
fn a_cron_jitter_as_long_as_the_shortest_gap_between_fires() {
    // Fires at 09:00 and 17:00: gaps of 8 and 16 hours.
    let trigger = Trigger::cron("0 9,17 * * *");
    let e = error(trigger.clone().with_jitter(secs(8 * 3600)));
    assert!(matches!(e, TriggerError::JitterTooLarge { limit, .. } if limit == secs(8 * 3600)));
    assert!(
        trigger
            .clone()
            .with_jitter(secs(8 * 3600 - 1))
            .validate(t(NOW))
            .is_ok()
    );
    // A single fire leaves no gap to keep to.
    let once_a_year = Trigger::cron("@yearly")
        .with_max_runs(1)
        .with_jitter(secs(30 * 86_400));
    assert!(once_a_year.validate(t(NOW)).is_ok());
}

#[test]
fn zero_max_runs() {
    assert_eq!(
        error(Trigger::cron("@daily").with_max_runs(0)),
        TriggerError::ZeroMaxRuns
    );
}

#[test]
fn a_trigger_that_never_fires_again() {
    for expr in ["0 0 30 2 *", "0 0 31 4,6,9,11 *"] {
        let e = error(Trigger::cron(expr));
        assert!(matches!(e, TriggerError::NeverFires { .. }), "{expr}: {e}");
        assert!(
            e.to_string()
                .starts_with("the trigger never fires at or after 2026-01-01T00:00:00Z")
        );
    }
    let e = error(Trigger::once(t("2025-12-31T23:59:59Z")));
    assert_eq!(
        e.to_string(),
        "the trigger never fires at or after 2026-01-01T00:00:00Z: \
         its one fire, 2025-12-31T23:59:59Z, is earlier"
    );
    let e = error(Trigger::cron("0 0 1 6 *").ending(t("2026-03-01T00:00:00Z")));
    assert!(
        e.to_string().ends_with(
            "its first fire, 2026-06-01T00:00:00Z, is after its end, 2026-03-01T00:00:00Z"
        )
    );
    let e = error(
        Trigger::fixed_rate(secs(3600), t("2026-06-01T00:00:00Z"))
            .ending(t("2026-05-01T00:00:00Z")),
    );
    assert!(matches!(e, TriggerError::NeverFires { .. }));
    let e = error(Trigger::after_completion(secs(60)).ending(t("2025-12-01T00:00:00Z")));
    assert!(matches!(e, TriggerError::NeverFires { .. }));
}

#[test]
fn a_cron_expression_whose_first_fire_is_beyond_the_horizon() {
    // The fifth Monday of February: 29 February 2044 is the next.
    let e = error(Trigger::cron("0 0 * 2 MON#5"));
    assert!(
        e.to_string()
            .ends_with("no instant matches \"0 0 * 2 MON#5\" within 8 years"),
        "{e}"
    );
}

#[test]
fn a_leap_day_is_within_the_horizon_even_across_2100() {
    // From just after 2096-02-29, the next 29 February is in 2104.
    let plan = Trigger::cron("0 0 29 2 *")
        .validate(t("2096-03-01T00:00:00Z"))
        .unwrap();
    assert_eq!(
        plan.first(t("2096-03-01T00:00:00Z")).unwrap().at,
        t("2104-02-29T00:00:00Z")
    );
}
