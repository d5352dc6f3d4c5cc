//! One consumer's time holding its lease, shared by servers and workers:
//! the leased consumer ([`Holder`]) they share, the [`Finisher`] that writes finished
//! work only while the lease surely holds, the [`Tenure`] that ends it all
//! in order, and [`hold_leases`], the register / hold / register-again loop.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use rota_core::{BrokerError, Leased, ReapStats};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::combine::{BatchWrite, Combiner};
use super::lease::{LeaseClock, keep_alive, reap_periodically};

/// A leased consumer, shared by the tasks of its tenure: the claim loop,
/// the handlers' batch writer, the renewer and the reaper.
pub(crate) struct Holder<L: ?Sized>(pub(crate) Arc<L>);

impl<L: ?Sized> Clone for Holder<L> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<L: Leased + ?Sized + 'static> Holder<L> {
    fn renew(&self) -> BoxFuture<'static, Result<(), BrokerError>> {
        let c = Arc::clone(&self.0);
        Box::pin(async move { c.renew().await })
    }
    fn reap(&self) -> BoxFuture<'static, Result<ReapStats, BrokerError>> {
        let c = Arc::clone(&self.0);
        Box::pin(async move { c.reap().await })
    }
}

/// Starts the two tasks every lease holder needs: renewal (which fences on
/// failure) and periodic reaping of others' lapsed leases. Both end when
/// `over` is cancelled.
fn spawn_keepers<L: Leased + ?Sized + 'static>(
    holder: &Holder<L>,
    clock: &Arc<LeaseClock>,
    lease: Duration,
    fence: &CancellationToken,
    over: &CancellationToken,
) -> [tokio::task::JoinHandle<()>; 2] {
    let renewer = tokio::spawn({
        let (holder, clock) = (holder.clone(), Arc::clone(clock));
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
pub(crate) enum Finished<L: Leased + ?Sized> {
    /// Write it.
    Done(L::Done),
    /// Give it back (shutdown cut it short).
    Abandoned(L::Tag),
}

/// Writes finished work in flat-combined batches, only while the lease
/// surely holds: past it, the work may already run elsewhere.
pub(crate) struct Finisher<L: Leased + ?Sized> {
    holder: Holder<L>,
    combiner: Combiner<Finished<L>>,
    clock: Arc<LeaseClock>,
    fence: CancellationToken,
}

impl<L: Leased + ?Sized + 'static> Finisher<L> {
    pub(crate) fn new(holder: Holder<L>, clock: Arc<LeaseClock>, fence: CancellationToken) -> Self {
        Self {
            holder,
            combiner: Combiner::default(),
            clock,
            fence,
        }
    }

    /// Queues `item` and writes, unless another task is writing.
    pub(crate) async fn finish(&self, item: Finished<L>) {
        self.combiner.push(item, self).await;
    }

    /// Writes whatever is queued.
    pub(crate) async fn flush(&self) {
        self.combiner.flush(self).await;
    }
}

impl<L: Leased + ?Sized + 'static> BatchWrite<Finished<L>> for Finisher<L> {
    fn write(&self, batch: Vec<Finished<L>>) -> BoxFuture<'_, ()> {
        Box::pin(self.write_batch(batch))
    }
}

