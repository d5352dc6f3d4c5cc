//! Jobs: the model of background work and the store trait every backend
//! implements for it.
//!
//! A job is enqueued into a **queue**, for a **tenant**, as a **kind** with a
//! JSON **payload**. A queue is split into **partitions** — by default one
//! per tenant; [`NewJob::partition`] groups tenants — and workers take work
//! from partitions in turn, so one tenant's backlog cannot starve another.
//!
//! * [`model`] — [`NewJob`], [`Job`], [`JobRecord`], states and attempts.
//! * [`store`] — the [`JobStore`] / [`JobConsumer`] traits: enqueue (in
//!   bulk, scheduled, idempotent, prioritised), claim under a fenced lease,
//!   settle (succeed, retry later, fail, dead-letter), reap, and look up.
//! * [`list`] — [`JobQuery`] / [`JobPage`]: a queue's jobs in one state, a
//!   page at a time.

pub mod counts;
pub mod list;
pub mod model;
pub mod store;
pub mod validate;

pub use counts::{QueueCounts, StateCounts};
pub use list::{JobPage, JobQuery};
pub use model::{
    Attempt, AttemptOutcome, Enqueued, Job, JobId, JobOutcome, JobRecord, JobState, NewJob,
};
pub use store::{
    CancelOutcome, JobConsumer, JobConsumerOptions, JobStore, Next, QueuePolicy, Retention, Settle,
};
pub use validate::{
    check_fence, fence_of, validate_batch, validate_job, validate_queue, validate_reply_to,
    validate_tenant,
};
