//! The trigger as it is written and stored.
//!
//! A [`Trigger`] is plain data: building one never fails, and it says
//! nothing about whether it makes sense. [`Trigger::validate`] checks it
//! before it is stored; [`Trigger::plan`] reads a stored one back into a
//! [`Plan`] that computes fire times.

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::error::TriggerError;
use super::plan::Plan;
use super::wire;

/// When a schedule fires: a [`TriggerKind`] and the bounds every kind
/// shares.
///
/// Stored as one flat JSON object, with instants in Unix milliseconds and
/// durations in milliseconds, and fields left out when unset:
///
/// ```
/// use jiff::{SignedDuration, Timestamp};
/// use rota_core::schedules::Trigger;
///
/// let trigger = Trigger::cron_in("30 2 * * *", "America/New_York")
///     .with_jitter(SignedDuration::from_secs(30));
/// let json = serde_json::to_string(&trigger).unwrap();
/// assert_eq!(
///     json,
///     r#"{"kind":"cron","expr":"30 2 * * *","tz":"America/New_York","jitter_ms":30000}"#
/// );
/// assert_eq!(serde_json::from_str::<Trigger>(&json).unwrap(), trigger);
///
/// let once = Trigger::once(Timestamp::from_second(1_800_000_000).unwrap());
/// assert_eq!(
///     serde_json::to_string(&once).unwrap(),
///     r#"{"kind":"once","at_ms":1800000000000}"#
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct Trigger {
    /// What makes it fire.
    #[serde(flatten)]
    pub kind: TriggerKind,
    /// No occurrence before this instant (inclusive).
    #[serde(
        rename = "start_ms",
        default,
        skip_serializing_if = "Option::is_none",
        with = "wire::opt_instant"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<i64>))]
    pub start: Option<Timestamp>,
    /// No occurrence after this instant (inclusive). Jitter may still put a
    /// dispatch after it.
    #[serde(
        rename = "end_ms",
        default,
        skip_serializing_if = "Option::is_none",
        with = "wire::opt_instant"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<i64>))]
    pub end: Option<Timestamp>,
    /// The most each dispatch is delayed after its occurrence instant, by an
    /// amount drawn deterministically from the schedule's key and the
    /// occurrence (see [`Plan::keyed`]).
    #[serde(
        rename = "jitter_ms",
        default,
        skip_serializing_if = "Option::is_none",
        with = "wire::opt_duration"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<i64>))]
    pub jitter: Option<SignedDuration>,
    /// The most occurrences the schedule has; then it is done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_runs: Option<u64>,
}

/// What makes a trigger fire. See the [module docs](super) for what each
/// means, daylight-saving time included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum TriggerKind {
    /// A cron expression on the wall clock of a time zone.
    Cron {
        /// 5 fields (`minute hour day-of-month month day-of-week`), 6 with
        /// seconds first, or an `@` shortcut such as `@daily`.
        expr: String,
        /// An IANA time zone name; UTC when left out.
        #[serde(default = "utc", skip_serializing_if = "is_utc")]
        tz: String,
    },
    /// Every `every` after the previous run finished; before any run, at
    /// the start (or at once).
    AfterCompletion {
        /// The pause between a run's finish and the next occurrence.
        #[serde(rename = "every_ms", with = "wire::duration")]
        #[cfg_attr(feature = "openapi", schema(value_type = i64))]
        every: SignedDuration,
    },
    /// At `anchor`, `anchor + every`, `anchor + 2·every`, …, however long
    /// runs take.
    FixedRate {
        /// The time between occurrences.
        #[serde(rename = "every_ms", with = "wire::duration")]
        #[cfg_attr(feature = "openapi", schema(value_type = i64))]
        every: SignedDuration,
        /// The first occurrence, which fixes the phase of the rest.
        #[serde(rename = "anchor_ms", with = "wire::instant")]
        #[cfg_attr(feature = "openapi", schema(value_type = i64))]
        anchor: Timestamp,
    },
    /// Once, at `at`.
    Once {
        /// The only occurrence.
        #[serde(rename = "at_ms", with = "wire::instant")]
        #[cfg_attr(feature = "openapi", schema(value_type = i64))]
        at: Timestamp,
    },
}

