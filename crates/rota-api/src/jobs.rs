//! `/v1/queues…`: queues and their counts, jobs, dead letters.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use rota::jobs::NewJob;
use rota_core::jobs::list::MAX_PAGE;
use rota_core::jobs::{
    CancelOutcome, Enqueued, JobId, JobPage, JobQuery, JobRecord, JobState, QueueCounts,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::extract::{Body, Params, Segments, decode_cursor, encode_cursor, limit};
use crate::problem::Problem;

/// A queue, in the path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct QueuePath {
    /// The queue.
    queue: String,
}

/// A job of a queue, in the path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct JobPath {
    /// The queue.
    queue: String,
    /// The job's id (a UUID).
    id: String,
}

/// A queue and its counts.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct QueueSummary {
    queue: String,
    counts: QueueCounts,
}

/// Every queue with its jobs per state, in all and per partition. For
/// administrators.
#[utoipa::path(get, path = "/v1/queues", tag = "queues",
    responses(
        (status = 200, body = Vec<QueueSummary>),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn queues(
    State(state): State<crate::State>,
    caller: Caller,
) -> Result<Json<Vec<QueueSummary>>, Problem> {
    caller.admin()?;
    let store = state.jobs.store();
    let mut out = Vec::new();
    for queue in store.queues().await? {
        let counts = store.counts(&queue).await?;
        out.push(QueueSummary { queue, counts });
    }
    Ok(Json(out))
}

/// A queue's jobs per state, in all and per partition. For
/// administrators.
#[utoipa::path(get, path = "/v1/queues/{queue}", tag = "queues", params(QueuePath),
    responses(
        (status = 200, body = QueueCounts),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn queue(
    State(state): State<crate::State>,
    caller: Caller,
    Segments(p): Segments<QueuePath>,
) -> Result<Json<QueueCounts>, Problem> {
    caller.admin()?;
    Ok(Json(state.jobs.store().counts(&p.queue).await?))
}

/// Which jobs a listing shows.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// The state listed (queued by default).
    state: Option<JobState>,
    /// Only this tenant's jobs; a tenant's token sees its own only.
    tenant: Option<String>,
    /// The `next` of the page before.
    cursor: Option<String>,
    /// The most jobs in the page (1 to 1000; 50 by default).
    limit: Option<usize>,
}

async fn page(
    state: &crate::State,
    caller: &Caller,
    queue: &str,
    job_state: JobState,
    q: ListQuery,
) -> Result<Json<JobPage>, Problem> {
    let mut query = JobQuery::new(job_state).limit(limit(q.limit, 50, MAX_PAGE)?);
    if let Some(t) = caller.tenant_filter(q.tenant)? {
        query = query.tenant(t);
    }
    if let Some(c) = &q.cursor {
        query = query.after(decode_cursor(c)?);
    }
    let mut page = state.jobs.store().list_jobs(queue, &query).await?;
    page.next = page.next.as_deref().map(encode_cursor);
    Ok(Json(page))
}

/// A queue's jobs in one state, a page at a time: soonest due first
/// (scheduled), partition by partition (queued), the latest first
/// (finished, dead). A page may be short while `next` is set.
#[utoipa::path(get, path = "/v1/queues/{queue}/jobs", tag = "jobs",
    params(QueuePath, ListQuery),
    responses(
        (status = 200, body = JobPage),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list(
    State(state): State<crate::State>,
    caller: Caller,
    Segments(p): Segments<QueuePath>,
    Params(q): Params<ListQuery>,
) -> Result<Json<JobPage>, Problem> {
    let job_state = q.state.unwrap_or(JobState::Queued);
    page(&state, &caller, &p.queue, job_state, q).await
}

/// A job to enqueue.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EnqueueRequest {
    /// Whose job it is.
    tenant: String,
    /// Which handler runs it.
    kind: String,
    /// Its input (JSON; `{}` by default).
    #[serde(default)]
    #[schema(value_type = Value)]
    payload: Option<serde_json::Value>,
    /// Its id [default: a fresh one]; enqueueing an id the queue holds
    /// returns that job.
    #[schema(value_type = Option<String>, format = Uuid)]
    id: Option<JobId>,
    /// Run no sooner than this many ms from now.
    delay_ms: Option<u64>,
    /// Higher runs first within its partition.
    priority: Option<i32>,
    /// The most attempts.
    max_attempts: Option<u32>,
    /// The most an attempt may take, in ms.
    timeout_ms: Option<u64>,
    /// Its partition [default: the tenant].
    partition: Option<String>,
    /// While the job it names is kept, enqueueing the key again returns it.
    idempotency_key: Option<String>,
    /// Extra headers, carried to the handler.
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

/// Enqueue a job.
#[utoipa::path(post, path = "/v1/queues/{queue}/jobs", tag = "jobs", params(QueuePath),
    request_body = EnqueueRequest,
    responses(
        (status = 201, body = Enqueued),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn enqueue(
    State(state): State<crate::State>,
    caller: Caller,
    Segments(p): Segments<QueuePath>,
    Body(r): Body<EnqueueRequest>,
) -> Result<(StatusCode, Json<Enqueued>), Problem> {
    if !caller.sees(&r.tenant) {
        return Err(Problem::not_found(format!("no tenant {:?}", r.tenant)));
    }
    let payload = r.payload.unwrap_or_else(|| serde_json::json!({}));
    let mut job = NewJob::new(&p.queue, &r.tenant, &r.kind, &payload)?;
    if let Some(id) = r.id {
        job = job.with_id(id);
    }
    if let Some(ms) = r.delay_ms {
        job = job.after(std::time::Duration::from_millis(ms));
    }
    if let Some(n) = r.priority {
        job = job.priority(n);
    }
    if let Some(n) = r.max_attempts {
        job = job.max_attempts(n);
    }
    if let Some(ms) = r.timeout_ms {
        job = job.timeout(std::time::Duration::from_millis(ms));
    }
    if let Some(part) = r.partition {
        job = job.partition(part);
    }
    if let Some(key) = r.idempotency_key {
        job = job.idempotency_key(key);
    }
    for (name, value) in r.headers {
        job = job.header(name, value);
    }
    let enqueued = state.jobs.enqueue(job).await?;
    Ok((StatusCode::CREATED, Json(enqueued)))
}

/// Job `id` of `queue`, if the caller may see it.
async fn visible(state: &crate::State, caller: &Caller, p: &JobPath) -> Result<JobRecord, Problem> {
    let not_found = || Problem::not_found(format!("no job {} in queue {:?}", p.id, p.queue));
    let id = JobId::parse(&p.id).map_err(|_| not_found())?;
    match state.jobs.job(&p.queue, id).await? {
        Some(record) if caller.sees(&record.job.tenant) => Ok(record),
        _ => Err(not_found()),
    }
}

/// Get a job: its state, attempts, result or reason.
#[utoipa::path(get, path = "/v1/queues/{queue}/jobs/{id}", tag = "jobs", params(JobPath),
    responses(
        (status = 200, body = JobRecord),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get(
    State(state): State<crate::State>,
    caller: Caller,
    Segments(p): Segments<JobPath>,
) -> Result<Json<JobRecord>, Problem> {
    Ok(Json(visible(&state, &caller, &p).await?))
}

/// What a cancel did.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Cancelled {
    /// `cancelled` (it will not run), `requested` (its worker stops it) or
    /// `unchanged` (finished already).
    outcome: String,
}

/// Cancel a job: one not started never runs; a running one is stopped.
#[utoipa::path(post, path = "/v1/queues/{queue}/jobs/{id}/cancel", tag = "jobs",
    params(JobPath),
    responses(
        (status = 200, body = Cancelled),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn cancel(
    State(state): State<crate::State>,
    caller: Caller,
    Segments(p): Segments<JobPath>,
) -> Result<Json<Cancelled>, Problem> {
    let record = visible(&state, &caller, &p).await?;
    let outcome = match state.jobs.cancel(&p.queue, record.job.id).await? {
        CancelOutcome::Cancelled => "cancelled",
        CancelOutcome::Requested => "requested",
        _ => "unchanged",
    };
    Ok(Json(Cancelled {
        outcome: outcome.into(),
    }))
}

/// Which dead jobs a listing shows.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DeadQuery {
    /// Only this tenant's; a tenant's token sees its own only.
    tenant: Option<String>,
    /// The `next` of the page before.
    cursor: Option<String>,
    /// The most jobs in the page (1 to 1000; 50 by default).
    limit: Option<usize>,
}

/// A queue's dead jobs, the latest first.
#[utoipa::path(get, path = "/v1/queues/{queue}/dead", tag = "dead letters",
    params(QueuePath, DeadQuery),
    responses(
        (status = 200, body = JobPage),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn dead(
    State(state): State<crate::State>,
    caller: Caller,
    Segments(p): Segments<QueuePath>,
    Params(q): Params<DeadQuery>,
) -> Result<Json<JobPage>, Problem> {
    let q = ListQuery {
        state: None,
        tenant: q.tenant,
        cursor: q.cursor,
        limit: q.limit,
    };
    page(&state, &caller, &p.queue, JobState::Dead, q).await
}

/// Put a dead job back in its queue, for a fresh round of attempts.
#[utoipa::path(post, path = "/v1/queues/{queue}/dead/{id}/requeue", tag = "dead letters",
    params(JobPath),
    responses(
        (status = 204, description = "Requeued"),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn requeue(
    State(state): State<crate::State>,
    caller: Caller,
    Segments(p): Segments<JobPath>,
) -> Result<StatusCode, Problem> {
    let record = visible(&state, &caller, &p).await?;
    if !state
        .jobs
        .store()
        .requeue_dead_job(&p.queue, record.job.id)
        .await?
    {
        return Err(Problem::not_found(format!(
            "job {} of queue {:?} is not dead",
            p.id, p.queue
        )));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// How many dead jobs a purge deleted.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Purged {
    purged: usize,
}

/// Delete a queue's dead jobs. For administrators (it spans tenants).
#[utoipa::path(delete, path = "/v1/queues/{queue}/dead", tag = "dead letters",
    params(QueuePath),
    responses(
        (status = 200, body = Purged),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn purge(
    State(state): State<crate::State>,
    caller: Caller,
    Segments(p): Segments<QueuePath>,
) -> Result<Json<Purged>, Problem> {
    caller.admin()?;
    let purged = state.jobs.store().purge_dead_jobs(&p.queue).await?;
    Ok(Json(Purged { purged }))
}
