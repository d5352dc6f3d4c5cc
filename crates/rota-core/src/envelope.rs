//! The two messages of a call — [`Request`] and [`Reply`] — and their wire
//! format.
//!
//! The format is specified in `docs/PROTOCOL.md`; in short, a JSON request is
//!
//! ```json
//! {"v":1,"id":"0192…","service":"billing","method":"invoice",
//!  "reply_to":"rota:{c:0192…}:r","deadline_ms":1767225600000,
//!  "attempt":1,"headers":{"traceparent":"00-…"},"body":{"tenant":"t1","month":11}}
//! ```
//!
//! and its reply is `{"v":1,"id":"0192…","outcome":"ok","body":{…}}`, with
//! `"outcome":"error"` for the method's own error and `"outcome":"fault"` plus a
//! `"fault":{"kind":…,"message":…}` object for a framework failure.

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::codec::{Codec, CodecError};
use crate::time::Deadline;

/// The protocol version written into every envelope.
pub const PROTOCOL_VERSION: u8 = 1;

/// Free-form string headers, such as W3C trace context (`traceparent`).
pub type Headers = BTreeMap<String, String>;

/// Identifies one call and ties its reply to it: a UUID v7, so ids sort by
/// creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CorrelationId(Uuid);

impl CorrelationId {
    /// A fresh, time-ordered id.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// The underlying UUID.
    pub fn as_uuid(&self) -> &Uuid {
        &self.0
    }

    /// Parses the hyphenated text form.
    pub fn parse(s: &str) -> Result<Self, uuid::Error> {
        Uuid::parse_str(s).map(Self)
    }
}

impl Default for CorrelationId {
    fn default() -> Self {
        Self::new()
    }
}

impl From<Uuid> for CorrelationId {
    fn from(u: Uuid) -> Self {
        Self(u)
    }
}

impl fmt::Display for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// A call on its way to a server.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Correlation id; the reply carries it back.
    pub id: CorrelationId,
    /// The service (queue) the request is addressed to.
    pub service: String,
    /// The method to run.
    pub method: String,
    /// Where to send the reply; `None` for a one-way call.
    pub reply_to: Option<String>,
    /// When the caller stops waiting; a server does not start a request whose
    /// deadline has passed.
    pub deadline: Option<Deadline>,
    /// Which delivery this is, from 1. Brokers set it on delivery.
    pub attempt: u32,
    /// Headers such as trace context.
    pub headers: Headers,
    /// The codec of the envelope and of `body`.
    pub codec: Codec,
    /// The arguments, encoded with `codec`: an object (map) keyed by the
    /// method's parameter names.
    pub body: Bytes,
}

/// What became of a call.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The method returned; the body is its value, encoded.
    Ok(Bytes),
    /// The method returned its own error; the body is that error, encoded.
    Err(Bytes),
    /// The framework could not run the method.
    Fault(Fault),
}

/// A reply to a [`Request`].
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The correlation id of the request answered.
    pub id: CorrelationId,
    /// The codec of the envelope and of the body inside `outcome`.
    pub codec: Codec,
    /// The result.
    pub outcome: Outcome,
}

/// A framework failure reported by a server, in place of the method's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct Fault {
    /// What kind of failure.
    pub kind: FaultKind,
    /// Human-readable detail.
    pub message: String,
}

impl Fault {
    /// A fault of `kind` with a message.
    pub fn new(kind: FaultKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

/// Kinds of [`Fault`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FaultKind {
    /// The server serves a different service than the request names.
    UnknownService,
    /// The service has no method of that name.
    UnknownMethod,
    /// The arguments could not be decoded (for example, a caller built from an
    /// older contract).
    BadRequest,
    /// The deadline passed before or while the method ran.
    DeadlineExceeded,
    /// The handler panicked.
    Panicked,
    /// The server is shutting down and gave the call up.
    ShuttingDown,
    /// The result could not be encoded, or another internal failure.
    Internal,
    /// A kind this version does not know (sent by a newer server).
    #[serde(other)]
    Unknown,
}

impl FaultKind {
    /// Whether calling again may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            FaultKind::DeadlineExceeded | FaultKind::ShuttingDown | FaultKind::Unknown
        )
    }

    /// The snake_case name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::UnknownService => "unknown_service",
            FaultKind::UnknownMethod => "unknown_method",
            FaultKind::BadRequest => "bad_request",
            FaultKind::DeadlineExceeded => "deadline_exceeded",
            FaultKind::Panicked => "panicked",
            FaultKind::ShuttingDown => "shutting_down",
            FaultKind::Internal => "internal",
            FaultKind::Unknown => "unknown",
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An envelope could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// Neither JSON nor MessagePack.
    #[error("not a rota envelope: the first byte is neither '{{' (JSON) nor a MessagePack map")]
    UnknownFormat,
    /// The envelope's codec could not parse it.
    #[error("malformed envelope: {0}")]
    Malformed(#[from] CodecError),
    /// The id is not a UUID.
    #[error("malformed envelope: id {0:?} is not a UUID")]
    BadId(String),
    /// A protocol version this implementation does not speak.
    #[error("unsupported protocol version {0} (this side speaks {PROTOCOL_VERSION})")]
    Version(u8),
    /// An outcome other than ok, error or fault, or one missing its body.
    #[error("malformed reply: {0}")]
    BadOutcome(String),
}

