//! The conformance suite every [`JobStore`] backend passes, one file per
//! part of a job's life; the helpers the checks share are here.
//!
//! Each check takes a store and uses queue names of its own, so checks can
//! share one store. A backend's tests run them all with
//! [`jobs_tests!`](crate::jobs_tests):
//!
//! ```ignore
//! rota_conformance::jobs_tests!(async { ((), my_backend::connect().await) });
//! ```
//!
//! Time-dependent checks use real time — short leases and delays of a few
//! hundred milliseconds — because the Redis and SQLite backends keep time on
//! their own clocks; no check pauses tokio's clock.

mod admin;
mod claim;
mod enqueue;
mod leases;
mod list;
mod settle;

pub use admin::*;
pub use claim::*;
pub use enqueue::*;
pub use leases::*;
pub use list::*;
pub use settle::*;

use std::time::Duration;

use bytes::Bytes;
use rota_core::clock::Clock;
pub use rota_core::clock::ManualClock;
use rota_core::jobs::{
    Attempt, AttemptOutcome, CancelOutcome, Job, JobConsumer, JobConsumerOptions, JobId, JobState,
    JobStore, NewJob, Next, QueuePolicy, Retention, Settle,
};
use rota_core::{BrokerError, CorrelationId};

use crate::JobBackend;

/// A lease short enough to let lapse in a check.
pub const SHORT_LEASE: Duration = Duration::from_millis(300);

/// How far ahead the scheduling checks schedule jobs.
pub const SHORT_DELAY: Duration = Duration::from_millis(200);

/// How long a claim that should find a job waits for it.
pub(crate) const FOUND: Duration = Duration::from_secs(2);

/// How long a claim that should find nothing waits.
pub(crate) const NOTHING: Duration = Duration::from_millis(50);

pub(crate) fn queue(check: &str) -> String {
    format!("jconf.{check}.{}", CorrelationId::new().as_uuid().simple())
}

/// Options with a lease that lapses within a check.
pub(crate) fn short() -> JobConsumerOptions {
    JobConsumerOptions::default().lease(SHORT_LEASE)
}

/// Options with a lease that outlives any check.
pub(crate) fn opts() -> JobConsumerOptions {
    JobConsumerOptions::default().lease(Duration::from_secs(60))
}

tokio::task_local! {
    /// The clock of the store under check: due times, retries and
    /// timestamps move only when a check moves it.
    static CLOCK: ManualClock;
}

/// Runs `check` with `clock` as the clock of the store under check (the
/// generated tests do; a backend's own test calling a check does too).
pub async fn run_with_clock<F: std::future::Future>(clock: ManualClock, check: F) -> F::Output {
    CLOCK.scope(clock, check).await
}

/// Now, by the store's clock.
pub(crate) fn now_ms() -> u64 {
    CLOCK.with(|c| c.now_ms())
}

/// Moves the store's clock forward: due times pass without sleeping.
pub(crate) fn advance(by: Duration) {
    CLOCK.with(|c| c.advance(by));
}

/// Lets short leases lapse: real time for leases kept on tokio's or
/// Redis's clock, and the store's clock for leases kept by it (SQLite).
pub(crate) async fn lapse() {
    tokio::time::sleep(SHORT_LEASE * 2).await;
    advance(SHORT_LEASE * 2);
}

pub(crate) fn job(queue: &str, tenant: &str) -> NewJob {
    job_with(queue, tenant, &serde_json::json!({"n": 0}))
}

pub(crate) fn job_with(queue: &str, tenant: &str, payload: &serde_json::Value) -> NewJob {
    NewJob::new(queue, tenant, "conf.kind", payload).expect("encodes")
}

pub(crate) fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

pub(crate) fn attempt(job: &Job, worker: &dyn JobConsumer, outcome: AttemptOutcome) -> Attempt {
    let now = now_ms();
    Attempt {
        attempt: job.attempt,
        worker: worker.id().to_owned(),
        started_at_ms: now,
        finished_at_ms: now,
        outcome,
    }
}

