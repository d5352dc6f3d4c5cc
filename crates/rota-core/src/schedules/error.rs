//! What can be wrong with a trigger. Every variant names the problem and,
//! where it helps, what to write instead; none of them is worth retrying
//! unchanged.

use std::fmt;

use jiff::{SignedDuration, Timestamp};

/// A trigger that cannot be stored, found by
/// [`Trigger::validate`](super::Trigger::validate) or
/// [`Trigger::plan`](super::Trigger::plan).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TriggerError {
    /// One field of a cron expression is wrong, e.g. `hour field
    /// (position 2): 25 is out of range 0-23`.
    #[error("{field} field (position {position}): {problem}")]
    CronField {
        /// The field.
        field: CronField,
        /// Its place in the expression as written, counting from 1.
        position: usize,
        /// What is wrong with it.
        problem: String,
    },
    /// A cron expression is wrong as a whole: empty, an unknown `@` shortcut,
    /// or the wrong number of fields.
    #[error("cron expression {expr:?}: {problem}")]
    CronExpression {
        /// The expression as given.
        expr: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The time zone is not in the IANA time zone database.
    #[error(
        "unknown time zone {0:?}: use an IANA name such as \"UTC\", \
         \"Europe/Lisbon\" or \"America/New_York\""
    )]
    UnknownTimeZone(String),
    /// An interval is zero or negative (or shorter than a millisecond, the
    /// unit triggers count in).
    #[error("the interval must be at least 1 ms, not {}", Ms(*.0))]
    NonPositiveInterval(SignedDuration),
    /// `end` comes before `start`.
    #[error("the end {end} comes before the start {start}")]
    EndBeforeStart {
        /// The trigger's start.
        start: Timestamp,
        /// The trigger's end.
        end: Timestamp,
    },
    /// The jitter is negative.
    #[error("the jitter must not be negative, not {}", Ms(*.0))]
    NegativeJitter(SignedDuration),
    /// The jitter could delay a fire past the next occurrence, so fires
    /// could overtake each other.
    #[error(
        "the jitter of {} must be shorter than {} ({limit_is}); use a smaller jitter",
        Ms(*.jitter),
        Ms(*.limit)
    )]
    JitterTooLarge {
        /// The jitter asked for.
        jitter: SignedDuration,
        /// The bound it must stay under.
        limit: SignedDuration,
        /// What the bound is: the interval, or the shortest gap between
        /// cron fires.
        limit_is: &'static str,
    },
    /// `max_runs` is zero: such a trigger would never fire.
    #[error("max_runs must be at least 1")]
    ZeroMaxRuns,
    /// The trigger has no fire at or after the instant it was validated at.
    #[error("the trigger never fires at or after {after}: {reason}")]
    NeverFires {
        /// The instant validated at (or the start, if later).
        after: Timestamp,
        /// Why not.
        reason: String,
    },
}

/// A field of a cron expression, named in [`TriggerError::CronField`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CronField {
    /// Seconds, 0-59 (only in 6-field expressions, where it comes first).
    Second,
    /// Minutes, 0-59.
    Minute,
    /// Hours, 0-23.
    Hour,
    /// Day of the month, 1-31, with `L` and `W`.
    DayOfMonth,
    /// Month, 1-12 or `JAN`-`DEC`.
    Month,
    /// Day of the week, 0-7 (0 and 7 are Sunday) or `SUN`-`SAT`, with `L`
    /// and `#`.
    DayOfWeek,
}

impl fmt::Display for CronField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CronField::Second => "second",
            CronField::Minute => "minute",
            CronField::Hour => "hour",
            CronField::DayOfMonth => "day-of-month",
            CronField::Month => "month",
            CronField::DayOfWeek => "day-of-week",
        })
    }
}

/// Shows a duration in milliseconds, the unit triggers are written in.
struct Ms(SignedDuration);

impl fmt::Display for Ms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if self.0 == SignedDuration::from_millis_i128(ms) {
            write!(f, "{ms} ms")
        } else {
            write!(f, "{} ms", self.0.as_millis_f64())
        }
    }
}
