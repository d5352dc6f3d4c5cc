//! The serving side.
//!
//! [`serve`] runs a [`Dispatch`] — what `#[contract]` generates for a trait —
//! against a broker, as one [`Consumer`] of the service:
//!
//! * **claims** requests in batches, never more than the free handler slots
//!   ([`ServeOptions::concurrency`]);
//! * **renews** its lease every third of [`ServeOptions::lease`]; if it cannot
//!   renew before the lease is about to lapse it **cancels every running
//!   handler first** (so a request never runs twice at the same time), then
//!   opens a new consumer;
//! * **reaps** the leases of dead servers, so their requests are redelivered;
//! * runs each handler under the request's deadline, catches panics, answers
//!   undecodable arguments and unknown methods with a fault, dead-letters
//!   envelopes it cannot read and requests over
//!   [`ServeOptions::max_payload`] (answering their caller with a fault too
//!   when the envelope still names its `id` and `reply_to`), and skips
//!   requests whose deadline passed;
//! * writes replies and acknowledgements in batches;
//! * on shutdown, stops claiming, lets running handlers finish within
//!   [`ServeOptions::drain_timeout`] and gives the rest back to the queue.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use rota_core::names::validate_service;
use rota_core::rpc::{Broker, Completion, Consumer, ConsumerOptions, Delivery};
use rota_core::{BrokerError, Deadline, Fault, FaultKind, Inboxes, Outcome, Reply, Request};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::dispatch::{Call, Dispatch};
use crate::runtime::tenure::{Finished, Finisher, Holder, Tenure, hold_leases};

/// Settings of a server.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServeOptions {
    /// Handlers that may run at once.
    pub concurrency: usize,
    /// Most requests taken in one claim.
    pub claim_batch: usize,
    /// How long one claim blocks waiting for work (bounds how fast shutdown
    /// is noticed).
    pub claim_wait: Duration,
    /// The consumer lease; renewed every third of it. It bounds how long a
    /// call whose server died waits before another server takes it over:
    /// the lease lapses, then the next reap of a surviving server (every
    /// half lease, plus up to an eighth of jitter) re-queues it. The default,
    /// 10 s, redelivers within 16.25 s — well inside a client's default 30 s
    /// timeout — and still rides out a broker outage of 5 s or more (up to
    /// 8⅓ s, by when the last renewal was) before handlers are stopped.
    pub lease: Duration,
    /// Deliveries after which a request of a dead server is dead-lettered.
    pub max_deliveries: u32,
    /// Largest request accepted, in bytes (the same 1 MiB as
    /// [`ClientOptions::max_payload`](crate::ClientOptions::max_payload) by
    /// default). A larger one is answered with a
    /// [`FaultKind::BadRequest`] fault and dead-lettered, never run.
    pub max_payload: usize,
    /// How long shutdown waits for running handlers before giving their
    /// requests back.
    pub drain_timeout: Duration,
    /// Retry the broker with backoff at start, instead of failing when it is
    /// unreachable.
    pub wait_for_broker: bool,
    /// Cancelled to stop the server.
    pub shutdown: CancellationToken,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            concurrency: 64,
            claim_batch: 128,
            claim_wait: Duration::from_secs(1),
            lease: Duration::from_secs(10),
            max_deliveries: 5,
            max_payload: 1024 * 1024,
            drain_timeout: Duration::from_secs(30),
            wait_for_broker: false,
            shutdown: CancellationToken::new(),
        }
    }
}

impl ServeOptions {
    /// Sets how many handlers may run at once.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }
    /// Sets the most requests taken in one claim.
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
    /// Sets the maximum deliveries.
    pub fn max_deliveries(mut self, n: u32) -> Self {
        self.max_deliveries = n.max(1);
        self
    }
    /// Sets the largest request accepted, in bytes.
    pub fn max_payload(mut self, bytes: usize) -> Self {
        self.max_payload = bytes;
        self
    }
    /// Sets the drain timeout.
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }
    /// Retry the broker at start instead of failing. (To connect to a Redis
    /// that is down at start, use `RedisBroker::connect_waiting`.)
    pub fn wait_for_broker(mut self, wait: bool) -> Self {
        self.wait_for_broker = wait;
        self
    }
    /// Sets the token that stops the server.
    pub fn shutdown(mut self, token: CancellationToken) -> Self {
        self.shutdown = token;
        self
    }
}