pub(crate) fn succeeded(job: &Job, worker: &dyn JobConsumer) -> Settle {
    Settle::new(
        job.id,
        attempt(job, worker, AttemptOutcome::Succeeded),
        Next::Finish(JobState::Succeeded),
    )
}

pub(crate) fn failed(job: &Job, worker: &dyn JobConsumer, error: &str, next: Next) -> Settle {
    let outcome = AttemptOutcome::Failed {
        error: error.to_owned(),
        retryable: matches!(next, Next::RetryAt(_)),
    };
    Settle::new(job.id, attempt(job, worker, outcome), next)
}

pub(crate) async fn claim_one(c: &dyn JobConsumer) -> Job {
    let mut got = c.claim(1, FOUND).await.expect("claim");
    assert_eq!(got.len(), 1, "expected one job to claim");
    got.remove(0)
}

/// The dead jobs of `queue` (the first page, the latest first).
pub(crate) async fn dead(store: &dyn JobStore, queue: &str) -> Vec<rota_core::jobs::JobRecord> {
    let query = rota_core::jobs::JobQuery::new(JobState::Dead);
    store.list_jobs(queue, &query).await.expect("list").jobs
}

pub(crate) async fn state_of(store: &dyn JobStore, queue: &str, id: JobId) -> JobState {
    store
        .job(queue, id)
        .await
        .expect("job")
        .expect("record retained")
        .state
}
/// Generates one `#[tokio::test]` per job conformance check. `$make` is a
/// closure from a [`ManualClock`] to a future of `(guard, store)`: the
/// store keeps its time by that clock (the checks move it instead of
/// sleeping), and the guard (say, a Redis server process) lives as long as
/// the check runs.
#[macro_export]
macro_rules! jobs_tests {
    ($make:expr) => {
        $crate::jobs_tests!(@each $make;
            enqueue_claim_settle_succeeded, bulk_enqueue_is_all_or_nothing, idempotent_enqueue,
            a_fenced_enqueue_is_refused_once_the_fence_passed,
            scheduled_job_waits_until_due, priority_then_fifo_within_a_partition,
            round_robin_across_partitions, tenant_cap_holds_across_consumers,
            retry_at_schedules_the_next_attempt, failed_for_good_keeps_the_reason,
            dead_by_the_worker, dead_after_exhausted_reaps, store_decided_outcomes_are_replied,
            lost_lease_is_redelivered,
            stale_settle_is_refused, a_later_epoch_fences_the_earlier, renewal_keeps_the_lease,
            release_and_close_give_back_at_once, cancel_only_before_start, retention_by_count,
            policy_is_kept_with_the_queue, a_running_job_is_cancelled_through_its_holder,
            counts_per_state_and_partition, requeue_and_purge_dead, bad_input_is_refused,
            a_chosen_id_is_unique_within_its_queue, finishing_in_a_state_that_is_not_final_is_refused,
            claims_take_turns_over_many_partitions, a_reply_to_that_is_no_inbox_is_refused,
            a_capped_tenant_does_not_block_its_partition, an_idle_tenant_is_served_at_the_next_claim, a_capped_claim_wakes_when_a_slot_frees,
            an_invalid_job_refuses_a_batch_over_several_queues,
            counts_see_capped_grouped_and_cancelled_jobs,
            round_robin_over_fifty_thousand_partitions, jobs_are_listed_by_state_page_by_page,
            priority_then_fifo_across_the_tenants_of_a_partition);
    };
    (@each $make:expr; $($check:ident),* $(,)?) => {
        mod jobs_conformance {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let clock = $crate::jobs::ManualClock::starting_now();
                    let (_guard, store) = ($make)(clock.clone()).await;
                    $crate::jobs::run_with_clock(clock, $crate::jobs::$check(&store)).await;
                }
            )*
        }
    };
}
