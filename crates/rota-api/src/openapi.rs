//! The OpenAPI 3.1 document, made from the handlers' annotations and the
//! model's types: what the code serves is what the document says.

use std::sync::LazyLock;

use axum::Json;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, SecurityRequirement};
use utoipa::{Modify, OpenApi};

use crate::{jobs, schedules};

/// Bearer tokens on every `/v1` route.
struct Bearer;

impl Modify for Bearer {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        doc.security = Some(vec![SecurityRequirement::new(
            "bearer",
            Vec::<String>::new(),
        )]);
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "rota",
        description = "Recurring jobs per tenant: schedules, their runs, jobs, queues and dead letters. \
            Times are Unix milliseconds. Errors are application/problem+json. A tenant's token sees its tenant only."
    ),
    paths(
        schedules::list, schedules::create, schedules::get, schedules::update, schedules::delete,
        schedules::pause, schedules::resume, schedules::trigger, schedules::backfill,
        schedules::runs, schedules::preview, schedules::shards,
        jobs::queues, jobs::queue, jobs::list, jobs::enqueue, jobs::get, jobs::cancel,
        jobs::dead, jobs::requeue, jobs::purge,
    ),
    modifiers(&Bearer),
)]
struct ApiDoc;

static DOCUMENT: LazyLock<Document> = LazyLock::new(ApiDoc::openapi);

/// The document.
pub fn document() -> Document {
    DOCUMENT.clone()
}

pub(crate) async fn serve() -> Json<Document> {
    Json(DOCUMENT.clone())
}
