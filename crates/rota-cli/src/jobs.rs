//! `rota jobs …`, `rota dlq …` and `rota queues`: background jobs by hand.

use rota::jobs::{JobId, JobRecord, Jobs, NewJob};
use rota_core::jobs::{CancelOutcome, JobState};

use crate::cli::{DlqCommand, EnqueueArgs, JobsCommand};
use crate::error::{Code, Failure, Result};
use crate::output::{Table, ms_time, print_json, state_name};
use crate::parse::duration;
use crate::store::Store;

/// Runs a `rota jobs` command.
pub(crate) async fn run(command: JobsCommand, store: Store, json: bool) -> Result<()> {
    let jobs = store.jobs();
    match command {
        JobsCommand::Enqueue(args) => enqueue(&jobs, *args, json).await,
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
        DlqCommand::List { queue, limit } => {
            let dead = s.dead_jobs(&queue, limit).await?;
            if json {
                return print_json(&dead);
            }
            let mut table = Table::new(["ID", "TENANT", "KIND", "ATTEMPTS", "DIED", "REASON"]);
            for r in &dead {
                table.row([
                    r.job.id.to_string(),
                    r.job.tenant.clone(),
                    r.job.kind.clone(),
                    r.attempts.len().to_string(),
                    r.finished_at_ms
                        .map(|t| ms_time(t as i64))
                        .unwrap_or_default(),
                    r.reason.clone().unwrap_or_default(),
                ]);
            }
            table.print();
            Ok(())
        }
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

/// `rota queues`: jobs per state, in all and per partition.
pub(crate) async fn queues(store: Store, queues: &[String], json: bool) -> Result<()> {
    let jobs = store.jobs();
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
    for q in queues {
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
