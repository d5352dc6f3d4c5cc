//! The compact form a store keeps a [`Schedule`] in: JSON still, but
//! without what the store keeps beside it (id, tenant, version), without
//! any field at its default, and with short names — a store may hold
//! millions of schedules, and this is most of what each one costs.
//!
//! It is a storage format apart from [`Schedule`]'s own JSON (the API's),
//! so that either may change without the other; `"f"` names its version,
//! and a reader refuses a version it does not know rather than guess.
//! Format 1, each field left out when it holds what the third column says:
//!
//! | field | holds | left out when |
//! |---|---|---|
//! | `f` | the format, 1 | never |
//! | `name` | [`Schedule::name`] | empty |
//! | `labels` | [`Schedule::labels`] | empty |
//! | `j` | the job: `q` queue, `k` kind, `p` payload, `pri` priority, `to` timeout ms, `att` max attempts, `part` partition | (each: 0 or unset) |
//! | `t` | the trigger: one of `cron` (with `tz`, left out for UTC), `after` (every ms, after completion), `rate` (every ms, with `anchor` ms), `once` (at ms); then `start`, `end` (ms), `jitter` (ms), `max` (runs) | (each: unset) |
//! | `o` | [`Overlap`] as its own JSON | the default |
//! | `m` | [`Missed`] as its own JSON | the default |
//! | `p` | paused: `true` | not paused |
//! | `c` | created, Unix ms | never |
//! | `u` | updated, Unix ms | equal to `c` |
//! | `at` | the next occurrence's instant, Unix ms | no next occurrence |
//! | `fire` | its dispatch instant, Unix ms | equal to `at` |
//! | `run` | running runs, `[occurrence ms, "job id"]` each | none |
//! | `wait` | waiting occurrences, ms | none |
//! | `occ` | occurrences handled | 0 |
//! | `cx` | cancelling: `true` | not cancelling |
//! | `n` | counts: `[fired, skipped for overlap, skipped as missed, cancelled]` | all 0 |
//! | `req` | requests, each as [`Request`]'s own JSON | none |
//! | `l` | the last finished run: `[occurrence ms, "job id", "state", finished ms]` | none finished |
//!
//! So a cron schedule just created is
//! `{"f":1,"j":{"q":"reports","k":"sync","p":{}},"t":{"cron":"0 * * * *"},"c":1767225600000,"at":1767229200000}`.

use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};

use jiff::{SignedDuration, Timestamp};
use serde::de::Error as _;
use serde::{Deserialize, Serialize};

use super::model::{JobTemplate, Missed, Overlap, RunRef};
use super::plan::Occurrence;
use super::progress::{Counts, LastRun, Progress};
use super::store::{Request, Schedule};
use super::trigger::{Trigger, TriggerKind};
use crate::jobs::{JobId, JobState};

/// The format [`Schedule::to_stored`] writes.
pub const STORED_FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Stored<'a> {
    f: u32,
    #[serde(default, skip_serializing_if = "is_default")]
    name: Cow<'a, str>,
    #[serde(default, skip_serializing_if = "is_default")]
    labels: Cow<'a, BTreeMap<String, String>>,
    j: Job<'a>,
    t: StoredTrigger<'a>,
    #[serde(default, skip_serializing_if = "is_default")]
    o: Overlap,
    #[serde(default, skip_serializing_if = "is_default")]
    m: Missed,
    #[serde(default, skip_serializing_if = "is_default")]
    p: bool,
    c: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    u: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fire: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    run: Vec<(i64, JobId)>,
    #[serde(default, skip_serializing_if = "is_default")]
    wait: Cow<'a, VecDeque<i64>>,
    #[serde(default, skip_serializing_if = "is_default")]
    occ: u64,
    #[serde(default, skip_serializing_if = "is_default")]
    cx: bool,
    #[serde(default, skip_serializing_if = "is_default")]
    n: [u64; 4],
    #[serde(default, skip_serializing_if = "is_default")]
    req: Cow<'a, [Request]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    l: Option<(i64, JobId, JobState, i64)>,
}

#[derive(Serialize, Deserialize)]
struct Job<'a> {
    q: Cow<'a, str>,
    k: Cow<'a, str>,
    p: Cow<'a, serde_json::Value>,
    #[serde(default, skip_serializing_if = "is_default")]
    pri: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    to: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    att: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    part: Option<Cow<'a, str>>,
}

#[derive(Default, Serialize, Deserialize)]
struct StoredTrigger<'a> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cron: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tz: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    after: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rate: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    anchor: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    once: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    start: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    end: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    jitter: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max: Option<u64>,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

