//! `/v1/schedules…`, `/v1/preview` and `/v1/shards`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use jiff::Timestamp;
use rota::schedules::Schedules;
use rota_core::jobs::validate_tenant;
use rota_core::schedules::{MAX_HISTORY, NewSchedule, RunRecord, Schedule, ShardOwner, Trigger};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::extract::{Body, Params, Segments, decode_cursor, encode_cursor, limit};
use crate::problem::Problem;

/// Schedules a page holds unless asked otherwise.
const PAGE: usize = 50;

/// Which schedules a listing shows.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// The tenant whose schedules are listed; a tenant's token lists its
    /// own without it.
    tenant: Option<String>,
    /// The `next` of the page before.
    cursor: Option<String>,
    /// The most schedules in the page (1 to 1000; 50 by default).
    limit: Option<usize>,
}

/// A page of schedules, by id.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SchedulePage {
    schedules: Vec<Schedule>,
    /// The cursor of the next page, while there is one.
    next: Option<String>,
}

/// A schedule's id, in the path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct IdPath {
    /// The schedule's id.
    id: String,
}

/// Schedule `id`, if the caller may see it: another tenant's is not found.
async fn visible(s: &Schedules, caller: &Caller, id: &str) -> Result<Schedule, Problem> {
    match s.get(id).await? {
        Some(schedule) if caller.sees(&schedule.tenant) => Ok(schedule),
        _ => Err(Problem::not_found(format!("no schedule has id {id:?}"))),
    }
}