/// A server could not run.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The broker failed in a way retrying won't fix (bad name, bad
    /// configuration), or was unreachable at start without
    /// [`ServeOptions::wait_for_broker`].
    #[error("cannot serve: {0}")]
    Broker(#[from] BrokerError),
    /// The server task panicked.
    #[error("the server task panicked")]
    Panicked,
}

/// A server running in its own task.
#[derive(Debug)]
pub struct ServerHandle {
    stop: CancellationToken,
    task: JoinHandle<Result<(), ServeError>>,
}

impl ServerHandle {
    /// Stops claiming, drains and waits for the server to end.
    ///
    /// Cancel safe: the server goes on stopping in its own task; only this
    /// wait is dropped.
    pub async fn shutdown(self) -> Result<(), ServeError> {
        self.stop.cancel();
        self.join().await
    }

    /// Waits for the server to end (after its shutdown token is cancelled,
    /// or an error).
    ///
    /// Cancel safe: dropping the future leaves the server running; use
    /// [`shutdown`](Self::shutdown) to stop it.
    pub async fn join(self) -> Result<(), ServeError> {
        self.task.await.unwrap_or(Err(ServeError::Panicked))
    }

    /// The token that stops the server.
    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.stop
    }
}

/// Runs `dispatch` in a task of its own; see [`serve`].
///
/// The handle stops this server only; cancelling `options.shutdown` stops
/// every server spawned with (clones of) those options.
pub fn spawn_server<D: Dispatch>(
    dispatch: D,
    broker: impl Broker + Inboxes,
    service: &str,
    mut options: ServeOptions,
) -> ServerHandle {
    let stop = options.shutdown.child_token();
    options.shutdown = stop.clone();
    let service = service.to_owned();
    let task = tokio::spawn(async move {
        let served = serve(dispatch, broker, &service, options).await;
        if let Err(e) = &served {
            // Said here too: a spawned server that stops must not go quiet.
            tracing::error!(%service, error = %e, "server stopped");
        }
        served
    });
    ServerHandle { stop, task }
}

/// Serves `service` with `dispatch` until `options.shutdown` is cancelled,
/// then drains: running calls finish within the drain timeout, the rest go
/// back to the queue at once. [`spawn_server`] and
/// [`ServerHandle::shutdown`] are the easy way to run and stop a server.
///
/// Returns early only on errors that retrying won't fix; a broker that goes
/// away, or refuses writes for a while, is waited for, with backoff.
///
/// **Stop it with its shutdown token, not by dropping it.** Dropping this
/// future (say, the losing branch of a `select!` against `ctrl_c()`) stops
/// everything at once without a drain: handlers are cancelled, the lease
/// stops being renewed, and the requests held are delivered again only when
/// the lease lapses (with attempt + 1).
pub async fn serve<D: Dispatch>(
    dispatch: D,
    broker: impl Broker + Inboxes,
    service: &str,
    options: ServeOptions,
) -> Result<(), ServeError> {
    validate_service(service)?;
    let broker = Arc::new(broker);
    let inboxes: Arc<dyn Inboxes> = broker.clone();
    let dispatch: Arc<dyn Dispatch> = Arc::new(dispatch);
    let consumer_options = ConsumerOptions::default()
        .lease(options.lease)
        .max_deliveries(options.max_deliveries);
    let shutdown = options.shutdown.clone();
    let open = || broker.consumer(service, consumer_options.clone());
    let session = |consumer: Box<dyn Consumer>, registered_at| {
        let session = Session {
            service: service.to_owned(),
            inboxes: Arc::clone(&inboxes),
            dispatch: Arc::clone(&dispatch),
            consumer: Arc::from(consumer),
            options: options.clone(),
        };
        session.run(registered_at)
    };
    hold_leases(service, &shutdown, options.wait_for_broker, open, session).await?;
    Ok(())
}

