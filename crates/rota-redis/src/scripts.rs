//! The Lua scripts, loaded once per connection and invoked by SHA.

use std::sync::LazyLock;

use redis::Script;

const COMMON: &str = include_str!("lua/rpc/common.lua");

fn with_common(body: &str) -> Script {
    Script::new(&format!("{COMMON}\n{body}"))
}

pub(crate) static ACK: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/rpc/ack.lua")));
pub(crate) static RELEASE: LazyLock<Script> =
    LazyLock::new(|| with_common(include_str!("lua/rpc/release.lua")));
pub(crate) static BURY: LazyLock<Script> =
    LazyLock::new(|| with_common(include_str!("lua/rpc/bury.lua")));
pub(crate) static REAP: LazyLock<Script> =
    LazyLock::new(|| with_common(include_str!("lua/rpc/reap.lua")));
pub(crate) static REQUEUE_DEAD: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/rpc/requeue_dead.lua")));

/// Grants a lease of any feature (see `lua/grant.lua`).
pub(crate) static GRANT: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/grant.lua")));

const JOBS_COMMON: &str = include_str!("lua/jobs/common.lua");
const JOBS_TAKE: &str = include_str!("lua/jobs/take.lua");

/// A job script: the shared helpers and the claiming code, then its body.
fn job_script(body: &str) -> Script {
    Script::new(&format!("{JOBS_COMMON}\n{JOBS_TAKE}\n{body}"))
}

pub(crate) static JOB_ENQUEUE: LazyLock<Script> =
    LazyLock::new(|| job_script(include_str!("lua/jobs/enqueue.lua")));
pub(crate) static JOB_CLAIM: LazyLock<Script> =
    LazyLock::new(|| job_script(include_str!("lua/jobs/claim.lua")));
pub(crate) static JOB_SETTLE: LazyLock<Script> =
    LazyLock::new(|| job_script(include_str!("lua/jobs/settle.lua")));
pub(crate) static JOB_RELEASE: LazyLock<Script> =
    LazyLock::new(|| job_script(include_str!("lua/jobs/release.lua")));
pub(crate) static JOB_REAP: LazyLock<Script> =
    LazyLock::new(|| job_script(include_str!("lua/jobs/reap.lua")));
pub(crate) static JOB_ADMIN: LazyLock<Script> =
    LazyLock::new(|| job_script(include_str!("lua/jobs/admin.lua")));
pub(crate) static JOB_READ: LazyLock<Script> =
    LazyLock::new(|| job_script(include_str!("lua/jobs/read.lua")));
