//! The in-process backend of rota: the same semantics as the Redis and
//! embedded backends — leases, redelivery with attempt + 1, dead letters,
//! fencing — on tokio primitives, so tests run fast and may pause time.
//!
//! One [`MemoryBroker`] value implements each feature's trait side by side:
//! [`Broker`](rota_core::rpc::Broker) for calls and
//! [`JobStore`](rota_core::jobs::JobStore) for jobs. The features share one
//! small part, the reply inboxes, which calls answer into and which job
//! outcomes reach.
//!
//! * `inbox` — reply inboxes, shared by every feature.
//! * `rpc` — request queues per service, consumers under leases.
//! * `jobs` — job queues: partitions in a round-robin ring, a tenant cap,
//!   scheduled jobs, retention.
//!
//! Everything sits behind one lock, so an outcome reply and the settlement
//! that owes it happen in one step.

mod inbox;
mod jobs;
mod rpc;
mod schedules;

use std::sync::{Arc, Mutex, MutexGuard};

use rota_core::clock::{Clock, SharedClock, SystemClock};

/// An in-process broker. Cheap to clone; clones share the queues.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use std::time::Duration;
/// use rota_core::rpc::{Broker, ConsumerOptions};
/// use rota_memory::MemoryBroker;
///
/// let broker = MemoryBroker::new();
/// broker.publish("jobs", "hello".into()).await.unwrap();
/// let consumer = broker.consumer("jobs", ConsumerOptions::default()).await.unwrap();
/// let got = consumer.claim(10, Duration::from_millis(10)).await.unwrap();
/// assert_eq!(got[0].payload, "hello");
/// assert_eq!(got[0].attempt, 1);
/// # }
/// ```
#[derive(Clone)]
pub struct MemoryBroker {
    state: Arc<Mutex<State>>,
    /// Keeps due times and timestamps; leases run on tokio's clock.
    clock: SharedClock,
}

impl Default for MemoryBroker {
    fn default() -> Self {
        Self::with_clock(SystemClock)
    }
}

impl std::fmt::Debug for MemoryBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBroker").finish_non_exhaustive()
    }
}

/// Everything a [`MemoryBroker`] holds, one field per feature.
#[derive(Default)]
pub(crate) struct State {
    rpc: rpc::Services,
    inboxes: inbox::OpenInboxes,
    jobs: jobs::JobsState,
    schedules: schedules::SchedulesState,
}

impl MemoryBroker {
    /// An empty broker on the system clock.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty broker that keeps due times and timestamps by `clock` (a
    /// [`ManualClock`](rota_core::clock::ManualClock) in tests). Leases run
    /// on tokio's clock, so tests may also pause and advance that.
    pub fn with_clock(clock: impl Clock) -> Self {
        Self {
            state: Arc::default(),
            clock: Arc::new(clock),
        }
    }

    /// Milliseconds since the epoch, by this broker's clock.
    pub(crate) fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// The end of a lease of `ttl_ms` granted now, by the store's clock
    /// (what a fenced enqueue is checked against).
    pub(crate) fn lease_end(&self, ttl_ms: u64) -> i64 {
        i64::try_from(self.now_ms().saturating_add(ttl_ms)).unwrap_or(i64::MAX)
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub(crate) fn uuid_like() -> String {
    rota_core::CorrelationId::new().to_string()
}