/// One consumer's life: from registration until shutdown or a lost lease.
struct Session {
    service: String,
    /// Says which reply addresses are inboxes of this broker.
    inboxes: Arc<dyn Inboxes>,
    dispatch: Arc<dyn Dispatch>,
    consumer: Arc<dyn Consumer>,
    options: ServeOptions,
}

impl Session {
    /// Serves until shutdown, a lost lease or a failed claim; returns
    /// whether a claim failed.
    async fn run(self, registered_at: Instant) -> bool {
        let opts = &self.options;
        tracing::debug!(service = %self.service, consumer = %self.consumer.id(), "serving");
        let tenure = Tenure::begin(
            Holder(Arc::clone(&self.consumer)),
            registered_at,
            opts.lease,
        );
        let slots = Arc::new(Semaphore::new(opts.concurrency));
        let mut tainted = false;
        loop {
            if opts.shutdown.is_cancelled() || tenure.fence.is_cancelled() {
                break;
            }
            // Wait for a free slot, then claim as many as are free.
            let slot = tokio::select! {
                s = Arc::clone(&slots).acquire_owned() => s.expect("never closed"),
                () = opts.shutdown.cancelled() => break,
                () = tenure.fence.cancelled() => break,
            };
            let want = (slots.available_permits() + 1).min(opts.claim_batch);
            let claimed = tokio::select! {
                r = self.consumer.claim(want, opts.claim_wait) => r,
                // The lease is lost: whatever this claim took is void anyway.
                () = tenure.fence.cancelled() => break,
            };
            let deliveries = match tenure.accept(claimed, &self.service) {
                Ok(deliveries) => deliveries,
                Err(claim_failed) => {
                    tainted = claim_failed;
                    break;
                }
            };
            let mut slot = Some(slot);
            for delivery in deliveries {
                let permit = match slot.take() {
                    Some(p) => p,
                    None => Arc::clone(&slots)
                        .acquire_owned()
                        .await
                        .expect("never closed"),
                };
                let Some(job) = self.prepare(delivery, &tenure.finisher).await else {
                    continue;
                };
                let completer = Arc::clone(&tenure.finisher);
                let fence = tenure.fence.clone();
                let abandon = tenure.abandon.clone();
                tenure.handlers.spawn(async move {
                    let tag = job.tag.clone();
                    let outcome = tokio::select! {
                        outcome = job.run() => outcome,
                        () = fence.cancelled() => None,
                        () = abandon.cancelled() => {
                            drop(permit);
                            completer.finish(Finished::Abandoned(tag)).await;
                            return;
                        }
                    };
                    drop(permit);
                    if let Some(completion) = outcome {
                        completer.finish(Finished::Done(completion)).await;
                    }
                });
            }
        }
        tenure.end(opts.drain_timeout, &self.service).await;
        tainted
    }

    /// Decodes a delivery and settles at once what needs no handler: returns
    /// the job to run, or `None` when the delivery was answered already.
    async fn prepare(&self, delivery: Delivery, done: &Finisher<dyn Consumer>) -> Option<Accepted> {
        let size = delivery.payload.len();
        let decoded = if size > self.options.max_payload {
            Err(format!(
                "request of {size} bytes is over this server's {}-byte limit",
                self.options.max_payload
            ))
        } else {
            Request::decode(&delivery.payload).map_err(|e| format!("undecodable request: {e}"))
        };
        let request = match decoded {
            Ok(r) => r,
            Err(reason) => {
                self.refuse(&delivery, &reason, done).await;
                return None;
            }
        };
        let mut request = request;
        request.attempt = delivery.attempt;
        if let Some(to) = &request.reply_to
            && !self.inboxes.is_inbox(to)
        {
            let reason = format!(
                "reply_to {to:?} is no inbox address of this broker; the request was not served"
            );
            self.refuse(&delivery, &reason, done).await;
            return None;
        }
        let answer = |outcome: Outcome| Accepted::answer(&delivery.tag, &request, outcome);
        if request.service != self.service {
            let fault = Fault::new(
                FaultKind::UnknownService,
                format!(
                    "request for service {:?} reached a server of {:?}",
                    request.service, self.service
                ),
            );
            done.finish(Finished::Done(answer(Outcome::Fault(fault))))
                .await;
            return None;
        }
        if request.deadline.is_some_and(Deadline::has_passed) {
            let fault = Fault::new(
                FaultKind::DeadlineExceeded,
                "the deadline passed before the request was started",
            );
            done.finish(Finished::Done(answer(Outcome::Fault(fault))))
                .await;
            return None;
        }
        let future = match self.dispatch.dispatch(Call::new(request.clone())) {
            Ok(f) => f,
            Err(fault) => {
                done.finish(Finished::Done(answer(Outcome::Fault(fault))))
                    .await;
                return None;
            }
        };
        Some(Accepted {
            tag: delivery.tag,
            request,
            future,
        })
    }
}

