//! Errors as `application/problem+json` (RFC 9457): a status, a title, a
//! detail a person can act on and, when one field of the request is at
//! fault, its name.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rota_core::BrokerError;
use rota_core::schedules::ScheduleError;
use serde::Serialize;
use utoipa::ToSchema;

/// A problem with a request, or with serving it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem (`about:blank`: the title says it).
    #[serde(rename = "type")]
    pub kind: String,
    /// The kind of problem, for people.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong with this request, and what to do.
    pub detail: String,
    /// The field of the request at fault, if one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl Problem {
    /// A problem with `status`, said in `detail`.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            kind: "about:blank".into(),
            title: status.canonical_reason().unwrap_or("Error").into(),
            status: status.as_u16(),
            detail: detail.into(),
            field: None,
        }
    }

    /// The field at fault.
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// 400: the request cannot be read.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }

    /// 422: the request was read, and a field of it is wrong.
    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, detail).field(field)
    }

    /// 404: nothing there — or nothing this caller may see.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }

    /// 403: for administrators only.
    pub fn admin_only() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "this needs an administrator's token; a tenant's token sees its own tenant only",
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(&self)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"rota\""),
            );
        }
        response
    }
}

/// The field a store's message names, when it starts with one
/// (`queue name …`, `tenant "a b" holds …`).
fn field_of(message: &str) -> Option<&'static str> {
    [
        "queue",
        "tenant",
        "kind",
        "partition",
        "payload",
        "limit",
        "cursor",
        "idempotency key",
    ]
    .into_iter()
    .find(|f| message.starts_with(f))
}

impl From<BrokerError> for Problem {
    fn from(e: BrokerError) -> Self {
        match e {
            BrokerError::Invalid(m) | BrokerError::InvalidName(m) => match field_of(&m) {
                // A cursor no listing handed out: the request cannot be
                // read, as a cursor that does not decode.
                Some("cursor") => Self::bad_request(m).field("cursor"),
                Some(f) => Self::invalid(f.replace(' ', "_"), m),
                None => Self::new(StatusCode::UNPROCESSABLE_ENTITY, m),
            },
            BrokerError::Unavailable(_) | BrokerError::Closed => {
                tracing::warn!(error = %e, "store unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the store is unavailable; try again shortly",
                )
            }
            other => {
                tracing::error!(error = %other, "store error");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the store failed; see the server's log",
                )
            }
        }
    }
}

impl From<ScheduleError> for Problem {
    fn from(e: ScheduleError) -> Self {
        match e {
            ScheduleError::Trigger(t) => Self::invalid("trigger", t.to_string()),
            ScheduleError::Invalid { field, problem } => Self::invalid(field, problem),
            ScheduleError::NotFound(id) => Self::not_found(format!("no schedule has id {id:?}")),
            ScheduleError::Exists(id) => Self::new(
                StatusCode::CONFLICT,
                format!("a schedule with id {id:?} exists already; PUT changes it"),
            )
            .field("id"),
            ScheduleError::Conflict(id) => Self::new(
                StatusCode::CONFLICT,
                format!("schedule {id:?} kept changing while this change was made; try again"),
            ),
            ScheduleError::Store(e) => e.into(),
            other => {
                tracing::error!(error = %other, "schedule store error");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the store failed; see the server's log",
                )
            }
        }
    }
}
