//! Daylight-saving time, as classic cron does it, in three zones and their
//! 2026 transitions (looked up in the bundled tzdb):
//!
//! * America/New_York: 2026-03-08 07:00Z, 02:00 EST → 03:00 EDT;
//!   2026-11-01 06:00Z, 02:00 EDT → 01:00 EST.
//! * Europe/Lisbon: 2026-03-29 01:00Z, 01:00 WET → 02:00 WEST;
//!   2026-10-25 01:00Z, 02:00 WEST → 01:00 WET.
//! * Australia/Lord_Howe (a 30-minute shift): 2026-04-04 15:00Z, 02:00
//!   (+11) → 01:30 (+10:30), local date 04-05; 2026-10-03 15:30Z, 02:00
//!   (+10:30) → 02:30 (+11), local date 10-04.

use super::cron_fires;

const NEW_YORK: &str = "America/New_York";
const LISBON: &str = "Europe/Lisbon";
const LORD_HOWE: &str = "Australia/Lord_Howe";

#[test]
fn transitions_are_where_these_tests_assume() {
    use jiff::tz::TimeZoneDatabase;
    let db = TimeZoneDatabase::bundled();
    let cases = [
        (NEW_YORK, ["2026-03-08T07:00:00Z", "2026-11-01T06:00:00Z"]),
        (LISBON, ["2026-03-29T01:00:00Z", "2026-10-25T01:00:00Z"]),
        (LORD_HOWE, ["2026-04-04T15:00:00Z", "2026-10-03T15:30:00Z"]),
    ];
    for (zone, expected) in cases {
        let tz = db.get(zone).unwrap();
        let found: Vec<String> = tz
            .following(super::t("2026-01-01T00:00:00Z"))
            .take(2)
            .map(|tr| tr.timestamp().to_string())
            .collect();
        assert_eq!(found, expected, "{zone}");
    }
}

// New York

#[test]
fn new_york_fixed_time_in_the_spring_gap_fires_at_the_end_of_the_gap() {
    assert_eq!(
        cron_fires("30 2 * * *", NEW_YORK, "2026-03-07T12:00:00Z", 2),
        ["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"]
    );
}

#[test]
fn new_york_fixed_time_in_the_autumn_fold_fires_at_its_first_occurrence_only() {
    assert_eq!(
        cron_fires("15 1 * * *", NEW_YORK, "2026-10-31T12:00:00Z", 2),
        ["2026-11-01T05:15:00Z", "2026-11-02T06:15:00Z"]
    );
    // From between the two 01:15s, the second is not a fire either.
    assert_eq!(
        cron_fires("15 1 * * *", NEW_YORK, "2026-11-01T05:30:00Z", 1),
        ["2026-11-02T06:15:00Z"]
    );
}

#[test]
fn new_york_hourly_fires_on_both_one_oclocks_of_the_fold() {
    assert_eq!(
        cron_fires("0 * * * *", NEW_YORK, "2026-11-01T03:30:00Z", 4),
        [
            "2026-11-01T04:00:00Z", // 00:00 EDT
            "2026-11-01T05:00:00Z", // 01:00 EDT
            "2026-11-01T06:00:00Z", // 01:00 EST
            "2026-11-01T07:00:00Z", // 02:00 EST
        ]
    );
}

#[test]
fn new_york_hourly_has_no_two_oclock_on_the_spring_day() {
    assert_eq!(
        cron_fires("0 * * * *", NEW_YORK, "2026-03-08T05:30:00Z", 3),
        [
            "2026-03-08T06:00:00Z", // 01:00 EST
            "2026-03-08T07:00:00Z", // 03:00 EDT
            "2026-03-08T08:00:00Z", // 04:00 EDT
        ]
    );
}

#[test]
fn new_york_hour_range_fires_on_real_instants() {
    // A range in the hour field is not a fixed time: the fold's 01:30
    // fires twice, and the gap's 02:30 not at all.
    assert_eq!(
        cron_fires("30 1-3 * * *", NEW_YORK, "2026-11-01T05:00:00Z", 4),
        [
            "2026-11-01T05:30:00Z",
            "2026-11-01T06:30:00Z",
            "2026-11-01T07:30:00Z",
            "2026-11-01T08:30:00Z"
        ]
    );
    assert_eq!(
        cron_fires("30 1-3 * * *", NEW_YORK, "2026-03-08T06:00:00Z", 2),
        ["2026-03-08T06:30:00Z", "2026-03-08T07:30:00Z"]
    );
}

