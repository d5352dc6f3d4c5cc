//! Each feature of the cron grammar, in UTC.

use super::{cron_fires, t};
use crate::schedules::Trigger;

fn utc(expr: &str, after: &str, n: usize) -> Vec<String> {
    cron_fires(expr, "UTC", after, n)
}

#[test]
fn l_is_the_last_day_of_the_month() {
    assert_eq!(
        utc("0 0 L * *", "2026-01-15T00:00:00Z", 4),
        [
            "2026-01-31T00:00:00Z",
            "2026-02-28T00:00:00Z",
            "2026-03-31T00:00:00Z",
            "2026-04-30T00:00:00Z"
        ]
    );
    assert_eq!(
        utc("0 0 L 2 *", "2027-03-01T00:00:00Z", 1),
        ["2028-02-29T00:00:00Z"]
    );
}

#[test]
fn lw_is_the_last_weekday_of_the_month() {
    // 2026-01-31 and 02-28 are Saturdays, 05-31 a Sunday.
    assert_eq!(
        utc("0 0 LW * *", "2026-01-01T00:00:00Z", 5),
        [
            "2026-01-30T00:00:00Z",
            "2026-02-27T00:00:00Z",
            "2026-03-31T00:00:00Z",
            "2026-04-30T00:00:00Z",
            "2026-05-29T00:00:00Z"
        ]
    );
}

#[test]
fn w_is_the_weekday_nearest_the_day_within_the_month() {
    // 2026-02-15 and 03-15 are Sundays; 04-15 a Wednesday.
    assert_eq!(
        utc("0 0 15W * *", "2026-02-01T00:00:00Z", 3),
        [
            "2026-02-16T00:00:00Z",
            "2026-03-16T00:00:00Z",
            "2026-04-15T00:00:00Z"
        ]
    );
    // 2026-08-01 is a Saturday: the nearest weekday in August is Monday 3rd.
    assert_eq!(
        utc("0 0 1W 8 *", "2026-07-01T00:00:00Z", 1),
        ["2026-08-03T00:00:00Z"]
    );
}

#[test]
fn hash_is_the_nth_weekday_of_the_month() {
    let second_mondays = [
        "2026-01-12T00:00:00Z",
        "2026-02-09T00:00:00Z",
        "2026-03-09T00:00:00Z",
    ];
    assert_eq!(
        utc("0 0 * * 1#2", "2026-01-01T00:00:00Z", 3),
        second_mondays
    );
    assert_eq!(
        utc("0 0 * * MON#2", "2026-01-01T00:00:00Z", 3),
        second_mondays
    );
}

#[test]
fn a_weekday_with_l_is_its_last_in_the_month() {
    let last_fridays = [
        "2026-01-30T00:00:00Z",
        "2026-02-27T00:00:00Z",
        "2026-03-27T00:00:00Z",
    ];
    assert_eq!(utc("0 0 * * 5L", "2026-01-01T00:00:00Z", 3), last_fridays);
    assert_eq!(utc("0 0 * * FRIL", "2026-01-01T00:00:00Z", 3), last_fridays);
}

#[test]
fn month_and_weekday_names_in_any_case() {
    // 2026-01-01 is a Thursday.
    let expected = [
        "2026-01-01T09:00:00Z",
        "2026-01-02T09:00:00Z",
        "2026-01-05T09:00:00Z",
    ];
    assert_eq!(
        utc("0 9 * JAN,JUL MON-FRI", "2025-12-31T00:00:00Z", 3),
        expected
    );
    assert_eq!(
        utc("0 9 * jan,jul mon-fri", "2025-12-31T00:00:00Z", 3),
        expected
    );
    assert_eq!(utc("0 9 * 1,7 1-5", "2025-12-31T00:00:00Z", 3), expected);
    // SUN is 0 and 7 is Sunday too; 2026-01-04 is a Sunday.
    for expr in ["0 0 * * SUN", "0 0 * * 0", "0 0 * * 7", "0 0 ? * SAT-SUN"] {
        assert_eq!(
            utc(expr, "2026-01-03T12:00:00Z", 1),
            ["2026-01-04T00:00:00Z"],
            "{expr}"
        );
    }
}

