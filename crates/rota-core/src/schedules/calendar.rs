//! Wall clocks: time zones by IANA name, and the bridge that lets croner
//! walk a jiff wall clock.
//!
//! Time zones come from the copy of the IANA database built into the
//! program (jiff's bundled tzdb), never from the host's `/usr/share/zoneinfo`.
//! Two schedulers on hosts with different tzdb versions would otherwise
//! disagree on an occurrence's instant — which is its identity — around a
//! rule change; with the bundled copy, every scheduler of one release agrees.
//! New rules arrive with a dependency update.

use std::cmp::Ordering;
use std::sync::OnceLock;

use croner::errors::CronError;
use croner::{CivilDate, CivilDateTime, CivilTime, Cron, CronDateTime, Resolution, Weekday};
use jiff::civil::DateTime;
use jiff::tz::{AmbiguousOffset, TimeZone, TimeZoneDatabase};
use jiff::{SignedDuration, Timestamp, ZonedDateTime};

use super::error::TriggerError;

/// The time zone named `name` (an IANA name such as `Europe/Lisbon`;
/// letter case does not matter).
pub(crate) fn time_zone(name: &str) -> Result<TimeZone, TriggerError> {
    static DB: OnceLock<TimeZoneDatabase> = OnceLock::new();
    DB.get_or_init(TimeZoneDatabase::bundled)
        .get(name)
        .map_err(|_| TriggerError::UnknownTimeZone(name.to_owned()))
}

/// The first instant strictly after `after` that `cron` matches on the wall
/// clock of `tz`, by croner's search (which carries the daylight-saving
/// rules described in the module docs). `None` when there is none before
/// the year 5000, croner's search limit.
pub(crate) fn next_cron(cron: &Cron, tz: &TimeZone, after: Timestamp) -> Option<Timestamp> {
    let origin = Wall(after.to_zoned_datetime(tz.clone()));
    cron.find_next_occurrence(&origin, false)
        .ok()
        .map(|next| next.0.timestamp())
}

/// A jiff date and time in a zone, as croner's search needs it.
#[derive(Clone)]
struct Wall(ZonedDateTime);

impl CronDateTime for Wall {
    fn to_civil(&self) -> CivilDateTime {
        let dt = self.0.datetime();
        // jiff keeps every part in range, so nothing needs checking here.
        CivilDateTime::new(
            CivilDate::from_parts_unchecked(
                i32::from(dt.year()),
                dt.month() as u32,
                dt.day() as u32,
            ),
            CivilTime::from_parts_unchecked(
                dt.hour() as u32,
                dt.minute() as u32,
                dt.second() as u32,
            ),
        )
    }

    fn civil_weekday(&self) -> Weekday {
        Weekday::from_days_from_sunday(self.0.weekday().to_sunday_zero_offset() as u32)
    }

    fn resolve_civil(&self, civil: CivilDateTime) -> Result<Resolution<Self>, CronError> {
        let year = i16::try_from(civil.year()).map_err(|_| CronError::InvalidDate)?;
        let dt = DateTime::new(
            year,
            civil.month() as i8,
            civil.day() as i8,
            civil.hour() as i8,
            civil.minute() as i8,
            civil.second() as i8,
            0,
        )
        .map_err(|_| CronError::InvalidDate)?;
        let ambiguous = self.0.time_zone().to_ambiguous_zoned_datetime(dt);
        let wall =
            |z: Result<ZonedDateTime, jiff::Error>| z.map(Wall).map_err(|_| CronError::InvalidTime);
        Ok(match ambiguous.offset() {
            AmbiguousOffset::Unambiguous { .. } => {
                Resolution::Single(wall(ambiguous.unambiguous())?)
            }
            AmbiguousOffset::Fold { .. } => {
                Resolution::Ambiguous(wall(ambiguous.clone().earlier())?, wall(ambiguous.later())?)
            }
            AmbiguousOffset::Gap { .. } => Resolution::Gap,
        })
    }

    fn checked_add_seconds(&self, seconds: i64) -> Option<Self> {
        self.0
            .checked_add(SignedDuration::from_secs(seconds))
            .ok()
            .map(Wall)
    }

    fn cmp_instant(&self, other: &Self) -> Ordering {
        self.0.timestamp().cmp(&other.0.timestamp())
    }
}
