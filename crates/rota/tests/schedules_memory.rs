//! Schedules on the in-memory store, end to end.

mod support;

use rota_memory::MemoryBroker;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_rate_schedule_runs_each_occurrence_once() {
    support::a_fixed_rate_schedule_runs_each_occurrence_once(MemoryBroker::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_overlap_never_runs_two_at_once_and_counts_the_skips() {
    support::skip_overlap_never_runs_two_at_once_and_counts_the_skips(MemoryBroker::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_completion_waits_its_interval_after_each_run_finished() {
    support::after_completion_waits_its_interval_after_each_run_finished(MemoryBroker::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_running_stops_the_run_and_starts_the_next() {
    support::cancel_running_stops_the_run_and_starts_the_next(MemoryBroker::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_move_to_the_scheduler_left_and_no_run_is_doubled() {
    support::shards_move_to_the_scheduler_left_and_no_run_is_doubled(MemoryBroker::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_pause_and_resume_by_hand() {
    support::trigger_pause_and_resume_by_hand(MemoryBroker::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_nothing_is_written() {
    support::bad_input_is_refused_and_nothing_is_written(MemoryBroker::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_recomputes_the_next_fire_and_delete_stops_fires() {
    support::update_recomputes_the_next_fire_and_delete_stops_fires(MemoryBroker::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thawed_owner_cannot_enqueue_a_run_again_once_its_record_is_gone() {
    support::a_thawed_owner_cannot_enqueue_a_run_again_once_its_record_is_gone(MemoryBroker::new())
        .await;
}

/// A scheduler that stops leaves at once: the one left takes all the
/// shards long before the leaver's heartbeat would have run out.
#[tokio::test(start_paused = true)]
async fn a_scheduler_that_stops_leaves_its_shards_to_the_others_at_once() {
    use std::time::Duration;

    use rota::schedules::{Scheduler, SchedulerOptions};
    use rota_core::schedules::ScheduleStore;
    let store = MemoryBroker::new();
    let lease = Duration::from_secs(6);
    let start = |name: &str| {
        Scheduler::new(store.clone())
            .options(SchedulerOptions::default().name(name).lease(lease))
            .spawn()
    };
    let a = start("a");
    let b = start("b");
    let all = store.shards() as usize;
    let held_by = |owners: &[rota_core::schedules::ShardOwner], name: &str| {
        owners
            .iter()
            .filter(|o| o.holder.as_deref() == Some(name))
            .count()
    };
    // Each takes its share (the split is settled at b's next turn, a
    // third of the lease on).
    for _ in 0..200 {
        let owners = store.shard_owners().await.unwrap();
        if held_by(&owners, "a") + held_by(&owners, "b") == all && held_by(&owners, "b") > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    a.shutdown().await;
    // b's next turn (a third of the lease) takes them all; a's heartbeat,
    // renewed at most a third of the lease ago, would keep them from it
    // for two thirds more. (Paused time: the store's heartbeats and the
    // schedulers' turns run on tokio's clock.)
    let until = tokio::time::Instant::now() + lease / 3 + Duration::from_secs(1);
    while tokio::time::Instant::now() < until {
        if held_by(&store.shard_owners().await.unwrap(), "b") == all {
            b.shutdown().await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("b holds only {:?}", store.shard_owners().await.unwrap());
}