fn utc() -> String {
    "UTC".to_owned()
}

fn is_utc(tz: &str) -> bool {
    tz == "UTC"
}

impl Trigger {
    /// A trigger of `kind`, with no bounds and no jitter.
    pub fn new(kind: TriggerKind) -> Self {
        Self {
            kind,
            start: None,
            end: None,
            jitter: None,
            max_runs: None,
        }
    }

    /// Fires when `expr` matches, in UTC.
    pub fn cron(expr: impl Into<String>) -> Self {
        Self::cron_in(expr, utc())
    }

    /// Fires when `expr` matches the wall clock of the IANA time zone `tz`.
    pub fn cron_in(expr: impl Into<String>, tz: impl Into<String>) -> Self {
        Self::new(TriggerKind::Cron {
            expr: expr.into(),
            tz: tz.into(),
        })
    }

    /// Fires `every` after the previous run finished; the first time at the
    /// start, or as soon as it is scheduled.
    pub fn after_completion(every: SignedDuration) -> Self {
        Self::new(TriggerKind::AfterCompletion { every })
    }

    /// Fires at `anchor + k·every` for k = 0, 1, 2, …
    pub fn fixed_rate(every: SignedDuration, anchor: Timestamp) -> Self {
        Self::new(TriggerKind::FixedRate { every, anchor })
    }

    /// Fires once, at `at`.
    pub fn once(at: Timestamp) -> Self {
        Self::new(TriggerKind::Once { at })
    }

    /// No occurrence before `start`.
    pub fn starting(mut self, start: Timestamp) -> Self {
        self.start = Some(start);
        self
    }

    /// No occurrence after `end`.
    pub fn ending(mut self, end: Timestamp) -> Self {
        self.end = Some(end);
        self
    }

    /// Delays each dispatch by up to `jitter` after its occurrence.
    pub fn with_jitter(mut self, jitter: SignedDuration) -> Self {
        self.jitter = Some(jitter);
        self
    }

    /// At most `max_runs` occurrences.
    pub fn with_max_runs(mut self, max_runs: u64) -> Self {
        self.max_runs = Some(max_runs);
        self
    }

    /// Checks the trigger before it is stored, as of `now`: everything
    /// [`plan`](Self::plan) checks, and also that it fires at or after
    /// `now` (a cron expression within 8 years — see
    /// [`NEVER_FIRES_HORIZON`](super::NEVER_FIRES_HORIZON)) and, for cron,
    /// that the jitter is shorter than the gaps between its next fires.
    ///
    /// ```
    /// use jiff::Timestamp;
    /// use rota_core::schedules::{Trigger, TriggerError};
    ///
    /// let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    /// let err = Trigger::cron("0 25 * * *").validate(now).unwrap_err();
    /// assert_eq!(err.to_string(), "hour field (position 2): 25 is out of range 0-23");
    /// let err = Trigger::cron("0 0 30 2 *").validate(now).unwrap_err();
    /// assert!(matches!(err, TriggerError::NeverFires { .. }));
    /// ```
    pub fn validate(&self, now: Timestamp) -> Result<Plan, TriggerError> {
        let plan = self.plan()?;
        plan.check_fires(now)?;
        Ok(plan)
    }

    /// Reads the trigger into a [`Plan`], checking what needs no instant:
    /// the cron expression, the time zone, positive intervals, start before
    /// end, the jitter against the interval, and `max_runs` of at least 1.
    ///
    /// Use it for a trigger read back from the store, which was validated
    /// when it was stored: one whose last occurrence has passed is still
    /// fine here (its plan just has no next occurrence).
    pub fn plan(&self) -> Result<Plan, TriggerError> {
        Plan::new(self)
    }
}
