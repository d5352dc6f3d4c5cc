//! `rota schedules …` and `rota runs`.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use rota::schedules::{
    CatchUp, JobTemplate, NewSchedule, Overlap, RunRecord, RunState, Schedule, Schedules, Trigger,
    TriggerKind,
};

use crate::cli::{AddArgs, CatchUpArg, JobArgs, OverlapArg, PolicyArgs, SchedulesCommand, When};
use crate::error::{Code, Failure, Result};
use crate::output::{Table, ms_time, print_json, state_name, utc};
use crate::parse::{duration, instant, signed_duration};
use crate::store::Store;

/// Runs a `rota schedules` command.
pub(crate) async fn run(command: SchedulesCommand, store: Store, json: bool) -> Result<()> {
    let api = store.schedules();
    match command {
        SchedulesCommand::Add(args) => {
            let new = new_schedule(args)?;
            let s = api.create(new).await?;
            if json {
                print_json(&s)
            } else {
                println!("{}", s.id);
                Ok(())
            }
        }
        SchedulesCommand::List {
            tenant,
            after,
            limit,
        } => {
            let page = api.list(&tenant, after.as_deref(), limit).await?;
            if json {
                return print_json(&serde_json::json!({
                    "schedules": page.schedules,
                    "next": page.next,
                }));
            }
            let mut table =
                Table::new(["ID", "TRIGGER", "STATE", "NEXT (UTC)", "LAST RUN", "FIRED"]);
            for s in &page.schedules {
                table.row([
                    s.id.clone(),
                    describe(&s.trigger),
                    state(s).to_owned(),
                    next(s),
                    last(s),
                    s.progress.counts.fired.to_string(),
                ]);
            }
            table.print();
            if let Some(next) = page.next {
                eprintln!("more: rota schedules list --tenant {tenant} --after {next}");
            }
            Ok(())
        }
        SchedulesCommand::Show { id } => {
            let s = api
                .get(&id)
                .await?
                .ok_or_else(|| Failure::from(rota::schedules::ScheduleError::NotFound(id)))?;
            show(&s, json)
        }
        SchedulesCommand::Update(args) => {
            let edit = Edit::parse(args.when, args.job, args.policy)?;
            let s = api.update(&args.id, |new| edit.apply(new)).await?;
            show(&s, json)
        }
        SchedulesCommand::Pause { id } => show(&api.pause(&id).await?, json),
        SchedulesCommand::Resume { id } => show(&api.resume(&id).await?, json),
        SchedulesCommand::Trigger { id } => show(&api.trigger(&id).await?, json),
        SchedulesCommand::Rm { id } => {
            if !api.delete(&id).await? {
                return Err(rota::schedules::ScheduleError::NotFound(id).into());
            }
            if json {
                print_json(&serde_json::json!({ "deleted": id }))
            } else {
                Ok(())
            }
        }
        SchedulesCommand::Preview {
            expr,
            tz,
            after,
            count,
        } => preview(&expr, &tz, after.as_deref(), count, json),
        SchedulesCommand::Import { file } => crate::import::import(store, &file, json).await,
        SchedulesCommand::Export { tenants } => crate::import::export(store, &tenants).await,
    }
}

/// `rota schedules preview`: no store needed.
pub(crate) fn preview(
    expr: &str,
    tz: &str,
    after: Option<&str>,
    count: usize,
    json: bool,
) -> Result<()> {
    let after = match after {
        Some(t) => instant("--after", t)?,
        None => Timestamp::now(),
    };
    let times = Schedules::preview(&Trigger::cron_in(expr, tz), after, count)?;
    let lines: Vec<String> = times.iter().map(utc).collect();
    if json {
        return print_json(&lines);
    }
    for line in lines {
        println!("{line}");
    }
    Ok(())
}

/// `rota runs ID`.
pub(crate) async fn runs(store: Store, id: &str, limit: usize, json: bool) -> Result<()> {
    let runs = store.schedules().runs(id, limit).await?;
    if json {
        return print_json(&runs);
    }
    let mut table = Table::new([
        "OCCURRENCE (UTC)",
        "STATE",
        "ATTEMPTS",
        "STARTED",
        "FINISHED",
        "ERROR",
    ]);
    for r in &runs {
        table.row([
            ms_time(r.occurrence_ms),
            run_state(r),
            if r.job.is_some() {
                r.attempts.to_string()
            } else {
                String::new()
            },
            r.started_ms.map(ms_time).unwrap_or_default(),
            r.finished_ms.map(ms_time).unwrap_or_default(),
            r.error.clone().unwrap_or_default(),
        ]);
    }
    table.print();
    Ok(())
}

