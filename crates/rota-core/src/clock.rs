//! Wall-clock time behind a trait, so that what depends on it — due times
//! of scheduled jobs, retries, attempt timestamps, and next the fire times
//! of schedules — can be tested with a clock the test moves.
//!
//! Every store takes a [`SharedClock`] (the [`SystemClock`] by default) and
//! gives it to the runtime through [`JobStore::clock`](crate::jobs::JobStore::clock);
//! a test passes a [`ManualClock`] and [`advance`](ManualClock::advance)s
//! it instead of sleeping. Leases are not measured with it: they run on
//! tokio's clock in process and on the store's own clock (Redis key TTLs)
//! across processes.
//!
//! ```
//! use std::time::Duration;
//! use rota_core::clock::{Clock, ManualClock};
//!
//! let clock = ManualClock::new(1_000);
//! clock.advance(Duration::from_secs(2));
//! assert_eq!(clock.now_ms(), 3_000);
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Tells the time, in milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// Milliseconds since the Unix epoch, now.
    fn now_ms(&self) -> u64;
}

/// A clock shared by a store and everything that runs on it.
pub type SharedClock = Arc<dyn Clock>;

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        crate::time::now_ms()
    }
}

/// The system clock, shared.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// A clock that moves only when told to. Clones share the time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock showing `now_ms`.
    pub fn new(now_ms: u64) -> Self {
        Self {
            now: Arc::new(AtomicU64::new(now_ms)),
        }
    }

    /// A clock showing the system's time now, from then on moved by hand.
    pub fn starting_now() -> Self {
        Self::new(crate::time::now_ms())
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.now.fetch_add(ms, Ordering::SeqCst);
    }

    /// Sets the clock to `now_ms` (it may go back, as wall clocks do).
    pub fn set(&self, now_ms: u64) {
        self.now.store(now_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }
}
