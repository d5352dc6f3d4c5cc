//! Reading requests so that every rejection is a problem naming its field:
//! JSON bodies, query strings, path segments and cursors.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;

use crate::problem::Problem;

/// A JSON body, read into `T`: 415 without a JSON content type, 413 over
/// the size limit, 400 when it is not JSON, 422 naming the field whose
/// value does not fit.
pub(crate) struct Body<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                let v = v.trim();
                v == "application/json" || (v.starts_with("application/") && v.ends_with("+json"))
            });
        if !json {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "send the body as JSON, with Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            Problem::new(
                e.status(),
                format!(
                    "the body could not be read: {}; at most {} bytes are accepted",
                    e.body_text(),
                    crate::MAX_BODY
                ),
            )
        })?;
        // Every body of the API is an object: say so rather than how a
        // list or a number failed to be one.
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        if first.is_some_and(|b| *b != b'{') {
            return Err(Problem::invalid("body", "the body must be a JSON object"));
        }
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if inner.is_syntax() || inner.is_eof() || path == "." {
                if inner.is_data() {
                    Problem::invalid("body", format!("the body does not fit: {inner}"))
                } else {
                    Problem::bad_request(format!("the body is not JSON: {inner}"))
                }
            } else {
                Problem::invalid(path.clone(), format!("{path}: {inner}"))
            }
        })?;
        de.end()
            .map_err(|e| Problem::bad_request(format!("the body is not one JSON value: {e}")))?;
        Ok(Body(value))
    }
}

/// A query string, read into `T`: 400 naming what does not fit.
pub(crate) struct Params<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| Params(q))
            .map_err(|e| Problem::bad_request(format!("the query string: {}", e.body_text())))
    }
}

/// Path segments, read into `T`: 400 naming what does not fit.
pub(crate) struct Segments<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Segments<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(p)| Segments(p))
            .map_err(|e| Problem::bad_request(format!("the path: {}", e.body_text())))
    }
}

/// The page size asked for (`default` when not), from 1 to `most`: 422
/// naming `limit` otherwise.
pub(crate) fn limit(asked: Option<usize>, default: usize, most: usize) -> Result<usize, Problem> {
    match asked.unwrap_or(default) {
        n if (1..=most).contains(&n) => Ok(n),
        n => Err(Problem::invalid(
            "limit",
            format!("limit is {n}; ask for 1 to {most}"),
        )),
    }
}

/// A store's cursor as handed out: opaque, URL-safe.
pub(crate) fn encode_cursor(inner: &str) -> String {
    URL_SAFE_NO_PAD.encode(inner)
}

/// A cursor handed back: 400 when it is not one of ours (the store checks
/// the inside).
pub(crate) fn decode_cursor(cursor: &str) -> Result<String, Problem> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            Problem::bad_request(
                "cursor is not one this listing handed out; start again without one",
            )
            .field("cursor")
        })
}