impl Session {
    /// Dead-letters a delivery that cannot be run as it is, then, if its
    /// envelope still says where, answers the caller with a `bad_request`
    /// fault — so the caller learns why instead of waiting for its deadline.
    /// In that order: the answer acknowledges the delivery, and a crash
    /// between the two leaves the dead letter without an answer, never the
    /// answer without its dead letter.
    async fn refuse(&self, delivery: &Delivery, reason: &str, done: &Finisher<dyn Consumer>) {
        tracing::warn!(service = %self.service, %reason, "dead-lettering");
        if let Err(e) = self.consumer.dead_letter(&delivery.tag, reason).await {
            tracing::warn!(error = %e, "dead-lettering failed; it returns when the lease lapses");
            return;
        }
        let Some(back) = Request::return_address(&delivery.payload) else {
            return;
        };
        if !self.inboxes.is_inbox(&back.reply_to) {
            // No reply can go there: it could name any key of the store.
            return;
        }
        let fault = Fault::new(
            FaultKind::BadRequest,
            format!("{reason}; the request was dead-lettered"),
        );
        let reply = Reply {
            id: back.id,
            codec: back.codec,
            outcome: Outcome::Fault(fault),
        };
        match reply.encode() {
            Ok(bytes) => {
                let completion = Completion {
                    tag: delivery.tag.clone(),
                    reply: Some((back.reply_to, Bytes::from(bytes))),
                };
                done.finish(Finished::Done(completion)).await;
            }
            Err(e) => tracing::error!(error = %e, "cannot encode a fault reply"),
        }
    }
}

/// A request ready to run.
struct Accepted {
    tag: String,
    request: Request,
    future: BoxFuture<'static, Outcome>,
}

impl Accepted {
    fn answer(tag: &str, request: &Request, outcome: Outcome) -> Completion {
        let reply = request.reply_to.as_ref().and_then(|to| {
            let reply = Reply {
                id: request.id,
                codec: request.codec,
                outcome,
            };
            match reply.encode() {
                Ok(bytes) => Some((to.clone(), Bytes::from(bytes))),
                Err(e) => {
                    tracing::error!(error = %e, "cannot encode a reply");
                    None
                }
            }
        });
        Completion {
            tag: tag.to_owned(),
            reply,
        }
    }

    /// Runs the handler under the deadline, catching panics.
    async fn run(self) -> Option<Completion> {
        let Accepted {
            tag,
            request,
            future,
        } = self;
        let caught = crate::rpc::context::scope(
            crate::rpc::context::CallContext::of(&request),
            AssertUnwindSafe(future).catch_unwind(),
        );
        let outcome = match request.deadline.and_then(Deadline::remaining) {
            Some(left) => match tokio::time::timeout(left, caught).await {
                Ok(r) => r,
                Err(_) => Ok(Outcome::Fault(Fault::new(
                    FaultKind::DeadlineExceeded,
                    "the deadline passed while the handler ran; it was cancelled",
                ))),
            },
            None if request.deadline.is_some() => Ok(Outcome::Fault(Fault::new(
                FaultKind::DeadlineExceeded,
                "the deadline passed before the handler started",
            ))),
            None => caught.await,
        };
        let outcome = outcome.unwrap_or_else(|panic| {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-string panic payload".into());
            tracing::error!(method = %request.method, %message, "handler panicked");
            Outcome::Fault(Fault::new(
                FaultKind::Panicked,
                format!("the handler of {} panicked: {message}", request.method),
            ))
        });
        Some(Accepted::answer(&tag, &request, outcome))
    }
}
