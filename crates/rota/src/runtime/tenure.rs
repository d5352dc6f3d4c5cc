//! One consumer's time holding its lease, shared by servers and workers:
//! the [`Holder`] shape both adapt to, the [`Finisher`] that writes finished
//! work only while the lease surely holds, the [`Tenure`] that ends it all
//! in order, and [`hold_leases`], the register / hold / register-again loop.

use std::time::Duration;

use futures_util::future::BoxFuture;
use rota_core::{BrokerError, ReapStats};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::combine::{BatchWrite, Combiner};
use super::lease::{LeaseClock, keep_alive, reap_periodically};

/// What holds a lease and settles work under it: a server's consumer of
/// calls, or a worker's consumer of jobs.
pub(crate) trait Holder: Clone + Send + Sync + 'static {
    /// A finished piece of work to write.
    type Done: Clone + Send + Sync + 'static;
    /// Names a piece of work to give back.
    type Tag: Send + Sync + 'static;
    /// Extends the lease.
    fn renew(&self) -> BoxFuture<'static, Result<(), BrokerError>>;
    /// Hands back the work of lapsed leases.
    fn reap(&self) -> BoxFuture<'static, Result<ReapStats, BrokerError>>;
    /// Gives work cut short back to the queue, as attempted.
    fn release(&self, tags: Vec<Self::Tag>) -> BoxFuture<'static, Result<(), BrokerError>>;
    /// Writes finished work, fenced.
    fn write(&self, done: Vec<Self::Done>) -> BoxFuture<'static, Result<usize, BrokerError>>;
    /// Gives everything still held back and the lease up.
    fn close(&self) -> BoxFuture<'static, Result<(), BrokerError>>;
}

/// A server's consumer of calls, as a [`Holder`].
#[derive(Clone)]
pub(crate) struct CallHolder(pub(crate) std::sync::Arc<dyn rota_core::Consumer>);

/// A worker's consumer of jobs, as a [`Holder`].
#[derive(Clone)]
pub(crate) struct JobHolder(pub(crate) std::sync::Arc<dyn rota_core::jobs::JobConsumer>);

impl Holder for CallHolder {
    type Done = rota_core::Completion;
    type Tag = String;
    fn renew(&self) -> BoxFuture<'static, Result<(), BrokerError>> {
        let c = std::sync::Arc::clone(&self.0);
        Box::pin(async move { rota_core::Consumer::renew(&*c).await })
    }
    fn reap(&self) -> BoxFuture<'static, Result<ReapStats, BrokerError>> {
        let c = std::sync::Arc::clone(&self.0);
        Box::pin(async move { rota_core::Consumer::reap(&*c).await })
    }
    fn release(&self, tags: Vec<String>) -> BoxFuture<'static, Result<(), BrokerError>> {
        let c = std::sync::Arc::clone(&self.0);
        Box::pin(async move { rota_core::Consumer::release(&*c, tags, true).await })
    }
    fn write(&self, done: Vec<Self::Done>) -> BoxFuture<'static, Result<usize, BrokerError>> {
        let c = std::sync::Arc::clone(&self.0);
        Box::pin(async move { c.complete(done).await })
    }
    fn close(&self) -> BoxFuture<'static, Result<(), BrokerError>> {
        let c = std::sync::Arc::clone(&self.0);
        Box::pin(async move { rota_core::Consumer::close(&*c).await })
    }
}

impl Holder for JobHolder {
    type Done = rota_core::jobs::Settle;
    type Tag = rota_core::jobs::JobId;
    fn renew(&self) -> BoxFuture<'static, Result<(), BrokerError>> {
        let c = std::sync::Arc::clone(&self.0);
        Box::pin(async move { rota_core::jobs::JobConsumer::renew(&*c).await })
    }
    fn reap(&self) -> BoxFuture<'static, Result<ReapStats, BrokerError>> {
        let c = std::sync::Arc::clone(&self.0);
        Box::pin(async move { rota_core::jobs::JobConsumer::reap(&*c).await })
    }
    fn release(&self, tags: Vec<Self::Tag>) -> BoxFuture<'static, Result<(), BrokerError>> {
        let c = std::sync::Arc::clone(&self.0);
        Box::pin(async move { rota_core::jobs::JobConsumer::release(&*c, tags, true).await })
    }
    fn write(&self, done: Vec<Self::Done>) -> BoxFuture<'static, Result<usize, BrokerError>> {
        let c = std::sync::Arc::clone(&self.0);
        Box::pin(async move { c.settle(done).await })
    }
    fn close(&self) -> BoxFuture<'static, Result<(), BrokerError>> {
        let c = std::sync::Arc::clone(&self.0);
        Box::pin(async move { rota_core::jobs::JobConsumer::close(&*c).await })
    }
}

