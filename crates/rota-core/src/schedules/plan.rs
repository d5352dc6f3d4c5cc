//! A checked trigger and the fire times it gives.

use std::fmt;
use std::sync::Arc;

use croner::Cron;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::calendar::{next_cron, time_zone};
use super::error::TriggerError;
use super::trigger::{Trigger, TriggerKind};
use super::{cron, jitter, wire};

/// How far ahead [`Trigger::validate`] looks for a cron expression's first
/// fire before calling it one that never fires: 8 years (of 366 days). A
/// leap day (every 4 years, 8 across 2100) still fits.
pub const NEVER_FIRES_HORIZON: SignedDuration = SignedDuration::from_hours(8 * 366 * 24);

/// How many cron fires [`Trigger::validate`] looks at to find the shortest
/// gap between fires, which a cron trigger's jitter must stay under.
pub const JITTER_GAP_SAMPLE: usize = 32;

/// One occurrence of a trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Occurrence {
    /// The instant the trigger names, without jitter. With the schedule's
    /// id it identifies the run.
    #[serde(rename = "at_ms", with = "wire::instant")]
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub at: Timestamp,
    /// When to dispatch it: `at` plus the jitter's delay (`at` itself
    /// without jitter).
    #[serde(rename = "fire_at_ms", with = "wire::instant")]
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub fire_at: Timestamp,
}

/// A [`Trigger`] that passed its checks, ready to compute fire times. Made
/// by [`Trigger::validate`] or [`Trigger::plan`]; all it computes comes
/// from the instants it is given.
///
/// ```
/// use jiff::Timestamp;
/// use rota_core::schedules::Trigger;
///
/// let now: Timestamp = "2026-03-07T12:00:00Z".parse().unwrap();
/// let plan = Trigger::cron_in("30 2 * * *", "America/New_York").validate(now).unwrap();
/// let fires: Vec<String> =
///     plan.fire_times_after(now).take(3).map(|o| o.at.to_string()).collect();
/// // 02:30 does not exist in New York on 2026-03-08: 03:00 EDT instead.
/// assert_eq!(fires, ["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z", "2026-03-10T06:30:00Z"]);
/// ```
#[derive(Clone)]
pub struct Plan {
    rule: Rule,
    start: Option<Timestamp>,
    end: Option<Timestamp>,
    jitter: SignedDuration,
    max_runs: Option<u64>,
    seed: u64,
}

/// What the trigger names, bounds aside. (A parsed cron expression is
/// large and immutable: plans share it.)
#[derive(Clone)]
enum Rule {
    Cron {
        expr: String,
        cron: Arc<Cron>,
        tz: TimeZone,
    },
    AfterCompletion {
        every: SignedDuration,
    },
    FixedRate {
        every: SignedDuration,
        anchor: Timestamp,
    },
    Once {
        at: Timestamp,
    },
}

impl Plan {
    /// Checks what needs no instant; see [`Trigger::plan`].
    pub(crate) fn new(trigger: &Trigger) -> Result<Self, TriggerError> {
        let interval = |every: SignedDuration| {
            let ms = wire::ms_duration(every);
            if ms.is_positive() {
                Ok(ms)
            } else {
                Err(TriggerError::NonPositiveInterval(every))
            }
        };
        let rule = match &trigger.kind {
            TriggerKind::Cron { expr, tz } => {
                let cron = cron::parse(expr)?;
                Rule::Cron {
                    expr: expr.clone(),
                    cron,
                    tz: time_zone(tz)?,
                }
            }
            TriggerKind::AfterCompletion { every } => Rule::AfterCompletion {
                every: interval(*every)?,
            },
            TriggerKind::FixedRate { every, anchor } => Rule::FixedRate {
                every: interval(*every)?,
                anchor: wire::ms_instant(*anchor),
            },
            TriggerKind::Once { at } => Rule::Once {
                at: wire::ms_instant(*at),
            },
        };
        let start = trigger.start.map(wire::ms_instant);
        let end = trigger.end.map(wire::ms_instant);
        if let (Some(start), Some(end)) = (start, end)
            && end < start
        {
            return Err(TriggerError::EndBeforeStart { start, end });
        }
        let jitter = wire::ms_duration(trigger.jitter.unwrap_or(SignedDuration::ZERO));
        if jitter.is_negative() {
            return Err(TriggerError::NegativeJitter(jitter));
        }
        if let Rule::AfterCompletion { every } | Rule::FixedRate { every, .. } = rule
            && jitter >= every
        {
            let limit_is = "the interval";
            return Err(TriggerError::JitterTooLarge {
                jitter,
                limit: every,
                limit_is,
            });
        }
        if trigger.max_runs == Some(0) {
            return Err(TriggerError::ZeroMaxRuns);
        }
        Ok(Self {
            rule,
            start,
            end,
            jitter,
            max_runs: trigger.max_runs,
            seed: jitter::seed(b""),
        })
    }