#[derive(Serialize)]
struct RequestOut<'a, B> {
    v: u8,
    id: String,
    service: &'a str,
    method: &'a str,
    reply_to: Option<&'a str>,
    deadline_ms: Option<u64>,
    attempt: u32,
    headers: &'a Headers,
    body: B,
}

#[derive(Deserialize)]
#[serde(bound(deserialize = "B: Deserialize<'de>"))]
struct RequestIn<B> {
    #[serde(default)]
    v: Option<u8>,
    id: String,
    service: String,
    method: String,
    #[serde(default)]
    reply_to: Option<String>,
    #[serde(default)]
    deadline_ms: Option<u64>,
    #[serde(default, deserialize_with = "null_as_default")]
    attempt: u32,
    #[serde(default, deserialize_with = "null_as_default")]
    headers: Headers,
    // `null` (`nil`) is no body: no arguments, like an absent one.
    #[serde(default)]
    body: Option<B>,
}

/// An optional field that is `null` means what its absence means.
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Option::<T>::deserialize(d).map(Option::unwrap_or_default)
}

/// A field that is present is `Some`, even when it is `null` (a method
/// returning `()` or `None`).
fn present<'de, D, B>(d: D) -> Result<Option<B>, D::Error>
where
    D: serde::Deserializer<'de>,
    B: Deserialize<'de>,
{
    B::deserialize(d).map(Some)
}

#[derive(Serialize)]
struct ReplyOut<'a, B> {
    v: u8,
    id: String,
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<B>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fault: Option<&'a Fault>,
}

#[derive(Deserialize)]
#[serde(bound(deserialize = "B: Deserialize<'de>"))]
struct ReplyIn<B> {
    #[serde(default)]
    v: Option<u8>,
    id: String,
    outcome: String,
    #[serde(default, deserialize_with = "present")]
    body: Option<B>,
    #[serde(default)]
    fault: Option<Fault>,
}

fn check_version(v: Option<u8>) -> Result<(), EnvelopeError> {
    match v {
        None | Some(PROTOCOL_VERSION) => Ok(()),
        Some(other) => Err(EnvelopeError::Version(other)),
    }
}

fn parse_id(id: &str) -> Result<CorrelationId, EnvelopeError> {
    CorrelationId::parse(id).map_err(|_| EnvelopeError::BadId(id.to_owned()))
}

fn raw_json(body: &[u8]) -> Result<&RawValue, CodecError> {
    let text = std::str::from_utf8(body).map_err(|e| CodecError::new(Codec::Json, "encode", e))?;
    serde_json::from_str(text).map_err(|e| CodecError::new(Codec::Json, "encode", e))
}

impl Request {
    /// Encodes the request in its codec.
    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        let id = self.id.to_string();
        macro_rules! out {
            ($body:expr) => {
                RequestOut {
                    v: PROTOCOL_VERSION,
                    id,
                    service: &self.service,
                    method: &self.method,
                    reply_to: self.reply_to.as_deref(),
                    deadline_ms: self.deadline.map(Deadline::as_unix_ms),
                    attempt: self.attempt,
                    headers: &self.headers,
                    body: $body,
                }
            };
        }
        match self.codec {
            Codec::Json => Codec::Json.encode(&out!(raw_json(&self.body)?)),
            Codec::MessagePack => {
                Codec::MessagePack.encode(&out!(serde_bytes::Bytes::new(&self.body)))
            }
        }
    }

    /// Decodes a request, telling its codec from its first byte.
    pub fn decode(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        let codec = Codec::detect(bytes).ok_or(EnvelopeError::UnknownFormat)?;
        let (wire, body) = match codec {
            Codec::Json => {
                let w: RequestIn<Box<RawValue>> = codec.decode_fields(bytes)?;
                let body = w.body.as_ref().map_or_else(
                    || Bytes::from_static(b"{}"),
                    |b| Bytes::copy_from_slice(b.get().as_bytes()),
                );
                (strip(w), body)
            }
            Codec::MessagePack => {
                let mut w: RequestIn<serde_bytes::ByteBuf> = codec.decode_fields(bytes)?;
                let body = match w.body.take() {
                    Some(b) => Bytes::from(b.into_vec()),
                    // An empty map: the arguments of a method without any.
                    None => Bytes::from_static(&[0x80]),
                };
                (strip(w), body)
            }
        };
        check_version(wire.v)?;
        Ok(Request {
            id: parse_id(&wire.id)?,
            service: wire.service,
            method: wire.method,
            reply_to: wire.reply_to,
            deadline: wire.deadline_ms.map(Deadline::from_unix_ms),
            attempt: wire.attempt,
            headers: wire.headers,
            codec,
            body,
        })
    }
}