#[test]
fn new_york_minute_step_with_a_fixed_hour_fires_on_real_instants() {
    assert_eq!(
        cron_fires("*/30 1 * * *", NEW_YORK, "2026-11-01T04:30:00Z", 4),
        [
            "2026-11-01T05:00:00Z",
            "2026-11-01T05:30:00Z",
            "2026-11-01T06:00:00Z",
            "2026-11-01T06:30:00Z"
        ]
    );
}

// Lisbon

#[test]
fn lisbon_fixed_time_in_the_spring_gap_fires_at_the_end_of_the_gap() {
    assert_eq!(
        cron_fires("30 1 * * *", LISBON, "2026-03-28T12:00:00Z", 2),
        ["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"]
    );
}

#[test]
fn lisbon_fixed_time_in_the_autumn_fold_fires_at_its_first_occurrence_only() {
    assert_eq!(
        cron_fires("15 1 * * *", LISBON, "2026-10-24T12:00:00Z", 2),
        ["2026-10-25T00:15:00Z", "2026-10-26T01:15:00Z"]
    );
}

#[test]
fn lisbon_hourly_fires_on_both_one_oclocks_of_the_fold() {
    assert_eq!(
        cron_fires("0 * * * *", LISBON, "2026-10-24T23:30:00Z", 3),
        [
            "2026-10-25T00:00:00Z",
            "2026-10-25T01:00:00Z",
            "2026-10-25T02:00:00Z"
        ]
    );
}

#[test]
fn lisbon_hourly_has_no_one_oclock_on_the_spring_day() {
    assert_eq!(
        cron_fires("0 * * * *", LISBON, "2026-03-28T23:30:00Z", 3),
        [
            "2026-03-29T00:00:00Z", // 00:00 WET
            "2026-03-29T01:00:00Z", // 02:00 WEST
            "2026-03-29T02:00:00Z", // 03:00 WEST
        ]
    );
}

// Lord Howe: the clock moves by 30 minutes.

#[test]
fn lord_howe_fixed_time_in_the_half_hour_gap_fires_at_half_past_two() {
    assert_eq!(
        cron_fires("15 2 * * *", LORD_HOWE, "2026-10-03T00:00:00Z", 2),
        [
            "2026-10-03T15:30:00Z", // 10-04 02:30 (+11), first instant after the gap
            "2026-10-04T15:15:00Z", // 10-05 02:15 (+11)
        ]
    );
}

#[test]
fn lord_howe_fixed_time_in_the_half_hour_fold_fires_at_its_first_occurrence_only() {
    assert_eq!(
        cron_fires("45 1 * * *", LORD_HOWE, "2026-04-04T00:00:00Z", 2),
        [
            "2026-04-04T14:45:00Z", // 04-05 01:45 (+11); not 15:15Z (+10:30)
            "2026-04-05T15:15:00Z", // 04-06 01:45 (+10:30)
        ]
    );
}

#[test]
fn lord_howe_half_past_every_hour_fires_twice_at_half_past_one_in_the_fold() {
    assert_eq!(
        cron_fires("30 * * * *", LORD_HOWE, "2026-04-04T13:00:00Z", 4),
        [
            "2026-04-04T13:30:00Z", // 00:30 (+11)
            "2026-04-04T14:30:00Z", // 01:30 (+11)
            "2026-04-04T15:00:00Z", // 01:30 (+10:30)
            "2026-04-04T16:00:00Z", // 02:30 (+10:30)
        ]
    );
}

#[test]
fn lord_howe_hourly_has_no_two_oclock_on_the_spring_day() {
    assert_eq!(
        cron_fires("0 * * * *", LORD_HOWE, "2026-10-03T13:00:00Z", 3),
        [
            "2026-10-03T13:30:00Z", // 00:00 (+10:30)
            "2026-10-03T14:30:00Z", // 01:00 (+10:30)
            "2026-10-03T16:00:00Z", // 03:00 (+11)
        ]
    );
    // 02:30 is real (the first instant after the gap), so it fires.
    assert_eq!(
        cron_fires("30 * * * *", LORD_HOWE, "2026-10-03T14:30:00Z", 2),
        ["2026-10-03T15:00:00Z", "2026-10-03T15:30:00Z"]
    );
}
