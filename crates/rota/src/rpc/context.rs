//! What a handler may know about the call it serves.
//!
//! Contract methods take only their arguments; the call's correlation id,
//! attempt, deadline and headers are available through [`current`] while the
//! handler runs (in the handler's own task, not in tasks it spawns).
//!
//! ```
//! #[rota::contract]
//! pub trait Jobs {
//!     async fn run(&self) -> u32;
//! }
//! struct Impl;
//! impl Jobs for Impl {
//!     async fn run(&self) -> u32 {
//!         rota::context::current().map_or(0, |call| call.attempt)
//!     }
//! }
//! ```

use rota_core::{CorrelationId, Deadline, Headers, Request};

tokio::task_local! {
    static CURRENT: CallContext;
}

/// The call a handler serves.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CallContext {
    /// The correlation id.
    pub id: CorrelationId,
    /// The service.
    pub service: String,
    /// The method.
    pub method: String,
    /// Which delivery this is, from 1; above 1 after a server died mid-call
    /// or gave the call back.
    pub attempt: u32,
    /// When the caller stops waiting.
    pub deadline: Option<Deadline>,
    /// The request's headers (trace context, …).
    pub headers: Headers,
}

impl CallContext {
    pub(crate) fn of(request: &Request) -> Self {
        Self {
            id: request.id,
            service: request.service.clone(),
            method: request.method.clone(),
            attempt: request.attempt,
            deadline: request.deadline,
            headers: request.headers.clone(),
        }
    }
}

/// The call being served, when called from within a handler.
pub fn current() -> Option<CallContext> {
    CURRENT.try_with(Clone::clone).ok()
}

pub(crate) async fn scope<F: Future>(context: CallContext, f: F) -> F::Output {
    CURRENT.scope(context, f).await
}
