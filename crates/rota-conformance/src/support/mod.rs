//! What the backends' integration tests share: a private `redis-server`
//! to start, kill and restart, and child processes to SIGKILL.

mod child;
mod redis_server;

pub use child::{Child, child_env};
pub use redis_server::{RedisServer, free_port};
