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

/// Calls each of `calls` in one pipeline (one round trip, not a
/// transaction), loading the library and calling again those that found
/// their function missing (they ran nothing). Returns each call's answer;
/// fails as a whole only when the pipeline itself does.
pub(crate) async fn invoke_all(
    conn: &mut (impl ConnectionLike + Send),
    calls: &[Call],
) -> RedisResult<Vec<RedisResult<redis::Value>>> {
    let mut pipe = redis::pipe();
    for call in calls {
        pipe.add_command(call.cmd());
    }
    let mut results: Vec<RedisResult<redis::Value>> =
        pipe.ignore_errors().query_async(conn).await?;
    let missing: Vec<usize> = (0..calls.len())
        .filter(|i| {
            results
                .get(*i)
                .is_some_and(|r| r.as_ref().is_err_and(is_missing))
        })
        .collect();
    if let Some(first) = missing.first() {
        load(conn, calls[*first].library).await?;
        let mut again = redis::pipe();
        for i in &missing {
            again.add_command(calls[*i].cmd());
        }
        let answers: Vec<RedisResult<redis::Value>> =
            again.ignore_errors().query_async(conn).await?;
        for (i, answer) in missing.into_iter().zip(answers) {
            results[i] = answer;
        }
    }
    Ok(results)
}
