//! How a worker runs — per worker, per queue it takes jobs from, per job
//! kind — and how it can fail to run.

use std::time::Duration;

use rota_core::BrokerError;
use tokio_util::sync::CancellationToken;

use super::retry::RetryPolicy;

/// How a job kind runs.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct KindOptions {
    /// Retries after failures.
    pub retry: RetryPolicy,
    /// Longest an attempt may run before it is cancelled.
    pub timeout: Duration,
}

impl Default for KindOptions {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(30 * 60),
        }
    }
}

impl KindOptions {
    /// Sets the retry policy.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }
    /// Sets the per-attempt timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// How a worker takes jobs from one queue.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct QueueOptions {
    /// This queue's jobs that may run at once in this worker.
    pub concurrency: usize,
    /// At most this many of one tenant's jobs run at once, across all
    /// workers of the queue.
    pub tenant_cap: Option<u32>,
    /// Most jobs taken in one claim.
    pub claim_batch: usize,
    /// How long one claim blocks for work.
    pub claim_wait: Duration,
    /// The lease on claimed jobs, renewed every third of it.
    pub lease: Duration,
}

impl Default for QueueOptions {
    fn default() -> Self {
        Self {
            concurrency: 64,
            tenant_cap: None,
            claim_batch: 128,
            claim_wait: Duration::from_secs(1),
            lease: Duration::from_secs(30),
        }
    }
}

impl QueueOptions {
    /// Sets this queue's concurrency in the worker.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }
    /// Caps the running jobs of one tenant across all workers.
    pub fn tenant_cap(mut self, cap: u32) -> Self {
        self.tenant_cap = Some(cap.max(1));
        self
    }
    /// Sets the most jobs taken in one claim.
    pub fn claim_batch(mut self, n: usize) -> Self {
        self.claim_batch = n.max(1);
        self
    }
    /// Sets how long a claim blocks.
    pub fn claim_wait(mut self, wait: Duration) -> Self {
        self.claim_wait = wait;
        self
    }
    /// Sets the lease.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }
}

/// Settings of a worker process.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WorkerOptions {
    /// Jobs that may run at once in this worker, over all its queues.
    pub concurrency: usize,
    /// How long shutdown waits for running jobs before giving them back.
    pub drain_timeout: Duration,
    /// Cancelled to stop the worker.
    pub shutdown: CancellationToken,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            concurrency: 256,
            drain_timeout: Duration::from_secs(30),
            shutdown: CancellationToken::new(),
        }
    }
}

impl WorkerOptions {
    /// Sets the worker's total concurrency.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }
    /// Sets the drain timeout.
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }
    /// Sets the token that stops the worker.
    pub fn shutdown(mut self, token: CancellationToken) -> Self {
        self.shutdown = token;
        self
    }
}

/// A worker could not run.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerError {
    /// A queue name is unusable, or the store refused in a way retrying
    /// won't fix.
    #[error("cannot work: {0}")]
    Store(#[from] BrokerError),
    /// The worker was given no queue to take jobs from.
    #[error("the worker has no queue; add one with Worker::queue")]
    NoQueue,
    /// A task of the worker panicked.
    #[error("a worker task panicked")]
    Panicked,
}