fn ms(d: SignedDuration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(if d.is_negative() { i64::MIN } else { i64::MAX })
}

fn instant<E: serde::de::Error>(ms: i64) -> Result<Timestamp, E> {
    Timestamp::from_millisecond(ms)
        .map_err(|_| E::custom(format!("{ms} ms since the Unix epoch is out of range")))
}

impl<'a> StoredTrigger<'a> {
    // Every field named, so that a field added to `Trigger` or a kind
    // added to `TriggerKind` does not compile until it is stored.
    fn of(trigger: &'a Trigger) -> Self {
        let Trigger {
            kind,
            start,
            end,
            jitter,
            max_runs,
        } = trigger;
        let mut t = Self {
            start: start.map(|t| t.as_millisecond()),
            end: end.map(|t| t.as_millisecond()),
            jitter: jitter.map(ms),
            max: *max_runs,
            ..Self::default()
        };
        match kind {
            TriggerKind::Cron { expr, tz } => {
                t.cron = Some(Cow::Borrowed(expr));
                t.tz = (tz != "UTC").then_some(Cow::Borrowed(tz));
            }
            TriggerKind::AfterCompletion { every } => t.after = Some(ms(*every)),
            TriggerKind::FixedRate { every, anchor } => {
                t.rate = Some(ms(*every));
                t.anchor = Some(anchor.as_millisecond());
            }
            TriggerKind::Once { at } => t.once = Some(at.as_millisecond()),
        }
        t
    }

    fn trigger<E: serde::de::Error>(self) -> Result<Trigger, E> {
        let kind = match (self.cron, self.after, self.rate, self.once) {
            (Some(expr), None, None, None) => TriggerKind::Cron {
                expr: expr.into_owned(),
                tz: self.tz.map_or_else(|| "UTC".to_owned(), Cow::into_owned),
            },
            (None, Some(every), None, None) => TriggerKind::AfterCompletion {
                every: SignedDuration::from_millis(every),
            },
            (None, None, Some(every), None) => TriggerKind::FixedRate {
                every: SignedDuration::from_millis(every),
                anchor: instant(
                    self.anchor
                        .ok_or_else(|| E::custom("trigger: `rate` without `anchor`"))?,
                )?,
            },
            (None, None, None, Some(at)) => TriggerKind::Once { at: instant(at)? },
            _ => {
                return Err(E::custom(
                    "trigger: not exactly one of `cron`, `after`, `rate` and `once`",
                ));
            }
        };
        Ok(Trigger {
            kind,
            start: self.start.map(instant).transpose()?,
            end: self.end.map(instant).transpose()?,
            jitter: self.jitter.map(SignedDuration::from_millis),
            max_runs: self.max,
        })
    }
}

impl Schedule {
    /// This schedule in its compact stored form (format
    /// [`STORED_FORMAT`]: JSON with short names and no defaults): all of
    /// it but its id, tenant and version, which the store keeps beside it.
    pub fn to_stored(&self) -> Result<String, serde_json::Error> {
        // Every field named, so that a field added to these types does not
        // compile until it is stored.
        let Schedule {
            id: _,
            tenant: _,
            name,
            labels,
            job,
            trigger,
            overlap,
            missed,
            paused,
            created_ms,
            updated_ms,
            version: _,
            progress,
            requests,
        } = self;
        let JobTemplate {
            queue,
            kind,
            payload,
            priority,
            timeout_ms,
            max_attempts,
            partition,
        } = job;
        let Progress {
            next,
            running,
            waiting,
            occurrences,
            cancelling,
            counts,
            last,
        } = progress;
        let Counts {
            fired,
            skipped_overlap,
            skipped_missed,
            cancelled,
        } = *counts;
        let stored = Stored {
            f: STORED_FORMAT,
            name: Cow::Borrowed(name),
            labels: Cow::Borrowed(labels),
            j: Job {
                q: Cow::Borrowed(queue),
                k: Cow::Borrowed(kind),
                p: Cow::Borrowed(payload),
                pri: *priority,
                to: *timeout_ms,
                att: *max_attempts,
                part: partition.as_deref().map(Cow::Borrowed),
            },
            t: StoredTrigger::of(trigger),
            o: *overlap,
            m: *missed,
            p: *paused,
            c: *created_ms,
            u: (updated_ms != created_ms).then_some(*updated_ms),
            at: next.map(|o| o.at.as_millisecond()),
            fire: next
                .filter(|o| o.fire_at != o.at)
                .map(|o| o.fire_at.as_millisecond()),
            run: running
                .iter()
                .map(|RunRef { occurrence_ms, job }| (*occurrence_ms, *job))
                .collect(),
            wait: Cow::Borrowed(waiting),
            occ: *occurrences,
            cx: *cancelling,
            n: [fired, skipped_overlap, skipped_missed, cancelled],
            req: Cow::Borrowed(requests),
            l: last.map(|l| (l.occurrence_ms, l.job, l.state, l.finished_ms)),
        };
        serde_json::to_string(&stored)
    }