/// Starts the two tasks every lease holder needs: renewal (which fences on
/// failure) and periodic reaping of others' lapsed leases. Both end when
/// `over` is cancelled.
fn spawn_keepers<H: Holder>(
    holder: &H,
    clock: &std::sync::Arc<LeaseClock>,
    lease: Duration,
    fence: &CancellationToken,
    over: &CancellationToken,
) -> [tokio::task::JoinHandle<()>; 2] {
    let renewer = tokio::spawn({
        let (holder, clock) = (holder.clone(), std::sync::Arc::clone(clock));
        let (fence, over) = (fence.clone(), over.clone());
        async move { keep_alive(|| holder.renew(), &clock, lease, fence, over).await }
    });
    let reaper = tokio::spawn({
        let (holder, over) = (holder.clone(), over.clone());
        async move { reap_periodically(|| holder.reap(), lease, over).await }
    });
    [renewer, reaper]
}

/// A finished piece of work, or one to give back.
pub(crate) enum Finished<H: Holder> {
    /// Write it.
    Done(H::Done),
    /// Give it back (shutdown cut it short).
    Abandoned(H::Tag),
}

/// Writes finished work in flat-combined batches, only while the lease
/// surely holds: past it, the work may already run elsewhere.
pub(crate) struct Finisher<H: Holder> {
    holder: H,
    combiner: Combiner<Finished<H>>,
    clock: std::sync::Arc<LeaseClock>,
    fence: CancellationToken,
}

impl<H: Holder> Finisher<H> {
    pub(crate) fn new(
        holder: H,
        clock: std::sync::Arc<LeaseClock>,
        fence: CancellationToken,
    ) -> Self {
        Self {
            holder,
            combiner: Combiner::default(),
            clock,
            fence,
        }
    }

    /// Queues `item` and writes, unless another task is writing.
    pub(crate) async fn finish(&self, item: Finished<H>) {
        self.combiner.push(item, self).await;
    }

    /// Writes whatever is queued.
    pub(crate) async fn flush(&self) {
        self.combiner.flush(self).await;
    }
}

impl<H: Holder> BatchWrite<Finished<H>> for Finisher<H> {
    fn write(&self, batch: Vec<Finished<H>>) -> BoxFuture<'_, ()> {
        Box::pin(self.write_batch(batch))
    }
}