/// List a tenant's schedules.
#[utoipa::path(get, path = "/v1/schedules", tag = "schedules", params(ListQuery),
    responses(
        (status = 200, body = SchedulePage),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list(
    State(state): State<crate::State>,
    caller: Caller,
    Params(q): Params<ListQuery>,
) -> Result<Json<SchedulePage>, Problem> {
    let tenant = caller.tenant_filter(q.tenant)?.ok_or_else(|| {
        Problem::invalid(
            "tenant",
            "tenant is required: schedules are listed per tenant",
        )
    })?;
    validate_tenant(&tenant).map_err(|e| Problem::invalid("tenant", e.to_string()))?;
    let limit = limit(q.limit, PAGE, 1000)?;
    let after = q.cursor.as_deref().map(decode_cursor).transpose()?;
    let page = state
        .schedules
        .list(&tenant, after.as_deref(), limit)
        .await?;
    Ok(Json(SchedulePage {
        schedules: page.schedules,
        next: page.next.as_deref().map(encode_cursor),
    }))
}

/// Create a schedule.
#[utoipa::path(post, path = "/v1/schedules", tag = "schedules", request_body = NewSchedule,
    responses(
        (status = 201, body = Schedule),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn create(
    State(state): State<crate::State>,
    caller: Caller,
    Body(new): Body<NewSchedule>,
) -> Result<(StatusCode, Json<Schedule>), Problem> {
    if !caller.sees(&new.tenant) {
        return Err(Problem::not_found(format!("no tenant {:?}", new.tenant)));
    }
    let schedule = state.schedules.create(new).await?;
    Ok((StatusCode::CREATED, Json(schedule)))
}

/// Get a schedule.
#[utoipa::path(get, path = "/v1/schedules/{id}", tag = "schedules", params(IdPath),
    responses(
        (status = 200, body = Schedule),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get(
    State(state): State<crate::State>,
    caller: Caller,
    Segments(p): Segments<IdPath>,
) -> Result<Json<Schedule>, Problem> {
    Ok(Json(visible(&state.schedules, &caller, &p.id).await?))
}

/// Change a schedule: its name, labels, job, trigger and policies, as a
/// new one would be checked. A changed trigger computes the next
/// occurrence anew; runs that run go on. Its tenant cannot change, nor
/// whether it is paused (pause and resume do that).
#[utoipa::path(put, path = "/v1/schedules/{id}", tag = "schedules", params(IdPath),
    request_body = NewSchedule,
    responses(
        (status = 200, body = Schedule),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn update(
    State(state): State<crate::State>,
    caller: Caller,
    Segments(p): Segments<IdPath>,
    Body(new): Body<NewSchedule>,
) -> Result<Json<Schedule>, Problem> {
    let old = visible(&state.schedules, &caller, &p.id).await?;
    if new.tenant != old.tenant {
        return Err(Problem::invalid(
            "tenant",
            format!("a schedule's tenant cannot change (it is {:?})", old.tenant),
        ));
    }
    if new.id.as_ref().is_some_and(|id| *id != p.id) {
        return Err(Problem::invalid(
            "id",
            "the id in the body is not the path's",
        ));
    }
    let schedule = state
        .schedules
        .update(&p.id, |n| {
            n.name.clone_from(&new.name);
            n.labels.clone_from(&new.labels);
            n.job = new.job.clone();
            n.trigger = new.trigger.clone();
            n.overlap = new.overlap;
            n.missed = new.missed;
        })
        .await?;
    Ok(Json(schedule))
}

/// Delete a schedule: no more occurrences; runs that run go on.
#[utoipa::path(delete, path = "/v1/schedules/{id}", tag = "schedules", params(IdPath),
    responses(
        (status = 204, description = "Deleted"),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn delete(
    State(state): State<crate::State>,
    caller: Caller,
    Segments(p): Segments<IdPath>,
) -> Result<StatusCode, Problem> {
    visible(&state.schedules, &caller, &p.id).await?;
    state.schedules.delete(&p.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Pause a schedule: no occurrence is handled until it resumes.
#[utoipa::path(post, path = "/v1/schedules/{id}/pause", tag = "schedules", params(IdPath),
    responses(
        (status = 200, body = Schedule),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn pause(
    State(state): State<crate::State>,
    caller: Caller,
    Segments(p): Segments<IdPath>,
) -> Result<Json<Schedule>, Problem> {
    visible(&state.schedules, &caller, &p.id).await?;
    Ok(Json(state.schedules.pause(&p.id).await?))
}

/// Resume a schedule; what it missed follows its missed-run policy.
#[utoipa::path(post, path = "/v1/schedules/{id}/resume", tag = "schedules", params(IdPath),
    responses(
        (status = 200, body = Schedule),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn resume(
    State(state): State<crate::State>,
    caller: Caller,
    Segments(p): Segments<IdPath>,
) -> Result<Json<Schedule>, Problem> {
    visible(&state.schedules, &caller, &p.id).await?;
    Ok(Json(state.schedules.resume(&p.id).await?))
}

/// Run a schedule now, outside its trigger (its overlap policy applies).
#[utoipa::path(post, path = "/v1/schedules/{id}/trigger", tag = "schedules", params(IdPath),
    responses(
        (status = 200, body = Schedule),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn trigger(
    State(state): State<crate::State>,
    caller: Caller,
    Segments(p): Segments<IdPath>,
) -> Result<Json<Schedule>, Problem> {
    visible(&state.schedules, &caller, &p.id).await?;
    Ok(Json(state.schedules.trigger(&p.id).await?))
}

/// A time range to backfill, inclusive.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Backfill {
    /// From (Unix ms).
    from_ms: i64,
    /// To (Unix ms).
    to_ms: i64,
}

fn instant(field: &str, ms: i64) -> Result<Timestamp, Problem> {
    Timestamp::from_millisecond(ms)
        .map_err(|_| Problem::invalid(field, format!("{field} {ms} is out of range")))
}

/// Run the trigger's occurrences of a time range (at most 1000), whatever
/// the catch-up window; the overlap policy applies.
#[utoipa::path(post, path = "/v1/schedules/{id}/backfill", tag = "schedules", params(IdPath),
    request_body = Backfill,
    responses(
        (status = 200, body = Schedule),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn backfill(
    State(state): State<crate::State>,
    caller: Caller,
    Segments(p): Segments<IdPath>,
    Body(b): Body<Backfill>,
) -> Result<Json<Schedule>, Problem> {
    let (from, to) = (instant("from_ms", b.from_ms)?, instant("to_ms", b.to_ms)?);
    visible(&state.schedules, &caller, &p.id).await?;
    Ok(Json(state.schedules.backfill(&p.id, from, to).await?))
}

/// How many runs a history shows.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct RunsQuery {
    /// The most runs (1 to 100; 50 by default).
    limit: Option<usize>,
}

/// A schedule's run history, newest first.
#[utoipa::path(get, path = "/v1/schedules/{id}/runs", tag = "schedules",
    params(IdPath, RunsQuery),
    responses(
        (status = 200, body = Vec<RunRecord>),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn runs(
    State(state): State<crate::State>,
    caller: Caller,
    Segments(p): Segments<IdPath>,
    Params(q): Params<RunsQuery>,
) -> Result<Json<Vec<RunRecord>>, Problem> {
    let limit = limit(q.limit, 50, MAX_HISTORY)?;
    visible(&state.schedules, &caller, &p.id).await?;
    Ok(Json(state.schedules.runs(&p.id, limit).await?))
}

/// A trigger to preview.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PreviewRequest {
    trigger: Trigger,
    /// Fire times after this instant (Unix ms); now by default.
    after_ms: Option<i64>,
    /// How many (1 to 1000; 10 by default).
    count: Option<usize>,
}

/// A trigger's next fire times.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PreviewResponse {
    /// Unix ms, soonest first.
    fire_times_ms: Vec<i64>,
}

/// The next fire times of a trigger (no schedule needed).
#[utoipa::path(post, path = "/v1/preview", tag = "schedules", request_body = PreviewRequest,
    responses(
        (status = 200, body = PreviewResponse),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn preview(
    _caller: Caller,
    Body(r): Body<PreviewRequest>,
) -> Result<Json<PreviewResponse>, Problem> {
    let count = limit(r.count, 10, 1000)?;
    let after = match r.after_ms {
        Some(ms) => instant("after_ms", ms)?,
        None => Timestamp::now(),
    };
    let times = Schedules::preview(&r.trigger, after, count)?;
    Ok(Json(PreviewResponse {
        fire_times_ms: times.into_iter().map(Timestamp::as_millisecond).collect(),
    }))
}

/// The scheduler shards: each one's holder, while a live lease holds it,
/// and its latest epoch. For administrators.
#[utoipa::path(get, path = "/v1/shards", tag = "cluster",
    responses(
        (status = 200, body = Vec<ShardOwner>),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn shards(
    State(state): State<crate::State>,
    caller: Caller,
) -> Result<Json<Vec<ShardOwner>>, Problem> {
    caller.admin()?;
    Ok(Json(state.store.shard_owners().await?))
}
