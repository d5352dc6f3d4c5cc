//! What the backends' integration tests share: a private `redis-server`
//! to start, kill and restart, a private Redis Cluster of six, child processes to SIGKILL, and waiting for
//! jobs to reach a state.

mod child;
mod jobs;
mod redis_cluster;
mod redis_server;

pub use child::{Child, child_env};
pub use jobs::await_state;
pub use redis_cluster::{NODE_TIMEOUT_MS, RedisCluster};
pub use redis_server::{RedisServer, free_port};
