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