fn show(s: &Schedule, json: bool) -> Result<()> {
    if json {
        return print_json(s);
    }
    let mut rows = vec![
        ("id", s.id.clone()),
        ("tenant", s.tenant.clone()),
        ("name", s.name.clone()),
        ("trigger", describe(&s.trigger)),
        ("state", state(s).to_owned()),
        ("next (UTC)", next(s)),
        ("last run", last(s)),
        ("job", format!("{} / {}", s.job.queue, s.job.kind)),
        ("payload", s.job.payload.to_string()),
        ("overlap", overlap(s.overlap)),
        (
            "counts",
            format!(
                "fired {}, skipped (overlap) {}, skipped (missed) {}, cancelled {}",
                s.progress.counts.fired,
                s.progress.counts.skipped_overlap,
                s.progress.counts.skipped_missed,
                s.progress.counts.cancelled
            ),
        ),
        ("running", s.progress.running.len().to_string()),
    ];
    for (k, v) in &s.labels {
        rows.push(("label", format!("{k}={v}")));
    }
    for (k, v) in rows {
        println!("{k:<11} {v}");
    }
    Ok(())
}

fn state(s: &Schedule) -> &'static str {
    if s.paused {
        "paused"
    } else if !s.progress.running.is_empty() {
        "running"
    } else if s.progress.next.is_none() {
        "done"
    } else {
        "active"
    }
}

fn next(s: &Schedule) -> String {
    s.progress.due_at().map(|t| utc(&t)).unwrap_or_default()
}

fn last(s: &Schedule) -> String {
    s.progress.last.map_or_else(String::new, |l| {
        format!("{} {}", ms_time(l.finished_ms), state_name(l.state))
    })
}

fn run_state(r: &RunRecord) -> String {
    match r.state {
        RunState::Dispatched => "dispatched".into(),
        RunState::Finished(s) => state_name(s),
        RunState::Skipped(why) => {
            let n = r.skipped.map_or(1, |(_, n)| n);
            format!("skipped ({why:?}, {n})").to_lowercase()
        }
        _ => "unknown".into(),
    }
}

fn overlap(o: Overlap) -> String {
    match o {
        Overlap::BufferAll { max } => format!("buffer-all (at most {max})"),
        Overlap::Skip => "skip".into(),
        Overlap::BufferOne => "buffer-one".into(),
        Overlap::AllowAll => "allow-all".into(),
        Overlap::CancelRunning => "cancel-running".into(),
        _ => format!("{o:?}"),
    }
}

/// A trigger in a few words.
fn describe(t: &Trigger) -> String {
    match &t.kind {
        TriggerKind::Cron { expr, tz } if tz == "UTC" => format!("cron {expr}"),
        TriggerKind::Cron { expr, tz } => format!("cron {expr} ({tz})"),
        TriggerKind::AfterCompletion { every } => format!("every {every:#} after completion"),
        TriggerKind::FixedRate { every, .. } => format!("every {every:#}"),
        TriggerKind::Once { at } => format!("once at {}", utc(at)),
        _ => "?".into(),
    }
}

/// The schedule `add` creates.
fn new_schedule(args: AddArgs) -> Result<NewSchedule> {
    let edit = Edit::parse(args.when, args.job, args.policy)?;
    let trigger = edit.trigger.clone().ok_or_else(|| {
        Failure::new(
            Code::Usage,
            "say when it fires: --cron EXPR, --every DURATION or --at TIME",
        )
    })?;
    let (Some(queue), Some(kind)) = (edit.queue.clone(), edit.kind.clone()) else {
        return Err(Failure::new(
            Code::Usage,
            "say what it runs: --queue QUEUE and --kind KIND",
        ));
    };
    let job = JobTemplate::new(queue, kind, serde_json::json!({}));
    let mut new = NewSchedule::new(args.tenant, job, trigger);
    if let Some(id) = args.id {
        new = new.id(id);
    }
    if args.paused {
        new = new.paused();
    }
    edit.apply(&mut new);
    Ok(new)
}

/// The parts of a schedule the flags set, parsed once: `add` starts from
/// them, `update` lays them over the schedule as it is.
#[derive(Debug, Clone, Default)]
struct Edit {
    trigger: Option<Trigger>,
    /// The trigger's bounds, laid over the trigger in force when no new
    /// trigger is given.
    start: Option<Timestamp>,
    end: Option<Timestamp>,
    jitter: Option<SignedDuration>,
    max_runs: Option<u64>,
    queue: Option<String>,
    kind: Option<String>,
    payload: Option<serde_json::Value>,
    priority: Option<i32>,
    timeout: Option<Duration>,
    max_attempts: Option<u32>,
    partition: Option<String>,
    name: Option<String>,
    labels: Vec<(String, String)>,
    overlap: Option<Overlap>,
    window: Option<Duration>,
    catch_up: Option<CatchUp>,
}

