//! Holding a lease: the local clock that says how long it surely holds, and
//! the loops that renew it and reap the lapsed leases of others.

use std::sync::Mutex;
use std::time::Duration;

use futures_util::future::BoxFuture;
use rota_core::{BrokerError, ReapStats};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// When the lease is known to hold until, by the local clock, measured from
/// before each renewal was sent.
pub(crate) struct LeaseClock {
    valid_until: Mutex<Instant>,
    margin: Duration,
}

impl LeaseClock {
    /// A clock for a lease of `lease` registered at `from`; work stops
    /// `lease / 6` before it would lapse.
    pub(crate) fn new(from: Instant, lease: Duration) -> Self {
        Self {
            valid_until: Mutex::new(from + lease),
            margin: lease / 6,
        }
    }

    fn extend(&self, from: Instant, lease: Duration) {
        let mut v = self.valid_until.lock().unwrap_or_else(|e| e.into_inner());
        *v = (*v).max(from + lease);
    }

    /// The instant by which work must stop.
    pub(crate) fn fence_at(&self) -> Instant {
        *self.valid_until.lock().unwrap_or_else(|e| e.into_inner()) - self.margin
    }

    /// Whether the lease surely holds now.
    pub(crate) fn holds(&self) -> bool {
        Instant::now() < self.fence_at()
    }
}

/// Keeps the lease alive every third of it; cancels `fence` (stopping all
/// work) when it is lost or about to lapse without a renewal.
pub(crate) async fn keep_alive<R>(
    renew: R,
    clock: &LeaseClock,
    lease: Duration,
    fence: CancellationToken,
    over: CancellationToken,
) where
    R: Fn() -> BoxFuture<'static, Result<(), BrokerError>>,
{
    let every = lease / 3;
    let mut next = every;
    loop {
        let fence_at = clock.fence_at();
        tokio::select! {
            () = tokio::time::sleep(next) => {}
            () = tokio::time::sleep_until(fence_at) => {
                tracing::warn!("lease about to lapse without renewal; stopping work");
                fence.cancel();
                return;
            }
            () = over.cancelled() => return,
            () = fence.cancelled() => return,
        }
        let sent = Instant::now();
        match tokio::time::timeout_at(clock.fence_at(), renew()).await {
            Ok(Ok(())) => {
                clock.extend(sent, lease);
                next = every;
            }
            Ok(Err(BrokerError::LeaseLost)) => {
                tracing::warn!("lease lost; stopping work");
                fence.cancel();
                return;
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "lease renewal failed; retrying");
                next = (every / 4).max(Duration::from_millis(10));
            }
            Err(_) => {
                tracing::warn!(
                    "lease renewal did not answer before the lease lapses; stopping work"
                );
                fence.cancel();
                return;
            }
        }
    }
}

/// Hands back the work of lapsed leases every half lease (with jitter, so
/// many processes spread their reaps).
pub(crate) async fn reap_periodically<R>(reap: R, lease: Duration, over: CancellationToken)
where
    R: Fn() -> BoxFuture<'static, Result<ReapStats, BrokerError>>,
{
    let every = (lease / 2).max(Duration::from_millis(10));
    loop {
        match reap().await {
            Ok(stats) if stats.requeued + stats.dead_lettered > 0 => {
                tracing::info!(
                    requeued = stats.requeued,
                    dead_lettered = stats.dead_lettered,
                    "reaped the work of lapsed leases"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "reap failed"),
        }
        let jitter = rand::random_range(0..=every.as_millis() as u64 / 4);
        tokio::select! {
            () = tokio::time::sleep(every + Duration::from_millis(jitter)) => {}
            () = over.cancelled() => return,
        }
    }
}
