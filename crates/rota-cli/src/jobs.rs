//! `rota jobs …`, `rota dlq …` and `rota queues`: background jobs by hand.

use rota::jobs::{JobId, JobQuery, JobRecord, Jobs, NewJob};
use rota_core::jobs::list::MAX_PAGE;
use rota_core::jobs::{CancelOutcome, JobState};

use crate::cli::{DlqCommand, EnqueueArgs, JobsCommand, PageArgs};
use crate::error::{Code, Failure, Result};
use crate::output::{Table, ms_time, print_json, state_name};
use crate::parse::duration;
use crate::store::Store;

/// Runs a `rota jobs` command.
pub(crate) async fn run(command: JobsCommand, store: Store, json: bool) -> Result<()> {
    let jobs = store.jobs();
    match command {
        JobsCommand::Enqueue(args) => enqueue(&jobs, *args, json).await,
        JobsCommand::List(args) => list(&jobs, args.state, args.page, json).await,
        JobsCommand::Show { queue, id } => {
            let id = job_id(&id)?;
            let record = jobs.job(&queue, id).await?.ok_or_else(|| {
                Failure::new(
                    Code::NotFound,
                    format!(
                        "no job {id} in queue {queue:?} (finished jobs are kept as the \
                         queue's retention says)"
                    ),
                )
            })?;
            if json {
                return print_json(&record);
            }
            show(&record);
            Ok(())
        }
        JobsCommand::Cancel { queue, id } => {
            let id = job_id(&id)?;
            let outcome = jobs.cancel(&queue, id).await?;
            let said = match outcome {
                CancelOutcome::Cancelled => "cancelled: it will not run",
                CancelOutcome::Requested => {
                    "running: its worker is asked to stop it, and it ends cancelled"
                }
                CancelOutcome::Unchanged => "unchanged: it is finished already, or not kept",
                _ => "unknown",
            };
            if json {
                print_json(&serde_json::json!({ "id": id, "outcome": said.split(':').next() }))
            } else {
                println!("{id} {said}");
                Ok(())
            }
        }
    }
}

async fn enqueue(jobs: &Jobs, args: EnqueueArgs, json: bool) -> Result<()> {
    let payload: serde_json::Value = match &args.payload {
        Some(p) => serde_json::from_str(p)
            .map_err(|e| Failure::invalid(format!("--payload is not JSON: {e}")))?,
        None => serde_json::json!({}),
    };
    let mut job = NewJob::new(&args.queue, &args.tenant, &args.kind, &payload)?;
    if let Some(id) = &args.id {
        job = job.with_id(job_id(id)?);
    }
    if let Some(d) = &args.delay {
        job = job.after(duration("--in", d)?);
    }
    if let Some(p) = args.priority {
        job = job.priority(p);
    }
    if let Some(n) = args.max_attempts {
        job = job.max_attempts(n);
    }
    if let Some(t) = &args.timeout {
        job = job.timeout(duration("--timeout", t)?);
    }
    if let Some(p) = &args.partition {
        job = job.partition(p);
    }
    if let Some(k) = &args.key {
        job = job.idempotency_key(k);
    }
    if let Some(wait) = &args.wait {
        let wait = duration("--wait", wait)?;
        let outcome = jobs.run(job, wait).await.map_err(|e| {
            Failure::new(
                Code::Failure,
                format!("{e} (the job may still run; `rota jobs show` tells)"),
            )
        })?;
        if json {
            print_json(&outcome)?;
        } else {
            println!("{} {}", outcome.id, state_name(outcome.state));
            if let Some(r) = &outcome.result {
                println!("{r}");
            }
            if let Some(e) = &outcome.error {
                eprintln!("{e}");
            }
        }
        return match outcome.state {
            JobState::Succeeded => Ok(()),
            other => Err(Failure::new(
                Code::Failure,
                format!("the job ended {}", state_name(other)),
            )),
        };
    }
    let enqueued = jobs.enqueue(job).await?;
    if json {
        print_json(&serde_json::json!({ "id": enqueued.id, "duplicate": enqueued.duplicate }))
    } else {
        if enqueued.duplicate {
            eprintln!("a duplicate of job {}, which is kept", enqueued.id);
        }
        println!("{}", enqueued.id);
        Ok(())
    }
}

/// Runs a `rota dlq` command.
pub(crate) async fn dlq(command: DlqCommand, store: Store, json: bool) -> Result<()> {
    let jobs = store.jobs();
    let s = jobs.store();
    match command {
        DlqCommand::List(args) => list(&jobs, JobState::Dead, args.page, json).await,
        DlqCommand::Requeue { queue, id } => {
            let id = job_id(&id)?;
            if !s.requeue_dead_job(&queue, id).await? {
                return Err(Failure::new(
                    Code::NotFound,
                    format!(
                        "no dead job {id} in queue {queue:?}; `rota dlq list --queue {queue}` lists them"
                    ),
                ));
            }
            if json {
                print_json(&serde_json::json!({ "requeued": id }))
            } else {
                println!("{id} requeued");
                Ok(())
            }
        }
        DlqCommand::Purge { queue } => {
            let n = s.purge_dead_jobs(&queue).await?;
            if json {
                print_json(&serde_json::json!({ "purged": n }))
            } else {
                println!("{n} dead jobs purged");
                Ok(())
            }
        }
    }
}