impl Edit {
    fn parse(when: When, job: JobArgs, policy: PolicyArgs) -> Result<Self> {
        let trigger = if let Some(expr) = when.cron {
            Some(Trigger::cron_in(
                expr,
                when.tz.unwrap_or_else(|| "UTC".into()),
            ))
        } else if let Some(every) = &when.every {
            let every = signed_duration("--every", every)?;
            Some(if when.after_completion {
                Trigger::after_completion(every)
            } else {
                Trigger::fixed_rate(every, Timestamp::now())
            })
        } else if let Some(at) = &when.at {
            Some(Trigger::once(instant("--at", at)?))
        } else {
            None
        };
        let payload = job
            .payload
            .as_deref()
            .map(|p| {
                serde_json::from_str(p)
                    .map_err(|e| Failure::invalid(format!("--payload is not JSON: {e}")))
            })
            .transpose()?;
        let labels = job
            .labels
            .iter()
            .map(|l| {
                l.split_once('=')
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .ok_or_else(|| Failure::invalid(format!("--label {l:?} is not KEY=VALUE")))
            })
            .collect::<Result<Vec<_>>>()?;
        let overlap = policy.overlap.map(|o| match o {
            OverlapArg::Skip => Overlap::Skip,
            OverlapArg::BufferOne => Overlap::BufferOne,
            OverlapArg::BufferAll => Overlap::BufferAll {
                max: policy.buffer_max.unwrap_or(10),
            },
            OverlapArg::AllowAll => Overlap::AllowAll,
            OverlapArg::CancelRunning => Overlap::CancelRunning,
        });
        let catch_up = policy.catch_up.map(|c| match c {
            CatchUpArg::Once => CatchUp::Once,
            CatchUpArg::All => CatchUp::All {
                max: policy.catch_up_max.unwrap_or(10),
            },
        });
        Ok(Self {
            trigger,
            start: when
                .start
                .as_deref()
                .map(|t| instant("--start", t))
                .transpose()?,
            end: when
                .end
                .as_deref()
                .map(|t| instant("--end", t))
                .transpose()?,
            jitter: when
                .jitter
                .as_deref()
                .map(|d| signed_duration("--jitter", d))
                .transpose()?,
            max_runs: when.max_runs,
            queue: job.queue,
            kind: job.kind,
            payload,
            priority: job.priority,
            timeout: job
                .timeout
                .as_deref()
                .map(|d| duration("--timeout", d))
                .transpose()?,
            max_attempts: job.max_attempts,
            partition: job.partition,
            name: job.name,
            labels,
            overlap,
            window: policy
                .catch_up_window
                .as_deref()
                .map(|d| duration("--catch-up-window", d))
                .transpose()?,
            catch_up,
        })
    }

    fn apply(&self, new: &mut NewSchedule) {
        if let Some(t) = &self.trigger {
            new.trigger = t.clone();
        }
        let t = &mut new.trigger;
        if self.start.is_some() {
            t.start = self.start;
        }
        if self.end.is_some() {
            t.end = self.end;
        }
        if self.jitter.is_some() {
            t.jitter = self.jitter;
        }
        if self.max_runs.is_some() {
            t.max_runs = self.max_runs;
        }
        let job = &mut new.job;
        if let Some(q) = &self.queue {
            job.queue = q.clone();
        }
        if let Some(k) = &self.kind {
            job.kind = k.clone();
        }
        if let Some(p) = &self.payload {
            job.payload = p.clone();
        }
        if let Some(p) = self.priority {
            job.priority = p;
        }
        if let Some(d) = self.timeout {
            job.timeout_ms = Some(u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        }
        if let Some(n) = self.max_attempts {
            job.max_attempts = Some(n);
        }
        if let Some(p) = &self.partition {
            job.partition = Some(p.clone());
        }
        if let Some(n) = &self.name {
            new.name = n.clone();
        }
        for (k, v) in &self.labels {
            new.labels.insert(k.clone(), v.clone());
        }
        if let Some(o) = self.overlap {
            new.overlap = o;
        }
        let mut missed = new.missed;
        if let Some(w) = self.window {
            missed.catch_up_window_ms = u64::try_from(w.as_millis()).unwrap_or(u64::MAX);
        }
        if let Some(c) = self.catch_up {
            missed.catch_up = c;
        }
        new.missed = missed;
    }
}
