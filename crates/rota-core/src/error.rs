//! Errors.
//!
//! Framework failures ([`RpcError`]) are kept apart from a method's own error
//! type, which travels typed: a fallible method's client returns
//! [`CallError<E>`], either `Service(E)` or `Rpc(RpcError)`. Every error says
//! whether a retry may help.

use std::time::Duration;

use crate::envelope::Fault;

/// A broker (transport) operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// The broker cannot be reached or dropped the connection; retry later.
    #[error("broker unavailable: {0}")]
    Unavailable(String),
    /// The configuration (for example a URL) is wrong; fix it, retrying won't help.
    #[error("invalid broker configuration: {0}")]
    Config(String),
    /// A service name or key prefix cannot be used.
    #[error("invalid name: {0}")]
    InvalidName(String),
    /// The lease lapsed and was taken over: a consumer's claims are void and
    /// its acknowledgements refused; a fenced writer's writes are refused.
    #[error("lease lost: the lease lapsed and what it covered was handed to others")]
    LeaseLost,
    /// The input is refused (an empty tenant, an absurd delay, an oversized
    /// payload, …); the message says which and why.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// The handle was closed.
    #[error("broker handle closed")]
    Closed,
    /// The broker answered with an error it should not give.
    #[error("broker error: {0}")]
    Protocol(String),
}

impl BrokerError {
    /// Whether the same operation may succeed if tried again later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, BrokerError::Unavailable(_))
    }
}

/// A call failed for a reason of the framework's, not the method's.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum RpcError {
    /// No reply came before the call's deadline.
    #[error("deadline exceeded: no reply within {0:?}")]
    DeadlineExceeded(Duration),
    /// The server reported a framework fault (unknown method, bad request,
    /// panic, …).
    #[error("remote fault: {0}")]
    Remote(Fault),
    /// The broker could not take the request.
    #[error(transparent)]
    Transport(#[from] BrokerError),
    /// The client is shutting down.
    #[error("the client is shutting down")]
    ShuttingDown,
    /// The reply could not be decoded into the method's result type.
    #[error("cannot decode the reply: {0}")]
    Decode(String),
    /// The arguments could not be encoded.
    #[error("cannot encode the request: {0}")]
    Encode(String),
    /// The encoded request is larger than the client allows.
    #[error("request of {size} bytes is over the {limit}-byte limit")]
    PayloadTooLarge {
        /// Size of the encoded request.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// Too many calls are pending on this client and it is set to fail fast.
    #[error("{0} calls already pending on this client; retry later")]
    Overloaded(usize),
}

impl RpcError {
    /// Whether calling again may succeed. A retried call may run twice on the
    /// server (delivery is at least once), so retry idempotent methods only.
    pub fn is_retryable(&self) -> bool {
        match self {
            RpcError::DeadlineExceeded(_) | RpcError::Overloaded(_) => true,
            RpcError::Remote(f) => f.kind.is_retryable(),
            RpcError::Transport(e) => e.is_retryable(),
            RpcError::ShuttingDown
            | RpcError::Decode(_)
            | RpcError::Encode(_)
            | RpcError::PayloadTooLarge { .. } => false,
        }
    }
}

/// The error of a fallible contract method: the method's own error, or a
/// framework failure.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError<E> {
    /// The method ran and returned its own error.
    #[error("service error: {0}")]
    Service(E),
    /// The framework could not complete the call.
    #[error(transparent)]
    Rpc(#[from] RpcError),
}

impl<E> CallError<E> {
    /// The method's own error, if that is what this is.
    pub fn service(&self) -> Option<&E> {
        match self {
            CallError::Service(e) => Some(e),
            CallError::Rpc(_) => None,
        }
    }

    /// The framework failure, if that is what this is.
    pub fn rpc(&self) -> Option<&RpcError> {
        match self {
            CallError::Rpc(e) => Some(e),
            CallError::Service(_) => None,
        }
    }

    /// Whether a framework failure may pass on retry. A service error is the
    /// method's answer and is never called retryable here.
    pub fn is_retryable(&self) -> bool {
        self.rpc().is_some_and(RpcError::is_retryable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::FaultKind;

    #[test]
    fn retryability_follows_the_cause() {
        assert!(RpcError::DeadlineExceeded(Duration::from_secs(1)).is_retryable());
        assert!(RpcError::Transport(BrokerError::Unavailable("down".into())).is_retryable());
        assert!(!RpcError::Transport(BrokerError::Config("bad url".into())).is_retryable());
        assert!(!RpcError::Remote(Fault::new(FaultKind::UnknownMethod, "x")).is_retryable());
        assert!(RpcError::Remote(Fault::new(FaultKind::ShuttingDown, "x")).is_retryable());
        assert!(!CallError::Service("no").is_retryable());
        assert!(CallError::<()>::Rpc(RpcError::Overloaded(3)).is_retryable());
    }
}