impl<L: Leased + ?Sized + 'static> Finisher<L> {
    async fn write_batch(&self, batch: Vec<Finished<L>>) {
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
            && let Err(e) = self.holder.0.release(abandoned, true).await
        {
            tracing::warn!(error = %e, "giving work back failed; it returns when the lease lapses");
        }
        self.settle(done).await;
    }

    /// Settles `done`, retrying with backoff what may pass later (the store
    /// is away or refuses writes for a while) while the lease surely holds.
    /// A batch refused for good is split, so that one bad item cannot hold
    /// the others back; an item refused for good on its own is given up.
    async fn settle(&self, done: Vec<L::Done>) {
        let mut backoff = super::backoff::Backoff::default();
        while !done.is_empty() && !self.fence.is_cancelled() && self.clock.holds() {
            match self.holder.0.settle(done.clone()).await {
                Ok(_) => return,
                Err(BrokerError::LeaseLost) => {
                    self.fence.cancel();
                    return;
                }
                Err(e) if e.is_retryable() => {
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %e, ?delay, "writing finished work failed; retrying");
                    tokio::time::sleep(delay).await;
                }
                Err(e) if done.len() > 1 => {
                    tracing::warn!(error = %e, n = done.len(), "a batch of finished work was refused; writing it one by one");
                    for item in done {
                        Box::pin(self.settle(vec![item])).await;
                    }
                    return;
                }
                Err(e) => {
                    let reason = format!("its result could not be written: {e}");
                    tracing::error!(error = %e, "finished work refused for good; giving it up");
                    let item = done.into_iter().next().expect("one item");
                    if let Err(e) = self.holder.0.give_up(item, &reason).await {
                        tracing::warn!(error = %e, "giving up failed; the work returns when the lease lapses");
                    }
                    return;
                }
            }
        }
    }
}

/// One consumer's time holding its lease: the tokens that stop its work, the
/// keeper tasks, the batch writer and the tracked handlers, and how it all
/// ends. Servers and workers run their claim loops inside one.
pub(crate) struct Tenure<L: Leased + ?Sized> {
    holder: Holder<L>,
    /// Says whether the lease surely holds.
    pub(crate) clock: Arc<LeaseClock>,
    /// Cancelled when the lease is (about to be) lost: every handler stops.
    pub(crate) fence: CancellationToken,
    /// Cancelled when the drain times out: running work is given back.
    pub(crate) abandon: CancellationToken,
    /// Writes finished work.
    pub(crate) finisher: Arc<Finisher<L>>,
    /// The running handlers.
    pub(crate) handlers: tokio_util::task::TaskTracker,
    over: CancellationToken,
    keepers: [tokio::task::JoinHandle<()>; 2],
    /// Dropping the tenure (its claim loop's future was dropped, say in a
    /// `select!`) stops renewing and stops the handlers: what it held goes
    /// back when the lease lapses, instead of being renewed forever.
    _dropped: tokio_util::sync::DropGuard,
}

impl<L: Leased + ?Sized + 'static> Tenure<L> {
    /// Starts renewing `holder`'s lease (registered at `registered_at`) and
    /// reaping others' lapsed ones.
    pub(crate) fn begin(holder: Holder<L>, registered_at: Instant, lease: Duration) -> Self {
        let clock = Arc::new(LeaseClock::new(registered_at, lease));
        let life = CancellationToken::new();
        let fence = life.child_token();
        let over = life.child_token();
        let keepers = spawn_keepers(&holder, &clock, lease, &fence, &over);
        let finisher = Arc::new(Finisher::new(
            holder.clone(),
            Arc::clone(&clock),
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
            _dropped: life.drop_guard(),
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
        } else if let Err(e) = self.holder.0.close().await {
            tracing::warn!(%unit, error = %e, "closing the consumer failed; its work returns when its lease lapses");
        }
    }
}

/// The life of a server or of one queue of a worker: register a consumer
/// (retrying with backoff while the broker is away — at start only if
/// `wait_at_start`), hold it for a `session`, and register again after a
/// lost lease or a failed claim (which `session` reports with `true`),
/// until `shutdown`.
///
/// Once it has registered, a store that refuses writes for a while (Redis at
/// its `maxmemory`, a full disk under SQLite, an answer it should not give)
/// is an outage like any other: each failure is logged with its cause and
/// retried with backoff and jitter, and the work resumes when writes pass.
/// Fails only on errors retrying won't fix: a bad name or configuration.
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
            Err(e) if (wait_at_start || !first) && worth_retrying(&e, first) => {
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

/// Whether registering again may pass later: a broker that is away, or —
/// once registering worked — one that refuses writes for now (anything but
/// a bad name or configuration, which no wait mends).
fn worth_retrying(e: &BrokerError, first: bool) -> bool {
    e.is_retryable()
        || (!first
            && !matches!(
                e,
                BrokerError::Config(_)
                    | BrokerError::InvalidName(_)
                    | BrokerError::Invalid(_)
                    | BrokerError::Closed
            ))
}