#[test]
fn steps_over_the_whole_field_and_over_a_range() {
    assert_eq!(
        utc("*/15 * * * *", "2026-01-01T10:07:00Z", 4),
        [
            "2026-01-01T10:15:00Z",
            "2026-01-01T10:30:00Z",
            "2026-01-01T10:45:00Z",
            "2026-01-01T11:00:00Z"
        ]
    );
    assert_eq!(
        utc("0 8-18/5 * * *", "2026-01-01T00:00:00Z", 4),
        [
            "2026-01-01T08:00:00Z",
            "2026-01-01T13:00:00Z",
            "2026-01-01T18:00:00Z",
            "2026-01-02T08:00:00Z"
        ]
    );
}

#[test]
fn both_day_fields_restricted_match_either_as_in_vixie_cron() {
    // The 13th, and every Friday (2026-02-13 is both, and fires once).
    assert_eq!(
        utc("0 0 13 * FRI", "2026-02-01T00:00:00Z", 5),
        [
            "2026-02-06T00:00:00Z",
            "2026-02-13T00:00:00Z",
            "2026-02-20T00:00:00Z",
            "2026-02-27T00:00:00Z",
            "2026-03-06T00:00:00Z"
        ]
    );
}

#[test]
fn shortcuts() {
    let after = "2026-01-01T10:30:00Z"; // a Thursday
    assert_eq!(utc("@hourly", after, 1), ["2026-01-01T11:00:00Z"]);
    assert_eq!(utc("@daily", after, 1), ["2026-01-02T00:00:00Z"]);
    assert_eq!(utc("@midnight", after, 1), ["2026-01-02T00:00:00Z"]);
    assert_eq!(utc("@weekly", after, 1), ["2026-01-04T00:00:00Z"]);
    assert_eq!(utc("@monthly", after, 1), ["2026-02-01T00:00:00Z"]);
    assert_eq!(utc("@yearly", after, 1), ["2027-01-01T00:00:00Z"]);
    assert_eq!(utc("@ANNUALLY", after, 1), ["2027-01-01T00:00:00Z"]);
}

#[test]
fn six_fields_put_seconds_first() {
    assert_eq!(
        utc("*/20 * * * * *", "2026-01-01T10:00:05Z", 3),
        [
            "2026-01-01T10:00:20Z",
            "2026-01-01T10:00:40Z",
            "2026-01-01T10:01:00Z"
        ]
    );
    assert_eq!(
        utc("30 0 9 * * *", "2026-01-01T00:00:00Z", 1),
        ["2026-01-01T09:00:30Z"]
    );
}

#[test]
fn next_after_is_strict_and_first_is_not() {
    let plan = super::plan(Trigger::cron("0 9 * * *"));
    let nine = t("2026-01-01T09:00:00Z");
    assert_eq!(plan.first(nine).unwrap().at, nine);
    assert_eq!(
        plan.next_after(nine, 0).unwrap().at,
        t("2026-01-02T09:00:00Z")
    );
    // Between two whole seconds, the next whole one.
    let plan = super::plan(Trigger::cron("* * * * * *"));
    let mid = t("2026-01-01T09:00:00.5Z");
    assert_eq!(plan.first(mid).unwrap().at, t("2026-01-01T09:00:01Z"));
    assert_eq!(
        plan.next_after(mid, 0).unwrap().at,
        t("2026-01-01T09:00:01Z")
    );
}

#[test]
fn a_time_zone_name_ignores_letter_case() {
    assert_eq!(
        cron_fires("0 9 * * *", "europe/lisbon", "2026-06-01T00:00:00Z", 1),
        ["2026-06-01T08:00:00Z"]
    );
}

#[test]
fn every_form_the_checks_accept_croner_accepts_too() {
    let now = t("2026-01-01T00:00:00Z");
    for expr in [
        "0 0 L,15 * *",
        "0 0 lw * *",
        "0 0 1W,15W * *",
        "0 0 ? * 1#1,5L",
        "0 0 * * MON#1,FRI#5",
        "0 0 ? * MON-FRI/2",
        "*/5 1-5,10 * JAN-MAR/2 *",
        "0 0 1-31/7 * *",
        "0 0 * * SUN-SAT",
        "0 0 * * 0-7",
        "0-59/10 0 0 * * *",
        "  0   0 * * *  ",
        "@Weekly",
    ] {
        if let Err(e) = Trigger::cron(expr).validate(now) {
            panic!("{expr:?}: {e}");
        }
    }
}