/// Where to answer a request that cannot be decoded; see
/// [`Request::return_address`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnAddress {
    /// The request's correlation id.
    pub id: CorrelationId,
    /// Its `reply_to`.
    pub reply_to: String,
    /// Its codec, which the answer is written in.
    pub codec: Codec,
}

impl Request {
    /// The `id` and `reply_to` of a request that [`decode`](Request::decode)
    /// refused (a field of the wrong type, an unknown `v`, …), when both can
    /// still be read: an id that is a UUID and a `reply_to` that is a string.
    /// A server answers such a request with a fault, so that its caller
    /// learns what is wrong instead of waiting for its deadline. `None` for
    /// bytes that are no envelope, or whose way back is not trustworthy.
    pub fn return_address(bytes: &[u8]) -> Option<ReturnAddress> {
        #[derive(Deserialize)]
        struct Head {
            id: String,
            reply_to: Option<String>,
        }
        let codec = Codec::detect(bytes)?;
        let head: Head = codec.decode(bytes).ok()?;
        Some(ReturnAddress {
            id: CorrelationId::parse(&head.id).ok()?,
            reply_to: head.reply_to?,
            codec,
        })
    }
}

fn strip<B>(w: RequestIn<B>) -> RequestIn<()> {
    RequestIn {
        v: w.v,
        id: w.id,
        service: w.service,
        method: w.method,
        reply_to: w.reply_to,
        deadline_ms: w.deadline_ms,
        attempt: w.attempt,
        headers: w.headers,
        body: None,
    }
}

impl Reply {
    /// Encodes the reply in its codec.
    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        let id = self.id.to_string();
        let (outcome, body, fault) = match &self.outcome {
            Outcome::Ok(b) => ("ok", Some(b), None),
            Outcome::Err(b) => ("error", Some(b), None),
            Outcome::Fault(f) => ("fault", None, Some(f)),
        };
        match self.codec {
            Codec::Json => Codec::Json.encode(&ReplyOut {
                v: PROTOCOL_VERSION,
                id,
                outcome,
                body: body.map(|b| raw_json(b)).transpose()?,
                fault,
            }),
            Codec::MessagePack => Codec::MessagePack.encode(&ReplyOut {
                v: PROTOCOL_VERSION,
                id,
                outcome,
                body: body.map(|b| serde_bytes::Bytes::new(b)),
                fault,
            }),
        }
    }

    /// Decodes a reply, telling its codec from its first byte.
    pub fn decode(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        let codec = Codec::detect(bytes).ok_or(EnvelopeError::UnknownFormat)?;
        let (v, id, outcome, body, fault) = match codec {
            Codec::Json => {
                let w: ReplyIn<Box<RawValue>> = codec.decode_fields(bytes)?;
                let body = w.body.map(|b| Bytes::copy_from_slice(b.get().as_bytes()));
                (w.v, w.id, w.outcome, body, w.fault)
            }
            Codec::MessagePack => {
                let w: ReplyIn<serde_bytes::ByteBuf> = codec.decode_fields(bytes)?;
                let body = w.body.map(|b| Bytes::from(b.into_vec()));
                (w.v, w.id, w.outcome, body, w.fault)
            }
        };
        check_version(v)?;
        let missing = || EnvelopeError::BadOutcome(format!("outcome {outcome:?} without a body"));
        let outcome = match outcome.as_str() {
            "ok" => Outcome::Ok(body.ok_or_else(missing)?),
            "error" => Outcome::Err(body.ok_or_else(missing)?),
            "fault" => Outcome::Fault(fault.ok_or_else(|| {
                EnvelopeError::BadOutcome("outcome \"fault\" without a fault object".into())
            })?),
            other => {
                return Err(EnvelopeError::BadOutcome(format!(
                    "unknown outcome {other:?} (expected ok, error or fault)"
                )));
            }
        };
        Ok(Reply {
            id: parse_id(&id)?,
            codec,
            outcome,
        })
    }
}

#[cfg(test)]
mod tests;