    /// Checks what needs an instant; see [`Trigger::validate`].
    pub(crate) fn check_fires(&self, now: Timestamp) -> Result<(), TriggerError> {
        let from = self.start.map_or(now, |start| start.max(now));
        let never = |reason: String| TriggerError::NeverFires {
            after: from,
            reason,
        };
        let impossible = matches!(&self.rule, Rule::Cron { cron, .. } if cron::no_day_exists(cron));
        let candidate = if impossible {
            None
        } else {
            self.at_or_after(from)
        };
        let first = match (candidate, self.end) {
            (Some(at), Some(end)) if at > end => {
                return Err(never(format!(
                    "its first fire, {at}, is after its end, {end}"
                )));
            }
            (Some(at), _) => at,
            (None, _) => {
                return Err(never(match &self.rule {
                    Rule::Once { at } => format!("its one fire, {at}, is earlier"),
                    Rule::Cron { expr, .. } => format!("no instant ever matches {expr:?}"),
                    _ => "its instants lie beyond the range of time".into(),
                }));
            }
        };
        let Rule::Cron { expr, .. } = &self.rule else {
            return Ok(());
        };
        if first.duration_since(from) > NEVER_FIRES_HORIZON {
            return Err(never(format!("no instant matches {expr:?} within 8 years")));
        }
        if self.jitter.is_zero() {
            return Ok(());
        }
        match self.shortest_gap(first) {
            Some(limit) if self.jitter >= limit => Err(TriggerError::JitterTooLarge {
                jitter: self.jitter,
                limit,
                limit_is: "the shortest gap between the next cron fires",
            }),
            _ => Ok(()),
        }
    }

    /// The shortest time between two of the first [`JITTER_GAP_SAMPLE`]
    /// fires from `first` (fewer with `max_runs`); `None` for a single fire.
    fn shortest_gap(&self, first: Timestamp) -> Option<SignedDuration> {
        let max_runs = self
            .max_runs
            .map_or(usize::MAX, |max| usize::try_from(max).unwrap_or(usize::MAX));
        let fires: Vec<Timestamp> =
            std::iter::successors(Some(first), |&at| self.next_after(at, 0).map(|o| o.at))
                .take(JITTER_GAP_SAMPLE.min(max_runs))
                .collect();
        fires
            .windows(2)
            .map(|pair| pair[1].duration_since(pair[0]))
            .min()
    }

    /// Makes the jitter depend on `key` — the schedule's id — so that
    /// schedules with the same trigger spread out, while every scheduler
    /// computes the same delay for the same schedule and occurrence.
    /// Without a key, every plan uses the empty one.
    pub fn keyed(mut self, key: impl AsRef<[u8]>) -> Self {
        self.seed = jitter::seed(key.as_ref());
        self
    }

    /// The first occurrence of a schedule that begins at `now`: the first
    /// instant at or after `now` (and the start) that the trigger names;
    /// for [`AfterCompletion`](TriggerKind::AfterCompletion), `now` itself
    /// or the start if later. `None` if there is none before the end.
    pub fn first(&self, now: Timestamp) -> Option<Occurrence> {
        self.bounded(now, 0)
    }

