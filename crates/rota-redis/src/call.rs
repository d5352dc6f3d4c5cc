//! Calls of Redis Functions (`FCALL`) of rota's libraries, loading the
//! library into a Redis that lacks it (a restart without persistence, a
//! new version).

use redis::aio::ConnectionLike;
use redis::{FromRedisValue, RedisResult, ToRedisArgs};

use crate::scripts::Library;

/// One call of a function of a library: its keys, then its arguments.
pub(crate) struct Call {
    library: &'static Library,
    function: String,
    keys: Vec<String>,
    args: Vec<Vec<u8>>,
}

impl Call {
    /// A call of function `name` of `library`.
    pub(crate) fn new(library: &'static Library, name: &str) -> Self {
        Self {
            library,
            function: library.function(name),
            keys: Vec::new(),
            args: Vec::new(),
        }
    }

    pub(crate) fn key(&mut self, key: impl Into<String>) -> &mut Self {
        self.keys.push(key.into());
        self
    }

    pub(crate) fn arg(&mut self, arg: impl ToRedisArgs) -> &mut Self {
        arg.write_redis_args(&mut self.args);
        self
    }

    /// The `FCALL` command, to send alone or in a pipeline.
    pub(crate) fn cmd(&self) -> redis::Cmd {
        let mut cmd = redis::cmd("FCALL");
        cmd.arg(&self.function)
            .arg(self.keys.len())
            .arg(&self.keys)
            .arg(&self.args);
        cmd
    }

    /// Calls the function, loading the library first if Redis lacks it.
    pub(crate) async fn invoke<T: FromRedisValue>(
        &self,
        conn: &mut (impl ConnectionLike + Send),
    ) -> RedisResult<T> {
        let cmd = self.cmd();
        match cmd.query_async(conn).await {
            Err(e) if is_missing(&e) => {
                load(conn, self.library).await?;
                cmd.query_async(conn).await
            }
            answer => answer,
        }
    }
}

/// Whether `e` says the function is not loaded (so it did not run).
pub(crate) fn is_missing(e: &redis::RedisError) -> bool {
    e.to_string().contains("Function not found")
}

/// Loads `library` (a library already loaded is left as it is).
pub(crate) async fn load(
    conn: &mut (impl ConnectionLike + Send),
    library: &Library,
) -> RedisResult<()> {
    let loaded: RedisResult<String> = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg(&library.code)
        .query_async(conn)
        .await;
    match loaded {
        Err(e) if e.to_string().contains("already exists") => Ok(()),
        other => other.map(|_| ()),
    }
}