/// `rota jobs list` and `rota dlq list`: up to `--limit` jobs in `state`,
/// read a page at a time; the cursor to go on from, when more may follow,
/// goes to stderr (and into the JSON).
async fn list(jobs: &Jobs, state: JobState, page: PageArgs, json: bool) -> Result<()> {
    if page.limit == 0 {
        return Err(Failure::invalid("--limit must be at least 1"));
    }
    let mut query = JobQuery::new(state);
    if let Some(t) = &page.tenant {
        query = query.tenant(t);
    }
    if let Some(a) = &page.after {
        query = query.after(a);
    }
    let mut found: Vec<JobRecord> = Vec::new();
    let next = loop {
        let want = (page.limit - found.len()).min(MAX_PAGE);
        let got = jobs
            .store()
            .list_jobs(&page.queue, &query.clone().limit(want))
            .await?;
        found.extend(got.jobs);
        match got.next {
            Some(cursor) if found.len() < page.limit => query = query.after(cursor),
            next => break next,
        }
    };
    if json {
        return print_json(&serde_json::json!({ "jobs": found, "next": next }));
    }
    let when = match state {
        JobState::Scheduled | JobState::Queued => "DUE",
        JobState::Running => "ENQUEUED",
        _ => "FINISHED",
    };
    let mut table = Table::new(["ID", "TENANT", "KIND", "ATTEMPT", when, "RESULT/REASON"]);
    for r in &found {
        let at = match state {
            JobState::Scheduled | JobState::Queued => Some(r.job.scheduled_for_ms),
            JobState::Running => Some(r.job.enqueued_at_ms),
            _ => r.finished_at_ms,
        };
        table.row([
            r.job.id.to_string(),
            r.job.tenant.clone(),
            r.job.kind.clone(),
            r.job.attempt.to_string(),
            at.map(|t| ms_time(t as i64)).unwrap_or_default(),
            r.reason
                .clone()
                .or_else(|| r.result.as_ref().map(|v| v.to_string()))
                .unwrap_or_default(),
        ]);
    }
    table.print();
    if let Some(cursor) = next {
        eprintln!("more: add --after '{cursor}'");
    } else if found.is_empty() {
        eprintln!("no {} jobs in queue {:?}", state_name(state), page.queue);
    }
    Ok(())
}

/// `rota queues`: jobs per state, in all and per partition, of `queues`
/// or, if none is named, of every queue.
pub(crate) async fn queues(store: Store, queues: &[String], json: bool) -> Result<()> {
    let jobs = store.jobs();
    let queues = if queues.is_empty() {
        jobs.store().queues().await?
    } else {
        queues.to_vec()
    };
    if queues.is_empty() && !json {
        eprintln!("no queues yet: enqueue a job or add a schedule first");
        return Ok(());
    }
    let mut all = serde_json::Map::new();
    let mut table = Table::new([
        "QUEUE",
        "PARTITION",
        "SCHEDULED",
        "QUEUED",
        "RUNNING",
        "SUCCEEDED",
        "FAILED",
        "CANCELLED",
        "DEAD",
    ]);
    for q in &queues {
        let counts = jobs.store().counts(q).await?;
        let mut row = |partition: &str, c: &rota_core::jobs::StateCounts| {
            table.row([
                q.clone(),
                partition.to_owned(),
                c.scheduled.to_string(),
                c.queued.to_string(),
                c.running.to_string(),
                c.succeeded.to_string(),
                c.failed.to_string(),
                c.cancelled.to_string(),
                c.dead.to_string(),
            ]);
        };
        row("(all)", &counts.total);
        for (p, c) in &counts.partitions {
            row(p, c);
        }
        all.insert(
            q.clone(),
            serde_json::to_value(&counts)
                .map_err(|e| Failure::new(Code::Failure, e.to_string()))?,
        );
    }
    if json {
        return print_json(&all);
    }
    table.print();
    Ok(())
}

fn show(r: &JobRecord) {
    let j = &r.job;
    let rows = [
        ("id", j.id.to_string()),
        ("queue", j.queue.clone()),
        ("tenant", j.tenant.clone()),
        ("kind", j.kind.clone()),
        ("state", state_name(r.state)),
        ("attempts", r.attempts.len().to_string()),
        ("run", j.run_id.clone()),
        (
            "finished",
            r.finished_at_ms
                .map(|t| ms_time(t as i64))
                .unwrap_or_default(),
        ),
        (
            "result",
            r.result.as_ref().map(|v| v.to_string()).unwrap_or_default(),
        ),
        ("reason", r.reason.clone().unwrap_or_default()),
    ];
    for (k, v) in rows {
        println!("{k:<9} {v}");
    }
}

fn job_id(s: &str) -> Result<JobId> {
    JobId::parse(s).map_err(|_| Failure::invalid(format!("{s:?} is not a job id (a UUID)")))
}