    /// The occurrence after `after`, when `runs` occurrences have fired
    /// already (`None` once that reaches `max_runs`, or past the end).
    ///
    /// For [`AfterCompletion`](TriggerKind::AfterCompletion), `after` is the
    /// instant the previous run finished, and the answer is `every` later.
    /// For the other kinds it is the first instant the trigger names
    /// strictly after `after`: pass the previous occurrence to get the one
    /// that follows it, or now to skip the ones missed.
    pub fn next_after(&self, after: Timestamp, runs: u64) -> Option<Occurrence> {
        let from = match self.rule {
            Rule::AfterCompletion { every } => after.checked_add(every),
            _ => after.checked_add(SignedDuration::from_nanos(1)),
        };
        self.bounded(from.ok()?, runs)
    }

    /// The fire times after `after`, for previews and tests: the
    /// occurrences [`next_after`](Self::next_after) gives one from the
    /// other, counting runs from 0. For
    /// [`AfterCompletion`](TriggerKind::AfterCompletion), `after` is taken
    /// as a finish, and each run as finishing the moment it is dispatched.
    pub fn fire_times_after(&self, after: Timestamp) -> FireTimes<'_> {
        FireTimes {
            plan: self,
            next: self.next_after(after, 0),
            runs: 0,
        }
    }

    /// The first occurrence at or after `from`, within every bound.
    fn bounded(&self, from: Timestamp, runs: u64) -> Option<Occurrence> {
        if self.max_runs.is_some_and(|max| runs >= max) {
            return None;
        }
        let from = self.start.map_or(from, |start| start.max(from));
        let at = self.at_or_after(from)?;
        if self.end.is_some_and(|end| at > end) {
            return None;
        }
        let delay = jitter::delay(self.seed, at, self.jitter);
        Some(Occurrence {
            at,
            fire_at: at.checked_add(delay).unwrap_or(at),
        })
    }

    /// The first instant at or after `t` that the rule names, bounds aside.
    fn at_or_after(&self, t: Timestamp) -> Option<Timestamp> {
        match &self.rule {
            Rule::Cron { cron, tz, .. } => {
                // croner searches strictly after an instant, in whole seconds.
                next_cron(cron, tz, t.checked_sub(SignedDuration::from_nanos(1)).ok()?)
            }
            Rule::AfterCompletion { .. } => Some(t),
            Rule::FixedRate { every, anchor } => {
                if t <= *anchor {
                    return Some(*anchor);
                }
                let step = every.as_nanos();
                // Both are positive here, so this rounds up.
                let periods = (t.as_nanosecond() - anchor.as_nanosecond() + step - 1) / step;
                Timestamp::from_nanosecond(anchor.as_nanosecond() + periods * step).ok()
            }
            Rule::Once { at } => (t <= *at).then_some(*at),
        }
    }
}

impl fmt::Debug for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Plan");
        match &self.rule {
            Rule::Cron { expr, tz, .. } => d
                .field("cron", expr)
                .field("tz", &tz.iana_name().unwrap_or("?")),
            Rule::AfterCompletion { every } => d.field("after_completion", every),
            Rule::FixedRate { every, anchor } => {
                d.field("fixed_rate", every).field("anchor", anchor)
            }
            Rule::Once { at } => d.field("once", at),
        };
        d.field("start", &self.start)
            .field("end", &self.end)
            .field("jitter", &self.jitter)
            .field("max_runs", &self.max_runs)
            .finish_non_exhaustive()
    }
}

/// The fire times of a [`Plan`], from [`Plan::fire_times_after`].
#[derive(Debug, Clone)]
pub struct FireTimes<'a> {
    plan: &'a Plan,
    next: Option<Occurrence>,
    runs: u64,
}

impl Iterator for FireTimes<'_> {
    type Item = Occurrence;

    fn next(&mut self) -> Option<Occurrence> {
        let this = self.next.take()?;
        self.runs += 1;
        let after = match self.plan.rule {
            Rule::AfterCompletion { .. } => this.fire_at,
            _ => this.at,
        };
        self.next = self.plan.next_after(after, self.runs);
        Some(this)
    }
}
