//! rota's HTTP API: schedules, their runs, jobs, queues and dead letters
//! as JSON over HTTP, for scripts and the dashboard, served by `rota up`
//! and `rota api`.
//!
//! * Every route is under `/v1`; [`openapi`] makes the OpenAPI 3.1
//!   document from the handlers and the model's types, served at
//!   `/openapi.json`.
//! * Callers present a bearer token ([`auth`]): an administrator's, or a
//!   tenant's, which sees its tenant only — anything of another answers
//!   404.
//! * Errors are `application/problem+json` ([`problem::Problem`]), naming
//!   the field at fault; a request body is JSON of at most [`MAX_BODY`]
//!   bytes; listings page with opaque cursors.
//! * Times on the wire are Unix milliseconds (`*_ms`), as everywhere in
//!   rota.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = rota_sqlite::SqliteBroker::open("rota.db").await?;
//! let api = rota_api::Api::new(store, rota_api::auth::Tokens::default());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:7070").await?;
//! axum::serve(listener, api.router()).await?;
//! # Ok(()) }
//! ```

pub mod auth;
mod extract;
mod jobs;
pub mod openapi;
pub mod problem;
mod schedules;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use rota::jobs::Jobs;
use rota::schedules::Schedules;
use rota_core::Inboxes;
use rota_core::jobs::JobStore;
use rota_core::schedules::ScheduleStore;

use auth::Tokens;

/// The largest request body accepted: a job's largest payload (1 MiB of
/// JSON) with room for the rest.
pub const MAX_BODY: usize = 2 * 1024 * 1024;

/// What every handler reaches: the store's features and the tokens.
#[derive(Clone)]
pub struct State {
    schedules: Schedules,
    jobs: Jobs,
    store: Arc<dyn ScheduleStore>,
    tokens: Arc<Tokens>,
}

/// The API over one store.
#[derive(Clone)]
pub struct Api {
    state: State,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api").finish_non_exhaustive()
    }
}

impl Api {
    /// The API over `store`, checking callers against `tokens`.
    pub fn new<S>(store: S, tokens: Tokens) -> Self
    where
        S: ScheduleStore + JobStore + Inboxes + Clone,
    {
        Self {
            state: State {
                schedules: Schedules::new(store.clone()),
                jobs: Jobs::new(store.clone()),
                store: Arc::new(store),
                tokens: Arc::new(tokens),
            },
        }
    }

    /// Serves the API on `listener` until `shutdown` completes, then lets
    /// the requests under way finish.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
    }

    /// The routes, ready for `axum::serve`.
    pub fn router(self) -> Router {
        let v1 = Router::new()
            .route("/schedules", get(schedules::list).post(schedules::create))
            .route(
                "/schedules/{id}",
                get(schedules::get)
                    .put(schedules::update)
                    .delete(schedules::delete),
            )
            .route("/schedules/{id}/pause", post(schedules::pause))
            .route("/schedules/{id}/resume", post(schedules::resume))
            .route("/schedules/{id}/trigger", post(schedules::trigger))
            .route("/schedules/{id}/backfill", post(schedules::backfill))
            .route("/schedules/{id}/runs", get(schedules::runs))
            .route("/preview", post(schedules::preview))
            .route("/queues", get(jobs::queues))
            .route("/queues/{queue}", get(jobs::queue))
            .route("/queues/{queue}/jobs", get(jobs::list).post(jobs::enqueue))
            .route("/queues/{queue}/jobs/{id}", get(jobs::get))
            .route("/queues/{queue}/jobs/{id}/cancel", post(jobs::cancel))
            .route("/queues/{queue}/dead", get(jobs::dead).delete(jobs::purge))
            .route("/queues/{queue}/dead/{id}/requeue", post(jobs::requeue))
            .route("/shards", get(schedules::shards));
        Router::new()
            .nest("/v1", v1)
            .route("/openapi.json", get(openapi::serve))
            .route("/healthz", get(|| async { "ok" }))
            .fallback(|| async {
                problem::Problem::not_found("no such route; /openapi.json lists them")
            })
            .layer(DefaultBodyLimit::max(MAX_BODY))
            .with_state(self.state)
    }
}