    /// A schedule read back from its stored form `json`, with the id,
    /// tenant and version the store kept beside it. A form this version of
    /// rota cannot read — another format, a field missing or of the wrong
    /// type, an instant out of range — is an error that says where.
    pub fn from_stored(
        id: &str,
        tenant: &str,
        version: u64,
        json: &[u8],
    ) -> Result<Self, serde_json::Error> {
        let other = |f: u32| {
            serde_json::Error::custom(format!(
                "stored schedule format {f} is not {STORED_FORMAT}, the one this version of rota \
                 reads"
            ))
        };
        // Another format's fields are not this one's: name its format
        // rather than the first field that does not fit.
        let s: Stored<'_> = serde_json::from_slice(json).map_err(|e| {
            #[derive(Deserialize)]
            struct Format {
                f: u32,
            }
            match serde_json::from_slice::<Format>(json) {
                Ok(Format { f }) if f != STORED_FORMAT => other(f),
                _ => e,
            }
        })?;
        if s.f != STORED_FORMAT {
            return Err(other(s.f));
        }
        let next = match s.at {
            Some(at) => {
                let at = instant(at)?;
                let fire_at = s.fire.map(instant).transpose()?.unwrap_or(at);
                Some(Occurrence { at, fire_at })
            }
            None => None,
        };
        let [fired, skipped_overlap, skipped_missed, cancelled] = s.n;
        Ok(Schedule {
            id: id.to_owned(),
            tenant: tenant.to_owned(),
            name: s.name.into_owned(),
            labels: s.labels.into_owned(),
            job: JobTemplate {
                queue: s.j.q.into_owned(),
                kind: s.j.k.into_owned(),
                payload: s.j.p.into_owned(),
                priority: s.j.pri,
                timeout_ms: s.j.to,
                max_attempts: s.j.att,
                partition: s.j.part.map(Cow::into_owned),
            },
            trigger: s.t.trigger()?,
            overlap: s.o,
            missed: s.m,
            paused: s.p,
            created_ms: s.c,
            updated_ms: s.u.unwrap_or(s.c),
            version,
            progress: Progress {
                next,
                running: s
                    .run
                    .into_iter()
                    .map(|(occurrence_ms, job)| RunRef { occurrence_ms, job })
                    .collect(),
                waiting: s.wait.into_owned(),
                occurrences: s.occ,
                cancelling: s.cx,
                counts: Counts {
                    fired,
                    skipped_overlap,
                    skipped_missed,
                    cancelled,
                },
                last: s
                    .l
                    .map(|(occ, job, state, finished)| LastRun::new(occ, job, state, finished)),
            },
            requests: s.req.into_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::schedules::{Asked, CatchUp, NewSchedule};

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millisecond(ms).unwrap()
    }

    fn new_cron() -> Schedule {
        let new = NewSchedule::new(
            "acme",
            JobTemplate::new("reports", "sync", json!({})),
            Trigger::cron("0 * * * *"),
        );
        let mut s = Schedule::from_new(new, "daily".into(), 1_767_225_600_000);
        s.progress.next = Some(Occurrence {
            at: at(1_767_229_200_000),
            fire_at: at(1_767_229_200_000),
        });
        s
    }

    #[test]
    fn a_new_schedule_keeps_only_what_differs_from_the_defaults() {
        let s = new_cron();
        let stored = s.to_stored().unwrap();
        assert_eq!(
            stored,
            r#"{"f":1,"j":{"q":"reports","k":"sync","p":{}},"t":{"cron":"0 * * * *"},"c":1767225600000,"at":1767229200000}"#
        );
        let back = Schedule::from_stored("daily", "acme", 1, stored.as_bytes()).unwrap();
        assert_eq!(back, s);
    }

    /// Every field away from its default, each kind of trigger: what is
    /// read back is what was written, and the form is pinned (a change to
    /// it, or to the JSON of a type it embeds, is a new format).
    #[test]
    fn every_field_reads_back_as_written() {
        let mut s = new_cron();
        s.name = "nightly".into();
        s.labels.insert("team".into(), "core".into());
        s.job = JobTemplate::new("q", "k", json!({"a": [1, 2]}))
            .priority(-3)
            .timeout(std::time::Duration::from_secs(5))
            .max_attempts(4)
            .partition("p1");
        s.trigger = Trigger::cron_in("30 2 * * *", "Europe/Lisbon")
            .starting(at(1_000))
            .ending(at(9_000_000_000_000))
            .with_jitter(SignedDuration::from_millis(1_500))
            .with_max_runs(7);
        s.overlap = Overlap::BufferAll { max: 3 };
        s.missed = Missed {
            catch_up_window_ms: 5,
            catch_up: CatchUp::All { max: 2 },
        };
        s.paused = true;
        s.updated_ms = s.created_ms + 1;
        s.version = 9;
        s.progress.next = Some(Occurrence {
            at: at(2_000),
            fire_at: at(2_100),
        });
        s.progress.running = vec![RunRef::of("daily", 1_000), RunRef::of("daily", 1_500)];
        s.progress.waiting = [1_700, 1_800].into();
        s.progress.occurrences = 12;
        s.progress.cancelling = true;
        s.progress.counts = Counts {
            fired: 5,
            skipped_overlap: 4,
            skipped_missed: 2,
            cancelled: 1,
        };
        s.progress.last = Some(LastRun::new(
            900,
            RunRef::of("daily", 900).job,
            JobState::Failed,
            950,
        ));
        s.requests = vec![
            Request::new(3_000, Asked::TriggerNow),
            Request::new(
                3_001,
                Asked::Backfill {
                    from_ms: 1,
                    to_ms: 2,
                },
            ),
        ];
        let stored = s.to_stored().unwrap();
        let job = |occ: i64| RunRef::of("daily", occ).job;
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&stored).unwrap(),
            json!({
                "f": 1,
                "name": "nightly",
                "labels": {"team": "core"},
                "j": {"q": "q", "k": "k", "p": {"a": [1, 2]}, "pri": -3, "to": 5000, "att": 4,
                      "part": "p1"},
                "t": {"cron": "30 2 * * *", "tz": "Europe/Lisbon", "start": 1000,
                      "end": 9_000_000_000_000_i64, "jitter": 1500, "max": 7},
                "o": {"policy": "buffer_all", "max": 3},
                "m": {"catch_up_window_ms": 5, "catch_up": {"mode": "all", "max": 2}},
                "p": true,
                "c": 1_767_225_600_000_i64,
                "u": 1_767_225_600_001_i64,
                "at": 2000,
                "fire": 2100,
                "run": [[1000, job(1_000)], [1500, job(1_500)]],
                "wait": [1700, 1800],
                "occ": 12,
                "cx": true,
                "n": [5, 4, 2, 1],
                "req": [{"asked_ms": 3000, "what": {"kind": "trigger_now"}},
                        {"asked_ms": 3001, "what": {"kind": "backfill", "from_ms": 1, "to_ms": 2}}],
                "l": [900, job(900), "failed", 950],
            })
        );
        let back = Schedule::from_stored("daily", "acme", 9, stored.as_bytes()).unwrap();
        assert_eq!(back, s);

        for trigger in [
            Trigger::after_completion(SignedDuration::from_secs(60)),
            Trigger::fixed_rate(SignedDuration::from_millis(250), at(42)),
            Trigger::once(at(1_800_000_000_000)),
            Trigger::cron("@daily"),
        ] {
            s.trigger = trigger;
            let stored = s.to_stored().unwrap();
            let back = Schedule::from_stored("daily", "acme", 9, stored.as_bytes()).unwrap();
            assert_eq!(back, s, "{stored}");
        }
    }

    #[test]
    fn what_cannot_be_read_is_an_error_that_says_why() {
        let read = |json: &str| {
            Schedule::from_stored("x", "t", 1, json.as_bytes())
                .unwrap_err()
                .to_string()
        };
        let job = r#""j":{"q":"q","k":"k","p":null}"#;
        for (json, says) in [
            ("", "EOF"),
            ("{not json", "key must be a string"),
            (r#"{"f":2}"#, "format 2 is not 1"),
            (r#"{"f":1}"#, "missing field `j`"),
            (
                &format!(r#"{{"f":1,{job},"t":{{"cron":"* * * * *","once":5}},"c":1}}"#),
                "not exactly one of",
            ),
            (
                &format!(r#"{{"f":1,{job},"t":{{"rate":5}},"c":1}}"#),
                "`rate` without `anchor`",
            ),
            (
                &format!(r#"{{"f":1,{job},"t":{{"once":5}},"c":1,"at":9223372036854775807}}"#),
                "out of range",
            ),
            (
                &format!(r#"{{"f":1,{job},"t":{{"once":5}},"c":"soon"}}"#),
                "invalid type",
            ),
        ] {
            let error = read(json);
            assert!(error.contains(says), "{json}: {error}");
        }
    }
}