impl<H: Holder> Finisher<H> {
    async fn write_batch(&self, batch: Vec<Finished<H>>) {
        let mut done = Vec::with_capacity(batch.len());
        let mut abandoned = Vec::new();
        for item in batch {
            match item {
                Finished::Done(d) => done.push(d),
                Finished::Abandoned(tag) => abandoned.push(tag),
            }
        }
        if !abandoned.is_empty()
            && !self.fence.is_cancelled()
            && let Err(e) = self.holder.release(abandoned).await
        {
            tracing::warn!(error = %e, "giving work back failed; it returns when the lease lapses");
        }
        let mut backoff = super::backoff::Backoff::default();
        while !done.is_empty() && !self.fence.is_cancelled() && self.clock.holds() {
            match self.holder.write(done.clone()).await {
                Ok(_) => break,
                Err(BrokerError::LeaseLost) => {
                    self.fence.cancel();
                    break;
                }
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %e, ?delay, "writing finished work failed; retrying");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
}

/// One consumer's time holding its lease: the tokens that stop its work, the
/// keeper tasks, the batch writer and the tracked handlers, and how it all
/// ends. Servers and workers run their claim loops inside one.
pub(crate) struct Tenure<H: Holder> {
    holder: H,
    /// Says whether the lease surely holds.
    pub(crate) clock: std::sync::Arc<LeaseClock>,
    /// Cancelled when the lease is (about to be) lost: every handler stops.
    pub(crate) fence: CancellationToken,
    /// Cancelled when the drain times out: running work is given back.
    pub(crate) abandon: CancellationToken,
    /// Writes finished work.
    pub(crate) finisher: std::sync::Arc<Finisher<H>>,
    /// The running handlers.
    pub(crate) handlers: tokio_util::task::TaskTracker,
    over: CancellationToken,
    keepers: [tokio::task::JoinHandle<()>; 2],
}

impl<H: Holder> Tenure<H> {
    /// Starts renewing `holder`'s lease (registered at `registered_at`) and
    /// reaping others' lapsed ones.
    pub(crate) fn begin(holder: H, registered_at: Instant, lease: Duration) -> Self {
        let clock = std::sync::Arc::new(LeaseClock::new(registered_at, lease));
        let fence = CancellationToken::new();
        let over = CancellationToken::new();
        let keepers = spawn_keepers(&holder, &clock, lease, &fence, &over);
        let finisher = std::sync::Arc::new(Finisher::new(
            holder.clone(),
            std::sync::Arc::clone(&clock),
            fence.clone(),
        ));
        Self {
            holder,
            clock,
            fence,
            abandon: CancellationToken::new(),
            finisher,
            handlers: tokio_util::task::TaskTracker::new(),
            over,
            keepers,
        }
    }

    /// Judges what a claim returned: the work to start, or `Err(tainted)`
    /// when the claim loop must end — the lease is lost (`false`), or the
    /// claim failed (`true`): it may have taken work whose answer never
    /// arrived, held under this consumer but unknown here, which closing
    /// the consumer gives back.
    pub(crate) fn accept<T>(
        &self,
        claimed: Result<Vec<T>, BrokerError>,
        unit: &str,
    ) -> Result<Vec<T>, bool> {
        match claimed {
            Ok(work) if !work.is_empty() && !self.clock.holds() => {
                // Back too late to be sure of the lease: the work may already
                // be another's. Start nothing; it returns when the lease lapses.
                self.fence.cancel();
                Err(false)
            }
            Ok(work) => Ok(work),
            Err(BrokerError::LeaseLost) => {
                self.fence.cancel();
                Err(false)
            }
            Err(e) => {
                tracing::warn!(%unit, error = %e, "claim failed; finishing running work and registering again");
                Err(true)
            }
        }
    }

    /// Ends the tenure once the claim loop stopped: lets running handlers
    /// finish within `drain`, gives the rest back, writes what finished,
    /// stops the keepers, and closes the consumer — unless the lease was
    /// lost, when its work returns to the queue as the lease lapses.
    pub(crate) async fn end(self, drain: Duration, unit: &str) {
        self.handlers.close();
        if !self.fence.is_cancelled()
            && tokio::time::timeout(drain, self.handlers.wait())
                .await
                .is_err()
        {
            tracing::warn!(%unit, "drain timed out; giving running work back");
            self.abandon.cancel();
        }
        self.handlers.wait().await;
        self.finisher.flush().await;
        self.over.cancel();
        for keeper in self.keepers {
            let _ = keeper.await;
        }
        if self.fence.is_cancelled() {
            tracing::warn!(%unit, "lease lost; handlers stopped, registering again");
        } else if let Err(e) = self.holder.close().await {
            tracing::warn!(%unit, error = %e, "closing the consumer failed; its work returns when its lease lapses");
        }
    }
}

/// The life of a server or of one queue of a worker: register a consumer
/// (retrying with backoff while the broker is away — at start only if
/// `wait_at_start`), hold it for a `session`, and register again after a
/// lost lease or a failed claim (which `session` reports with `true`),
/// until `shutdown`. Fails only on errors retrying won't fix.
pub(crate) async fn hold_leases<C, O, OF, S, SF>(
    unit: &str,
    shutdown: &CancellationToken,
    wait_at_start: bool,
    mut open: O,
    mut session: S,
) -> Result<(), BrokerError>
where
    O: FnMut() -> OF,
    OF: Future<Output = Result<C, BrokerError>>,
    S: FnMut(C, Instant) -> SF,
    SF: Future<Output = bool>,
{
    let mut backoff = super::backoff::Backoff::default();
    let mut first = true;
    while !shutdown.is_cancelled() {
        // The lease runs from before the registration was sent.
        let registered_at = Instant::now();
        let consumer = match open().await {
            Ok(c) => c,
            Err(e) if e.is_retryable() && (wait_at_start || !first) => {
                let delay = backoff.next_delay();
                tracing::warn!(%unit, error = %e, ?delay, "cannot register with the broker; retrying");
                tokio::select! {
                    () = tokio::time::sleep(delay) => continue,
                    () = shutdown.cancelled() => break,
                }
            }
            Err(e) => return Err(e),
        };
        first = false;
        backoff.reset();
        if session(consumer, registered_at).await {
            // A claim failed: wait a little before registering again.
            tokio::select! {
                () = tokio::time::sleep(backoff.next_delay()) => {}
                () = shutdown.cancelled() => break,
            }
        }
    }
    Ok(())
}
