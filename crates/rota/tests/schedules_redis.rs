//! Schedules on Redis, end to end, each scenario on a private
//! redis-server.

mod support;

use rota_conformance::support::RedisServer;
use rota_redis::{RedisBroker, RedisOptions};

async fn open() -> (RedisServer, RedisBroker) {
    let server = RedisServer::start();
    let options = RedisOptions::new(server.url())
        .prefix("e2e")
        .schedule_shards(8);
    let store = RedisBroker::connect_with(options).await.expect("connect");
    (server, store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_rate_schedule_runs_each_occurrence_once() {
    let (_server, store) = open().await;
    support::a_fixed_rate_schedule_runs_each_occurrence_once(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_overlap_never_runs_two_at_once_and_counts_the_skips() {
    let (_server, store) = open().await;
    support::skip_overlap_never_runs_two_at_once_and_counts_the_skips(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_completion_waits_its_interval_after_each_run_finished() {
    let (_server, store) = open().await;
    support::after_completion_waits_its_interval_after_each_run_finished(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_running_stops_the_run_and_starts_the_next() {
    let (_server, store) = open().await;
    support::cancel_running_stops_the_run_and_starts_the_next(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_move_to_the_scheduler_left_and_no_run_is_doubled() {
    let (_server, store) = open().await;
    support::shards_move_to_the_scheduler_left_and_no_run_is_doubled(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_pause_and_resume_by_hand() {
    let (_server, store) = open().await;
    support::trigger_pause_and_resume_by_hand(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_nothing_is_written() {
    let (_server, store) = open().await;
    support::bad_input_is_refused_and_nothing_is_written(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_recomputes_the_next_fire_and_delete_stops_fires() {
    let (_server, store) = open().await;
    support::update_recomputes_the_next_fire_and_delete_stops_fires(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thawed_owner_cannot_enqueue_a_run_again_once_its_record_is_gone() {
    let (_server, store) = open().await;
    support::a_thawed_owner_cannot_enqueue_a_run_again_once_its_record_is_gone(store).await;
}
