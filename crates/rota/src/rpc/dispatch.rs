//! What a server runs: a [`Dispatch`] (what `#[contract]` generates as
//! `FooServer`) turns each [`Call`] into the future of its method.

use bytes::Bytes;
use futures_util::future::BoxFuture;
use rota_core::{Codec, Deadline, Fault, FaultKind, Headers, Outcome, Request};
use serde::de::DeserializeOwned;

/// A request, as a [`Dispatch`] sees it.
#[derive(Debug, Clone)]
pub struct Call {
    request: Request,
}

impl Call {
    /// Wraps a decoded request.
    pub fn new(request: Request) -> Self {
        Self { request }
    }
    /// The method called.
    pub fn method(&self) -> &str {
        &self.request.method
    }
    /// The codec of the arguments (and of the reply).
    pub fn codec(&self) -> Codec {
        self.request.codec
    }
    /// The request's headers.
    pub fn headers(&self) -> &Headers {
        &self.request.headers
    }
    /// The request's deadline.
    pub fn deadline(&self) -> Option<Deadline> {
        self.request.deadline
    }
    /// Which delivery this is, from 1.
    pub fn attempt(&self) -> u32 {
        self.request.attempt
    }
    /// The encoded arguments.
    pub fn body(&self) -> &Bytes {
        &self.request.body
    }
    /// Decodes the arguments; a mismatch (a caller built from another version
    /// of the contract) is a [`FaultKind::BadRequest`] naming the problem:
    /// the argument at fault, or a body that is not an object keyed by
    /// parameter name (positional arguments, an array, are not supported).
    pub fn decode_args<A: DeserializeOwned>(&self) -> Result<A, Fault> {
        let (codec, body) = (self.request.codec, &self.request.body);
        let mismatch = |problem: &str| {
            Fault::new(
                FaultKind::BadRequest,
                format!(
                    "the arguments of {}.{} do not match the contract: {problem}",
                    self.request.service, self.request.method,
                ),
            )
        };
        if Codec::detect(body) != Some(codec) {
            let what = if is_array(codec, body) {
                "positional arguments (an array) are not supported"
            } else {
                "they are not an object"
            };
            return Err(mismatch(&format!(
                "{what}; send an object keyed by parameter name"
            )));
        }
        codec.decode_fields(body).map_err(|e| mismatch(e.message()))
    }
}

/// Whether `body` is an array (positional arguments) in `codec`.
fn is_array(codec: Codec, body: &[u8]) -> bool {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    match codec {
        Codec::Json => first == Some(&b'['),
        _ => matches!(first, Some(0x90..=0x9f | 0xdc | 0xdd)),
    }
}

/// A service's request router: what `#[contract]` generates as `FooServer`.
pub trait Dispatch: Send + Sync + 'static {
    /// The contract's name, for logs and faults.
    fn contract(&self) -> &'static str;
    /// The methods served.
    fn methods(&self) -> &'static [&'static str];
    /// Decodes the call's arguments and returns the future that runs the
    /// method; an unknown method or undecodable arguments give a [`Fault`].
    fn dispatch(&self, call: Call) -> Result<BoxFuture<'static, Outcome>, Fault>;
}
