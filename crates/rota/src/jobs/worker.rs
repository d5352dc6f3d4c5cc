//! The [`Worker`]: handlers per job kind and queues to take jobs from; it
//! runs one `QueueRunner` per queue, which takes jobs, runs their handlers with
//! bounded concurrency and timeouts, and settles each attempt — success,
//! retry with backoff, failure, or the dead-letter set.

use std::collections::HashMap;
use std::sync::Arc;

use rota_core::jobs::JobStore;
use rota_core::names::validate_service;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use super::handler::{ErasedHandler, JobContext, JobError, erase};
use super::options::{KindOptions, QueueOptions, WorkerError, WorkerOptions};
use super::runner::QueueRunner;

#[derive(Clone)]
pub(super) struct Kind {
    pub(super) handler: ErasedHandler,
    pub(super) options: KindOptions,
}

/// A job worker: handlers per kind, queues to take jobs from.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use rota::jobs::{JobContext, JobError, Jobs, QueueOptions, Worker};
/// use rota_memory::MemoryBroker;
/// use rota_core::jobs::{JobState, NewJob};
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Email { to: String }
///
/// let store = MemoryBroker::new();
/// let worker = Worker::new(store.clone())
///     .queue("mail", QueueOptions::default())
///     .handle("send", |_ctx: JobContext, email: Email| async move {
///         Ok::<_, JobError>(format!("sent to {}", email.to))
///     })
///     .spawn();
///
/// let jobs = Jobs::new(store.clone());
/// let job = NewJob::new("mail", "acme", "send", &Email { to: "ada@acme".into() })?;
/// let outcome = jobs.run(job, std::time::Duration::from_secs(5)).await?;
/// assert_eq!(outcome.state, JobState::Succeeded);
/// assert_eq!(outcome.result, Some(serde_json::json!("sent to ada@acme")));
/// worker.shutdown().await?;
/// # Ok(()) }
/// ```
pub struct Worker {
    store: Arc<dyn JobStore>,
    kinds: HashMap<String, Kind>,
    queues: Vec<(String, QueueOptions)>,
    options: WorkerOptions,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("kinds", &self.kinds.keys().collect::<Vec<_>>())
            .field("queues", &self.queues)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// The key of [`Worker::handle_any`]'s handler among the kinds: no job's
/// kind can be `*` (kinds are letters, digits and `-_.@/`).
pub(super) const ANY_KIND: &str = "*";

impl Worker {
    /// A worker on `store`, with no handlers or queues yet.
    pub fn new(store: impl JobStore) -> Self {
        Self {
            store: Arc::new(store),
            kinds: HashMap::new(),
            queues: Vec::new(),
            options: WorkerOptions::default(),
        }
    }

    /// Takes jobs from `queue`.
    pub fn queue(mut self, queue: impl Into<String>, options: QueueOptions) -> Self {
        self.queues.push((queue.into(), options));
        self
    }

    /// Sets the worker's options.
    pub fn options(mut self, options: WorkerOptions) -> Self {
        self.options = options;
        self
    }

    /// Runs jobs of `kind` with `handler`, under the default retry policy
    /// and timeout.
    pub fn handle<P, R, F, Fut>(self, kind: &str, handler: F) -> Self
    where
        P: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
        F: Fn(JobContext, P) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, JobError>> + Send + 'static,
    {
        self.handle_with(kind, KindOptions::default(), handler)
    }

    /// Runs jobs of `kind` with `handler` and these options.
    pub fn handle_with<P, R, F, Fut>(mut self, kind: &str, options: KindOptions, handler: F) -> Self
    where
        P: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
        F: Fn(JobContext, P) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, JobError>> + Send + 'static,
    {
        self.kinds.insert(
            kind.to_owned(),
            Kind {
                handler: erase(kind, handler),
                options,
            },
        );
        self
    }

    /// Runs jobs of every kind that has no handler of its own with
    /// `handler` (say, one that hands each job to a program, whatever its
    /// kind), with these options.
    pub fn handle_any<P, R, F, Fut>(mut self, options: KindOptions, handler: F) -> Self
    where
        P: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
        F: Fn(JobContext, P) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, JobError>> + Send + 'static,
    {
        self.kinds.insert(
            ANY_KIND.to_owned(),
            Kind {
                handler: erase("any", handler),
                options,
            },
        );
        self
    }

    /// Runs the worker in a task of its own. The handle stops this worker
    /// only; the options' shutdown token stops every worker sharing it.
    pub fn spawn(mut self) -> WorkerHandle {
        let stop = self.options.shutdown.child_token();
        self.options.shutdown = stop.clone();
        let run = self.run();
        WorkerHandle {
            stop,
            task: tokio::spawn(async move {
                let ran = run.await;
                if let Err(e) = &ran {
                    // Said here too: a spawned worker that stops must not go
                    // quiet.
                    tracing::error!(error = %e, "worker stopped");
                }
                ran
            }),
        }
    }

    /// Runs until the shutdown token is cancelled, then drains: running jobs
    /// finish within the drain timeout, the rest go back to their queues at
    /// once. [`spawn`](Self::spawn) and [`WorkerHandle::shutdown`] are the
    /// easy way to run and stop a worker.
    ///
    /// **Stop it with its shutdown token, not by dropping it.** Dropping this
    /// future (say, the losing branch of a `select!` against `ctrl_c()`)
    /// stops everything at once without a drain: handlers are cancelled,
    /// leases stop being renewed, and the jobs held go back to their queues
    /// only when the leases lapse (with attempt + 1).
    pub async fn run(self) -> Result<(), WorkerError> {
        if self.queues.is_empty() {
            return Err(WorkerError::NoQueue);
        }
        for (queue, _) in &self.queues {
            validate_service(queue)?;
        }
        let kinds = Arc::new(self.kinds);
        let global = Arc::new(Semaphore::new(self.options.concurrency));
        let tasks: Vec<_> = self
            .queues
            .into_iter()
            .map(|(queue, options)| {
                let runner = QueueRunner {
                    store: Arc::clone(&self.store),
                    queue,
                    options,
                    worker: self.options.clone(),
                    kinds: Arc::clone(&kinds),
                    global: Arc::clone(&global),
                };
                // Aborted if this future is dropped: each queue's tenure then
                // stops renewing and stops its handlers.
                AbortOnDropHandle::new(tokio::spawn(runner.run()))
            })
            .collect();
        let mut result = Ok(());
        for task in tasks {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => result = Err(e),
                Err(_) => result = Err(WorkerError::Panicked),
            }
        }
        result
    }
}

/// A worker running in its own task.
#[derive(Debug)]
pub struct WorkerHandle {
    stop: CancellationToken,
    task: JoinHandle<Result<(), WorkerError>>,
}

impl WorkerHandle {
    /// Stops taking jobs, drains, and waits for the worker to end.
    ///
    /// Cancel safe: the worker goes on stopping in its own task; only this
    /// wait is dropped.
    pub async fn shutdown(self) -> Result<(), WorkerError> {
        self.stop.cancel();
        self.join().await
    }

    /// Waits for the worker to end: after its shutdown token is cancelled
    /// (it drains first), or on an error retrying won't fix.
    ///
    /// Cancel safe: dropping the future leaves the worker running; use
    /// [`shutdown`](Self::shutdown) to stop it.
    pub async fn join(self) -> Result<(), WorkerError> {
        self.task.await.unwrap_or(Err(WorkerError::Panicked))
    }

    /// The token that stops this worker.
    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.stop
    }
}
