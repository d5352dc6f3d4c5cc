//! What a handler gets and returns.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use rota_core::jobs::{Job, JobId};
use rota_core::{Deadline, Headers};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

/// The job a handler runs, and a token that tells it to stop.
#[derive(Debug, Clone)]
pub struct JobContext {
    job: Arc<Job>,
    cancel: CancellationToken,
}

impl JobContext {
    pub(crate) fn new(job: Arc<Job>, cancel: CancellationToken) -> Self {
        Self { job, cancel }
    }

    /// The job's id.
    pub fn id(&self) -> JobId {
        self.job.id
    }
    /// The run it executes.
    pub fn run_id(&self) -> &str {
        &self.job.run_id
    }
    /// Whose job it is.
    pub fn tenant(&self) -> &str {
        &self.job.tenant
    }
    /// The queue.
    pub fn queue(&self) -> &str {
        &self.job.queue
    }
    /// The kind.
    pub fn kind(&self) -> &str {
        &self.job.kind
    }
    /// Which attempt this is, from 1.
    pub fn attempt(&self) -> u32 {
        self.job.attempt
    }
    /// The job's deadline, if any.
    pub fn deadline(&self) -> Option<Deadline> {
        self.job.deadline
    }
    /// The job's headers.
    pub fn headers(&self) -> &Headers {
        &self.job.headers
    }
    /// The whole job.
    pub fn job(&self) -> &Job {
        &self.job
    }
    /// Cancelled when the handler must stop: its timeout passed, its
    /// cancellation was asked for ([`Jobs::cancel`](super::Jobs::cancel)),
    /// the worker is shutting down past its drain time, or the worker lost
    /// its lease.
    ///
    /// The handler's future itself is simply dropped — on a timeout or a
    /// drain that ran out or a cancellation, *first*, and this token is
    /// cancelled just after;
    /// on a lost lease the token is cancelled with the worker's fence and the
    /// future dropped at once. So the future itself cannot count on seeing
    /// the token: it is for work the handler started *outside* its future — a
    /// `spawn_blocking` section, a spawned task, a thread — which must check
    /// it (or `cancelled().await` it) to stop.
    pub fn cancellation(&self) -> &CancellationToken {
        &self.cancel
    }
}

/// A handler's failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct JobError {
    message: String,
    retryable: bool,
    retry_after: Option<Duration>,
}

impl JobError {
    /// A failure another attempt may fix (the default kind).
    pub fn retry(message: impl std::fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            retryable: true,
            retry_after: None,
        }
    }

    /// A failure no attempt will fix: the job fails for good.
    pub fn fatal(message: impl std::fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            retryable: false,
            retry_after: None,
        }
    }

    /// Retry no sooner than `delay` (say, what a rate-limited API asked for),
    /// instead of the policy's backoff.
    pub fn after(mut self, delay: Duration) -> Self {
        self.retry_after = Some(delay);
        self
    }

    /// What went wrong.
    pub fn message(&self) -> &str {
        &self.message
    }
    /// Whether another attempt may help.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }
    /// The wait the handler asked for.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

/// What an erased handler produces: the result as JSON, or the failure.
pub(crate) type HandlerResult = Result<Option<serde_json::Value>, JobError>;

/// A handler with its types erased.
pub(crate) type ErasedHandler =
    Arc<dyn Fn(JobContext, Bytes) -> BoxFuture<'static, HandlerResult> + Send + Sync>;

/// Wraps a typed handler: decodes the payload (a mismatch fails the job for
/// good, naming the problem) and encodes the result.
pub(crate) fn erase<P, R, F, Fut>(kind: &str, handler: F) -> ErasedHandler
where
    P: DeserializeOwned + Send + 'static,
    R: Serialize + Send + 'static,
    F: Fn(JobContext, P) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, JobError>> + Send + 'static,
{
    let kind = kind.to_owned();
    let handler = Arc::new(handler);
    Arc::new(move |ctx: JobContext, payload: Bytes| {
        let decoded = serde_json::from_slice::<P>(&payload).map_err(|e| {
            JobError::fatal(format!(
                "the payload does not match the handler of {kind:?}: {e}"
            ))
        });
        let handler = Arc::clone(&handler);
        Box::pin(async move {
            let result = handler(ctx, decoded?).await?;
            let value = serde_json::to_value(&result)
                .map_err(|e| JobError::fatal(format!("cannot encode the result: {e}")))?;
            Ok((!value.is_null()).then_some(value))
        })
    })
}
