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

use std::sync::{Arc, Mutex, MutexGuard};

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
#[derive(Clone, Default)]
pub struct MemoryBroker {
    state: Arc<Mutex<State>>,
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
}

impl MemoryBroker {
    /// An empty broker.
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub(crate) fn uuid_like() -> String {
    rota_core::CorrelationId::new().to_string()
}
