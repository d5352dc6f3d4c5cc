//! Items the `#[contract]` macro's generated code uses. Not a public API.

pub use futures_util::future::BoxFuture;
pub use serde;

pub use crate::rpc::service_client::ServiceClient;

use rota_core::{Codec, Fault, FaultKind, Outcome};

/// Encodes a method's plain result.
pub fn encode_ok<T: serde::Serialize>(codec: Codec, value: &T) -> Outcome {
    match codec.encode(value) {
        Ok(bytes) => Outcome::Ok(bytes.into()),
        Err(e) => encode_failed(e),
    }
}

/// Encodes a method's `Result`.
pub fn encode_result<T: serde::Serialize, E: serde::Serialize>(
    codec: Codec,
    result: Result<T, E>,
) -> Outcome {
    match result {
        Ok(value) => encode_ok(codec, &value),
        Err(error) => match codec.encode(&error) {
            Ok(bytes) => Outcome::Err(bytes.into()),
            Err(e) => encode_failed(e),
        },
    }
}

fn encode_failed(e: rota_core::codec::CodecError) -> Outcome {
    Outcome::Fault(Fault::new(
        FaultKind::Internal,
        format!("cannot encode the result: {e}"),
    ))
}

/// The fault for a method the contract does not have.
pub fn unknown_method(contract: &str, method: &str) -> Fault {
    Fault::new(
        FaultKind::UnknownMethod,
        format!("contract {contract} has no method {method:?}"),
    )
}
